//! The per-sample path at a million known series, from a parsed sample to
//! its updated window: `Ingest::route` then `Ingest::commit`, against a std
//! `HashMap<String, Detector>` with SipHash looked up by the series text,
//! and against the lookup alone, the reference the 360 ns figure
//! was taken with: its ratio carries the 100 ns target over to whatever
//! speed the shared machine runs at during the run.
//!
//! Every series has a full window of 100 before measuring, so the figures
//! are the steady state of a source scraped for a while. The values of each
//! round are set outside the timed part.

mod common;

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use common::{Fleet, exposition, median_ns, params, parsed, print_ratios, record, set_values};
use criterion::{Criterion, SamplingMode};
use driftwatch::detector::Detector;
use driftwatch::parse::Sample;

const SERIES: usize = 1_000_000;

const REFERENCE: &str = "std_hashmap_siphash_observe";
const LOOKUP: &str = "std_hashmap_siphash_lookup_only";
const OURS: &str = "ingest_route_commit";
/// The figure for a SipHash lookup by series text at a million
/// series on this kind of machine.
const REFERENCE_LOOKUP_NS: f64 = 360.0;

fn main() {
    let body = exposition(SERIES);
    let mut samples = parsed(&body);
    assert_eq!(samples.len(), SERIES);

    // Fill every window: one round admits the series, then 100 samples each.
    let mut fleet = Fleet::new();
    fleet.run(&mut samples, params().window as u64 + 1);
    assert_eq!(driftwatch::engine::lock(&fleet.runtime.table).len(), SERIES);
    let mut reference = common::detectors_by_text(&fleet.runtime);

    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut group = criterion.benchmark_group("ingest_1m_known_series");
    // A batch is a whole scrape of a million samples, so criterion's linear
    // growth of batches would take minutes; flat sampling keeps it short.
    group.sampling_mode(SamplingMode::Flat);
    let mut round = fleet.round;
    group.bench_function(REFERENCE, |b| {
        b.iter_custom(|iters| {
            let elapsed = rounds(iters, &mut samples, &mut round, |samples, round| {
                observe_by_text(&mut reference, samples, common::at_ms(round))
            });
            record(REFERENCE, elapsed, iters, SERIES);
            elapsed
        })
    });
    group.bench_function(LOOKUP, |b| {
        b.iter_custom(|iters| {
            let elapsed = rounds(iters, &mut samples, &mut round, |samples, _| {
                for s in samples {
                    black_box(reference.get(s.series));
                }
            });
            record(LOOKUP, elapsed, iters, SERIES);
            elapsed
        })
    });
    group.bench_function(OURS, |b| {
        b.iter_custom(|iters| {
            let elapsed = rounds(iters, &mut samples, &mut round, |samples, round| {
                fleet.round = round;
                fleet.scrape(samples);
            });
            record(OURS, elapsed, iters, SERIES);
            elapsed
        })
    });
    group.finish();

    criterion.final_summary();
    let title = format!("per sample, {SERIES} known series, window 100");
    print_ratios(&title, "sample", REFERENCE, &[REFERENCE, LOOKUP, OURS]);
    if let (Some(lookup), Some(ours)) = (median_ns(LOOKUP), median_ns(OURS)) {
        println!(
            "scaled to the reference machine (SipHash lookup = {REFERENCE_LOOKUP_NS} ns): \
             {:.0} ns per sample",
            ours / lookup * REFERENCE_LOOKUP_NS
        );
    }
}

/// Times `iters` rounds of `work`, each with fresh values set untimed;
/// both sides share one round counter, so neither sees a clock step back.
fn rounds(
    iters: u64,
    samples: &mut [Sample<'_>],
    round: &mut u64,
    mut work: impl FnMut(&[Sample<'_>], u64),
) -> Duration {
    let mut elapsed = Duration::ZERO;
    for _ in 0..iters {
        *round += 1;
        set_values(samples, *round);
        let start = Instant::now();
        work(samples, *round);
        elapsed += start.elapsed();
    }
    elapsed
}

/// The obvious registry: look the series text up, observe the sample.
fn observe_by_text(map: &mut HashMap<String, Detector>, samples: &[Sample<'_>], at_ms: i64) {
    let p = params();
    for s in samples {
        if let Some(detector) = map.get_mut(s.series) {
            let _ = black_box(detector.observe(&p, s.value, at_ms));
        }
    }
}
