//! `driftwatch replay`: the daemon's detectors run offline over recorded
//! samples (a CSV file or a Prometheus range query), writing the verdict of
//! every sample and the alerts that would have fired.
//!
//! Replay calls [`Detector::observe`] exactly as the engine does, one
//! detector per series, so its z-scores and states are the daemon's. Rules
//! for recorded data:
//!
//! - Rows are evaluated in file order; a series' rows need not be evenly
//!   spaced, and a gap is just time passing (it counts towards `for` and
//!   `relearn_after`). Staleness does not apply: the interval of a
//!   configuration says nothing about how a recording was sampled.
//! - Duplicate timestamps: every row is evaluated, in file order, as two
//!   scrapes in the same millisecond would be. A timestamp that goes back
//!   counts as no time passing.
//! - NaN and ±Inf values are counted and skipped, as in the daemon.
//! - An unparsable row is reported with its line number and skipped, or ends
//!   the replay with `--on-error=fail`.

pub mod input;

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::Context;

use crate::cli::{OnError, PrometheusRange, ReplayFlags};
use crate::config;
use crate::detector::{Detector, DetectorParams, Evaluation, State};
use crate::plot::{self, PlotPoint, PlotSeries};
use crate::source::promql::{self, MAX_RANGE_POINTS, QueryRequest};
use input::CsvSamples;

/// Most points kept per series for a plot; longer series are thinned,
/// keeping the most extreme sample of each stretch.
pub const PLOT_POINTS: usize = 2000;

/// At most this many unparsable rows are logged one by one.
const LOGGED_ROW_ERRORS: u64 = 20;

/// An alert that would have fired: a stretch of `degraded`.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub series: String,
    /// The sample that made the series degraded.
    pub start_ms: i64,
    pub start: String,
    /// The sample that ended it; `None` while still firing at the end.
    pub end_ms: Option<i64>,
    pub end: Option<String>,
    /// The z-score of the worst sample (highest badness) of the alert.
    pub peak_z: f64,
    /// Samples evaluated while degraded, the first included.
    pub samples: u64,
}

/// What one sample did, for the per-sample output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// Index of the series in [`Replayer::series`].
    pub series: usize,
    pub evaluation: Evaluation,
    pub state: State,
}

/// The per-series state of a replay.
pub struct SeriesRun {
    pub key: String,
    detector: Detector,
    /// The alert open now, if any.
    open: Option<Alert>,
    /// The badness of the open alert's worst sample.
    peak_badness: f64,
    last_ms: i64,
    plot: Option<plot::Thinned>,
}

/// Runs detectors over samples, one per series, and collects the alerts.
pub struct Replayer {
    params: DetectorParams,
    index: HashMap<String, usize, foldhash::fast::RandomState>,
    series: Vec<SeriesRun>,
    alerts: Vec<Alert>,
    plot_points: Option<usize>,
    /// Samples evaluated.
    pub evaluated: u64,
    /// NaN or infinite samples skipped.
    pub not_finite: u64,
}

impl Replayer {
    /// A replayer whose series keep up to `plot_points` points for a plot.
    pub fn new(params: DetectorParams, plot_points: Option<usize>) -> Replayer {
        Replayer {
            params,
            index: HashMap::default(),
            series: Vec::new(),
            alerts: Vec::new(),
            plot_points,
            evaluated: 0,
            not_finite: 0,
        }
    }

    pub fn params(&self) -> &DetectorParams {
        &self.params
    }

    pub fn series(&self) -> &[SeriesRun] {
        &self.series
    }

    /// Evaluates one sample of `series`; `None` when it was not finite.
    pub fn observe(&mut self, series: &str, at_ms: i64, time: &str, value: f64) -> Option<Step> {
        let i = match self.index.get(series) {
            Some(&i) => i,
            None => self.add_series(series, at_ms),
        };
        let run = &mut self.series[i];
        let Ok(verdict) = run.detector.observe(&self.params, value, at_ms) else {
            self.not_finite += 1;
            return None;
        };
        self.evaluated += 1;
        run.last_ms = at_ms;
        let state = run.detector.state();
        let evaluation = run.detector.last()?;
        if verdict.transition.is_some() && state != State::Degraded {
            if let Some(mut alert) = run.open.take() {
                alert.end_ms = Some(at_ms);
                alert.end = Some(time.to_owned());
                self.alerts.push(alert);
            }
        }
        if state == State::Degraded {
            let open = run.open.get_or_insert_with(|| Alert {
                series: run.key.clone(),
                start_ms: at_ms,
                start: time.to_owned(),
                end_ms: None,
                end: None,
                peak_z: 0.0,
                samples: 0,
            });
            open.samples += 1;
            let badness = evaluation.badness.unwrap_or(f64::NEG_INFINITY);
            if open.samples == 1 || badness > run.peak_badness {
                open.peak_z = evaluation.zscore.unwrap_or(0.0);
                run.peak_badness = badness;
            }
        }
        if let Some(thinned) = &mut run.plot {
            thinned.push(PlotPoint::new(at_ms, &evaluation));
        }
        Some(Step {
            series: i,
            evaluation,
            state,
        })
    }

    fn add_series(&mut self, series: &str, at_ms: i64) -> usize {
        let i = self.series.len();
        self.series.push(SeriesRun {
            key: series.to_owned(),
            detector: Detector::new(&self.params, at_ms),
            open: None,
            peak_badness: 0.0,
            last_ms: at_ms,
            plot: self.plot_points.map(plot::Thinned::new),
        });
        self.index.insert(series.to_owned(), i);
        i
    }

    /// Every alert, the ones still firing last, ordered by series and start.
    pub fn finish(mut self) -> Finished {
        for run in &mut self.series {
            if let Some(alert) = run.open.take() {
                self.alerts.push(alert);
            }
        }
        self.alerts
            .sort_by(|a, b| (&a.series, a.start_ms).cmp(&(&b.series, b.start_ms)));
        Finished {
            params: self.params,
            series: self.series,
            alerts: self.alerts,
            evaluated: self.evaluated,
            not_finite: self.not_finite,
        }
    }
}

/// A replay that has read all its samples.
pub struct Finished {
    pub params: DetectorParams,
    pub series: Vec<SeriesRun>,
    pub alerts: Vec<Alert>,
    pub evaluated: u64,
    pub not_finite: u64,
}

impl Finished {
    /// The plot of every series, with its alerts shaded.
    pub fn plot(&self) -> String {
        let plots: Vec<PlotSeries<'_>> = self
            .series
            .iter()
            .map(|run| PlotSeries {
                title: if run.key.is_empty() {
                    "value"
                } else {
                    &run.key
                },
                points: run.plot.as_ref().map_or(&[], |t| t.points()),
                alerts: self
                    .alerts
                    .iter()
                    .filter(|a| a.series == run.key)
                    .map(|a| (a.start_ms, a.end_ms.unwrap_or(run.last_ms)))
                    .collect(),
                threshold: self.params.threshold,
                direction: self.params.direction,
            })
            .collect();
        plot::render(&plots, &plot::Layout::default())
    }
}

/// The detector settings replay uses: the watch named `watch` (or the first)
/// of the configuration file, or the built-in defaults without one.
pub fn detector_params(
    config_file: Option<&Path>,
    watch: Option<&str>,
) -> anyhow::Result<DetectorParams> {
    let Some(path) = config_file else {
        return Ok(default_params());
    };
    let loaded = config::load_file(path)
        .map_err(|problems| anyhow::anyhow!("invalid configuration:\n{problems}"))?;
    let mut watches = loaded.config.sources.iter().flat_map(|s| &s.watches);
    let found = match watch {
        Some(metric) => watches.find(|w| w.metric == metric),
        None => watches.next(),
    };
    match (found, watch) {
        (Some(w), _) => Ok(w.detector.clone()),
        (None, Some(metric)) => anyhow::bail!("{} has no watch of {metric:?}", path.display()),
        (None, None) => Ok(default_params()),
    }
}

/// The defaults every watch gets, from the configuration loader itself.
pub fn default_params() -> DetectorParams {
    const MINIMAL: &str = "sources:\n  - name: replay\n    scrape:\n      \
                           url: http://127.0.0.1:1/metrics\n    watch:\n      - metric: value\n";
    match config::parse_str(MINIMAL, "defaults") {
        Ok(loaded) => loaded.config.sources[0].watches[0].detector.clone(),
        // The text above is fixed and valid; the loader's tests keep it so.
        Err(problems) => panic!("the minimal configuration is invalid:\n{problems}"),
    }
}

/// Counts of a whole replay, for its closing line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub rows: u64,
    pub series: usize,
    pub alerts: usize,
    pub bad_rows: u64,
    pub not_finite: u64,
    pub elapsed: Duration,
}

impl Summary {
    pub fn rows_per_second(&self) -> f64 {
        self.rows as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs `driftwatch replay`.
pub fn run(flags: &ReplayFlags) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let params = detector_params(flags.config_file.as_deref(), flags.watch.as_deref())?;
    let plot_points = flags.plot.is_some().then_some(PLOT_POINTS);
    let replayer = Replayer::new(params, plot_points);
    let out: Box<dyn Write> = match &flags.output {
        Some(path) => {
            Box::new(File::create(path).with_context(|| format!("creating {}", path.display()))?)
        }
        None => Box::new(io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(1 << 16, out);
    let (finished, rows, bad_rows) = match (&flags.prometheus, &flags.input) {
        (Some(range), _) => {
            let (finished, rows) = replay_prometheus(replayer, range, &mut out)?;
            (finished, rows, 0)
        }
        (None, Some(path)) => {
            let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
                Box::new(io::stdin().lock())
            } else {
                let file =
                    File::open(path).with_context(|| format!("opening {}", path.display()))?;
                Box::new(BufReader::with_capacity(1 << 16, file))
            };
            replay_csv(replayer, reader, flags.on_error, &mut out)?
        }
        (None, None) => anyhow::bail!("replay needs --input or --from-prometheus"),
    };
    out.flush().context("writing the output")?;
    write_outputs(flags, &finished)?;
    Ok(Summary {
        rows,
        series: finished.series.len(),
        alerts: finished.alerts.len(),
        bad_rows,
        not_finite: finished.not_finite,
        elapsed: started.elapsed(),
    })
}

fn write_outputs(flags: &ReplayFlags, finished: &Finished) -> anyhow::Result<()> {
    match &flags.alerts {
        Some(path) => {
            let file =
                File::create(path).with_context(|| format!("creating {}", path.display()))?;
            let mut w = BufWriter::new(file);
            write_alerts(&mut w, &finished.alerts)?;
            w.flush()?;
        }
        None => write_alerts(&mut io::stderr().lock(), &finished.alerts)?,
    }
    if let Some(path) = &flags.plot {
        std::fs::write(path, finished.plot())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Replays a CSV, writing a row per sample to `out`. Returns the replay,
/// the rows read and the rows that could not be read.
pub fn replay_csv(
    mut replayer: Replayer,
    reader: impl BufRead,
    on_error: OnError,
    out: &mut impl Write,
) -> anyhow::Result<(Finished, u64, u64)> {
    let mut csv = CsvSamples::new(reader)?;
    let keyed = csv.keyed();
    write_header(out, keyed)?;
    let (mut rows, mut bad) = (0u64, 0u64);
    while let Some(row) = csv.next_row() {
        let row = match row {
            Ok(row) => row,
            Err(e) if e.is_row() && on_error == OnError::Skip => {
                bad += 1;
                if bad <= LOGGED_ROW_ERRORS {
                    tracing::warn!(error = %e, "Skipping an unparsable row");
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        rows += 1;
        if let Some(step) = replayer.observe(row.series, row.at_ms, row.timestamp, row.value) {
            write_row(out, keyed, row.series, row.timestamp, row.value_text, &step)?;
        }
    }
    if bad > LOGGED_ROW_ERRORS {
        tracing::warn!(
            skipped = bad,
            logged = LOGGED_ROW_ERRORS,
            "More unparsable rows were skipped than logged"
        );
    }
    Ok((replayer.finish(), rows, bad))
}

/// Pulls `range` from Prometheus in chunks of at most [`MAX_RANGE_POINTS`]
/// steps and replays each series of each chunk in time order.
pub fn replay_prometheus(
    replayer: Replayer,
    range: &PrometheusRange,
    out: &mut impl Write,
) -> anyhow::Result<(Finished, u64)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(replay_prometheus_async(replayer, range, out))
}

async fn replay_prometheus_async(
    mut replayer: Replayer,
    range: &PrometheusRange,
    out: &mut impl Write,
) -> anyhow::Result<(Finished, u64)> {
    let client = crate::daemon::http_client()?;
    let request = QueryRequest {
        url: &range.url,
        query: &range.query,
        bearer_token_file: None,
        basic_auth: None,
        timeout: Duration::from_secs(120),
        body_size_limit: 1 << 30,
    };
    write_header(out, true)?;
    let mut rows = 0;
    let mut time = String::new();
    for (start_ms, end_ms) in chunks(range.start_ms, range.end_ms, range.step) {
        let answer = promql::range(&client, &request, start_ms, end_ms, range.step)
            .await
            .with_context(|| format!("querying {}", range.url))?;
        tracing::debug!(
            start_ms,
            end_ms,
            series = answer.len(),
            "Range chunk fetched"
        );
        for series in answer {
            let key = series_key(&series);
            for (at_ms, value) in series.points {
                rows += 1;
                time.clear();
                time.push_str(&format_ms(at_ms));
                if let Some(step) = replayer.observe(&key, at_ms, &time, value) {
                    let value_text = ryu::Buffer::new().format(value).to_owned();
                    write_row(out, true, &key, &time, &value_text, &step)?;
                }
            }
        }
    }
    Ok((replayer.finish(), rows))
}

/// Splits `[start, end]` into ranges of at most [`MAX_RANGE_POINTS`] steps
/// each, the next starting one step after the last ended.
pub fn chunks(start_ms: i64, end_ms: i64, step: Duration) -> Vec<(i64, i64)> {
    let step_ms = i64::try_from(step.as_millis()).unwrap_or(i64::MAX).max(1);
    let span = step_ms.saturating_mul(MAX_RANGE_POINTS as i64 - 1);
    let mut out = Vec::new();
    let mut at = start_ms;
    while at <= end_ms {
        let last = at.saturating_add(span).min(end_ms);
        out.push((at, last));
        at = match last.checked_add(step_ms) {
            Some(next) => next,
            None => break,
        };
    }
    out
}

/// `name{label="value",...}` of a query result, as the daemon names series.
fn series_key(series: &promql::ResultSeries) -> String {
    let mut key = series.name.clone().unwrap_or_default();
    if !series.labels.is_empty() {
        key.push('{');
        for (n, (name, value)) in series.labels.iter().enumerate() {
            if n > 0 {
                key.push(',');
            }
            key.push_str(name);
            key.push_str("=\"");
            crate::engine::escape_label_value(&mut key, value);
            key.push('"');
        }
        key.push('}');
    }
    key
}

/// Unix ms as RFC 3339 with milliseconds.
pub fn format_ms(at_ms: i64) -> String {
    let time = if at_ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(at_ms.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_millis(at_ms.unsigned_abs())
    };
    humantime::format_rfc3339_millis(time).to_string()
}

/// Unix seconds (fractions allowed), RFC 3339 (`Z` or a `±HH:MM` offset) or
/// `YYYY-MM-DD HH:MM:SS[.fff]` in UTC, as Unix ms.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        let ms = (seconds * 1000.0).round();
        return (ms.is_finite() && ms.abs() < 9e15).then_some(ms as i64);
    }
    let (local, offset_ms) = split_offset(text)?;
    let time = humantime::parse_rfc3339_weak(local).ok()?;
    let ms = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).ok()?,
        Err(e) => -i64::try_from(e.duration().as_millis()).ok()?,
    };
    Some(ms - offset_ms)
}

/// Splits a trailing `+HH:MM` or `-HH:MM` off a time.
fn split_offset(text: &str) -> Option<(&str, i64)> {
    let bytes = text.as_bytes();
    if bytes.len() < 19 + 6 || !matches!(bytes[bytes.len() - 6], b'+' | b'-') {
        return Some((text, 0));
    }
    let (local, offset) = text.split_at(text.len() - 6);
    let hours: i64 = offset.get(1..3)?.parse().ok()?;
    let minutes: i64 = offset.get(4..6)?.parse().ok()?;
    if offset.as_bytes()[3] != b':' || minutes >= 60 {
        return None;
    }
    let ms = (hours * 60 + minutes) * 60_000;
    Some((
        local,
        if bytes[bytes.len() - 6] == b'-' {
            -ms
        } else {
            ms
        },
    ))
}

fn write_header(out: &mut impl Write, keyed: bool) -> io::Result<()> {
    if keyed {
        out.write_all(b"series,")?;
    }
    out.write_all(b"timestamp,value,zscore,badness,state\n")
}

fn write_row(
    out: &mut impl Write,
    keyed: bool,
    series: &str,
    timestamp: &str,
    value: &str,
    step: &Step,
) -> io::Result<()> {
    if keyed {
        write_field(out, series)?;
        out.write_all(b",")?;
    }
    write_field(out, timestamp)?;
    out.write_all(b",")?;
    out.write_all(value.as_bytes())?;
    out.write_all(b",")?;
    let mut buf = ryu::Buffer::new();
    if let Some(z) = step.evaluation.zscore {
        out.write_all(format_number(&mut buf, z).as_bytes())?;
    }
    out.write_all(b",")?;
    if let Some(b) = step.evaluation.badness {
        out.write_all(format_number(&mut buf, b).as_bytes())?;
    }
    out.write_all(b",")?;
    out.write_all(step.state.as_str().as_bytes())?;
    out.write_all(b"\n")
}

fn format_number(buf: &mut ryu::Buffer, x: f64) -> &str {
    if x.is_finite() {
        buf.format_finite(x)
    } else if x > 0.0 {
        "+Inf"
    } else {
        "-Inf"
    }
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn write_field(out: &mut impl Write, text: &str) -> io::Result<()> {
    if !text.contains([',', '"', '\n', '\r']) {
        return out.write_all(text.as_bytes());
    }
    out.write_all(b"\"")?;
    out.write_all(text.replace('"', "\"\"").as_bytes())?;
    out.write_all(b"\"")
}

/// `series,start,end,peak_z,samples`; `end` is empty for an alert still
/// firing when the samples ran out.
pub fn write_alerts(out: &mut impl Write, alerts: &[Alert]) -> io::Result<()> {
    out.write_all(b"series,start,end,peak_z,samples\n")?;
    let mut buf = ryu::Buffer::new();
    for alert in alerts {
        write_field(out, &alert.series)?;
        out.write_all(b",")?;
        write_field(out, &alert.start)?;
        out.write_all(b",")?;
        write_field(out, alert.end.as_deref().unwrap_or(""))?;
        writeln!(
            out,
            ",{},{}",
            format_number(&mut buf, alert.peak_z),
            alert.samples
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(text: &str, params: DetectorParams) -> (String, Finished) {
        let mut out = Vec::new();
        let replayer = Replayer::new(params, Some(100));
        let (finished, _, _) =
            replay_csv(replayer, text.as_bytes(), OnError::Skip, &mut out).unwrap();
        (String::from_utf8(out).unwrap(), finished)
    }

    /// A short window, and alerts that end at the first calm sample with no
    /// accumulated statistic, so each test's samples are few and its
    /// expected alerts plain.
    fn small() -> DetectorParams {
        DetectorParams {
            window: 10,
            min_samples: 5,
            recover_consecutive: 1,
            accumulate: crate::detector::Accumulate::Off,
            ..default_params()
        }
    }

    #[test]
    fn defaults_come_from_the_configuration_loader() {
        let p = default_params();
        assert_eq!(p.window, config::load::defaults::WINDOW);
        assert_eq!(p.threshold, config::load::defaults::THRESHOLD);
    }

    #[test]
    fn chunks_stay_within_the_point_limit_and_cover_the_range() {
        let step = Duration::from_secs(15);
        let end = 30_000 * 15_000;
        let chunks = chunks(0, end, step);
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[0], (0, 10_999 * 15_000));
        assert_eq!(chunks[1].0, 11_000 * 15_000);
        assert_eq!(chunks.last().unwrap().1, end);
        let points: i64 = chunks.iter().map(|(s, e)| (e - s) / 15_000 + 1).sum();
        assert_eq!(points, 30_001);
        assert_eq!(super::chunks(5, 5, step), [(5, 5)]);
    }

    #[test]
    fn a_drop_is_one_alert_from_degrading_to_recovery() {
        let mut csv = String::from("timestamp,value\n");
        for i in 0..20 {
            csv.push_str(&format!("{i},{}\n", 10 + i % 2));
        }
        csv.push_str("20,0\n21,1\n22,10.5\n23,10\n");
        let (out, finished) = replay(&csv, small());
        assert!(out.starts_with("timestamp,value,zscore,badness,state\n0,10,,,learning\n"));
        assert!(out.contains("\n20,0,-21.0,21.0,degraded\n"), "{out}");
        assert_eq!(finished.alerts.len(), 1);
        let alert = &finished.alerts[0];
        assert_eq!(
            (alert.start.as_str(), alert.end.as_deref()),
            ("20", Some("22"))
        );
        assert_eq!((alert.peak_z, alert.samples), (-21.0, 2));
    }

    #[test]
    fn output_zscores_follow_the_definition() {
        // Noise, a lasting drop that degrades and freezes the baseline, and
        // the return; the shipped defaults but for a short window.
        let p = DetectorParams {
            window: 30,
            min_samples: 10,
            ..default_params()
        };
        let mut rng = fastrand::Rng::with_seed(11);
        let values: Vec<f64> = (0..200)
            .map(|i| {
                let level = if (100..140).contains(&i) { 0.7 } else { 0.9 };
                level + (rng.f64() - 0.5) * 0.02
            })
            .collect();
        let mut csv = String::from("timestamp,value\n");
        for (i, v) in values.iter().enumerate() {
            csv.push_str(&format!("{i},{v}\n"));
        }
        let (out, _) = replay(&csv, p.clone());

        // B: the samples that entered before x, by the rule of DESIGN.md,
        // read off the states the replay wrote.
        let mut baseline: Vec<f64> = Vec::new();
        let mut states = Vec::new();
        for (line, &x) in out.lines().skip(1).zip(&values) {
            let fields: Vec<&str> = line.split(',').collect();
            let state = fields[4];
            let want = (baseline.len() >= p.min_samples).then(|| {
                let (mean, stddev) = crate::detector::tests::two_pass(&baseline);
                (x - mean) / stddev.max(p.min_relative_stddev * mean.abs())
            });
            let got = (!fields[2].is_empty()).then(|| fields[2].parse::<f64>().unwrap());
            match (got, want) {
                (Some(g), Some(w)) => {
                    assert!((g - w).abs() <= 1e-9 * (1.0 + w.abs()), "{line}: {w}")
                }
                (g, w) => assert_eq!(g, w, "{line}"),
            }
            let badness = want.map(|z| z.abs());
            let calm = matches!(state, "learning" | "ok");
            if calm && badness.is_none_or(|b| b < p.threshold) {
                baseline.push(x);
                if baseline.len() > p.window {
                    baseline.remove(0);
                }
            }
            states.push(state.to_owned());
        }
        // The drop was caught and held while the baseline stayed frozen.
        assert_eq!(states[100], "degraded");
        assert!(states[100..140].iter().all(|s| s == "degraded"));
    }

    #[test]
    fn series_are_replayed_independently_and_named_in_the_output() {
        let mut csv = String::from("model,timestamp,value\n");
        for i in 0..12 {
            csv.push_str(&format!("a,{i},{}\nb,{i},{}\n", i % 2, 100 + i % 3));
        }
        let (out, finished) = replay(&csv, small());
        assert_eq!(finished.series.len(), 2);
        assert!(out.contains("\"{model=\"\"b\"\"}\",11,102,"), "{out}");
    }

    #[test]
    fn timestamps_parse_in_every_documented_form() {
        assert_eq!(parse_timestamp("1.5"), Some(1500));
        assert_eq!(parse_timestamp("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(parse_timestamp("1970-01-01 00:00:01.250000"), Some(1250));
        assert_eq!(parse_timestamp("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(
            parse_timestamp("1970-01-01T00:00:00-01:00"),
            Some(3_600_000)
        );
        assert_eq!(parse_timestamp("soon"), None);
        assert_eq!(format_ms(1500), "1970-01-01T00:00:01.500Z");
    }
}
