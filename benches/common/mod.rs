//! What the engine-level benchmarks share: a fleet of model-server series,
//! an engine holding them, and the bookkeeping that turns criterion's
//! batches into ratios against a reference measured in the same run.

// Each benchmark binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use driftwatch::config::{ScrapeConfig, SourceConfig, SourceKind, WatchConfig};
use driftwatch::detector::{Accumulate, DetectorParams, Direction};
use driftwatch::detector::{DEFAULT_MIN_RELATIVE_STDDEV, DEFAULT_MIN_STDDEV};
use driftwatch::engine::{Ingest, Shared, SourceRuntime};
use driftwatch::notify::Notifier;
use driftwatch::parse::{ExpositionParser, Sample};

/// The watched metric families; series are dealt to them in turn.
pub const METRICS: [&str; 4] = [
    "model_online_accuracy_ratio",
    "model_inference_latency_p99_seconds",
    "model_prediction_error_rate",
    "model_feature_drift_psi",
];

const MODELS: [&str; 8] = [
    "fraud-detector",
    "ctr-ranker",
    "churn-xgb",
    "search-embedder",
    "credit-risk",
    "recsys-two-tower",
    "ocr-transformer",
    "eta-regressor",
];

/// One scrape interval, the time between two rounds.
pub const INTERVAL_MS: i64 = 15_000;

/// The shipped defaults (config.example.yaml): window 100, verdicts from
/// 20 samples, threshold 3 with recovery at 1.5, relearn after 6 h.
pub fn params() -> DetectorParams {
    DetectorParams {
        window: 100,
        min_samples: 20,
        threshold: 5.0,
        for_duration: Duration::ZERO,
        consecutive: None,
        recover_threshold: 1.5,
        recover_consecutive: 144,
        direction: Direction::Both,
        relearn_after: Some(Duration::from_secs(24 * 3600)),
        min_stddev: DEFAULT_MIN_STDDEV,
        min_relative_stddev: DEFAULT_MIN_RELATIVE_STDDEV,
        accumulate: Accumulate::Ewma {
            lambda: 0.15,
            limit: 4.5,
        },
    }
}

/// A source with one watch per metric of [`METRICS`], without matchers.
pub fn source_config() -> SourceConfig {
    let watches = METRICS
        .iter()
        .map(|metric| WatchConfig {
            metric: (*metric).to_owned(),
            matchers: BTreeMap::new(),
            detector: params(),
            stale_after: Duration::from_secs(75),
        })
        .collect();
    SourceConfig {
        name: "models".to_owned(),
        kind: SourceKind::Scrape(ScrapeConfig {
            url: "http://127.0.0.1:9/metrics".to_owned(),
            bearer_token_file: None,
        }),
        interval: Duration::from_millis(INTERVAL_MS as u64),
        timeout: Duration::from_secs(10),
        body_size_limit: u64::MAX,
        limits: driftwatch::config::SourceLimits::default(),
        watches,
    }
}

/// Series `i` as a target writes it: `name{labels}`, four labels in name
/// order, about 115 bytes, every series distinct.
pub fn write_series(out: &mut String, i: usize) {
    let metric = METRICS[i % METRICS.len()];
    let j = i / METRICS.len();
    let dataset = j % 50;
    let model = MODELS[(j / 50) % MODELS.len()];
    let host = j / 400;
    let _ = write!(
        out,
        "{metric}{{dataset=\"feedback-{dataset}\",instance=\"10.{}.{}.{}:8080\",\
         model=\"{model}\",version=\"v3.{}\"}}",
        (host >> 16) & 0xff,
        (host >> 8) & 0xff,
        host & 0xff,
        host % 20,
    );
}

/// An exposition of `series` sample lines, a HELP and TYPE per family.
pub fn exposition(series: usize) -> String {
    let mut out = String::with_capacity(series * 130);
    for metric in METRICS {
        let _ = writeln!(out, "# HELP {metric} A model quality signal.");
        let _ = writeln!(out, "# TYPE {metric} gauge");
    }
    for i in 0..series {
        write_series(&mut out, i);
        out.push_str(" 0.905\n");
    }
    out
}

/// Every sample of `body`, parsed once so that a benchmark can replay them.
pub fn parsed(body: &str) -> Vec<Sample<'_>> {
    let mut samples = Vec::new();
    let mut parser = ExpositionParser::new();
    // The parser lends each sample for the callback only; fed the whole body
    // as one chunk, its texts lie in `body`, which outlives them.
    let mut keep = |s: &Sample<'_>| {
        samples.push(Sample {
            name: within(body, s.name),
            labels: within(body, s.labels),
            series: within(body, s.series),
            value: s.value,
            timestamp_ms: s.timestamp_ms,
        })
    };
    parser
        .feed(body.as_bytes(), &mut keep)
        .expect("fixture parses");
    parser.finish(&mut keep).expect("fixture parses");
    samples
}

/// The same text as `part`, borrowed from `body` instead.
fn within<'a>(body: &'a str, part: &str) -> &'a str {
    if part.is_empty() {
        return "";
    }
    let start = (part.as_ptr() as usize)
        .checked_sub(body.as_ptr() as usize)
        .expect("sample text lies in the body");
    &body[start..start + part.len()]
}

/// The value of series `i` in `round`: in [0.9, 0.91], spread so evenly
/// over any run of rounds (a Weyl sequence, with a phase per series) that
/// no baseline gets narrow enough for a z-score of 3. Every series stays ok
/// and every sample enters its window: the steady state of a healthy fleet.
pub fn value(i: usize, round: u64) -> f64 {
    const GOLDEN: f64 = 0.618_033_988_749_895;
    const SQRT2_FRAC: f64 = 0.414_213_562_373_095;
    let x = (round as f64 * GOLDEN + i as f64 * SQRT2_FRAC).fract();
    0.9 + 0.01 * x
}

/// Gives every sample its value for `round`.
pub fn set_values(samples: &mut [Sample<'_>], round: u64) {
    for (i, s) in samples.iter_mut().enumerate() {
        s.value = value(i, round);
    }
}

/// The time of scrape `round`, Unix ms.
pub fn at_ms(round: u64) -> i64 {
    1_765_000_000_000 + round as i64 * INTERVAL_MS
}

/// One source's engine state, driven the way its scrape task drives it.
pub struct Fleet {
    pub shared: Arc<Shared>,
    pub runtime: Arc<SourceRuntime>,
    pub ingest: Ingest,
    pub round: u64,
}

impl Fleet {
    pub fn new() -> Fleet {
        let client = driftwatch::daemon::http_client().expect("http client");
        let notifier = Notifier::start(None, &[], &BTreeMap::new(), client);
        let shared = Arc::new(Shared::new(notifier, None, String::new()));
        let runtime = Arc::new(SourceRuntime::new(source_config()));
        shared.set_sources(vec![Arc::clone(&runtime)]);
        let ingest = Ingest::new(Arc::clone(&runtime), Arc::clone(&shared));
        Fleet {
            shared,
            runtime,
            ingest,
            round: 0,
        }
    }

    /// The time of the current round, Unix ms.
    pub fn at_ms(&self) -> i64 {
        at_ms(self.round)
    }

    /// One successful scrape: every sample routed, then committed.
    pub fn scrape(&mut self, samples: &[Sample<'_>]) {
        self.ingest.begin();
        for s in samples {
            self.ingest.route(s);
        }
        self.ingest.commit(self.at_ms());
    }

    /// Scrapes `rounds` times with fresh values each time.
    pub fn run(&mut self, samples: &mut [Sample<'_>], rounds: u64) {
        for _ in 0..rounds {
            self.round += 1;
            set_values(samples, self.round);
            self.scrape(samples);
        }
    }
}

/// Seconds per unit of work of every measured batch, by benchmark name:
/// criterion keeps its estimates to itself, and a ratio needs two of them
/// side by side.
static TIMES: Mutex<BTreeMap<String, Vec<f64>>> = Mutex::new(BTreeMap::new());

/// Records one batch: `elapsed` spent on `iters` × `units` units of work.
pub fn record(name: &str, elapsed: Duration, iters: u64, units: usize) {
    let per_unit = elapsed.as_secs_f64() / iters as f64 / units as f64;
    if let Ok(mut times) = TIMES.lock() {
        times.entry(name.to_owned()).or_default().push(per_unit);
    }
}

/// The median of the recorded batches of `name`, in nanoseconds per unit.
pub fn median_ns(name: &str) -> Option<f64> {
    let times = TIMES.lock().ok()?;
    let mut v = times.get(name)?.clone();
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2] * 1e9)
}

/// Prints one row per benchmark: ns per unit, and the reference's time
/// over its own (above 1: faster than the reference).
pub fn print_ratios(title: &str, unit: &str, reference: &str, names: &[impl AsRef<str>]) {
    let Some(base) = median_ns(reference) else {
        return;
    };
    println!("\n{title} (median of measured batches)");
    println!(
        "{:<34} {:>12} {:>16}",
        "",
        format!("ns/{unit}"),
        "reference/this"
    );
    for name in names {
        let name = name.as_ref();
        let Some(t) = median_ns(name) else { continue };
        println!("{name:<34} {t:>12.1} {:>15.2}x", base / t);
    }
}

/// A map from each series' exposition text to a clone of its detector, as
/// the reference implementations of the benchmarks hold them.
pub fn detectors_by_text(
    runtime: &SourceRuntime,
) -> HashMap<String, driftwatch::detector::Detector> {
    let table = driftwatch::engine::lock(&runtime.table);
    table
        .iter()
        .map(|entry| {
            let metric = &runtime.watch_metrics[entry.watch as usize];
            let text = format!("{metric}{{{}}}", entry.labels);
            (text, entry.detector.clone())
        })
        .collect()
}
