//! Rendering /metrics at 100,000 series: `exporter::render` against
//! prometheus-client holding the same six gauges per series with the same
//! six labels, in both the Prometheus text format and OpenMetrics.

mod common;

use std::hint::black_box;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use common::{Fleet, exposition, params, parsed, print_ratios, record};
use criterion::{Criterion, SamplingMode};
use driftwatch::detector::State;
use driftwatch::engine::{lock, own_labels};
use driftwatch::exporter::{self, Format, names};
use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

const SERIES: usize = 100_000;

const REF_TEXT: &str = "prometheus_client_text";
const OURS_TEXT: &str = "ours_text";
const REF_OPENMETRICS: &str = "prometheus_client_openmetrics";
const OURS_OPENMETRICS: &str = "ours_openmetrics";

type Labels = Vec<(String, String)>;
type Gauges = Family<Labels, Gauge<f64, AtomicU64>>;

fn main() {
    let body = exposition(SERIES);
    let mut samples = parsed(&body);
    let mut fleet = Fleet::new();
    // Past min_samples, so that every series has its six gauges.
    fleet.run(&mut samples, params().min_samples as u64 + 2);
    let registry = reference(&fleet);
    let size = exporter::render(&fleet.shared, Format::Text).len();
    println!("exposition of {SERIES} series: {:.1} MB", size as f64 / 1e6);

    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut group = criterion.benchmark_group("render_100k_series");
    // A render of 100,000 series takes a good fraction of a second; flat
    // sampling keeps the run to seconds instead of a minute.
    group.sampling_mode(SamplingMode::Flat);
    bench(&mut group, REF_TEXT, || {
        let mut out = String::with_capacity(size);
        prometheus_text::encode(&mut out, &registry).expect("encodes");
        out.len()
    });
    bench(&mut group, OURS_TEXT, || {
        exporter::render(&fleet.shared, Format::Text).len()
    });
    bench(&mut group, REF_OPENMETRICS, || {
        let mut out = String::with_capacity(size);
        text::encode(&mut out, &registry).expect("encodes");
        out.len()
    });
    bench(&mut group, OURS_OPENMETRICS, || {
        exporter::render(&fleet.shared, Format::OpenMetrics).len()
    });
    group.finish();

    criterion.final_summary();
    let title = format!("/metrics, {SERIES} series, 6 gauges each");
    print_ratios(&title, "series", REF_TEXT, &[REF_TEXT, OURS_TEXT]);
    print_ratios(
        &title,
        "series",
        REF_OPENMETRICS,
        &[REF_OPENMETRICS, OURS_OPENMETRICS],
    );
}

fn bench(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &'static str,
    mut render: impl FnMut() -> usize,
) {
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(render());
            }
            let elapsed = start.elapsed();
            record(name, elapsed, iters, SERIES);
            elapsed
        })
    });
}

/// A prometheus-client registry with the gauges driftwatch exports, set to
/// the values the fleet's detectors hold.
fn reference(fleet: &Fleet) -> Registry {
    let families: [(&str, Gauges); 6] = [
        names::SERIES_ZSCORE,
        names::SERIES_BASELINE_MEAN,
        names::SERIES_BASELINE_STDDEV,
        names::SERIES_LAST_VALUE,
        names::SERIES_WINDOW_SAMPLES,
        names::SERIES_DEGRADED,
    ]
    .map(|name| (name, Gauges::default()));
    let table = lock(&fleet.runtime.table);
    for entry in table.iter() {
        let metric = &fleet.runtime.watch_metrics[entry.watch as usize];
        let mut labels = vec![
            ("source".to_owned(), fleet.runtime.name.to_string()),
            ("metric".to_owned(), metric.to_string()),
        ];
        labels.extend(own_labels(&entry.labels));
        let last = entry.detector.last().expect("every series has a sample");
        let degraded = entry.detector.state() == State::Degraded;
        let values = [
            last.zscore.expect("past min_samples"),
            last.mean.unwrap_or(f64::NAN),
            last.stddev.unwrap_or(f64::NAN),
            last.value,
            last.window_samples as f64,
            if degraded { 1.0 } else { 0.0 },
        ];
        for ((_, family), value) in families.iter().zip(values) {
            family.get_or_create(&labels).set(value);
        }
    }
    let mut registry = Registry::default();
    for (name, family) in families {
        registry.register(name, "A per-series gauge of driftwatch.", family);
    }
    registry
}
