//! Scores driftwatch's detector on NAB-style labelled data and on synthetic
//! Gaussian series, for every variant of the detector settings tried.
//!
//! ```sh
//! cargo run --release --example nab -- ../shared/data/nab-dev
//! cargo run --release --example nab -- DIR --only=shipped   # just the defaults
//! ```
//!
//! DIR holds `labels/combined_windows_dev.json` (or `combined_windows.json`)
//! and `data/<category>/<file>.csv`. Two scores per variant and profile:
//! the alerts the settings fire (a detection is a move into `degraded`), and
//! badness as a continuous score with the best single threshold over the
//! corpus. The scoring itself is `driftwatch::evaluate`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use driftwatch::detector::{Accumulate, Detector, DetectorParams, State};
use driftwatch::evaluate::{self, Labelled, PROFILES};
use driftwatch::replay::{self, input::CsvSamples};

struct Series {
    key: String,
    /// (Unix ms, value).
    rows: Vec<(i64, f64)>,
    labelled: Labelled,
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().context("usage: nab DIR [--only=NAME]")?);
    let only = args
        .next()
        .and_then(|a| a.strip_prefix("--only=").map(str::to_owned));
    let corpus = load(&dir)?;
    let rows: usize = corpus.iter().map(|s| s.rows.len()).sum();
    let windows: usize = corpus.iter().map(|s| s.labelled.windows.len()).sum();
    println!(
        "corpus: {} files, {rows} rows, {windows} scored windows\n",
        corpus.len()
    );
    println!(
        "| variant | alerts: standard | low FP | low FN | TP/FP/FN (std) | \
         badness, best threshold: standard | low FP | low FN | ARL₀ | delay 1σ (missed) | \
         2σ | 3σ |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    if only.is_none() || only.as_deref() == Some("reference") {
        println!("| {} | — | — | — | — |", windowed_gaussian_row(&corpus));
    }
    for (name, params) in variants() {
        let in_grid = only.as_deref() == Some("grid") && name.starts_with(' ');
        if only.as_deref().is_some_and(|o| o != name) && !in_grid {
            continue;
        }
        let started = Instant::now();
        let row = evaluate_variant(&corpus, &params);
        let synthetic = synthetic(&params);
        println!("| {name} | {row} | {synthetic} |");
        eprintln!("{name}: {:.1}s", started.elapsed().as_secs_f64());
    }
    Ok(())
}

/// The settings tried, the shipped defaults first.
fn variants() -> Vec<(&'static str, DetectorParams)> {
    let base = replay::default_params();
    let hours = |h: u64| Some(Duration::from_secs(h * 3600));
    let with = |f: &dyn Fn(&mut DetectorParams)| {
        let mut p = base.clone();
        f(&mut p);
        p
    };
    let ewma = |lambda, limit| Accumulate::Ewma { lambda, limit };
    let cusum = |k, h| Accumulate::Cusum { k, h };
    // The defaults before this evaluation: a plain z-score at 3 that
    // recovered at the first calm sample and relearned after 6 hours.
    let before = with(&|p| {
        p.threshold = 3.0;
        p.recover_consecutive = 1;
        p.relearn_after = hours(6);
        p.accumulate = Accumulate::Off;
    });
    let mut v = vec![
        ("shipped", base.clone()),
        ("previous defaults", before.clone()),
        (
            "previous, threshold 5",
            DetectorParams {
                threshold: 5.0,
                ..before.clone()
            },
        ),
        (
            "previous, recover_consecutive 144",
            DetectorParams {
                recover_consecutive: 144,
                ..before
            },
        ),
        ("window 50", with(&|p| p.window = 50)),
        ("window 200", with(&|p| p.window = 200)),
        ("window 400", with(&|p| p.window = 400)),
        ("min_samples 50", with(&|p| p.min_samples = 50)),
        ("threshold 4", with(&|p| p.threshold = 4.0)),
        ("threshold 6", with(&|p| p.threshold = 6.0)),
        (
            "for 2 samples (consecutive 2)",
            with(&|p| p.consecutive = Some(2)),
        ),
        ("consecutive 3", with(&|p| p.consecutive = Some(3))),
        // NAB's series are mostly 5 minutes apart, so `for` here is in
        // their time, not the daemon's 15 s.
        (
            "for 5m",
            with(&|p| p.for_duration = Duration::from_secs(300)),
        ),
        (
            "for 15m",
            with(&|p| p.for_duration = Duration::from_secs(900)),
        ),
        (
            "recover_threshold 0.5",
            with(&|p| p.recover_threshold = 0.5),
        ),
        (
            "recover_threshold 2.5",
            with(&|p| p.recover_threshold = 2.5),
        ),
        (
            "recover_consecutive 1",
            with(&|p| p.recover_consecutive = 1),
        ),
        (
            "recover_consecutive 12",
            with(&|p| p.recover_consecutive = 12),
        ),
        (
            "recover_consecutive 48",
            with(&|p| p.recover_consecutive = 48),
        ),
        (
            "recover_consecutive 288",
            with(&|p| p.recover_consecutive = 288),
        ),
        ("relearn never", with(&|p| p.relearn_after = None)),
        ("relearn 1h", with(&|p| p.relearn_after = hours(1))),
        ("relearn 6h", with(&|p| p.relearn_after = hours(6))),
        ("relearn 12h", with(&|p| p.relearn_after = hours(12))),
        ("relearn 18h", with(&|p| p.relearn_after = hours(18))),
        ("relearn 36h", with(&|p| p.relearn_after = hours(36))),
        ("relearn 48h", with(&|p| p.relearn_after = hours(48))),
        ("relearn 7d", with(&|p| p.relearn_after = hours(7 * 24))),
        ("rel. floor 0", with(&|p| p.min_relative_stddev = 0.0)),
        ("rel. floor 1e-2", with(&|p| p.min_relative_stddev = 1e-2)),
        ("rel. floor 5e-2", with(&|p| p.min_relative_stddev = 5e-2)),
        ("abs. floor 1e-3", with(&|p| p.min_stddev = 1e-3)),
        ("accumulate none", with(&|p| p.accumulate = Accumulate::Off)),
        (
            "ewma λ 0.05, limit 4.5",
            with(&|p| p.accumulate = ewma(0.05, 4.5)),
        ),
        (
            "ewma λ 0.1, limit 4.5",
            with(&|p| p.accumulate = ewma(0.1, 4.5)),
        ),
        (
            "ewma λ 0.2, limit 4.5",
            with(&|p| p.accumulate = ewma(0.2, 4.5)),
        ),
        (
            "ewma λ 0.3, limit 4.5",
            with(&|p| p.accumulate = ewma(0.3, 4.5)),
        ),
        (
            "ewma λ 0.15, limit 4",
            with(&|p| p.accumulate = ewma(0.15, 4.0)),
        ),
        (
            "ewma λ 0.15, limit 5",
            with(&|p| p.accumulate = ewma(0.15, 5.0)),
        ),
        (
            "cusum k 0.5, h 5",
            with(&|p| p.accumulate = cusum(0.5, 5.0)),
        ),
        (
            "cusum k 0.5, h 8",
            with(&|p| p.accumulate = cusum(0.5, 8.0)),
        ),
        ("cusum k 1, h 4", with(&|p| p.accumulate = cusum(1.0, 4.0))),
        ("cusum k 1, h 6", with(&|p| p.accumulate = cusum(1.0, 6.0))),
        ("cusum k 1, h 7", with(&|p| p.accumulate = cusum(1.0, 7.0))),
        ("cusum k 1, h 8", with(&|p| p.accumulate = cusum(1.0, 8.0))),
        (
            "cusum k 1.5, h 4",
            with(&|p| p.accumulate = cusum(1.5, 4.0)),
        ),
        (
            "cusum k 1, h 7, relearn 12h",
            with(&|p| {
                p.accumulate = cusum(1.0, 7.0);
                p.relearn_after = hours(12);
            }),
        ),
        (
            "accumulate none, threshold 3.5",
            with(&|p| {
                p.accumulate = Accumulate::Off;
                p.threshold = 3.5;
            }),
        ),
    ];
    v.extend(grid(&base));
    v
}

/// Combinations, named by their settings, from `NAB_GRID`: a `;`-separated
/// list of `key=v1|v2` axes (exploration only; the table keeps the rest).
fn grid(base: &DetectorParams) -> Vec<(&'static str, DetectorParams)> {
    let Ok(spec) = std::env::var("NAB_GRID") else {
        return Vec::new();
    };
    let mut out = vec![(String::new(), base.clone())];
    for axis in spec.split(';').filter(|a| !a.is_empty()) {
        let (key, values) = axis.split_once('=').expect("key=v1|v2");
        let mut next = Vec::new();
        for (name, p) in &out {
            for v in values.split('|') {
                let mut p = p.clone();
                set(&mut p, key, v);
                next.push((format!("{name} {key}={v}"), p));
            }
        }
        out = next;
    }
    out.into_iter()
        .map(|(n, p)| (&*Box::leak(n.into_boxed_str()), p))
        .collect()
}

fn set(p: &mut DetectorParams, key: &str, v: &str) {
    let f = |v: &str| v.parse::<f64>().expect("a number");
    match key {
        "window" => p.window = v.parse().unwrap(),
        "min_samples" => p.min_samples = v.parse().unwrap(),
        "threshold" => p.threshold = f(v),
        "recover" => p.recover_threshold = f(v),
        "recover_n" => p.recover_consecutive = v.parse().unwrap(),
        "consecutive" => p.consecutive = (v != "0").then(|| v.parse().unwrap()),
        "relearn_h" => p.relearn_after = (v != "0").then(|| Duration::from_secs_f64(f(v) * 3600.0)),
        "min_stddev" => p.min_stddev = f(v),
        "rel_floor" => p.min_relative_stddev = f(v),
        "ewma" => {
            let (lambda, limit) = v.split_once('/').expect("lambda/limit");
            p.accumulate = Accumulate::Ewma {
                lambda: f(lambda),
                limit: f(limit),
            };
        }
        "cusum" => {
            let (k, h) = v.split_once('/').expect("k/h");
            p.accumulate = Accumulate::Cusum { k: f(k), h: f(h) };
        }
        "acc" if v == "off" => p.accumulate = Accumulate::Off,
        _ => panic!("unknown grid key {key}"),
    }
}

/// The corpus named by the windows file, each series with its windows
/// turned into row indexes.
fn load(dir: &Path) -> anyhow::Result<Vec<Series>> {
    let labels = ["combined_windows_dev.json", "combined_windows.json"]
        .iter()
        .map(|name| dir.join("labels").join(name))
        .find(|p| p.exists())
        .context("no labels/combined_windows*.json")?;
    let text = std::fs::read_to_string(&labels)?;
    let windows: BTreeMap<String, Vec<[String; 2]>> = serde_json::from_str(&text)?;
    let mut corpus = Vec::new();
    for (key, bounds) in windows {
        let path = dir.join("data").join(&key);
        let rows = read_rows(&path).with_context(|| format!("reading {}", path.display()))?;
        let index = |text: &str| -> anyhow::Result<usize> {
            let at = replay::parse_timestamp(text).context("a window bound is not a time")?;
            rows.binary_search_by_key(&at, |r| r.0)
                .map_err(|_| anyhow::anyhow!("{key}: no row at window bound {text}"))
        };
        let mut spans = Vec::new();
        for [start, end] in &bounds {
            spans.push((index(start)?, index(end)?));
        }
        let labelled = Labelled::new(rows.len(), spans);
        corpus.push(Series {
            key,
            rows,
            labelled,
        });
    }
    Ok(corpus)
}

fn read_rows(path: &Path) -> anyhow::Result<Vec<(i64, f64)>> {
    let mut csv = CsvSamples::new(BufReader::new(File::open(path)?))?;
    let mut rows = Vec::new();
    while let Some(row) = csv.next_row() {
        let row = row?;
        rows.push((row.at_ms, row.value));
    }
    Ok(rows)
}

/// The per-row detections and badness of one series.
fn detect(series: &Series, params: &DetectorParams) -> (Vec<usize>, Vec<Option<f64>>) {
    let mut d = Detector::new(params, series.rows.first().map_or(0, |r| r.0));
    let mut detections = Vec::new();
    let mut scores = Vec::with_capacity(series.rows.len());
    for (i, &(at, x)) in series.rows.iter().enumerate() {
        let before = d.state();
        let verdict = d.observe(params, x, at).ok();
        if d.state() == State::Degraded && before != State::Degraded {
            detections.push(i);
        }
        scores.push(verdict.and_then(|v| v.badness));
    }
    (detections, scores)
}

fn evaluate_variant(corpus: &[Series], params: &DetectorParams) -> String {
    let mut alerts = Vec::new();
    let mut continuous = Vec::new();
    for series in corpus {
        let (detections, scores) = detect(series, params);
        alerts.push((series.labelled.clone(), detections));
        continuous.push((series.labelled.clone(), scores));
    }
    let mut cells = Vec::new();
    let mut counts = String::new();
    for (n, profile) in PROFILES.iter().enumerate() {
        let s = evaluate::score_corpus(&alerts, profile);
        cells.push(format!("{:.1}", s.score));
        if n == 0 {
            counts = format!("{}/{}/{}", s.true_positives, s.false_positives, s.misses);
        }
    }
    cells.push(counts);
    for profile in &PROFILES {
        let s = evaluate::best_threshold(&continuous, profile);
        cells.push(format!("{:.1} (≥{:.2})", s.score, s.threshold));
    }
    if std::env::var_os("NAB_PER_FILE").is_some() {
        for ((labelled, detections), series) in alerts.iter().zip(corpus) {
            let s = evaluate::score_file(labelled, detections, &PROFILES[0]);
            eprintln!(
                "  {:<60} windows {} TP {} FP {} FN {} raw {:+.2}",
                series.key,
                labelled.windows.len(),
                s.true_positives,
                s.false_positives,
                s.misses,
                s.raw
            );
            if std::env::var("NAB_ROWS").is_ok_and(|k| series.key.contains(&k)) {
                eprintln!("    windows {:?} rows {}", labelled.windows, labelled.rows);
                eprintln!("    detections {detections:?}");
            }
        }
    }
    cells.join(" | ")
}

/// NAB's `windowedGaussian` reference detector, re-implemented from its
/// source: a window of up to 6400 values, moved on in steps of 100, scores
/// each value by the normal tail beyond its z-score, `1 − Q(|z|)`.
/// The score saturates at 1.0 in f64 as NAB's does, which matters for
/// where the threshold sweep can cut.
fn windowed_gaussian(rows: &[(i64, f64)]) -> Vec<Option<f64>> {
    const WINDOW: usize = 6400;
    const STEP: usize = 100;
    let mut window: Vec<f64> = Vec::new();
    let mut step: Vec<f64> = Vec::new();
    let (mut mean, mut std) = (0.0, 1.0);
    let mut scores = Vec::with_capacity(rows.len());
    for &(_, x) in rows {
        let score = if window.is_empty() {
            0.0
        } else {
            let z = (x - mean) / std;
            1.0 - 0.5 * erfc(z.abs() / std::f64::consts::SQRT_2)
        };
        scores.push(Some(score));
        let refresh = if window.len() < WINDOW {
            window.push(x);
            true
        } else {
            step.push(x);
            if step.len() == STEP {
                window.drain(..STEP);
                window.append(&mut step);
                true
            } else {
                false
            }
        };
        if refresh {
            let n = window.len() as f64;
            mean = window.iter().sum::<f64>() / n;
            std = (window.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
            if std == 0.0 {
                std = 1e-6;
            }
        }
    }
    scores
}

/// The complementary error function (Numerical Recipes' `erfcc`,
/// fractional error below 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

fn windowed_gaussian_row(corpus: &[Series]) -> String {
    let scored: Vec<(Labelled, Vec<Option<f64>>)> = corpus
        .iter()
        .map(|s| (s.labelled.clone(), windowed_gaussian(&s.rows)))
        .collect();
    let cells: Vec<String> = PROFILES
        .iter()
        .map(|profile| {
            let s = evaluate::best_threshold(&scored, profile);
            format!("{:.1} (≥{:.6})", s.score, s.threshold)
        })
        .collect();
    format!(
        "NAB windowedGaussian (reference, scores only) | — | — | — | — | {}",
        cells.join(" | ")
    )
}

/// Standard normal samples (Box–Muller).
struct Gauss(fastrand::Rng);

impl Gauss {
    fn next(&mut self) -> f64 {
        let u = 1.0 - self.0.f64();
        let v = self.0.f64();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

const STEP_MS: i64 = 15_000;

/// In-control average run length, and the mean delay and share missed of
/// lasting drops of 1, 2 and 3 σ.
fn synthetic(params: &DetectorParams) -> String {
    let mut cells = vec![format!("{:.0}", arl(params))];
    for shift in [1.0, 2.0, 3.0] {
        let (delay, missed) = delay(params, shift);
        cells.push(format!("{delay:.1} ({:.0}%)", missed * 100.0));
    }
    cells.join(" | ")
}

/// Mean samples between false alarms on pure noise.
fn arl(params: &DetectorParams) -> f64 {
    let mut g = Gauss(fastrand::Rng::with_seed(1));
    let mut d = Detector::new(params, 0);
    let (mut alarms, mut evaluated) = (0u64, 0u64);
    for i in 0..2_000_000i64 {
        let before = d.state();
        if let Ok(v) = d.observe(params, g.next(), i * STEP_MS) {
            evaluated += u64::from(v.zscore.is_some());
        }
        alarms += u64::from(d.state() == State::Degraded && before != State::Degraded);
    }
    evaluated as f64 / alarms.max(1) as f64
}

/// A drop of `shift` σ after 300 samples of noise, followed for a window's
/// length: the mean number of samples until degraded (1 = the first shifted
/// sample) and the share never caught. Trials already in an incident when
/// the drop comes are left out.
fn delay(params: &DetectorParams, shift: f64) -> (f64, f64) {
    let mut g = Gauss(fastrand::Rng::with_seed(2));
    let horizon = params.window;
    let (mut total, mut caught, mut missed) = (0usize, 0usize, 0usize);
    for _ in 0..2000 {
        let mut d = Detector::new(params, 0);
        let mut at = 0;
        for _ in 0..300 {
            let _ = d.observe(params, g.next(), at);
            at += STEP_MS;
        }
        if d.state() != State::Ok {
            continue;
        }
        let found = (1..=horizon).find(|_| {
            let _ = d.observe(params, g.next() - shift, at);
            at += STEP_MS;
            d.state() == State::Degraded
        });
        match found {
            Some(n) => {
                total += n;
                caught += 1;
            }
            None => missed += 1,
        }
    }
    let trials = (caught + missed).max(1);
    (
        total as f64 / caught.max(1) as f64,
        missed as f64 / trials as f64,
    )
}
