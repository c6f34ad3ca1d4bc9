//! Turns a YAML tree into a [`Config`], collecting every problem with its
//! place instead of stopping at the first, and resolving the layered
//! defaults: global → source, detector → watch.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::units::{format_duration, parse_duration, parse_size};
use super::yaml::{self, Mark, Node, Value};
use super::{
    AlertingConfig, AlertmanagerConfig, BasicAuth, Config, GlobalConfig, PromqlConfig,
    ScrapeConfig, SourceConfig, SourceKind, SourceLimits, WatchConfig, WebhookConfig, WebhookEvent,
};
use crate::detector::{
    Accumulate, DEFAULT_MIN_RELATIVE_STDDEV, DEFAULT_MIN_STDDEV, DetectorParams, Direction,
};

/// Defaults of the keys a file may leave out.
pub mod defaults {
    use std::time::Duration;

    pub const INTERVAL: Duration = Duration::from_secs(15);
    pub const TIMEOUT: Duration = Duration::from_secs(10);
    pub const BODY_SIZE_LIMIT: u64 = 10 << 20;
    pub const WINDOW: usize = 100;
    pub const MIN_SAMPLES: usize = 20;
    /// Chosen on labelled data, with the rest of the detector's defaults;
    /// docs/detection-quality.md has the measurements.
    pub const THRESHOLD: f64 = 5.0;
    pub const RECOVER_THRESHOLD: f64 = 1.5;
    /// Calm samples in a row that end an incident: one burst of outliers is
    /// one alert, not one alert per outlier.
    pub const RECOVER_CONSECUTIVE: u32 = 144;
    pub const EWMA_LAMBDA: f64 = 0.15;
    pub const EWMA_THRESHOLD: f64 = 4.5;
    pub const CUSUM_SLACK: f64 = 1.0;
    pub const CUSUM_THRESHOLD: f64 = 6.0;
    /// Stale after this many intervals without the series.
    pub const STALE_INTERVALS: u32 = 5;
    pub const RELEARN_AFTER: Duration = Duration::from_secs(24 * 3600);
    pub const RESEND_INTERVAL: Duration = Duration::from_secs(60);
    pub const ALERTMANAGER_TIMEOUT: Duration = Duration::from_secs(10);
    pub const ALERTNAME: &str = "ModelPerformanceDegraded";
    pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
    pub const WEBHOOK_MIN_INTERVAL: Duration = Duration::from_secs(3600);
    /// Enough for ten model servers of 100,000 series each behind one
    /// source, far below what would exhaust a sidecar's memory.
    pub const SERIES_LIMIT: usize = 1_000_000;
    pub const TOTAL_SERIES_LIMIT: usize = 2_000_000;
    pub const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(60);
    /// Prometheus's own limits are off by default; these are far above any
    /// real model metric and stop only a runaway target.
    pub const LABEL_LIMIT: usize = 64;
    pub const LABEL_VALUE_LENGTH_LIMIT: usize = 2048;
}

/// The largest window a watch may ask for: 8 bytes a sample per series adds
/// up fast, and no z-score needs more history than this.
pub const MAX_WINDOW: usize = 100_000;

/// A validated configuration and the legal but suspicious settings in it.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<ConfigProblem>,
}

/// One problem, located: `FILE:LINE:COLUMN: PATH: MESSAGE`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigProblem {
    pub file: String,
    /// Counted from 1; 0 when the problem concerns the whole file.
    pub line: usize,
    pub column: usize,
    /// Key path such as `sources[0].watch[1].direction`; empty for the file.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem of a file that was refused, one per line when displayed.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigErrors {
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in &self.problems {
            writeln!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Reads and validates the file at `path`.
pub fn load_file(path: &Path) -> Result<Loaded, ConfigErrors> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse_str(&text, &file),
        Err(e) => Err(ConfigErrors {
            problems: vec![ConfigProblem {
                file,
                line: 0,
                column: 0,
                path: String::new(),
                message: format!("cannot read the file: {e}"),
            }],
        }),
    }
}

/// Validates `text`; `file` names it in problems.
pub fn parse_str(text: &str, file: &str) -> Result<Loaded, ConfigErrors> {
    let mut checker = Checker {
        file,
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    let config = match yaml::parse(text) {
        Ok(Some(root)) => checker.config(&root),
        Ok(None) => {
            checker.problem(Mark::default(), "", "the file holds no configuration");
            None
        }
        Err(e) => {
            checker.problem(e.mark, "", format!("invalid YAML: {}", e.message));
            None
        }
    };
    match config {
        Some(config) if checker.problems.is_empty() => Ok(Loaded {
            config,
            warnings: dedup(checker.warnings),
        }),
        _ => Err(ConfigErrors {
            problems: dedup(checker.problems),
        }),
    }
}

/// Sorts problems by place and drops repeats: a bad detector default is
/// seen again by every watch that inherits it.
fn dedup(mut problems: Vec<ConfigProblem>) -> Vec<ConfigProblem> {
    problems.sort_by_key(|p| (p.line, p.column));
    problems.dedup();
    problems
}

const TOP_KEYS: &[&str] = &["global", "detector", "sources", "alerting", "webhooks"];
const GLOBAL_KEYS: &[&str] = &[
    "interval",
    "timeout",
    "body_size_limit",
    "external_labels",
    "series_limit",
    "label_limit",
    "label_value_length_limit",
    "total_series_limit",
    "snapshot_interval",
];
const LIMIT_KEYS: [&str; 3] = ["series_limit", "label_limit", "label_value_length_limit"];
const DETECTOR_KEYS: &[&str] = &[
    "window",
    "min_samples",
    "threshold",
    "for",
    "consecutive",
    "recover_threshold",
    "recover_consecutive",
    "direction",
    "stale_after",
    "relearn_after",
    "min_stddev",
    "min_relative_stddev",
    "accumulate",
    "ewma_lambda",
    "ewma_threshold",
    "cusum_slack",
    "cusum_threshold",
];
const SOURCE_KEYS: &[&str] = &[
    "name",
    "scrape",
    "promql",
    "interval",
    "timeout",
    "body_size_limit",
    "series_limit",
    "label_limit",
    "label_value_length_limit",
    "watch",
];
const SCRAPE_KEYS: &[&str] = &["url", "bearer_token_file"];
const PROMQL_KEYS: &[&str] = &[
    "url",
    "query",
    "backfill",
    "bearer_token_file",
    "basic_auth",
    "tls_ca_file",
];
const BASIC_AUTH_KEYS: &[&str] = &["username", "password_file"];
const WATCH_KEYS: &[&str] = &["metric", "matchers"];
const ALERTING_KEYS: &[&str] = &[
    "alertmanagers",
    "resend_interval",
    "labels",
    "alertname",
    "drop_labels",
];
const ALERTMANAGER_KEYS: &[&str] = &["url", "timeout", "bearer_token_file"];
const WEBHOOK_KEYS: &[&str] = &[
    "name",
    "url",
    "events",
    "min_interval",
    "hmac_secret_file",
    "timeout",
];

/// A value and where it was written, for problems that involve two keys.
#[derive(Debug, Clone)]
struct Located<T> {
    value: T,
    mark: Mark,
    path: String,
}

/// Detector keys as written in one layer (the `detector` section or a watch).
#[derive(Debug, Clone, Default)]
struct DetectorLayer {
    window: Option<Located<usize>>,
    min_samples: Option<Located<usize>>,
    threshold: Option<Located<f64>>,
    for_duration: Option<Located<Duration>>,
    consecutive: Option<Located<u32>>,
    recover_threshold: Option<Located<f64>>,
    recover_consecutive: Option<Located<u32>>,
    direction: Option<Located<Direction>>,
    stale_after: Option<Located<Duration>>,
    relearn_after: Option<Located<Duration>>,
    min_stddev: Option<Located<f64>>,
    min_relative_stddev: Option<Located<f64>>,
    accumulate: Option<Located<AccumulateKind>>,
    ewma_lambda: Option<Located<f64>>,
    ewma_threshold: Option<Located<f64>>,
    cusum_slack: Option<Located<f64>>,
    cusum_threshold: Option<Located<f64>>,
}

/// The `accumulate` key: which statistic, its settings in their own keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AccumulateKind {
    None,
    Ewma,
    Cusum,
}

impl DetectorLayer {
    /// This layer's keys where set, `base`'s elsewhere.
    fn over(&self, base: &DetectorLayer) -> DetectorLayer {
        fn pick<T: Clone>(
            own: &Option<Located<T>>,
            base: &Option<Located<T>>,
        ) -> Option<Located<T>> {
            own.clone().or_else(|| base.clone())
        }
        DetectorLayer {
            window: pick(&self.window, &base.window),
            min_samples: pick(&self.min_samples, &base.min_samples),
            threshold: pick(&self.threshold, &base.threshold),
            for_duration: pick(&self.for_duration, &base.for_duration),
            consecutive: pick(&self.consecutive, &base.consecutive),
            recover_threshold: pick(&self.recover_threshold, &base.recover_threshold),
            recover_consecutive: pick(&self.recover_consecutive, &base.recover_consecutive),
            direction: pick(&self.direction, &base.direction),
            stale_after: pick(&self.stale_after, &base.stale_after),
            relearn_after: pick(&self.relearn_after, &base.relearn_after),
            min_stddev: pick(&self.min_stddev, &base.min_stddev),
            min_relative_stddev: pick(&self.min_relative_stddev, &base.min_relative_stddev),
            accumulate: pick(&self.accumulate, &base.accumulate),
            ewma_lambda: pick(&self.ewma_lambda, &base.ewma_lambda),
            ewma_threshold: pick(&self.ewma_threshold, &base.ewma_threshold),
            cusum_slack: pick(&self.cusum_slack, &base.cusum_slack),
            cusum_threshold: pick(&self.cusum_threshold, &base.cusum_threshold),
        }
    }
}

/// The accumulated statistic a resolved layer asks for.
fn accumulate(layer: &DetectorLayer) -> Accumulate {
    let value =
        |set: &Option<Located<f64>>, default: f64| set.as_ref().map_or(default, |l| l.value);
    let kind = layer
        .accumulate
        .as_ref()
        .map_or(AccumulateKind::Ewma, |l| l.value);
    match kind {
        AccumulateKind::None => Accumulate::Off,
        AccumulateKind::Ewma => Accumulate::Ewma {
            lambda: value(&layer.ewma_lambda, defaults::EWMA_LAMBDA),
            limit: value(&layer.ewma_threshold, defaults::EWMA_THRESHOLD),
        },
        AccumulateKind::Cusum => Accumulate::Cusum {
            k: value(&layer.cusum_slack, defaults::CUSUM_SLACK),
            h: value(&layer.cusum_threshold, defaults::CUSUM_THRESHOLD),
        },
    }
}

/// The keys of one mapping that passed the unknown-key and duplicate checks.
struct Fields<'n> {
    mark: Mark,
    entries: Vec<(&'n str, &'n Node)>,
}

impl<'n> Fields<'n> {
    /// The value of `key`; a key written with no value counts as absent.
    fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, node)| *node)
            .filter(|node| node.value != Value::Null)
    }
}

struct Checker<'f> {
    file: &'f str,
    problems: Vec<ConfigProblem>,
    warnings: Vec<ConfigProblem>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

impl Checker<'_> {
    fn locate(&self, mark: Mark, path: &str, message: String) -> ConfigProblem {
        ConfigProblem {
            file: self.file.to_owned(),
            line: mark.line,
            column: mark.column,
            path: path.to_owned(),
            message,
        }
    }

    fn problem(&mut self, mark: Mark, path: &str, message: impl Into<String>) {
        let problem = self.locate(mark, path, message.into());
        self.problems.push(problem);
    }

    fn warn(&mut self, mark: Mark, path: &str, message: impl Into<String>) {
        let warning = self.locate(mark, path, message.into());
        self.warnings.push(warning);
    }

    // ---- The sections, top down ----

    fn config(&mut self, root: &Node) -> Option<Config> {
        let top = self.mapping(root, "", TOP_KEYS)?;
        let global = self.global(top.get("global"));
        let detector = match top.get("detector") {
            Some(node) => self.detector_section(node),
            None => DetectorLayer::default(),
        };
        let sources = self.sources(top.get("sources"), &global, &detector);
        if sources.is_empty() && top.get("sources").is_none() {
            self.warn(
                top.mark,
                "sources",
                "no sources are configured: nothing will be watched",
            );
        }
        let alerting = top.get("alerting").and_then(|node| self.alerting(node));
        let webhooks = self.webhooks(top.get("webhooks"));
        Some(Config {
            global: global.config,
            sources,
            alerting,
            webhooks,
        })
    }

    fn global(&mut self, node: Option<&Node>) -> Global {
        let mut global = Global {
            config: GlobalConfig {
                interval: defaults::INTERVAL,
                timeout: defaults::TIMEOUT,
                body_size_limit: defaults::BODY_SIZE_LIMIT,
                external_labels: BTreeMap::new(),
                limits: SourceLimits::default(),
                total_series_limit: defaults::TOTAL_SERIES_LIMIT,
                snapshot_interval: defaults::SNAPSHOT_INTERVAL,
            },
            timeout_set: false,
        };
        let Some(fields) = node.and_then(|node| self.mapping(node, "global", GLOBAL_KEYS)) else {
            global.config.timeout = global.config.timeout.min(global.config.interval);
            return global;
        };
        if let Some(interval) = self.positive_duration(fields.get("interval"), "global.interval") {
            global.config.interval = interval;
        }
        match self.positive_duration(fields.get("timeout"), "global.timeout") {
            Some(timeout) => {
                global.timeout_set = true;
                global.config.timeout = timeout;
                self.check_timeout(&fields, "global", timeout, global.config.interval);
            }
            // As in Prometheus, the default timeout never exceeds the interval.
            None => global.config.timeout = global.config.timeout.min(global.config.interval),
        }
        if let Some(limit) = self.body_size_limit(fields.get("body_size_limit"), "global") {
            global.config.body_size_limit = limit;
        }
        if let Some(node) = fields.get("external_labels") {
            global.config.external_labels = self.labels(node, "global.external_labels");
        }
        global.config.limits = self.limits(&fields, "global", SourceLimits::default());
        let snapshot_interval = "global.snapshot_interval";
        if let Some(every) =
            self.positive_duration(fields.get("snapshot_interval"), snapshot_interval)
        {
            global.config.snapshot_interval = every;
        }
        if let Some(node) = fields.get("total_series_limit") {
            if let Some(limit) = self.limit(node, "global.total_series_limit") {
                global.config.total_series_limit = limit;
            }
        }
        global
    }

    /// The limit keys of a section, over `base` for those it leaves out.
    fn limits(&mut self, fields: &Fields<'_>, path: &str, base: SourceLimits) -> SourceLimits {
        let mut limits = base;
        let [series, labels, value_length] = LIMIT_KEYS;
        for (key, into) in [
            (series, &mut limits.series),
            (labels, &mut limits.labels),
            (value_length, &mut limits.label_value_length),
        ] {
            if let Some(limit) = fields
                .get(key)
                .and_then(|n| self.limit(n, &join(path, key)))
            {
                *into = limit;
            }
        }
        limits
    }

    /// A positive count; limits are never off, since every one protects
    /// the process.
    fn limit(&mut self, node: &Node, path: &str) -> Option<usize> {
        match self.count(node, path)? {
            0 => {
                self.problem(node.mark, path, "a limit must be at least 1");
                None
            }
            limit => Some(limit),
        }
    }

    fn check_timeout(
        &mut self,
        fields: &Fields<'_>,
        path: &str,
        timeout: Duration,
        interval: Duration,
    ) {
        let Some(node) = fields.get("timeout") else {
            return;
        };
        let path = join(path, "timeout");
        if timeout > interval {
            self.problem(
                node.mark,
                &path,
                format!(
                    "timeout {} is longer than the interval {}",
                    format_duration(timeout),
                    format_duration(interval)
                ),
            );
        } else if timeout == interval {
            self.warn(
                node.mark,
                &path,
                "timeout equals the interval: a slow target delays the next scrape",
            );
        }
    }

    fn body_size_limit(&mut self, node: Option<&Node>, path: &str) -> Option<u64> {
        let node = node?;
        let path = join(path, "body_size_limit");
        let text = self.string(node, &path)?;
        match parse_size(&text) {
            Ok(0) => {
                self.problem(node.mark, &path, "body_size_limit must be above 0");
                None
            }
            Ok(size) => Some(size),
            Err(message) => {
                self.problem(node.mark, &path, message);
                None
            }
        }
    }

    fn detector_section(&mut self, node: &Node) -> DetectorLayer {
        let Some(fields) = self.mapping(node, "detector", DETECTOR_KEYS) else {
            return DetectorLayer::default();
        };
        let layer = self.detector_layer(&fields, "detector");
        // Checked here once, so a bad default is reported at its own place
        // even when no watch inherits it.
        let _ = self.resolve_detector(&layer, fields.mark, "detector");
        layer
    }

    fn detector_layer(&mut self, fields: &Fields<'_>, path: &str) -> DetectorLayer {
        let mut layer = DetectorLayer::default();
        let at = |key: &str| join(path, key);
        layer.window = self.located(fields, "window", path, |c, n, p| c.count(n, p));
        layer.min_samples = self.located(fields, "min_samples", path, |c, n, p| c.count(n, p));
        layer.threshold = self.located(fields, "threshold", path, |c, n, p| c.float(n, p));
        layer.for_duration = self.located(fields, "for", path, |c, n, p| c.duration(n, p));
        layer.consecutive =
            self.located(fields, "consecutive", path, |c, n, p| c.at_least_one(n, p));
        layer.recover_threshold =
            self.located(fields, "recover_threshold", path, |c, n, p| c.float(n, p));
        layer.recover_consecutive = self.located(fields, "recover_consecutive", path, |c, n, p| {
            c.at_least_one(n, p)
        });
        layer.direction = self.located(fields, "direction", path, |c, n, p| c.direction(n, p));
        layer.stale_after = self.located(fields, "stale_after", path, |c, n, p| {
            c.positive_duration(Some(n), p)
        });
        layer.relearn_after =
            self.located(fields, "relearn_after", path, |c, n, p| c.duration(n, p));
        layer.min_stddev = self.located(fields, "min_stddev", path, |c, n, p| c.non_negative(n, p));
        layer.min_relative_stddev = self.located(fields, "min_relative_stddev", path, |c, n, p| {
            c.non_negative(n, p)
        });
        self.accumulate_keys(fields, path, &mut layer);
        if let (Some(a), Some(b)) = (&layer.for_duration, &layer.consecutive) {
            if !a.value.is_zero() {
                let (mark, path) = (b.mark, at("consecutive"));
                self.problem(mark, &path, "set either `for` or `consecutive`, not both");
            }
        }
        layer
    }

    /// The keys of the accumulated statistic; see [`Accumulate`].
    fn accumulate_keys(&mut self, fields: &Fields<'_>, path: &str, layer: &mut DetectorLayer) {
        layer.accumulate = self.located(fields, "accumulate", path, |c, n, p| {
            match c.string(n, p)?.as_str() {
                "none" => Some(AccumulateKind::None),
                "ewma" => Some(AccumulateKind::Ewma),
                "cusum" => Some(AccumulateKind::Cusum),
                other => {
                    let message = format!("unknown accumulate {other:?}; use none, ewma or cusum");
                    c.problem(n.mark, p, message);
                    None
                }
            }
        });
        layer.ewma_lambda = self.located(fields, "ewma_lambda", path, |c, n, p| {
            let lambda = c.float(n, p)?;
            if lambda <= 0.0 || lambda > 1.0 {
                c.problem(n.mark, p, "ewma_lambda must be above 0 and at most 1");
                return None;
            }
            Some(lambda)
        });
        layer.ewma_threshold =
            self.located(fields, "ewma_threshold", path, |c, n, p| c.positive(n, p));
        layer.cusum_slack =
            self.located(fields, "cusum_slack", path, |c, n, p| c.non_negative(n, p));
        layer.cusum_threshold =
            self.located(fields, "cusum_threshold", path, |c, n, p| c.positive(n, p));
    }

    /// Reads `key` with `read`, remembering where it was written.
    fn located<T>(
        &mut self,
        fields: &Fields<'_>,
        key: &str,
        path: &str,
        read: impl FnOnce(&mut Self, &Node, &str) -> Option<T>,
    ) -> Option<Located<T>> {
        let node = fields.get(key)?;
        let path = join(path, key);
        let value = read(self, node, &path)?;
        Some(Located {
            value,
            mark: node.mark,
            path,
        })
    }

    /// Resolves a layered set of detector keys over the built-in defaults,
    /// reporting the problems that involve several keys at the most
    /// specific of them.
    fn resolve_detector(
        &mut self,
        layer: &DetectorLayer,
        mark: Mark,
        path: &str,
    ) -> Option<DetectorParams> {
        fn value<T: Copy>(set: &Option<Located<T>>, default: T) -> T {
            set.as_ref().map_or(default, |l| l.value)
        }
        fn place<'a, T>(set: &'a Option<Located<T>>, mark: Mark, path: &'a str) -> (Mark, String) {
            set.as_ref()
                .map_or((mark, path.to_owned()), |l| (l.mark, l.path.clone()))
        }
        let window = value(&layer.window, defaults::WINDOW);
        let min_samples = value(&layer.min_samples, defaults::MIN_SAMPLES);
        let threshold = value(&layer.threshold, defaults::THRESHOLD);
        let recover_threshold = value(&layer.recover_threshold, defaults::RECOVER_THRESHOLD);
        let problems_before = self.problems.len();

        if !(1..=MAX_WINDOW).contains(&window) {
            let (mark, path) = place(&layer.window, mark, path);
            self.problem(
                mark,
                &path,
                format!("window must be between 1 and {MAX_WINDOW}"),
            );
        }
        if min_samples == 0 {
            let (mark, path) = place(&layer.min_samples, mark, path);
            self.problem(mark, &path, "min_samples must be at least 1");
        } else if min_samples > window {
            // Blame the key that was set closest to the watch.
            let (mark, path) = if layer.min_samples.is_some() {
                place(&layer.min_samples, mark, path)
            } else {
                place(&layer.window, mark, path)
            };
            self.problem(
                mark,
                &path,
                format!(
                    "min_samples {min_samples} is above window {window}: no verdict would ever come"
                ),
            );
        } else if min_samples < 5 {
            let (mark, path) = place(&layer.min_samples, mark, path);
            self.warn(
                mark,
                &path,
                "a baseline of fewer than 5 samples gives unsteady z-scores",
            );
        }
        if threshold <= 0.0 {
            let (mark, path) = place(&layer.threshold, mark, path);
            self.problem(mark, &path, "threshold must be above 0");
        } else if recover_threshold >= threshold {
            let (mark, path) = if layer.recover_threshold.is_some() {
                place(&layer.recover_threshold, mark, path)
            } else {
                place(&layer.threshold, mark, path)
            };
            self.problem(
                mark,
                &path,
                format!(
                    "recover_threshold {recover_threshold} must be below threshold {threshold}, \
                     or a series would flap"
                ),
            );
        }
        if self.problems.len() > problems_before {
            return None;
        }
        let relearn_after = value(&layer.relearn_after, defaults::RELEARN_AFTER);
        Some(DetectorParams {
            window,
            min_samples,
            threshold,
            for_duration: value(&layer.for_duration, Duration::ZERO),
            consecutive: layer.consecutive.as_ref().map(|l| l.value),
            recover_threshold,
            recover_consecutive: value(&layer.recover_consecutive, defaults::RECOVER_CONSECUTIVE),
            direction: value(&layer.direction, Direction::Both),
            relearn_after: (!relearn_after.is_zero()).then_some(relearn_after),
            min_stddev: value(&layer.min_stddev, DEFAULT_MIN_STDDEV),
            min_relative_stddev: value(&layer.min_relative_stddev, DEFAULT_MIN_RELATIVE_STDDEV),
            accumulate: accumulate(layer),
        })
    }

    fn sources(
        &mut self,
        node: Option<&Node>,
        global: &Global,
        detector: &DetectorLayer,
    ) -> Vec<SourceConfig> {
        let mut sources = Vec::new();
        let mut names: HashSet<String> = HashSet::new();
        for (i, node) in self.list(node, "sources").iter().enumerate() {
            let path = format!("sources[{i}]");
            // Names are compared even when the rest of a source is broken.
            if let Some((name, mark)) = scalar_key(node, "name") {
                if !names.insert(name.to_owned()) {
                    self.problem(
                        mark,
                        &join(&path, "name"),
                        format!("duplicate source name {name:?}"),
                    );
                }
            }
            if let Some(source) = self.source(node, &path, global, detector) {
                sources.push(source);
            }
        }
        sources
    }

    fn source(
        &mut self,
        node: &Node,
        path: &str,
        global: &Global,
        detector: &DetectorLayer,
    ) -> Option<SourceConfig> {
        let fields = self.mapping(node, path, SOURCE_KEYS)?;
        let name = self.required(&fields, "name", path, |c, n, p| c.string(n, p));
        if name.as_deref() == Some("") {
            self.problem(
                fields.mark,
                &join(path, "name"),
                "a source needs a non-empty name",
            );
        }
        let kind = match (fields.get("scrape"), fields.get("promql")) {
            (Some(scrape), None) => self
                .scrape(scrape, &join(path, "scrape"))
                .map(SourceKind::Scrape),
            (None, Some(promql)) => self
                .promql(promql, &join(path, "promql"))
                .map(SourceKind::Promql),
            (Some(_), Some(promql)) => {
                self.problem(
                    promql.mark,
                    &join(path, "promql"),
                    "a source is either `scrape` or `promql`, not both",
                );
                None
            }
            (None, None) => {
                self.problem(fields.mark, path, "a source needs `scrape` or `promql`");
                None
            }
        };
        let interval = self
            .positive_duration(fields.get("interval"), &join(path, "interval"))
            .unwrap_or(global.config.interval);
        let timeout = match self.positive_duration(fields.get("timeout"), &join(path, "timeout")) {
            Some(timeout) => {
                self.check_timeout(&fields, path, timeout, interval);
                timeout
            }
            // An inherited timeout shrinks to a shorter interval, as in Prometheus.
            None if global.timeout_set => global.config.timeout.min(interval),
            None => defaults::TIMEOUT.min(interval),
        };
        let body_size_limit = self
            .body_size_limit(fields.get("body_size_limit"), path)
            .unwrap_or(global.config.body_size_limit);
        let limits = self.limits(&fields, path, global.config.limits);
        let watches = self.watches(&fields, path, interval, detector);
        Some(SourceConfig {
            name: name?,
            kind: kind?,
            interval,
            timeout,
            body_size_limit,
            limits,
            watches,
        })
    }

    fn scrape(&mut self, node: &Node, path: &str) -> Option<ScrapeConfig> {
        let fields = self.mapping(node, path, SCRAPE_KEYS)?;
        let url = self.required(&fields, "url", path, |c, n, p| c.url(n, p));
        let bearer_token_file = self.optional_path(&fields, "bearer_token_file", path);
        Some(ScrapeConfig {
            url: url?,
            bearer_token_file,
        })
    }

    fn promql(&mut self, node: &Node, path: &str) -> Option<PromqlConfig> {
        let fields = self.mapping(node, path, PROMQL_KEYS)?;
        let url = self.required(&fields, "url", path, |c, n, p| c.url(n, p));
        let query = self.required(&fields, "query", path, |c, n, p| c.string(n, p));
        if query.as_deref().is_some_and(|q| q.trim().is_empty()) {
            self.problem(fields.mark, &join(path, "query"), "the query is empty");
        }
        let backfill = fields
            .get("backfill")
            .and_then(|n| self.boolean(n, &join(path, "backfill")))
            .unwrap_or(false);
        let bearer_token_file = self.optional_path(&fields, "bearer_token_file", path);
        let basic_auth = fields
            .get("basic_auth")
            .and_then(|node| self.basic_auth(node, path));
        if basic_auth.is_some() && bearer_token_file.is_some() {
            self.problem(
                fields.mark,
                path,
                "use either bearer_token_file or basic_auth, not both",
            );
        }
        let tls_ca_file = self.optional_path(&fields, "tls_ca_file", path);
        Some(PromqlConfig {
            url: url?,
            query: query?,
            backfill,
            bearer_token_file,
            basic_auth,
            tls_ca_file,
        })
    }

    fn basic_auth(&mut self, node: &Node, path: &str) -> Option<BasicAuth> {
        let path = join(path, "basic_auth");
        let fields = self.mapping(node, &path, BASIC_AUTH_KEYS)?;
        let username = self.required(&fields, "username", &path, |c, n, p| c.string(n, p));
        let password_file =
            self.required(&fields, "password_file", &path, |c, n, p| c.string(n, p));
        Some(BasicAuth {
            username: username?,
            password_file: PathBuf::from(password_file?),
        })
    }

    fn watches(
        &mut self,
        source: &Fields<'_>,
        path: &str,
        interval: Duration,
        detector: &DetectorLayer,
    ) -> Vec<WatchConfig> {
        let path = join(path, "watch");
        let items = self.list(source.get("watch"), &path);
        if items.is_empty() {
            self.problem(source.mark, &path, "a source needs at least one watch");
        }
        let mut watches = Vec::new();
        for (i, node) in items.iter().enumerate() {
            let path = format!("{path}[{i}]");
            if let Some(watch) = self.watch(node, &path, interval, detector) {
                watches.push(watch);
            }
        }
        watches
    }

    fn watch(
        &mut self,
        node: &Node,
        path: &str,
        interval: Duration,
        detector: &DetectorLayer,
    ) -> Option<WatchConfig> {
        let keys: Vec<&str> = WATCH_KEYS.iter().chain(DETECTOR_KEYS).copied().collect();
        let fields = self.mapping(node, path, &keys)?;
        let metric = self.required(&fields, "metric", path, |c, n, p| {
            let name = c.string(n, p)?;
            if is_metric_name(&name) {
                Some(name)
            } else {
                c.problem(n.mark, p, format!("{name:?} is not a valid metric name"));
                None
            }
        });
        let matchers = match fields.get("matchers") {
            Some(node) => self.labels(node, &join(path, "matchers")),
            None => BTreeMap::new(),
        };
        let layer = self.detector_layer(&fields, path).over(detector);
        let params = self.resolve_detector(&layer, fields.mark, path);
        let stale_after = match &layer.stale_after {
            Some(set) => {
                if set.value < interval {
                    self.problem(
                        set.mark,
                        &set.path,
                        format!(
                            "stale_after {} is shorter than the interval {}: every series would \
                             be dropped between scrapes",
                            format_duration(set.value),
                            format_duration(interval)
                        ),
                    );
                }
                set.value
            }
            None => interval * defaults::STALE_INTERVALS,
        };
        Some(WatchConfig {
            metric: metric?,
            matchers,
            detector: params?,
            stale_after,
        })
    }

    fn alerting(&mut self, node: &Node) -> Option<AlertingConfig> {
        let path = "alerting";
        let fields = self.mapping(node, path, ALERTING_KEYS)?;
        let mut alertmanagers = Vec::new();
        let items = self.list(fields.get("alertmanagers"), "alerting.alertmanagers");
        if items.is_empty() {
            self.problem(
                fields.mark,
                "alerting.alertmanagers",
                "alerting needs at least one Alertmanager",
            );
        }
        for (i, node) in items.iter().enumerate() {
            let path = format!("alerting.alertmanagers[{i}]");
            let Some(am) = self.mapping(node, &path, ALERTMANAGER_KEYS) else {
                continue;
            };
            let url = self.required(&am, "url", &path, |c, n, p| c.url(n, p));
            let timeout = self
                .positive_duration(am.get("timeout"), &join(&path, "timeout"))
                .unwrap_or(defaults::ALERTMANAGER_TIMEOUT);
            let bearer_token_file = self.optional_path(&am, "bearer_token_file", &path);
            if let Some(url) = url {
                alertmanagers.push(AlertmanagerConfig {
                    url,
                    timeout,
                    bearer_token_file,
                });
            }
        }
        let resend_interval = self
            .positive_duration(fields.get("resend_interval"), "alerting.resend_interval")
            .unwrap_or(defaults::RESEND_INTERVAL);
        let labels = match fields.get("labels") {
            Some(node) => self.labels(node, "alerting.labels"),
            None => BTreeMap::new(),
        };
        let alertname = match fields.get("alertname") {
            Some(node) => self.string(node, "alerting.alertname").unwrap_or_default(),
            None => defaults::ALERTNAME.to_owned(),
        };
        if alertname.is_empty() {
            self.problem(
                fields.mark,
                "alerting.alertname",
                "alertname must not be empty",
            );
        }
        let mut drop_labels = Vec::new();
        for (i, node) in self
            .list(fields.get("drop_labels"), "alerting.drop_labels")
            .iter()
            .enumerate()
        {
            let path = format!("alerting.drop_labels[{i}]");
            if let Some(name) = self.label_name(node, &path) {
                drop_labels.push(name);
            }
        }
        Some(AlertingConfig {
            alertmanagers,
            resend_interval,
            labels,
            alertname,
            drop_labels,
        })
    }

    fn webhooks(&mut self, node: Option<&Node>) -> Vec<WebhookConfig> {
        let mut webhooks = Vec::new();
        let mut names = HashSet::new();
        for (i, node) in self.list(node, "webhooks").iter().enumerate() {
            let path = format!("webhooks[{i}]");
            let Some(fields) = self.mapping(node, &path, WEBHOOK_KEYS) else {
                continue;
            };
            let name = self.required(&fields, "name", &path, |c, n, p| c.string(n, p));
            if let Some((name, mark)) = scalar_key(node, "name") {
                if !names.insert(name.to_owned()) {
                    self.problem(
                        mark,
                        &join(&path, "name"),
                        format!("duplicate webhook name {name:?}"),
                    );
                }
            }
            let url = self.required(&fields, "url", &path, |c, n, p| c.url(n, p));
            let events = self.events(fields.get("events"), &join(&path, "events"));
            let min_interval = fields
                .get("min_interval")
                .and_then(|n| self.duration(n, &join(&path, "min_interval")))
                .unwrap_or(defaults::WEBHOOK_MIN_INTERVAL);
            let hmac_secret_file = self.optional_path(&fields, "hmac_secret_file", &path);
            let timeout = self
                .positive_duration(fields.get("timeout"), &join(&path, "timeout"))
                .unwrap_or(defaults::WEBHOOK_TIMEOUT);
            if let (Some(name), Some(url)) = (name, url) {
                webhooks.push(WebhookConfig {
                    name,
                    url,
                    events,
                    min_interval,
                    hmac_secret_file,
                    timeout,
                });
            }
        }
        webhooks
    }

    fn events(&mut self, node: Option<&Node>, path: &str) -> Vec<WebhookEvent> {
        let Some(node) = node else {
            return vec![WebhookEvent::Degraded];
        };
        let mut events = Vec::new();
        for (i, item) in self.list(Some(node), path).iter().enumerate() {
            let path = format!("{path}[{i}]");
            match self.string(item, &path).as_deref() {
                Some("degraded") => events.push(WebhookEvent::Degraded),
                Some("recovered") => events.push(WebhookEvent::Recovered),
                Some(other) => self.problem(
                    item.mark,
                    &path,
                    format!("unknown event {other:?}; the events are degraded and recovered"),
                ),
                None => {}
            }
        }
        if events.is_empty() {
            self.problem(node.mark, path, "a webhook needs at least one event");
        }
        events.dedup();
        events
    }

    // ---- Shapes and scalars ----

    /// The fields of a mapping, with unknown and repeated keys reported.
    fn mapping<'n>(&mut self, node: &'n Node, path: &str, keys: &[&str]) -> Option<Fields<'n>> {
        let Value::Mapping(entries) = &node.value else {
            let what = if path.is_empty() { "the file" } else { path };
            self.problem(
                node.mark,
                path,
                format!("{what} must be a mapping, found {}", node.kind()),
            );
            return None;
        };
        let mut fields = Fields {
            mark: node.mark,
            entries: Vec::new(),
        };
        for (key, value) in entries {
            let Some(name) = key.as_scalar() else {
                self.problem(
                    key.mark,
                    path,
                    format!("a key must be a scalar, found {}", key.kind()),
                );
                continue;
            };
            let key_path = join(path, name);
            if !keys.contains(&name) {
                let message = match suggestion(name, keys) {
                    Some(close) => format!("unknown key {name:?} (did you mean {close:?}?)"),
                    None => format!("unknown key {name:?}; known keys here: {}", keys.join(", ")),
                };
                self.problem(key.mark, &key_path, message);
            } else if fields.entries.iter().any(|(seen, _)| *seen == name) {
                self.problem(key.mark, &key_path, format!("key {name:?} is given twice"));
            } else {
                fields.entries.push((name, value));
            }
        }
        Some(fields)
    }

    /// A list, or nothing: a missing key is an empty list.
    fn list<'n>(&mut self, node: Option<&'n Node>, path: &str) -> &'n [Node] {
        match node.map(|n| (n, &n.value)) {
            None | Some((_, Value::Null)) => &[],
            Some((_, Value::Sequence(items))) => items,
            Some((node, _)) => {
                self.problem(
                    node.mark,
                    path,
                    format!("expected a list, found {}", node.kind()),
                );
                &[]
            }
        }
    }

    /// Reads a key that must be there.
    fn required<T>(
        &mut self,
        fields: &Fields<'_>,
        key: &str,
        path: &str,
        read: impl FnOnce(&mut Self, &Node, &str) -> Option<T>,
    ) -> Option<T> {
        let path = join(path, key);
        match fields.get(key) {
            Some(node) => read(self, node, &path),
            None => {
                self.problem(fields.mark, &path, format!("missing required key {key:?}"));
                None
            }
        }
    }

    fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.value {
            Value::Scalar { text, .. } => Some(text.clone()),
            _ => {
                self.problem(
                    node.mark,
                    path,
                    format!("expected a string, found {}", node.kind()),
                );
                None
            }
        }
    }

    fn optional_path(&mut self, fields: &Fields<'_>, key: &str, path: &str) -> Option<PathBuf> {
        let node = fields.get(key)?;
        let path = join(path, key);
        let text = self.string(node, &path)?;
        if text.is_empty() {
            self.problem(node.mark, &path, "the file name is empty");
            return None;
        }
        Some(PathBuf::from(text))
    }

    fn url(&mut self, node: &Node, path: &str) -> Option<String> {
        let text = self.string(node, path)?;
        match reqwest::Url::parse(&text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Some(text),
            Ok(_) => {
                self.problem(
                    node.mark,
                    path,
                    format!("{text:?} is not an http or https URL"),
                );
                None
            }
            Err(e) => {
                self.problem(node.mark, path, format!("{text:?} is not a URL: {e}"));
                None
            }
        }
    }

    fn duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        let text = self.string(node, path)?;
        match parse_duration(&text) {
            Ok(duration) => Some(duration),
            Err(message) => {
                self.problem(node.mark, path, message);
                None
            }
        }
    }

    fn positive_duration(&mut self, node: Option<&Node>, path: &str) -> Option<Duration> {
        let node = node?;
        let duration = self.duration(node, path)?;
        if duration.is_zero() {
            self.problem(node.mark, path, "must be longer than 0s");
            return None;
        }
        Some(duration)
    }

    fn plain<'n>(&mut self, node: &'n Node, path: &str, what: &str) -> Option<&'n str> {
        match &node.value {
            Value::Scalar {
                text,
                quoted: false,
            } => Some(text),
            _ => {
                self.problem(
                    node.mark,
                    path,
                    format!("expected {what}, found {}", describe(node)),
                );
                None
            }
        }
    }

    fn float(&mut self, node: &Node, path: &str) -> Option<f64> {
        let text = self.plain(node, path, "a number")?;
        match text.parse::<f64>() {
            Ok(value) if value.is_finite() => Some(value),
            _ => {
                self.problem(
                    node.mark,
                    path,
                    format!("expected a finite number, found {text:?}"),
                );
                None
            }
        }
    }

    fn positive(&mut self, node: &Node, path: &str) -> Option<f64> {
        let value = self.float(node, path)?;
        if value <= 0.0 {
            self.problem(node.mark, path, "must be above 0");
            return None;
        }
        Some(value)
    }

    /// A count of samples, from 1 to `u32::MAX`.
    fn at_least_one(&mut self, node: &Node, path: &str) -> Option<u32> {
        let count = self.count(node, path)?;
        match u32::try_from(count) {
            Ok(count) if count >= 1 => Some(count),
            _ => {
                let key = path.rsplit('.').next().unwrap_or(path);
                let message = format!("{key} must be between 1 and 4294967295");
                self.problem(node.mark, path, message);
                None
            }
        }
    }

    fn non_negative(&mut self, node: &Node, path: &str) -> Option<f64> {
        let value = self.float(node, path)?;
        if value < 0.0 {
            self.problem(node.mark, path, "must not be negative");
            return None;
        }
        Some(value)
    }

    fn count(&mut self, node: &Node, path: &str) -> Option<usize> {
        let text = self.plain(node, path, "a whole number")?;
        match text.parse::<usize>() {
            Ok(value) => Some(value),
            Err(_) => {
                self.problem(
                    node.mark,
                    path,
                    format!("expected a whole number, found {text:?}"),
                );
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        match self.plain(node, path, "true or false")? {
            "true" => Some(true),
            "false" => Some(false),
            other => {
                self.problem(
                    node.mark,
                    path,
                    format!("expected true or false, found {other:?}"),
                );
                None
            }
        }
    }

    fn direction(&mut self, node: &Node, path: &str) -> Option<Direction> {
        match self.string(node, path)?.as_str() {
            "lower_is_worse" => Some(Direction::LowerIsWorse),
            "higher_is_worse" => Some(Direction::HigherIsWorse),
            "both" => Some(Direction::Both),
            other => {
                self.problem(
                    node.mark,
                    path,
                    format!(
                        "unknown direction {other:?}; use lower_is_worse, higher_is_worse or both"
                    ),
                );
                None
            }
        }
    }

    fn label_name(&mut self, node: &Node, path: &str) -> Option<String> {
        let name = self.string(node, path)?;
        if !is_label_name(&name) {
            self.problem(
                node.mark,
                path,
                format!("{name:?} is not a valid label name"),
            );
            return None;
        }
        Some(name)
    }

    /// A mapping of label names to values (`external_labels`, `matchers`).
    fn labels(&mut self, node: &Node, path: &str) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::new();
        let Value::Mapping(entries) = &node.value else {
            self.problem(
                node.mark,
                path,
                format!("expected a mapping of labels, found {}", node.kind()),
            );
            return labels;
        };
        for (key, value) in entries {
            let Some(name) = self.label_name(key, path) else {
                continue;
            };
            let key_path = join(path, &name);
            let Some(text) = self.string(value, &key_path) else {
                continue;
            };
            if labels.insert(name.clone(), text).is_some() {
                self.problem(
                    key.mark,
                    &key_path,
                    format!("label {name:?} is given twice"),
                );
            }
        }
        labels
    }
}

/// The global section as resolved, and whether its timeout was written.
struct Global {
    config: GlobalConfig,
    timeout_set: bool,
}

/// The scalar value of `key` in a mapping node, and where it was written.
fn scalar_key<'n>(node: &'n Node, key: &str) -> Option<(&'n str, Mark)> {
    let Value::Mapping(entries) = &node.value else {
        return None;
    };
    let (_, value) = entries.iter().find(|(k, _)| k.as_scalar() == Some(key))?;
    Some((value.as_scalar()?, value.mark))
}

fn describe(node: &Node) -> String {
    match &node.value {
        Value::Scalar { text, .. } => format!("{text:?}"),
        _ => node.kind().to_owned(),
    }
}

/// A known key one typo away from `name`, if there is one.
fn suggestion<'k>(name: &str, keys: &[&'k str]) -> Option<&'k str> {
    keys.iter()
        .copied()
        .find(|key| edit_distance(name, key) <= 2)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`, as Prometheus defines metric names.
pub fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, without the `__` prefix Prometheus reserves.
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match parse_str(text, "f.yml") {
            Ok(_) => Vec::new(),
            Err(errors) => errors.problems.iter().map(ToString::to_string).collect(),
        }
    }

    fn valid(text: &str) -> Config {
        match parse_str(text, "f.yml") {
            Ok(loaded) => loaded.config,
            Err(errors) => panic!("refused:\n{errors}"),
        }
    }

    const MINIMAL: &str = "\
sources:
  - name: m
    scrape: {url: 'http://127.0.0.1:8080/metrics'}
    watch:
      - metric: model_accuracy
";

    #[test]
    fn defaults_fill_what_the_file_leaves_out() {
        let config = valid(MINIMAL);
        let source = &config.sources[0];
        assert_eq!(source.interval, Duration::from_secs(15));
        assert_eq!(source.timeout, Duration::from_secs(10));
        assert_eq!(source.body_size_limit, 10 << 20);
        let watch = &source.watches[0];
        assert_eq!(watch.stale_after, Duration::from_secs(75));
        assert_eq!(watch.detector.window, 100);
        assert_eq!(watch.detector.min_samples, 20);
        assert_eq!(watch.detector.direction, Direction::Both);
        assert_eq!(
            watch.detector.relearn_after,
            Some(Duration::from_secs(24 * 3600))
        );
        assert_eq!(watch.detector.threshold, 5.0);
        assert_eq!(watch.detector.recover_consecutive, 144);
        assert_eq!(
            watch.detector.accumulate,
            Accumulate::Ewma {
                lambda: 0.15,
                limit: 4.5
            }
        );
        assert!(config.alerting.is_none());
    }

    #[test]
    fn each_watch_chooses_its_accumulated_statistic() {
        let config = valid(
            "detector: {accumulate: cusum, cusum_slack: 0.5, recover_consecutive: 3}\n\
             sources:\n  - name: m\n    scrape: {url: 'http://h/metrics'}\n    watch:\n\
             \x20     - {metric: a}\n      - {metric: b, accumulate: none}\n\
             \x20     - {metric: c, accumulate: ewma, ewma_lambda: 0.3}\n",
        );
        let watches = &config.sources[0].watches;
        let cusum = Accumulate::Cusum {
            k: 0.5,
            h: defaults::CUSUM_THRESHOLD,
        };
        assert_eq!(watches[0].detector.accumulate, cusum);
        assert_eq!(watches[0].detector.recover_consecutive, 3);
        assert_eq!(watches[1].detector.accumulate, Accumulate::Off);
        let ewma = Accumulate::Ewma {
            lambda: 0.3,
            limit: defaults::EWMA_THRESHOLD,
        };
        assert_eq!(watches[2].detector.accumulate, ewma);
    }

    #[test]
    fn watch_overrides_detector_which_overrides_defaults() {
        let config = valid(
            "detector: {window: 50, threshold: 4, relearn_after: 0s}\n\
             sources:\n  - name: m\n    interval: 2s\n    scrape: {url: 'http://h/metrics'}\n    watch:\n\
             \x20     - {metric: a, window: 30, direction: lower_is_worse}\n      - {metric: b}\n",
        );
        let watches = &config.sources[0].watches;
        assert_eq!(watches[0].detector.window, 30);
        assert_eq!(watches[0].detector.threshold, 4.0);
        assert_eq!(watches[0].detector.direction, Direction::LowerIsWorse);
        assert_eq!(watches[1].detector.window, 50);
        assert_eq!(watches[1].detector.relearn_after, None);
        assert_eq!(watches[1].stale_after, Duration::from_secs(10));
        // The default timeout never exceeds a shorter interval.
        assert_eq!(config.sources[0].timeout, Duration::from_secs(2));
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_place() {
        let text = "\
global:
  interval: 15 sec
  intervall: 1m
detector:
  threshold: 3
  recover_threshold: 3
sources:
  - name: a
    scrape: {}
    watch:
      - metric: m
        min_samples: 200
        direction: down
  - name: a
    promql: {url: 'http://p:9090', query: up}
    watch: [{metric: x}]
";
        let found = problems(text);
        let expected = [
            "f.yml:2:13: global.interval: \"15 sec\" is not a duration",
            "f.yml:3:3: global.intervall: unknown key \"intervall\" (did you mean \"interval\"?)",
            "f.yml:6:22: detector.recover_threshold: recover_threshold 3 must be below threshold 3",
            "f.yml:9:13: sources[0].scrape.url: missing required key \"url\"",
            "f.yml:12:22: sources[0].watch[0].min_samples: min_samples 200 is above window 100",
            "f.yml:13:20: sources[0].watch[0].direction: unknown direction \"down\"",
            "f.yml:14:11: sources[1].name: duplicate source name \"a\"",
        ];
        assert_eq!(found.len(), expected.len(), "{found:#?}");
        for (found, expected) in found.iter().zip(expected) {
            assert!(
                found.starts_with(expected),
                "{found:?} does not start with {expected:?}"
            );
        }
    }

    #[test]
    fn timeout_longer_than_interval_is_refused() {
        let found = problems(&MINIMAL.replace(
            "    scrape",
            "    interval: 5s\n    timeout: 6s\n    scrape",
        ));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("sources[0].timeout: timeout 6s is longer than the interval 5s"));
    }

    #[test]
    fn shapes_and_scalars_are_checked() {
        let cases = [
            ("sources: {}", "expected a list, found a mapping"),
            ("[1, 2]", "the file must be a mapping, found a list"),
            ("", "the file holds no configuration"),
            ("a: [", "invalid YAML"),
            (
                "detector: {window: '10'}",
                "expected a whole number, found \"10\"",
            ),
            ("detector: {threshold: .nan}", "expected a finite number"),
            (
                "detector: {for: 1m, consecutive: 3}",
                "set either `for` or `consecutive`",
            ),
            (
                "global: {external_labels: {__x: a}}",
                "\"__x\" is not a valid label name",
            ),
            ("global: {body_size_limit: 10 MiB}", "is not a size"),
            (
                "detector: {accumulate: sprt}",
                "unknown accumulate \"sprt\"",
            ),
            (
                "detector: {ewma_lambda: 0}",
                "ewma_lambda must be above 0 and at most 1",
            ),
            (
                "detector: {ewma_lambda: 1.5}",
                "ewma_lambda must be above 0 and at most 1",
            ),
            ("detector: {cusum_threshold: 0}", "must be above 0"),
            ("detector: {cusum_slack: -1}", "must not be negative"),
            (
                "detector: {recover_consecutive: 0}",
                "recover_consecutive must be between 1 and 4294967295",
            ),
            ("alerting: {}", "alerting needs at least one Alertmanager"),
            (
                "webhooks: [{name: r, url: 'ftp://x', events: [fired]}]",
                "is not an http or https URL",
            ),
            (
                "webhooks: [{name: r, url: 'http://x', events: [fired]}]",
                "unknown event \"fired\"",
            ),
        ];
        for (text, want) in cases {
            let found = problems(text);
            assert!(
                found.iter().any(|p| p.contains(want)),
                "{text:?}: {found:#?}"
            );
        }
    }

    #[test]
    fn alerting_and_webhooks_take_their_defaults() {
        let config = valid(&format!(
            "{MINIMAL}alerting:\n  alertmanagers: [{{url: 'http://am:9093'}}]\n\
             webhooks:\n  - {{name: retrain, url: 'https://r/t', events: [degraded, recovered]}}\n"
        ));
        let alerting = config.alerting.unwrap();
        assert_eq!(alerting.alertname, "ModelPerformanceDegraded");
        assert_eq!(alerting.resend_interval, Duration::from_secs(60));
        assert_eq!(alerting.alertmanagers[0].timeout, Duration::from_secs(10));
        let webhook = &config.webhooks[0];
        assert_eq!(
            webhook.events,
            vec![WebhookEvent::Degraded, WebhookEvent::Recovered]
        );
        assert_eq!(webhook.min_interval, Duration::from_secs(3600));
        assert_eq!(webhook.timeout, Duration::from_secs(5));
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let text = include_str!("../../config.example.yaml");
        let loaded = parse_str(text, "config.example.yaml").unwrap_or_else(|e| panic!("{e}"));
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert!(!loaded.config.sources.is_empty());
    }
}
