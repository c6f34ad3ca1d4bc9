//! Webhooks: a JSON event per state change of a series, signed with
//! HMAC-SHA256 when a secret is set, `degraded` at most once per
//! `min_interval` per series, and the delivery task of one webhook.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

use super::delivery::{Backoff, DeliveryError, Next, Request, Retry, Transport, next_try};
use super::queue::{Outbox, Pending};
use super::secret::SecretFile;
use super::{AlertStatus, AlertUpdate, rfc3339, sleep_until_or_never};
use crate::config::{WebhookConfig, WebhookEvent};
use crate::engine::lock;

/// The header that carries the body's HMAC.
pub const SIGNATURE_HEADER: &str = "x-driftwatch-signature";

/// Requests one webhook may have under way at once, for different series.
pub const MAX_IN_FLIGHT: usize = 4;

/// Webhooks start pipelines that may be restarting themselves, so they get
/// more patience than Alertmanager, whose resends cover a lost send.
const BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(500),
    max_step: Duration::from_secs(30),
    give_up_after: Duration::from_secs(5 * 60),
};

/// The event a state change is for a webhook.
fn event_of(status: AlertStatus) -> WebhookEvent {
    match status {
        AlertStatus::Firing => WebhookEvent::Degraded,
        AlertStatus::Resolved => WebhookEvent::Recovered,
    }
}

/// The JSON body of a webhook call.
#[derive(Serialize)]
struct Body<'a> {
    event: &'static str,
    source: &'a str,
    metric: &'a str,
    labels: BTreeMap<&'a str, &'a str>,
    value: f64,
    zscore: f64,
    baseline_mean: f64,
    baseline_stddev: f64,
    started_at: String,
    at: String,
}

/// The body for a state change. Numbers that are not finite (a baseline
/// not known yet) become `null`, since JSON has no NaN.
pub fn body(update: &AlertUpdate) -> Vec<u8> {
    let body = Body {
        event: match event_of(update.status) {
            WebhookEvent::Degraded => "degraded",
            WebhookEvent::Recovered => "recovered",
        },
        source: &update.source,
        metric: &update.metric,
        labels: update
            .labels
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect(),
        value: update.value,
        zscore: update.zscore,
        baseline_mean: update.baseline_mean,
        baseline_stddev: update.baseline_stddev,
        started_at: rfc3339(update.started_at_ms),
        at: rfc3339(update.at_ms),
    };
    // A struct of strings and numbers always serializes.
    serde_json::to_vec(&body).unwrap_or_default()
}

/// `sha256=<hex>` of the HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, body);
    let mut out = String::from("sha256=");
    for byte in tag.as_ref() {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// Where and how one webhook is reached.
pub struct Target {
    pub config: WebhookConfig,
    secret: Option<SecretFile>,
}

impl Target {
    pub fn new(config: &WebhookConfig) -> Target {
        Target {
            secret: config.hmac_secret_file.as_deref().map(SecretFile::new),
            config: config.clone(),
        }
    }

    fn wants(&self, event: WebhookEvent) -> bool {
        self.config.events.contains(&event)
    }
}

/// A queued event and where it is in its retries.
#[derive(Debug, Clone)]
pub struct Item {
    update: Arc<AlertUpdate>,
    retry: Option<Retry>,
}

/// Hands a state change to a webhook. A recovery takes back a `degraded`
/// not delivered yet (it is stale now), whether or not the webhook wants
/// `recovered` itself.
pub fn offer(outbox: &Outbox<Item>, target: &Target, update: &Arc<AlertUpdate>) {
    let event = event_of(update.status);
    if event == WebhookEvent::Recovered && !target.wants(event) {
        outbox.withdraw(update.series_id);
        return;
    }
    if target.wants(event) {
        outbox.offer(
            update.series_id,
            Item {
                update: Arc::clone(update),
                retry: None,
            },
        );
    }
}

type Delivered = (u64, Pending<Item>, Result<(), DeliveryError>);

/// The delivery task of one webhook: up to [`MAX_IN_FLIGHT`] requests for
/// different series at once, until told to stop and nothing fresh is left.
pub async fn run(outbox: Arc<Outbox<Item>>, target: Arc<Target>, transport: Arc<dyn Transport>) {
    let mut stop = outbox.stop.subscribe();
    let mut in_flight: JoinSet<Delivered> = JoinSet::new();
    let mut held = MinInterval::new(target.config.min_interval);
    loop {
        let draining = *stop.borrow_and_update();
        start_due(&outbox, &target, &transport, &mut held, &mut in_flight);
        if let Some(deadline) = draining
            && in_flight.is_empty()
            && !lock(&outbox.queue).fresh_due_by(deadline)
        {
            return;
        }
        let next = lock(&outbox.queue).next_due();
        let room = in_flight.len() < MAX_IN_FLIGHT;
        tokio::select! {
            Some(joined) = in_flight.join_next(), if !in_flight.is_empty() => {
                if let Ok((key, pending, result)) = joined {
                    finished(&outbox, &mut held, key, pending, result);
                }
            }
            () = outbox.wake.notified() => {}
            () = sleep_until_or_never(next), if room => {}
            changed = stop.changed() => if changed.is_err() { return },
        }
    }
}

/// Starts deliveries of what is due while there is room, holding back a
/// `degraded` that comes too soon after the last one of its series.
fn start_due(
    outbox: &Arc<Outbox<Item>>,
    target: &Arc<Target>,
    transport: &Arc<dyn Transport>,
    held: &mut MinInterval,
    in_flight: &mut JoinSet<Delivered>,
) {
    while in_flight.len() < MAX_IN_FLIGHT {
        let now = Instant::now();
        let mut queue = lock(&outbox.queue);
        let Some((key, pending)) = queue.pop_due(now) else {
            return;
        };
        if pending.item.update.status == AlertStatus::Firing
            && let Some(until) = held.until(key, now)
        {
            if queue
                .finish(
                    key,
                    Some(Pending {
                        due: until,
                        ..pending
                    }),
                )
                .is_some()
            {
                outbox.ledger.dropped(1);
            }
            continue;
        }
        drop(queue);
        let span = tracing::debug_span!(
            "notification",
            receiver = %target.config.name,
            source = &*pending.item.update.source,
            series = key,
        );
        let (target, transport) = (Arc::clone(target), Arc::clone(transport));
        in_flight.spawn(
            async move {
                let result = deliver(&target, &*transport, &pending.item.update).await;
                (key, pending, result)
            }
            .instrument(span),
        );
    }
}

/// Counts a finished delivery and queues its retry, if any.
fn finished(
    outbox: &Outbox<Item>,
    held: &mut MinInterval,
    key: u64,
    pending: Pending<Item>,
    result: Result<(), DeliveryError>,
) {
    let now = Instant::now();
    let ledger = &outbox.ledger;
    let error = match result {
        Ok(()) => {
            if pending.item.update.status == AlertStatus::Firing {
                held.delivered(key, now);
            }
            lock(&outbox.queue).finish(key, None);
            ledger.success(1);
            return;
        }
        Err(error) => error,
    };
    let retry = Retry::after(pending.item.retry, now);
    match next_try(&BACKOFF, &error, retry, now) {
        Next::RetryAt(due) => {
            let item = Item {
                retry: Some(retry),
                ..pending.item
            };
            let again = Pending {
                item,
                due,
                fresh: true,
            };
            if lock(&outbox.queue).finish(key, Some(again)).is_some() {
                ledger.failure(&error);
                ledger.dropped(1);
            } else {
                ledger.retried(1, &error);
            }
        }
        Next::GiveUp => {
            lock(&outbox.queue).finish(key, None);
            ledger.failed(1, &error);
        }
    }
}

async fn deliver(
    target: &Target,
    transport: &dyn Transport,
    update: &AlertUpdate,
) -> Result<(), DeliveryError> {
    let body = body(update);
    let mut headers = Vec::new();
    if let Some(secret) = &target.secret {
        let key = secret.read().await?;
        headers.push((SIGNATURE_HEADER, signature(&key, &body)));
    }
    let request = Request {
        url: target.config.url.clone(),
        headers,
        body: body.into(),
        timeout: target.config.timeout,
    };
    transport.post(request).await
}

/// When each series last had a `degraded` delivered, forgotten once that
/// is longer ago than `min_interval`, so it stays bounded by the series.
struct MinInterval {
    interval: Duration,
    last: HashMap<u64, Instant, foldhash::fast::RandomState>,
    prune_above: usize,
}

impl MinInterval {
    fn new(interval: Duration) -> MinInterval {
        MinInterval {
            interval,
            last: HashMap::default(),
            prune_above: 1024,
        }
    }

    /// Until when a `degraded` of `key` must wait, if it must.
    fn until(&self, key: u64, now: Instant) -> Option<Instant> {
        let until = *self.last.get(&key)? + self.interval;
        (until > now).then_some(until)
    }

    fn delivered(&mut self, key: u64, now: Instant) {
        if self.interval.is_zero() {
            return;
        }
        self.last.insert(key, now);
        if self.last.len() > self.prune_above {
            let interval = self.interval;
            self.last.retain(|_, at| now.duration_since(*at) < interval);
            self.prune_above = (2 * self.last.len()).max(1024);
        }
    }
}
