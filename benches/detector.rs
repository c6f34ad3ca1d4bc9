//! One window update: `Window::push` (the ring and its running sums) and
//! `Detector::observe` (that, plus the z-score, the accumulated evidence and
//! the state machine) against a bare ring buffer (write the value, advance
//! the index) and a naive window (drop the oldest, recompute mean and
//! standard deviation).
//!
//! Measured on one series, where everything sits in L1 and only the
//! arithmetic counts, and round-robin over 100,000 and 1,000,000 series of
//! window 100 (80 and 800 MB of rings), the access pattern of a scrape,
//! where each update finds its series' ring outside the cache. Window sizes
//! 10 to 10,000 on one series show that the cost does not grow with the
//! window. A debug build (`cargo test` runs benchmarks once as tests) goes
//! round-robin over 10,000 series only.

mod common;

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, Instant};

use common::{params, print_ratios, record, value};
use criterion::{BenchmarkGroup, Criterion, measurement::WallTime};
use driftwatch::detector::{Detector, DetectorParams};
use driftwatch::engine::{LOOKAHEAD, prefetch};
use driftwatch::window::Window;

/// Updates per batch on one series: enough to amortise the timer.
const UPDATES: usize = 10_000;
/// Series counts for the round-robin runs, by label.
const SPREAD: &[(&str, usize)] = if cfg!(debug_assertions) {
    &[("10k", 10_000)]
} else {
    &[("100k", 100_000), ("1m", 1_000_000)]
};
/// The naive window is O(window) per update: the smallest count shows that.
const NAIVE_SPREAD_MAX: usize = 100_000;

fn main() {
    let values: Vec<f64> = (0..UPDATES).map(|i| value(i, 1)).collect();
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();

    let mut group = criterion.benchmark_group("window_one_series");
    for window in [10, 100, 1_000, 10_000] {
        one_series(&mut group, &values, window);
    }
    group.finish();

    for &(label, series) in SPREAD {
        let mut group = criterion.benchmark_group(format!("window_{label}_series"));
        spread(&mut group, &values, label, series);
        group.finish();
    }

    criterion.final_summary();
    for window in [10, 100, 1_000, 10_000] {
        let ring = format!("bare_ring/{window}");
        let title = format!("one series, window {window}");
        print_ratios(&title, "update", &ring, &names_of(&window.to_string()));
    }
    for &(label, series) in SPREAD {
        let names = names_of(label);
        let title = format!("round-robin over {series} series, window 100");
        print_ratios(&title, "update", &names[0], &names);
    }
}

/// The benchmarks of one size, the bare ring (the reference) first.
fn names_of(size: &str) -> Vec<String> {
    ["bare_ring", "window", "observe", "naive"]
        .iter()
        .map(|what| format!("{what}/{size}"))
        .collect()
}

fn one_series(group: &mut BenchmarkGroup<'_, WallTime>, values: &[f64], window: usize) {
    let p = DetectorParams {
        window,
        min_samples: window.min(20),
        ..params()
    };
    let names = names_of(&window.to_string());

    let mut ring = Ring::new(window);
    bench(group, &names[0], UPDATES, || {
        for &x in values {
            ring.push(black_box(x));
        }
    });

    let mut rolling = Window::new();
    for &x in values.iter().cycle().take(window) {
        rolling.push(x, window);
    }
    bench(group, &names[1], UPDATES, || {
        for &x in values {
            rolling.push(black_box(x), window);
        }
        black_box(&rolling);
    });

    let mut detector = Detector::new(&p, 0);
    let mut at_ms = 0;
    // Start from a full window, the steady state.
    for &x in values.iter().cycle().take(window + 1) {
        at_ms += common::INTERVAL_MS;
        let _ = detector.observe(&p, x, at_ms);
    }
    bench(group, &names[2], UPDATES, || {
        for &x in values {
            at_ms += common::INTERVAL_MS;
            let _ = black_box(detector.observe(&p, black_box(x), at_ms));
        }
    });

    let mut naive = Naive::new(window);
    for &x in values.iter().cycle().take(window) {
        naive.observe(x);
    }
    // The naive window is O(window): fewer updates keep its batch short.
    let naive_updates = (UPDATES * 100 / window).clamp(100, UPDATES);
    bench(group, &names[3], naive_updates, || {
        for &x in &values[..naive_updates] {
            black_box(naive.observe(black_box(x)));
        }
    });
}

/// One pass over `series` series per batch, each updated once, as a scrape
/// does, and asking for the memory of the one [`LOOKAHEAD`] places on as
/// the engine's commit does.
fn spread(group: &mut BenchmarkGroup<'_, WallTime>, values: &[f64], label: &str, series: usize) {
    let p = params();
    let names = names_of(label);
    let value_of = |i: usize| values[i % values.len()];

    // Filled side by side like the windows below: at a million series the
    // time goes to cache misses, and rings allocated in one sweep would sit
    // in memory far more orderly than windows that grew while they filled.
    let mut pass = 0;
    let mut rings: Vec<Ring> = (0..series).map(|_| Ring::new(0)).collect();
    for _ in 0..p.window {
        for (i, ring) in rings.iter_mut().enumerate() {
            ring.fill(value_of(i + pass), p.window);
        }
        pass += 1;
    }
    bench(group, &names[0], series, || {
        pass += 1;
        for i in 0..rings.len() {
            if let Some(ahead) = rings.get(i + LOOKAHEAD) {
                prefetch(ahead.next_slot_address());
            }
            rings[i].push(black_box(value_of(i + pass)));
        }
    });
    drop(rings);

    let mut windows: Vec<Window> = (0..series).map(|_| Window::new()).collect();
    for _ in 0..p.window {
        for (i, w) in windows.iter_mut().enumerate() {
            w.push(value_of(i + pass), p.window);
        }
        pass += 1;
    }
    bench(group, &names[1], series, || {
        pass += 1;
        for i in 0..windows.len() {
            if let Some(ahead) = windows.get(i + LOOKAHEAD) {
                prefetch(ahead.next_slot_address());
            }
            windows[i].push(black_box(value_of(i + pass)), p.window);
        }
    });
    drop(windows);

    let mut detectors: Vec<Detector> = (0..series).map(|_| Detector::new(&p, 0)).collect();
    let mut at_ms = 0;
    for _ in 0..=p.window {
        at_ms += common::INTERVAL_MS;
        for (i, d) in detectors.iter_mut().enumerate() {
            let _ = d.observe(&p, value_of(i + pass), at_ms);
        }
        pass += 1;
    }
    bench(group, &names[2], series, || {
        pass += 1;
        at_ms += common::INTERVAL_MS;
        for i in 0..detectors.len() {
            if let Some(ahead) = detectors.get(i + LOOKAHEAD) {
                prefetch(ahead.window_write_address());
            }
            let _ = black_box(detectors[i].observe(&p, black_box(value_of(i + pass)), at_ms));
        }
    });
    drop(detectors);

    if series > NAIVE_SPREAD_MAX {
        return;
    }
    let mut naives: Vec<Naive> = (0..series).map(|_| Naive::new(p.window)).collect();
    for _ in 0..p.window {
        for (i, n) in naives.iter_mut().enumerate() {
            n.observe(value_of(i + pass));
        }
        pass += 1;
    }
    bench(group, &names[3], series, || {
        pass += 1;
        for (i, n) in naives.iter_mut().enumerate() {
            black_box(n.observe(black_box(value_of(i + pass))));
        }
    });
}

/// Runs `batch` (which does `units` updates) under criterion and records
/// its time per update.
fn bench(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    units: usize,
    mut batch: impl FnMut(),
) {
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                batch();
            }
            let elapsed = start.elapsed();
            record(name, elapsed, iters, units);
            elapsed
        })
    });
}

/// The least a window can do: store the value, advance the index.
struct Ring {
    values: Box<[f64]>,
    next: usize,
}

impl Ring {
    fn new(window: usize) -> Ring {
        Ring {
            values: vec![0.0; window].into_boxed_slice(),
            next: 0,
        }
    }

    fn push(&mut self, x: f64) {
        self.values[self.next] = x;
        self.next += 1;
        if self.next == self.values.len() {
            self.next = 0;
        }
    }

    fn next_slot_address(&self) -> *const f64 {
        self.values.as_ptr().wrapping_add(self.next)
    }

    /// Adds `x` to a ring still filling, allocating it whole at the first
    /// sample as a [`Window`] does, so that rings filled side by side land
    /// in memory where windows filled side by side land.
    fn fill(&mut self, x: f64, window: usize) {
        if self.values.len() != window {
            self.values = vec![0.0; window].into_boxed_slice();
        }
        self.values[self.next] = x;
        self.next = (self.next + 1) % window;
    }
}

/// The textbook window: drop the oldest, then mean and standard deviation
/// in two passes over what is left, and the z-score against them.
struct Naive {
    values: VecDeque<f64>,
    window: usize,
}

impl Naive {
    fn new(window: usize) -> Naive {
        Naive {
            values: VecDeque::with_capacity(window),
            window,
        }
    }

    fn observe(&mut self, x: f64) -> f64 {
        let n = self.values.len() as f64;
        let mean = self.values.iter().sum::<f64>() / n;
        let var = self
            .values
            .iter()
            .map(|v| (v - mean) * (v - mean))
            .sum::<f64>()
            / n;
        let z = (x - mean) / var.sqrt();
        if self.values.len() == self.window {
            self.values.pop_front();
        }
        self.values.push_back(x);
        z
    }
}
