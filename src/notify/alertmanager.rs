//! Alerts for Alertmanager's `POST /api/v2/alerts`: their labels and
//! annotations, the lease that keeps a firing alert alive between resends,
//! and the delivery task of one Alertmanager.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use tracing::Instrument;

use super::delivery::{Backoff, DeliveryError, Next, Request, Retry, Transport, next_try};
use super::queue::{Outbox, Pending};
use super::secret::SecretFile;
use super::{AlertStatus, AlertUpdate, rfc3339, sleep_until_or_never};
use crate::config::{AlertingConfig, AlertmanagerConfig};
use crate::engine::{Clock, lock};

/// How long a resolved alert keeps being resent, so that an Alertmanager
/// that was down or restarting when it resolved still learns of it.
pub const RESOLVED_RESEND_FOR: Duration = Duration::from_secs(15 * 60);

/// The lease of a firing alert is this many resend intervals (or source
/// intervals, if longer), as in Prometheus: two lost sends do not resolve it.
const LEASE_FACTOR: u32 = 4;

/// Most alerts in one request.
const MAX_BATCH: usize = 64;

/// The part of the configuration that shapes every alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub alertname: String,
    pub labels: BTreeMap<String, String>,
    pub drop_labels: Vec<String>,
    pub external_labels: BTreeMap<String, String>,
    pub resend_interval: Duration,
}

impl Settings {
    pub fn new(alerting: &AlertingConfig, external_labels: &BTreeMap<String, String>) -> Settings {
        Settings {
            alertname: alerting.alertname.clone(),
            labels: alerting.labels.clone(),
            drop_labels: alerting.drop_labels.clone(),
            external_labels: external_labels.clone(),
            resend_interval: alerting.resend_interval,
        }
    }

    /// The label set of a series' alert, with Prometheus's precedence:
    /// `alerting.labels` override the series' labels, external labels only
    /// fill gaps, and `drop_labels` go last so HA replicas agree.
    pub fn labels_of(&self, update: &AlertUpdate) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::new();
        for (name, value) in &update.labels {
            // Ours win; the series keeps its own value under another name, as
            // on /metrics.
            let name = match name.as_str() {
                "alertname" | "source" | "metric" => format!("exported_{name}"),
                _ => name.clone(),
            };
            labels.insert(name, value.clone());
        }
        labels.insert("alertname".to_owned(), self.alertname.clone());
        labels.insert("source".to_owned(), update.source.to_string());
        labels.insert("metric".to_owned(), update.metric.to_string());
        for (name, value) in &self.external_labels {
            labels.entry(name.clone()).or_insert_with(|| value.clone());
        }
        for (name, value) in &self.labels {
            labels.insert(name.clone(), value.clone());
        }
        for name in &self.drop_labels {
            labels.remove(name);
        }
        // An empty value means no label to Alertmanager as to Prometheus.
        labels.retain(|_, value| !value.is_empty());
        labels
    }
}

/// One alert as it is (re)sent.
#[derive(Debug, PartialEq)]
pub struct Alert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<&'static str, String>,
    pub starts_at_ms: i64,
    /// Set once the series recovered: the alert's `endsAt`.
    pub resolved_at_ms: Option<i64>,
    pub generator_url: String,
    /// `endsAt` of a firing alert is the send time plus this.
    pub lease: Duration,
    pub resend_interval: Duration,
    /// A resolved alert is resent until then.
    pub resend_until: Option<Instant>,
}

impl Alert {
    pub fn new(settings: &Settings, update: &AlertUpdate, now: Instant) -> Alert {
        let resolved = update.status == AlertStatus::Resolved;
        Alert {
            labels: settings.labels_of(update),
            annotations: annotations(update),
            starts_at_ms: update.started_at_ms,
            resolved_at_ms: resolved.then_some(update.at_ms),
            generator_url: update.generator_url.clone(),
            lease: update.interval.max(settings.resend_interval) * LEASE_FACTOR,
            resend_interval: settings.resend_interval,
            resend_until: resolved.then(|| now + RESOLVED_RESEND_FOR),
        }
    }

    fn ends_at_ms(&self, now_ms: i64) -> i64 {
        self.resolved_at_ms
            .unwrap_or(now_ms + self.lease.as_millis() as i64)
    }
}

fn annotations(update: &AlertUpdate) -> BTreeMap<&'static str, String> {
    let series = series_text(update);
    let (value, z) = (update.value, update.zscore);
    let (mean, stddev) = (update.baseline_mean, update.baseline_stddev);
    let description = match update.status {
        AlertStatus::Firing => format!(
            "{series} is {value}, z-score {z:.2} against a baseline mean of {mean} \
             (standard deviation {stddev})"
        ),
        AlertStatus::Resolved => format!(
            "{series} is back at {value}, z-score {z:.2} against a baseline mean of {mean} \
             (standard deviation {stddev})"
        ),
    };
    BTreeMap::from([
        (
            "summary",
            format!("{} of source {} degraded", update.metric, update.source),
        ),
        ("description", description),
        ("value", value.to_string()),
        ("zscore", z.to_string()),
        ("baseline_mean", mean.to_string()),
        ("baseline_stddev", stddev.to_string()),
    ])
}

/// `metric{a="1"}` for people to read.
fn series_text(update: &AlertUpdate) -> String {
    let mut out = update.metric.to_string();
    if !update.labels.is_empty() {
        let pairs: Vec<String> = update
            .labels
            .iter()
            .map(|(n, v)| format!("{n}={v:?}"))
            .collect();
        out.push('{');
        out.push_str(&pairs.join(","));
        out.push('}');
    }
    out
}

/// An alert as Alertmanager's API v2 reads it.
#[derive(Serialize)]
struct Wire<'a> {
    labels: &'a BTreeMap<String, String>,
    annotations: &'a BTreeMap<&'static str, String>,
    #[serde(rename = "startsAt")]
    starts_at: String,
    #[serde(rename = "endsAt")]
    ends_at: String,
    #[serde(rename = "generatorURL")]
    generator_url: &'a str,
}

/// The JSON array of a request, with `endsAt` of firing alerts leased from
/// `now_ms`.
pub fn body<'a>(alerts: impl Iterator<Item = &'a Alert>, now_ms: i64) -> Vec<u8> {
    let wire: Vec<Wire<'_>> = alerts
        .map(|alert| Wire {
            labels: &alert.labels,
            annotations: &alert.annotations,
            starts_at: rfc3339(alert.starts_at_ms),
            ends_at: rfc3339(alert.ends_at_ms(now_ms)),
            generator_url: &alert.generator_url,
        })
        .collect();
    // Maps with string keys and plain structs always serialize.
    serde_json::to_vec(&wire).unwrap_or_default()
}

/// A queued alert and where it is in its retries.
#[derive(Debug, Clone)]
pub struct Item {
    pub alert: Arc<Alert>,
    retry: Option<Retry>,
}

impl Item {
    pub fn new(alert: Arc<Alert>) -> Item {
        Item { alert, retry: None }
    }
}

/// Where and how one Alertmanager is reached.
pub struct Target {
    pub config: AlertmanagerConfig,
    endpoint: String,
    bearer: Option<SecretFile>,
}

impl Target {
    pub fn new(config: &AlertmanagerConfig) -> Target {
        Target {
            endpoint: format!("{}/api/v2/alerts", config.url.trim_end_matches('/')),
            bearer: config.bearer_token_file.as_deref().map(SecretFile::new),
            config: config.clone(),
        }
    }
}

/// Retries of a batch stop after one resend interval: by then the resend
/// tries again anyway.
fn backoff(resend_interval: Duration) -> Backoff {
    Backoff {
        initial: Duration::from_millis(250).min(resend_interval),
        max_step: resend_interval.min(Duration::from_secs(30)),
        give_up_after: resend_interval,
    }
}

/// The delivery task of one Alertmanager: sends whatever is due, one batch
/// at a time, until told to stop and nothing fresh is left to drain.
pub async fn run(
    outbox: Arc<Outbox<Item>>,
    target: Arc<Target>,
    transport: Arc<dyn Transport>,
    clock: Clock,
) {
    let mut stop = outbox.stop.subscribe();
    loop {
        let draining = *stop.borrow_and_update();
        let batch = take_batch(&outbox);
        if !batch.is_empty() {
            let span = tracing::debug_span!("notification", receiver = %outbox.ledger.receiver);
            send(&outbox, &target, &*transport, clock, batch)
                .instrument(span)
                .await;
            continue;
        }
        if let Some(deadline) = draining
            && !lock(&outbox.queue).fresh_due_by(deadline)
        {
            return;
        }
        let next = lock(&outbox.queue).next_due();
        tokio::select! {
            () = outbox.wake.notified() => {}
            () = sleep_until_or_never(next) => {}
            changed = stop.changed() => if changed.is_err() { return },
        }
    }
}

fn take_batch(outbox: &Outbox<Item>) -> Vec<(u64, Pending<Item>)> {
    let now = Instant::now();
    let mut queue = lock(&outbox.queue);
    std::iter::from_fn(|| queue.pop_due(now))
        .take(MAX_BATCH)
        .collect()
}

async fn send(
    outbox: &Outbox<Item>,
    target: &Target,
    transport: &dyn Transport,
    clock: Clock,
    batch: Vec<(u64, Pending<Item>)>,
) {
    let result = post(target, transport, clock, &batch).await;
    let now = Instant::now();
    let ledger = &outbox.ledger;
    let Err(error) = result else {
        ledger.success(batch.len() as u64);
        let mut queue = lock(&outbox.queue);
        for (key, pending) in batch {
            queue.finish(key, resend(pending.item.alert, now, false));
        }
        return;
    };

    // Each alert of the batch goes on with its own retries, unless a newer
    // state of its series arrived meanwhile.
    let (mut retried, mut failed, mut superseded) = (0, 0, 0);
    let mut queue = lock(&outbox.queue);
    for (key, pending) in batch {
        let retry = Retry::after(pending.item.retry, now);
        let alert = pending.item.alert;
        match next_try(&backoff(alert.resend_interval), &error, retry, now) {
            Next::RetryAt(due) => {
                let item = Item {
                    alert,
                    retry: Some(retry),
                };
                let again = Pending {
                    item,
                    due,
                    fresh: pending.fresh,
                };
                match queue.finish(key, Some(again)) {
                    Some(_) => superseded += 1,
                    None => retried += 1,
                }
            }
            Next::GiveUp => {
                failed += 1;
                queue.finish(key, resend(alert, now, pending.fresh));
            }
        }
    }
    drop(queue);
    record_failure(outbox, &error, retried, failed, superseded);
}

fn record_failure(
    outbox: &Outbox<Item>,
    error: &DeliveryError,
    retried: u64,
    failed: u64,
    superseded: u64,
) {
    let ledger = &outbox.ledger;
    if retried > 0 {
        ledger.retried(retried, error);
    }
    if failed > 0 {
        ledger.failed(failed, error);
    }
    if superseded > 0 {
        ledger.failure(error);
        ledger.dropped(superseded);
    }
}

/// The next regular send of an alert: a firing one until it changes, a
/// resolved one for a while. One given up on stays `fresh`, still counted as
/// queued, since the receiver never had it.
fn resend(alert: Arc<Alert>, now: Instant, fresh: bool) -> Option<Pending<Item>> {
    let due = now + alert.resend_interval;
    if alert.resend_until.is_some_and(|until| due > until) {
        return None;
    }
    Some(Pending {
        item: Item::new(alert),
        due,
        fresh,
    })
}

async fn post(
    target: &Target,
    transport: &dyn Transport,
    clock: Clock,
    batch: &[(u64, Pending<Item>)],
) -> Result<(), DeliveryError> {
    let mut headers = Vec::new();
    if let Some(bearer) = &target.bearer {
        let token = bearer.read().await?;
        let token = String::from_utf8_lossy(&token);
        headers.push(("authorization", format!("Bearer {token}")));
    }
    let alerts = batch.iter().map(|(_, pending)| &*pending.item.alert);
    let request = Request {
        url: target.endpoint.clone(),
        headers,
        body: body(alerts, clock.now_ms()).into(),
        timeout: target.config.timeout,
    };
    transport.post(request).await
}
