//! Parsing a 100,000-series exposition: prometheus-parse against our parser,
//! values only and with every label read, measured in the same run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use driftwatch::parse::{ExpositionParser, labels};

const SERIES: usize = 100_000;
const CHUNK: usize = 64 * 1024;

fn main() {
    let body = exposition(SERIES);
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6))
        .configure_from_args();

    let mut group = criterion.benchmark_group("exposition_100k");
    group.throughput(Throughput::BytesDecimal(body.len() as u64));
    group.bench_function(REFERENCE, |b| {
        b.iter_custom(|iters| timed(REFERENCE, iters, || prometheus_parse(&body)))
    });
    group.bench_function(VALUES, |b| {
        b.iter_custom(|iters| timed(VALUES, iters, || ours(&body, false)))
    });
    group.bench_function(LABELS, |b| {
        b.iter_custom(|iters| timed(LABELS, iters, || ours(&body, true)))
    });
    group.finish();

    criterion.final_summary();
    summary(body.len());
}

const REFERENCE: &str = "prometheus_parse";
const VALUES: &str = "ours_values";
const LABELS: &str = "ours_with_labels";

/// Per-iteration times of every measured batch, by benchmark: criterion
/// keeps its estimates to itself, and the ratio needs them side by side.
static TIMES: Mutex<BTreeMap<&str, Vec<f64>>> = Mutex::new(BTreeMap::new());

fn timed(name: &'static str, iters: u64, mut work: impl FnMut() -> usize) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        black_box(work());
    }
    let elapsed = start.elapsed();
    let per_iter = elapsed.as_secs_f64() / iters as f64;
    if let Ok(mut times) = TIMES.lock() {
        times.entry(name).or_default().push(per_iter);
    }
    elapsed
}

fn prometheus_parse(body: &str) -> usize {
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("reference parses");
    scrape.samples.len()
}

fn ours(body: &str, with_labels: bool) -> usize {
    let mut parser = ExpositionParser::new();
    let mut count = 0usize;
    let mut sum = 0.0;
    let mut on_sample = |s: &driftwatch::parse::Sample<'_>| {
        count += 1;
        sum += s.value;
        if with_labels {
            for label in labels(s.labels) {
                let (name, value) = label.expect("labels parse");
                black_box((name, &value));
            }
        }
    };
    for chunk in body.as_bytes().chunks(CHUNK) {
        parser.feed(chunk, &mut on_sample).expect("body parses");
    }
    parser.finish(&mut on_sample).expect("body parses");
    black_box(sum);
    count
}

fn summary(bytes: usize) {
    let Ok(times) = TIMES.lock() else { return };
    let median = |name: &str| {
        let mut v = times.get(name)?.clone();
        v.sort_by(f64::total_cmp);
        Some(v[v.len() / 2])
    };
    let Some(reference) = median(REFERENCE) else {
        return;
    };
    println!(
        "\nexposition: {SERIES} series, {:.1} MB (median of measured batches)",
        bytes as f64 / 1e6
    );
    println!(
        "{:<18} {:>10} {:>12} {:>8}",
        "", "MB/s", "µs/series", "ratio"
    );
    for name in [REFERENCE, VALUES, LABELS] {
        let Some(t) = median(name) else { continue };
        println!(
            "{name:<18} {:>10.1} {:>12.3} {:>7.1}x",
            bytes as f64 / t / 1e6,
            t * 1e6 / SERIES as f64,
            reference / t
        );
    }
}

/// A deterministic exposition like a fleet of model servers exposes: a
/// HELP and TYPE per family, 3 to 5 labels per series, a few histograms
/// and summaries, and some label values that need escapes.
fn exposition(series: usize) -> String {
    let mut rng = fastrand::Rng::with_seed(42);
    let mut out = String::with_capacity(series * 160);
    let mut written = 0;
    let mut family = 0;
    while written < series {
        let kind = FAMILIES[family % FAMILIES.len()];
        let count = (series - written).min(rng.usize(300..3000));
        written += kind.write(&mut out, family, count, &mut rng);
        family += 1;
    }
    out
}

#[derive(Clone, Copy)]
enum Family {
    Requests,
    Errors,
    Latency,
    Accuracy,
    Drift,
    BatchSize,
}

const FAMILIES: [Family; 6] = [
    Family::Requests,
    Family::Latency,
    Family::Accuracy,
    Family::Errors,
    Family::Drift,
    Family::BatchSize,
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
const REASONS: [&str; 5] = [
    "timeout",
    r#"upstream said \"busy\""#,
    "feature store: missing key, retry=3",
    r"path C:\\models\\v2 not found",
    "line one\\nline two",
];
const LE: [&str; 12] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
];

impl Family {
    /// Writes the family with about `count` series; returns how many.
    fn write(self, out: &mut String, id: usize, count: usize, rng: &mut fastrand::Rng) -> usize {
        let (name, kind, help) = match self {
            Family::Requests => (
                "model_inference_requests_total",
                "counter",
                "Inference requests served.",
            ),
            Family::Errors => (
                "model_inference_errors_total",
                "counter",
                "Failed inferences by reason.",
            ),
            Family::Latency => (
                "model_inference_latency_seconds",
                "histogram",
                "Inference latency in seconds.",
            ),
            Family::Accuracy => (
                "model_online_accuracy_ratio",
                "gauge",
                "Accuracy on labelled feedback,\\nlast hour.",
            ),
            Family::Drift => (
                "model_feature_drift_psi",
                "gauge",
                "Population stability index per feature.",
            ),
            Family::BatchSize => ("model_batch_size", "summary", "Dynamic batch sizes."),
        };
        let name = format!("{name}_{}", id / FAMILIES.len());
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        let mut written = 0;
        while written < count {
            let model = MODELS[rng.usize(..MODELS.len())];
            let instance = format!("10.{}.{}.{}:8080", rng.u8(..), rng.u8(..), rng.u8(..));
            let version = format!("v{}.{}", rng.u8(1..4), rng.u8(0..20));
            written += match self {
                Family::Requests => {
                    let code = ["200", "400", "429", "500"][rng.usize(..4)];
                    let _ = writeln!(
                        out,
                        "{name}{{model=\"{model}\",version=\"{version}\",endpoint=\"/v1/models/{model}:predict\",code=\"{code}\",instance=\"{instance}\"}} {}",
                        rng.u64(..10_000_000)
                    );
                    1
                }
                Family::Errors => {
                    let reason = REASONS[rng.usize(..REASONS.len())];
                    let _ = writeln!(
                        out,
                        "{name}{{model=\"{model}\",reason=\"{reason}\",instance=\"{instance}\"}} {}",
                        rng.u32(..5000)
                    );
                    1
                }
                Family::Latency => histogram(out, &name, model, &version, &instance, rng),
                Family::Accuracy => {
                    let _ = writeln!(
                        out,
                        "{name}{{model=\"{model}\",version=\"{version}\",dataset=\"feedback-{}\",instance=\"{instance}\"}} {} {}",
                        rng.u8(..50),
                        rng.f64(),
                        1_765_000_000_000u64 + rng.u64(..1_000_000)
                    );
                    1
                }
                Family::Drift => {
                    let _ = writeln!(
                        out,
                        "{name}{{model=\"{model}\",feature=\"f_{}\",window=\"1h\"}} {:e}",
                        rng.u16(..2000),
                        rng.f64() / 1000.0
                    );
                    1
                }
                Family::BatchSize => summary_family(out, &name, model, &instance, rng),
            };
        }
        written
    }
}

fn histogram(
    out: &mut String,
    name: &str,
    model: &str,
    version: &str,
    instance: &str,
    rng: &mut fastrand::Rng,
) -> usize {
    let labels = format!("model=\"{model}\",version=\"{version}\",instance=\"{instance}\"");
    let mut cumulative = 0;
    for le in LE {
        cumulative += rng.u64(..1000);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", rng.f64() * 1e4);
    let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    LE.len() + 2
}

fn summary_family(
    out: &mut String,
    name: &str,
    model: &str,
    instance: &str,
    rng: &mut fastrand::Rng,
) -> usize {
    let labels = format!("model=\"{model}\",instance=\"{instance}\",pool=\"gpu\"");
    for q in ["0.5", "0.9", "0.99"] {
        let _ = writeln!(out, "{name}{{{labels},quantile=\"{q}\"}} {}", rng.u8(1..65));
    }
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", rng.u32(..1_000_000));
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", rng.u32(..100_000));
    5
}
