// ---- TEMPORARY STUB (not to be committed) ----
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use crate::config::{AlertingConfig, WebhookConfig};
pub enum AlertStatus { Firing, Resolved }
pub struct AlertUpdate {
    pub series_id: u64, pub source: Arc<str>, pub metric: Arc<str>,
    pub labels: Vec<(String, String)>, pub status: AlertStatus,
    pub value: f64, pub zscore: f64, pub baseline_mean: f64, pub baseline_stddev: f64,
    pub started_at_ms: i64, pub at_ms: i64, pub interval: Duration, pub generator_url: String,
}
#[derive(Clone)] pub struct Notifier;
pub struct ReceiverStats { pub receiver: String, pub results: Vec<(&'static str, u64)>, pub queue_length: usize }
impl Notifier {
    pub fn start(_a: Option<&AlertingConfig>, _w: &[WebhookConfig], _e: &BTreeMap<String, String>, _c: reqwest::Client) -> Notifier { Notifier }
    pub fn update(&self, _u: AlertUpdate) {}
    pub fn reload(&self, _a: Option<&AlertingConfig>, _w: &[WebhookConfig], _e: &BTreeMap<String, String>) {}
    pub fn stats(&self) -> Vec<ReceiverStats> { Vec::new() }
    pub async fn shutdown(self, _d: Duration) {}
}
