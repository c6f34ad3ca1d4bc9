//! Delivery of alerts to Alertmanager and webhooks.
//!
//! The detection path calls [`Notifier::update`], which only replaces the
//! pending state of the series in each receiver's queue and wakes that
//! receiver's task: it never waits on the network. Each receiver has one
//! task that sends what is due, retries with backoff, and resends
//! Alertmanager alerts on their schedule.
//!
//! - [`alertmanager`]: alert labels, annotations, leases and resends.
//! - [`webhook`]: event bodies, signatures and `min_interval`.
//! - [`queue`]: the per-series, newest-wins queue of one receiver.
//! - [`delivery`]: transport, failure kinds, backoff, counting and logging.
//! - [`secret`]: secret files read again when they change.
//!
//! Choices where DESIGN.md is silent:
//!
//! - The `receiver` label is an Alertmanager's configured URL, or a
//!   webhook's name.
//! - Counts are per notification (one alert or one webhook event), not per
//!   request: a batch of three alerts delivered counts three successes.
//! - A `degraded` that comes within `min_interval` of the last delivered one
//!   of its series is held until the interval is over, not thrown away; a
//!   recovery before then withdraws it. `recovered` is never held.
//! - A webhook's `labels` are the series' own labels; `source` and `metric`
//!   are fields of their own, and no external labels are added.
//! - Retries give up after one resend interval for an Alertmanager (its
//!   resends carry on from there) and after five minutes for a webhook.
//! - Secret files lose trailing whitespace: the newline an editor leaves is
//!   not part of the key.

pub mod alertmanager;
pub mod delivery;
pub mod queue;
pub mod secret;
pub mod webhook;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::{AlertingConfig, WebhookConfig};
use crate::engine::{Clock, lock};
use delivery::{HttpTransport, Transport};
use queue::Outbox;

/// Whether a series' alert starts or ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertStatus {
    Firing,
    Resolved,
}

/// A series became degraded or stopped being so.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertUpdate {
    pub series_id: u64,
    pub source: Arc<str>,
    pub metric: Arc<str>,
    /// The series' own labels, sorted by name.
    pub labels: Vec<(String, String)>,
    pub status: AlertStatus,
    pub value: f64,
    pub zscore: f64,
    pub baseline_mean: f64,
    pub baseline_stddev: f64,
    /// When the series became degraded.
    pub started_at_ms: i64,
    /// When this change happened.
    pub at_ms: i64,
    /// The source's interval, which the alert's lease must outlast.
    pub interval: Duration,
    pub generator_url: String,
}

/// The counters of one receiver, for /metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiverStats {
    /// An Alertmanager's URL or a webhook's name.
    pub receiver: String,
    /// Notifications by result: `success`, `retried` (a try failed and
    /// another follows), `failed` (given up), `dropped` (replaced by a newer
    /// state of the series before delivery, or left at shutdown).
    pub results: Vec<(&'static str, u64)>,
    /// Series with a state still to deliver.
    pub queue_length: usize,
    /// Last success and last failure with its reason.
    pub last: delivery::LastOutcomes,
}

/// The handle the rest of the daemon holds; clones share one notifier.
#[derive(Clone)]
pub struct Notifier {
    shared: Arc<Shared>,
}

struct Shared {
    transport: Arc<dyn Transport>,
    clock: Clock,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    settings: Option<Arc<alertmanager::Settings>>,
    /// Every series firing now, so that an Alertmanager added by a reload,
    /// or a change of alert labels, gets the current alerts at once.
    firing: HashMap<u64, Arc<AlertUpdate>, foldhash::fast::RandomState>,
    alertmanagers: Vec<Receiver<alertmanager::Item, alertmanager::Target>>,
    webhooks: Vec<Receiver<webhook::Item, webhook::Target>>,
    stopped: bool,
}

/// A receiver's queue, how to reach it, and its task.
struct Receiver<T, C> {
    outbox: Arc<Outbox<T>>,
    target: Arc<C>,
    task: Option<JoinHandle<()>>,
}

impl<T, C> Receiver<T, C> {
    fn stats(&self) -> ReceiverStats {
        ReceiverStats {
            receiver: self.outbox.ledger.receiver.clone(),
            results: self.outbox.ledger.results(),
            queue_length: self.outbox.queue_length(),
            last: self.outbox.ledger.last(),
        }
    }
}

impl<T, C> Drop for Receiver<T, C> {
    /// A receiver removed by a reload stops sending at once.
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Notifier {
    /// Starts a delivery task per configured receiver. Must be called
    /// within a tokio runtime.
    pub fn start(
        alerting: Option<&AlertingConfig>,
        webhooks: &[WebhookConfig],
        external_labels: &BTreeMap<String, String>,
        client: reqwest::Client,
    ) -> Notifier {
        let transport = Arc::new(HttpTransport { client });
        Notifier::with_transport(alerting, webhooks, external_labels, transport)
    }

    /// As [`Notifier::start`], over any transport.
    pub fn with_transport(
        alerting: Option<&AlertingConfig>,
        webhooks: &[WebhookConfig],
        external_labels: &BTreeMap<String, String>,
        transport: Arc<dyn Transport>,
    ) -> Notifier {
        let shared = Shared {
            transport,
            clock: Clock::new(),
            state: Mutex::default(),
        };
        let notifier = Notifier {
            shared: Arc::new(shared),
        };
        notifier.reload(alerting, webhooks, external_labels);
        notifier
    }

    /// Hands a state change to every receiver. Never blocks on delivery:
    /// it replaces the series' pending state in each queue and returns.
    pub fn update(&self, update: AlertUpdate) {
        self.offer(update, true);
    }

    /// Takes up an alert that was firing before a restart: Alertmanager
    /// gets it again (with its original `startsAt`) and keeps getting it,
    /// but webhooks, which already heard of it, are not told it is new.
    pub fn resume(&self, update: AlertUpdate) {
        self.offer(update, false);
    }

    fn offer(&self, update: AlertUpdate, to_webhooks: bool) {
        let update = Arc::new(update);
        let mut guard = lock(&self.shared.state);
        let state = &mut *guard;
        if state.stopped {
            return;
        }
        match update.status {
            AlertStatus::Firing => state.firing.insert(update.series_id, Arc::clone(&update)),
            AlertStatus::Resolved => state.firing.remove(&update.series_id),
        };
        if let Some(settings) = &state.settings
            && !state.alertmanagers.is_empty()
        {
            let alert = Arc::new(alertmanager::Alert::new(settings, &update, Instant::now()));
            for receiver in &state.alertmanagers {
                let item = alertmanager::Item::new(Arc::clone(&alert));
                receiver.outbox.offer(update.series_id, item);
            }
        }
        if !to_webhooks {
            return;
        }
        for receiver in &state.webhooks {
            webhook::offer(&receiver.outbox, &receiver.target, &update);
        }
    }

    /// Applies a new configuration. A receiver whose configuration did not
    /// change keeps its queue, its counters and its task.
    pub fn reload(
        &self,
        alerting: Option<&AlertingConfig>,
        webhooks: &[WebhookConfig],
        external_labels: &BTreeMap<String, String>,
    ) {
        let settings = alerting.map(|a| Arc::new(alertmanager::Settings::new(a, external_labels)));
        let mut guard = lock(&self.shared.state);
        let state = &mut *guard;
        if state.stopped {
            return;
        }
        let relabel = state.settings != settings;
        state.settings = settings;
        self.reload_alertmanagers(state, alerting, relabel);
        self.reload_webhooks(state, webhooks);
    }

    fn reload_alertmanagers(
        &self,
        state: &mut State,
        alerting: Option<&AlertingConfig>,
        relabel: bool,
    ) {
        let configs = alerting.map_or(&[][..], |a| &a.alertmanagers[..]);
        let mut old = std::mem::take(&mut state.alertmanagers);
        for config in configs {
            let kept = old.iter().position(|r| r.target.config == *config);
            let (receiver, fresh) = match kept {
                Some(pos) => (old.swap_remove(pos), false),
                None => (self.start_alertmanager(config), true),
            };
            state.alertmanagers.push(receiver);
            let Some(settings) = &state.settings else {
                continue;
            };
            if !(fresh || relabel) {
                continue;
            }
            // A new receiver, or new labels: send every firing alert anew.
            let receiver = state.alertmanagers.last();
            for (id, update) in &state.firing {
                let alert = Arc::new(alertmanager::Alert::new(settings, update, Instant::now()));
                if let Some(receiver) = receiver {
                    receiver.outbox.offer(*id, alertmanager::Item::new(alert));
                }
            }
        }
    }

    fn reload_webhooks(&self, state: &mut State, webhooks: &[WebhookConfig]) {
        let mut old = std::mem::take(&mut state.webhooks);
        for config in webhooks {
            let receiver = match old.iter().position(|r| r.target.config == *config) {
                Some(pos) => old.swap_remove(pos),
                None => self.start_webhook(config),
            };
            state.webhooks.push(receiver);
        }
    }

    fn start_alertmanager(
        &self,
        config: &crate::config::AlertmanagerConfig,
    ) -> Receiver<alertmanager::Item, alertmanager::Target> {
        let outbox = Arc::new(Outbox::new(config.url.clone()));
        let target = Arc::new(alertmanager::Target::new(config));
        let task = tokio::spawn(alertmanager::run(
            Arc::clone(&outbox),
            Arc::clone(&target),
            Arc::clone(&self.shared.transport),
            self.shared.clock,
        ));
        tracing::debug!(receiver = %config.url, "Alertmanager receiver started");
        Receiver {
            outbox,
            target,
            task: Some(task),
        }
    }

    fn start_webhook(&self, config: &WebhookConfig) -> Receiver<webhook::Item, webhook::Target> {
        let outbox = Arc::new(Outbox::new(config.name.clone()));
        let target = Arc::new(webhook::Target::new(config));
        let task = tokio::spawn(webhook::run(
            Arc::clone(&outbox),
            Arc::clone(&target),
            Arc::clone(&self.shared.transport),
        ));
        tracing::debug!(receiver = %config.name, "Webhook receiver started");
        Receiver {
            outbox,
            target,
            task: Some(task),
        }
    }

    /// The counters of every receiver: Alertmanagers first, then webhooks.
    pub fn stats(&self) -> Vec<ReceiverStats> {
        let state = lock(&self.shared.state);
        let alertmanagers = state.alertmanagers.iter().map(Receiver::stats);
        alertmanagers
            .chain(state.webhooks.iter().map(Receiver::stats))
            .collect()
    }

    /// Delivers what is still fresh for at most `drain`, then stops every
    /// task; what is left is counted as dropped.
    pub async fn shutdown(self, drain: Duration) {
        let deadline = Instant::now() + drain;
        let mut tasks = Vec::new();
        {
            let mut state = lock(&self.shared.state);
            state.stopped = true;
            for receiver in &mut state.alertmanagers {
                tasks.push(stop(receiver, deadline));
            }
            for receiver in &mut state.webhooks {
                tasks.push(stop(receiver, deadline));
            }
        }
        for (task, leftovers) in tasks {
            let Some(mut task) = task else { continue };
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
            }
            leftovers();
        }
    }
}

type Leftovers = Box<dyn FnOnce() + Send>;

/// Tells a receiver's task to drain until `deadline`; returns the task and
/// what counts the notifications it could not deliver.
fn stop<T: Send + 'static, C>(
    receiver: &mut Receiver<T, C>,
    deadline: Instant,
) -> (Option<JoinHandle<()>>, Leftovers) {
    receiver.outbox.stop.send_replace(Some(deadline));
    let outbox = Arc::clone(&receiver.outbox);
    let leftovers = Box::new(move || {
        let left = outbox.queue_length() as u64;
        if left > 0 {
            tracing::warn!(
                receiver = %outbox.ledger.receiver,
                notifications = left,
                "Notifications left undelivered at shutdown"
            );
            outbox.ledger.dropped(left);
        }
    });
    (receiver.task.take(), leftovers)
}

/// RFC 3339 in UTC with milliseconds, as Alertmanager writes its times.
pub fn rfc3339(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(at).to_string()
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until_or_never(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
