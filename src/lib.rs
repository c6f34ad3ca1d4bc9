//! driftwatch watches the performance metrics of machine-learning models and
//! raises the alarm when one moves away from its own recent history.
//!
//! The modules follow the data flow:
//!
//! - [`config`]: the YAML configuration, validated with every problem located.
//! - [`parse`]: the Prometheus text exposition format, parsed without copying.
//! - [`source`]: fetching samples (scrapes of /metrics endpoints).
//! - [`detector`]: the z-score and state machine of one series, over the
//!   rolling [`window`] of its recent samples.
//! - [`engine`]: the series registry and a scheduler task per source;
//!   [`shard`] splits the series between replicas.
//! - [`notify`]: delivery of alerts to Alertmanager and webhooks.
//! - [`exporter`]: rendering driftwatch's own /metrics.
//! - [`http`]: the HTTP server and its endpoints; [`selector`] for its
//!   `match[]` series selectors; [`status`] for the status page, from the
//!   bounded per-series records of [`history`].
//! - [`state`]: snapshots of every detector under `--storage.path`.
//! - [`daemon`]: wiring the parts together, reloads and shutdown.
//!
//! Around them: [`cli`] and [`logging`] for the binary, [`demo`] for
//! `driftwatch demo`, [`replay`] for `driftwatch replay` (with [`plot`] for
//! its SVG plots), and [`evaluate`] for scoring detections against labels.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod detector;
pub mod engine;
pub mod evaluate;
pub mod exporter;
pub mod history;
pub mod http;
pub mod logging;
pub mod notify;
pub mod parse;
pub mod plot;
pub mod replay;
pub mod selector;
pub mod shard;
pub mod source;
pub mod state;
pub mod status;
pub mod window;
