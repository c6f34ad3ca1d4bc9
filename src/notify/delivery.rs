//! One request to one receiver: the transport it goes over, how its
//! failures are told apart, the backoff between tries, and the ledger that
//! counts and logs every outcome of a receiver in one place.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::engine::lock;

/// The most of an error answer's body we read, to log its first line.
const ERROR_BODY_LIMIT: usize = 4096;

/// The longest first line of an error answer we keep for the log.
const ERROR_LINE_LIMIT: usize = 200;

/// A POST of a JSON body.
#[derive(Debug, Clone)]
pub struct Request {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
    pub timeout: Duration,
}

/// What a transport hands back: success, or why not.
pub type Sending = Pin<Box<dyn Future<Output = Result<(), DeliveryError>> + Send>>;

/// Sends requests. The daemon uses [`HttpTransport`]; unit tests put a
/// scripted one in its place so that paused time governs everything.
pub trait Transport: Send + Sync + 'static {
    fn post(&self, request: Request) -> Sending;
}

/// Why a delivery did not succeed. Each variant is a normal event of a
/// network service, matched on to decide whether to try again.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeliveryError {
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("{url} did not answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("{url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("request to {url} failed: {reason}")]
    Transport { url: String, reason: String },
    #[error("cannot build the request to {url}: {reason}")]
    Request { url: String, reason: String },
    #[error("cannot read secret file {path}: {reason}")]
    Secret { path: PathBuf, reason: String },
}

impl DeliveryError {
    /// Connection problems, timeouts, 5xx and 429 may pass; a 4xx says the
    /// request itself is wrong, and a missing secret file is ours to fix.
    pub fn is_retryable(&self) -> bool {
        match self {
            DeliveryError::Connect { .. }
            | DeliveryError::Timeout { .. }
            | DeliveryError::Transport { .. } => true,
            DeliveryError::Status { status, .. } => *status >= 500 || *status == 429,
            DeliveryError::Request { .. } | DeliveryError::Secret { .. } => false,
        }
    }

    fn from_reqwest(url: &str, timeout: Duration, error: reqwest::Error) -> DeliveryError {
        let url = url.to_owned();
        // The source chain holds the useful part ("connection refused").
        let mut reason = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            reason.push_str(": ");
            reason.push_str(&cause.to_string());
            source = cause.source();
        }
        if error.is_timeout() {
            DeliveryError::Timeout { url, timeout }
        } else if error.is_connect() {
            DeliveryError::Connect { url, reason }
        } else if error.is_builder() {
            DeliveryError::Request { url, reason }
        } else {
            DeliveryError::Transport { url, reason }
        }
    }
}

/// Requests over the daemon's shared reqwest client.
pub struct HttpTransport {
    pub client: reqwest::Client,
}

impl Transport for HttpTransport {
    fn post(&self, request: Request) -> Sending {
        let client = self.client.clone();
        Box::pin(async move {
            let Request {
                url,
                headers,
                body,
                timeout,
            } = request;
            let mut builder = client
                .post(&url)
                .timeout(timeout)
                .header(reqwest::header::CONTENT_TYPE, "application/json");
            for (name, value) in headers {
                builder = builder.header(name, value);
            }
            let mut response = builder
                .body(body)
                .send()
                .await
                .map_err(|e| DeliveryError::from_reqwest(&url, timeout, e))?;
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            let body = first_line(&mut response).await;
            Err(DeliveryError::Status {
                url,
                status: status.as_u16(),
                body,
            })
        })
    }
}

/// The first line of an error answer, read no further than needed.
async fn first_line(response: &mut reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < ERROR_BODY_LIMIT && !bytes.contains(&b'\n') {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let line = text.lines().next().unwrap_or("").trim();
    line.chars().take(ERROR_LINE_LIMIT).collect()
}

/// Exponential backoff with jitter, bounded in step and in total time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub max_step: Duration,
    /// Tries stop once the first failure is this long ago.
    pub give_up_after: Duration,
}

impl Backoff {
    /// The wait before try `failures + 1`: the doubled step, of which a
    /// random half is taken off so receivers coming back are not hit by
    /// every sender at once.
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(20);
        let step = self
            .initial
            .saturating_mul(1 << doublings)
            .min(self.max_step);
        let half = step / 2;
        let jitter = fastrand::u64(0..=half.as_millis() as u64);
        half + Duration::from_millis(jitter)
    }
}

/// Where a notification is in its retries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retry {
    pub first_failure: Instant,
    pub failures: u32,
}

impl Retry {
    /// The retry state after one more failure at `now`.
    pub fn after(previous: Option<Retry>, now: Instant) -> Retry {
        match previous {
            Some(retry) => Retry {
                failures: retry.failures + 1,
                ..retry
            },
            None => Retry {
                first_failure: now,
                failures: 1,
            },
        }
    }
}

/// What to do with a notification after a failed try.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    RetryAt(Instant),
    GiveUp,
}

/// Decides between another try and giving up.
pub fn next_try(backoff: &Backoff, error: &DeliveryError, retry: Retry, now: Instant) -> Next {
    if !error.is_retryable() {
        return Next::GiveUp;
    }
    let at = now + backoff.delay(retry.failures);
    if at.duration_since(retry.first_failure) > backoff.give_up_after {
        return Next::GiveUp;
    }
    Next::RetryAt(at)
}

/// The values of the `result` label of `driftwatch_notifications_total`.
pub const RESULTS: [&str; 4] = ["success", "retried", "failed", "dropped"];

/// Counts and logs the outcomes of one receiver, so that the two never
/// disagree. A failure episode (from the first failure to the next success)
/// logs one warning when it starts and one when it first gives up on a
/// notification; retries are logged at debug.
pub struct Ledger {
    pub receiver: String,
    counts: [AtomicU64; 4],
    episode: Mutex<Episode>,
    last: Mutex<LastOutcomes>,
}

/// When the receiver last took a notification and last failed one, with
/// why, for the status page. Times are wall-clock Unix ms.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LastOutcomes {
    pub success_ms: Option<i64>,
    pub failure: Option<(i64, String)>,
}

/// The longest failure reason kept for the status page.
const REASON_LIMIT: usize = 300;

#[derive(Default)]
struct Episode {
    failing: bool,
    gave_up: u64,
}

impl Ledger {
    pub fn new(receiver: String) -> Ledger {
        Ledger {
            receiver,
            counts: Default::default(),
            episode: Mutex::default(),
            last: Mutex::default(),
        }
    }

    /// Each result with its count, all of them even when zero, so the series
    /// exist from the start and `rate()` sees the first failure.
    pub fn results(&self) -> Vec<(&'static str, u64)> {
        RESULTS
            .iter()
            .zip(&self.counts)
            .map(|(r, c)| (*r, c.load(Ordering::Relaxed)))
            .collect()
    }

    pub fn last(&self) -> LastOutcomes {
        lock(&self.last).clone()
    }

    pub fn success(&self, n: u64) {
        self.counts[0].fetch_add(n, Ordering::Relaxed);
        lock(&self.last).success_ms = Some(wall_ms());
        let mut episode = lock(&self.episode);
        if episode.failing {
            tracing::info!(
                receiver = %self.receiver,
                given_up = episode.gave_up,
                "Notifications are delivered again"
            );
        }
        *episode = Episode::default();
    }

    pub fn retried(&self, n: u64, error: &DeliveryError) {
        self.counts[1].fetch_add(n, Ordering::Relaxed);
        self.failure(error);
        tracing::debug!(
            receiver = %self.receiver,
            notifications = n,
            error = %error,
            "Notification delivery will be retried"
        );
    }

    pub fn failed(&self, n: u64, error: &DeliveryError) {
        self.counts[2].fetch_add(n, Ordering::Relaxed);
        self.failure(error);
        let mut episode = lock(&self.episode);
        episode.gave_up += n;
        // The first give-up of an episode is worth a warning; the rest
        // only add to the count.
        if episode.gave_up == n {
            tracing::warn!(
                receiver = %self.receiver,
                notifications = n,
                error = %error,
                "Notification delivery given up"
            );
        } else {
            tracing::debug!(
                receiver = %self.receiver,
                notifications = n,
                error = %error,
                "Notification delivery given up"
            );
        }
    }

    /// An undelivered notification replaced by a newer state of its series,
    /// or left over at shutdown.
    pub fn dropped(&self, n: u64) {
        if n > 0 {
            self.counts[3].fetch_add(n, Ordering::Relaxed);
            tracing::debug!(
                receiver = %self.receiver,
                notifications = n,
                "Undelivered notifications dropped"
            );
        }
    }

    /// A failed try; the first of an episode is logged.
    pub fn failure(&self, error: &DeliveryError) {
        let mut reason = error.to_string();
        if reason.len() > REASON_LIMIT {
            let cut = (0..=REASON_LIMIT)
                .rev()
                .find(|&i| reason.is_char_boundary(i))
                .unwrap_or(0);
            reason.truncate(cut);
            reason.push('…');
        }
        lock(&self.last).failure = Some((wall_ms(), reason));
        let mut episode = lock(&self.episode);
        if !episode.failing {
            episode.failing = true;
            tracing::warn!(
                receiver = %self.receiver,
                error = %error,
                "Notification delivery failing"
            );
        }
    }
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff() -> Backoff {
        Backoff {
            initial: Duration::from_millis(200),
            max_step: Duration::from_secs(5),
            give_up_after: Duration::from_secs(60),
        }
    }

    fn status(code: u16) -> DeliveryError {
        DeliveryError::Status {
            url: "http://r".into(),
            status: code,
            body: String::new(),
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_stays_under_its_cap() {
        let backoff = backoff();
        for _ in 0..200 {
            for (failures, step_ms) in [(1, 200), (2, 400), (3, 800), (6, 5000), (40, 5000)] {
                let delay = backoff.delay(failures).as_millis() as u64;
                assert!(
                    (step_ms / 2..=step_ms).contains(&delay),
                    "{failures}: {delay}ms"
                );
            }
        }
    }

    #[test]
    fn server_errors_and_429_are_retried_other_client_errors_are_not() {
        for code in [500, 502, 503, 429] {
            assert!(status(code).is_retryable(), "{code}");
        }
        for code in [400, 401, 404, 413] {
            assert!(!status(code).is_retryable(), "{code}");
        }
        let secret = DeliveryError::Secret {
            path: "/x".into(),
            reason: "gone".into(),
        };
        assert!(!secret.is_retryable());
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_once_the_first_failure_is_older_than_the_bound() {
        let backoff = backoff();
        let start = Instant::now();
        let mut retry = Retry::after(None, start);
        let mut now = start;
        let mut tries = 1;
        while let Next::RetryAt(at) = next_try(&backoff, &status(503), retry, now) {
            assert!(at > now);
            now = at;
            retry = Retry::after(Some(retry), now);
            tries += 1;
        }
        assert!(now.duration_since(start) <= backoff.give_up_after);
        assert!(now.duration_since(start) >= backoff.give_up_after - backoff.max_step);
        assert!(tries > 10, "{tries}");
        assert_eq!(
            next_try(&backoff, &status(400), Retry::after(None, start), start),
            Next::GiveUp
        );
    }
}
