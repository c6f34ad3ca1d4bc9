//! The YAML configuration: its types, defaults and validation.
//!
//! [`load_file`] and [`parse_str`] return a whole, validated [`Config`] with
//! every default resolved, or every problem of the file at once, each with
//! its line, column and key path.

pub mod load;
pub mod units;
mod yaml;

pub use load::{ConfigErrors, ConfigProblem, Loaded, load_file, parse_str};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::detector::DetectorParams;

/// A whole, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub global: GlobalConfig,
    pub sources: Vec<SourceConfig>,
    pub alerting: Option<AlertingConfig>,
    pub webhooks: Vec<WebhookConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GlobalConfig {
    pub interval: Duration,
    pub timeout: Duration,
    pub body_size_limit: u64,
    /// Sorted by name.
    pub external_labels: BTreeMap<String, String>,
    /// The defaults of every source's limits.
    pub limits: SourceLimits,
    /// Most series the whole process holds, over all sources.
    pub total_series_limit: usize,
    /// How often the state is snapshotted under `--storage.path`.
    pub snapshot_interval: Duration,
}

/// What one source may make the process hold. A series over a limit is not
/// watched; its samples are counted in `driftwatch_samples_skipped_total`
/// under the limit's reason, and the first hit is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceLimits {
    /// Most series the source may hold.
    pub series: usize,
    /// Most labels a series may carry (besides its name).
    pub labels: usize,
    /// Longest label value, in bytes.
    pub label_value_length: usize,
}

impl Default for SourceLimits {
    fn default() -> Self {
        SourceLimits {
            series: load::defaults::SERIES_LIMIT,
            labels: load::defaults::LABEL_LIMIT,
            label_value_length: load::defaults::LABEL_VALUE_LENGTH_LIMIT,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SourceConfig {
    pub name: String,
    pub kind: SourceKind,
    /// Resolved: the source's own or the global default.
    pub interval: Duration,
    pub timeout: Duration,
    pub body_size_limit: u64,
    pub limits: SourceLimits,
    pub watches: Vec<WatchConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    Scrape(ScrapeConfig),
    Promql(PromqlConfig),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeConfig {
    pub url: String,
    pub bearer_token_file: Option<PathBuf>,
}

/// A PromQL query run against the Prometheus HTTP API (Prometheus,
/// VictoriaMetrics, Thanos, Mimir).
#[derive(Debug, Clone, PartialEq)]
pub struct PromqlConfig {
    /// The server's base URL; `/api/v1/query` is appended.
    pub url: String,
    pub query: String,
    /// Fill the window of a new series from `/api/v1/query_range`.
    pub backfill: bool,
    pub bearer_token_file: Option<PathBuf>,
    pub basic_auth: Option<BasicAuth>,
    /// A PEM file of CA certificates to trust besides the system's.
    pub tls_ca_file: Option<PathBuf>,
}

/// HTTP basic authentication with the password in a file, reread on use.
#[derive(Debug, Clone, PartialEq)]
pub struct BasicAuth {
    pub username: String,
    pub password_file: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WatchConfig {
    pub metric: String,
    /// Label equality matchers, sorted by label name.
    pub matchers: BTreeMap<String, String>,
    /// Resolved: detector defaults overridden by the watch's own keys.
    pub detector: DetectorParams,
    /// Resolved: the watch's own, the detector default, or 5 × interval.
    pub stale_after: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AlertingConfig {
    pub alertmanagers: Vec<AlertmanagerConfig>,
    pub resend_interval: Duration,
    /// Added to every alert, overriding the series' own labels.
    pub labels: BTreeMap<String, String>,
    /// Default `ModelPerformanceDegraded`.
    pub alertname: String,
    /// Label names removed from alerts, so that HA replicas send identical ones.
    pub drop_labels: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AlertmanagerConfig {
    pub url: String,
    pub timeout: Duration,
    pub bearer_token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    pub name: String,
    pub url: String,
    pub events: Vec<WebhookEvent>,
    pub min_interval: Duration,
    pub hmac_secret_file: Option<PathBuf>,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookEvent {
    Degraded,
    Recovered,
}
