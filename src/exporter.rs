//! Renders driftwatch's own /metrics: the per-series z-scores and baselines,
//! and the metrics about driftwatch itself, in the Prometheus text format or
//! OpenMetrics.
//!
//! Rendering writes straight into one buffer from label text prepared when a
//! series was created, so a scrape of a million series costs little more
//! than formatting the numbers.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use crate::detector::State;
use crate::engine::{SeriesEntry, SeriesTable, Shared, SkipCause, lock};

/// Every metric name driftwatch exports, in one place.
pub mod names {
    pub const SERIES_ZSCORE: &str = "driftwatch_series_zscore";
    pub const SERIES_BASELINE_MEAN: &str = "driftwatch_series_baseline_mean";
    pub const SERIES_BASELINE_STDDEV: &str = "driftwatch_series_baseline_stddev";
    pub const SERIES_LAST_VALUE: &str = "driftwatch_series_last_value";
    pub const SERIES_WINDOW_SAMPLES: &str = "driftwatch_series_window_samples";
    pub const SERIES_DEGRADED: &str = "driftwatch_series_degraded";
    pub const SERIES_EVIDENCE: &str = "driftwatch_series_evidence";
    pub const SOURCE_UP: &str = "driftwatch_source_up";
    pub const SOURCE_SCRAPES: &str = "driftwatch_source_scrapes";
    pub const SOURCE_SCRAPE_DURATION: &str = "driftwatch_source_scrape_duration_seconds";
    pub const SOURCE_SERIES: &str = "driftwatch_source_series";
    pub const SERIES_TRACKED: &str = "driftwatch_series_tracked";
    pub const SAMPLES_SKIPPED: &str = "driftwatch_samples_skipped";
    pub const NOTIFICATIONS: &str = "driftwatch_notifications";
    pub const NOTIFICATION_QUEUE_LENGTH: &str = "driftwatch_notification_queue_length";
    pub const CONFIG_LAST_RELOAD_SUCCESSFUL: &str = "driftwatch_config_last_reload_successful";
    pub const BUILD_INFO: &str = "driftwatch_build_info";
}

/// Which exposition format a scraper asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    OpenMetrics,
}

impl Format {
    /// Picks OpenMetrics only when the Accept header names it, as Prometheus
    /// client libraries do.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(accept) if accept.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gauge,
    Counter,
}

/// The seven per-series families, in the order they are written.
const SERIES_FAMILIES: [(&str, &str); 7] = [
    (
        names::SERIES_ZSCORE,
        "Z-score of the latest sample against its baseline (absent while learning).",
    ),
    (
        names::SERIES_BASELINE_MEAN,
        "Mean of the baseline the latest z-score was computed against.",
    ),
    (
        names::SERIES_BASELINE_STDDEV,
        "Population standard deviation (after the floor) of that baseline.",
    ),
    (
        names::SERIES_LAST_VALUE,
        "Latest sample value of the series.",
    ),
    (
        names::SERIES_WINDOW_SAMPLES,
        "Samples in the baseline the latest z-score was computed against.",
    ),
    (
        names::SERIES_DEGRADED,
        "1 while the series is degraded, else 0.",
    ),
    (
        names::SERIES_EVIDENCE,
        "Evidence of a lasting shift accumulated over samples, signed like the z-score: \
         the z-score of the EWMA of z, or the CUSUM of z (absent while learning or \
         with accumulate: none).",
    ),
];

/// Renders the whole exposition into a string.
pub fn render(shared: &Shared, format: Format) -> String {
    let mut body = Vec::with_capacity(64 * 1024);
    // Writing into a Vec cannot fail.
    let _ = render_into(shared, format, &mut body);
    // Everything written came from `&str`, so it is UTF-8.
    String::from_utf8(body).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Renders the whole exposition into `sink` a megabyte at a time, so that
/// a gzip sink holds only the compressed text: a million series are about
/// a gigabyte of text but a few tens of megabytes of gzip.
pub fn render_into(shared: &Shared, format: Format, sink: &mut impl Write) -> io::Result<()> {
    let mut out = String::with_capacity(FLUSH_AT + 64 * 1024);
    render_series(shared, format, &mut out, sink)?;
    render_self(shared, format, &mut out);
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    sink.write_all(out.as_bytes())
}

/// Text buffered before it goes to the sink.
const FLUSH_AT: usize = 1 << 20;

/// Series rendered per hold of a source's lock: a few milliseconds of
/// work, so a fetch of that source waits at most that long for a render.
const SLOTS_PER_LOCK: usize = 4096;

/// One pass over the sources per family, so the families come out
/// contiguous without a buffer each. A source's lock is taken per run of
/// [`SLOTS_PER_LOCK`] slots, never for a whole render, so that rendering a
/// million series does not stall the fetches and detection of its sources;
/// the text goes to the sink with no lock held. A series created during a
/// render may be in some families and not others, and one that is dropped
/// as stale and comes back within one render may land in a freed slot not
/// yet visited and show twice in that one render.
fn render_series(
    shared: &Shared,
    format: Format,
    out: &mut String,
    sink: &mut impl Write,
) -> io::Result<()> {
    for (family, (name, help)) in SERIES_FAMILIES.iter().enumerate() {
        header(out, format, name, help, Kind::Gauge);
        for source in shared.sources().iter() {
            let mut start = 0;
            while write_slots(&source.table, start, family, out) {
                start += SLOTS_PER_LOCK;
                if out.len() >= FLUSH_AT {
                    sink.write_all(out.as_bytes())?;
                    out.clear();
                }
            }
        }
    }
    Ok(())
}

/// Writes one family's samples of the series in a run of slots from
/// `start`; false when `start` is past the last slot.
fn write_slots(table: &Mutex<SeriesTable>, start: usize, family: usize, out: &mut String) -> bool {
    let table = lock(table);
    if start >= table.slot_count() {
        return false;
    }
    for entry in table.slots(start, SLOTS_PER_LOCK) {
        write_sample(out, family, &table, entry);
    }
    true
}

/// The sample of `entry` in family `family` (an index of
/// [`SERIES_FAMILIES`]), if it has one: only `degraded` before the first
/// evaluation, and z-score, mean and standard deviation once the baseline
/// gives them.
fn write_sample(out: &mut String, family: usize, table: &SeriesTable, entry: &SeriesEntry) {
    let last = entry.detector.last();
    let value = match (family, &last) {
        (5, _) => Some(if entry.detector.state() == State::Degraded {
            1.0
        } else {
            0.0
        }),
        (_, None) => None,
        (0, Some(last)) => last.zscore,
        (1, Some(last)) => last.mean.filter(|_| last.stddev.is_some()),
        (2, Some(last)) => last.stddev.filter(|_| last.mean.is_some()),
        (3, Some(last)) => Some(last.value),
        (4, Some(last)) => Some(last.window_samples as f64),
        (6, Some(last)) => last.evidence,
        _ => None,
    };
    if let Some(value) = value {
        out.push_str(SERIES_FAMILIES[family].0);
        out.push('{');
        table.write_export_labels(out, entry);
        out.push_str("} ");
        push_float(out, value);
        out.push('\n');
    }
}

fn render_self(shared: &Shared, format: Format, out: &mut String) {
    let sources = shared.sources();

    header(
        out,
        format,
        names::SOURCE_UP,
        "1 if the last fetch of the source succeeded, else 0.",
        Kind::Gauge,
    );
    let mut healths = Vec::with_capacity(sources.len());
    for source in sources.iter() {
        let health = lock(&source.health).clone();
        let labels = label_text(&[("source", &source.name)]);
        sample(
            out,
            names::SOURCE_UP,
            &labels,
            if health.up { 1.0 } else { 0.0 },
        );
        healths.push((labels, health, lock(&source.table).len()));
    }

    header(
        out,
        format,
        names::SOURCE_SCRAPES,
        "Fetches of each source by result.",
        Kind::Counter,
    );
    for (source, (_, health, _)) in sources.iter().zip(&healths) {
        for (result, count) in &health.scrapes {
            let labels = label_text(&[("source", &source.name), ("result", result)]);
            counter(out, names::SOURCE_SCRAPES, &labels, *count);
        }
    }

    header(
        out,
        format,
        names::SOURCE_SCRAPE_DURATION,
        "Duration of the last fetch of each source.",
        Kind::Gauge,
    );
    for (labels, health, _) in &healths {
        sample(
            out,
            names::SOURCE_SCRAPE_DURATION,
            labels,
            health.last_duration.as_secs_f64(),
        );
    }

    header(
        out,
        format,
        names::SOURCE_SERIES,
        "Watched series of each source.",
        Kind::Gauge,
    );
    let mut tracked = 0;
    for (labels, _, series) in &healths {
        tracked += series;
        sample(out, names::SOURCE_SERIES, labels, *series as f64);
    }

    header(
        out,
        format,
        names::SERIES_TRACKED,
        "Watched series in all sources.",
        Kind::Gauge,
    );
    sample(out, names::SERIES_TRACKED, "", tracked as f64);

    header(
        out,
        format,
        names::SAMPLES_SKIPPED,
        "Samples not evaluated, by reason.",
        Kind::Counter,
    );
    for cause in SkipCause::ALL {
        let labels = label_text(&[("reason", cause.as_str())]);
        counter(out, names::SAMPLES_SKIPPED, &labels, shared.skipped(cause));
    }

    render_notifications(shared, format, out);

    header(
        out,
        format,
        names::CONFIG_LAST_RELOAD_SUCCESSFUL,
        "1 if the last configuration reload succeeded, else 0.",
        Kind::Gauge,
    );
    let reloaded = shared.reload_successful.load(Ordering::Relaxed);
    sample(
        out,
        names::CONFIG_LAST_RELOAD_SUCCESSFUL,
        "",
        if reloaded { 1.0 } else { 0.0 },
    );

    header(
        out,
        format,
        names::BUILD_INFO,
        "Always 1; the version of driftwatch as a label.",
        Kind::Gauge,
    );
    let labels = label_text(&[("version", env!("CARGO_PKG_VERSION"))]);
    sample(out, names::BUILD_INFO, &labels, 1.0);
}

fn render_notifications(shared: &Shared, format: Format, out: &mut String) {
    let stats = shared.notifier.stats();
    header(
        out,
        format,
        names::NOTIFICATIONS,
        "Notification deliveries by receiver and result.",
        Kind::Counter,
    );
    for receiver in &stats {
        for (result, count) in &receiver.results {
            let labels = label_text(&[("receiver", &receiver.receiver), ("result", result)]);
            counter(out, names::NOTIFICATIONS, &labels, *count);
        }
    }
    header(
        out,
        format,
        names::NOTIFICATION_QUEUE_LENGTH,
        "Series with a notification still to deliver, by receiver.",
        Kind::Gauge,
    );
    for receiver in &stats {
        let labels = label_text(&[("receiver", &receiver.receiver)]);
        sample(
            out,
            names::NOTIFICATION_QUEUE_LENGTH,
            &labels,
            receiver.queue_length as f64,
        );
    }
}

fn header(out: &mut String, format: Format, name: &str, help: &str, kind: Kind) {
    let kind_text = match kind {
        Kind::Gauge => "gauge",
        Kind::Counter => "counter",
    };
    // The text format names a counter family after its samples (`_total`);
    // OpenMetrics names it without the suffix.
    let suffix = if kind == Kind::Counter && format == Format::Text {
        "_total"
    } else {
        ""
    };
    let _ = writeln!(out, "# HELP {name}{suffix} {help}");
    let _ = writeln!(out, "# TYPE {name}{suffix} {kind_text}");
}

fn counter(out: &mut String, family: &str, labels: &str, value: u64) {
    out.push_str(family);
    out.push_str("_total");
    if !labels.is_empty() {
        out.push('{');
        out.push_str(labels);
        out.push('}');
    }
    out.push(' ');
    out.push_str(itoa::Buffer::new().format(value));
    out.push('\n');
}

/// Writes one gauge sample line.
pub fn sample(out: &mut String, name: &str, labels: &str, value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        out.push_str(labels);
        out.push('}');
    }
    out.push(' ');
    push_float(out, value);
    out.push('\n');
}

/// Formats a float as Prometheus parses it: shortest round-trip digits,
/// and `NaN`, `+Inf`, `-Inf` for the special values.
pub fn push_float(out: &mut String, value: f64) {
    if value.is_finite() {
        out.push_str(ryu::Buffer::new().format_finite(value));
    } else if value.is_nan() {
        out.push_str("NaN");
    } else if value > 0.0 {
        out.push_str("+Inf");
    } else {
        out.push_str("-Inf");
    }
}

fn label_text(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        crate::engine::escape_label_value(&mut out, value);
        out.push('"');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_floats_are_written_as_prometheus_reads_them() {
        let mut out = String::new();
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.25, -3.0, 1e-7] {
            push_float(&mut out, v);
            out.push(' ');
        }
        assert_eq!(out, "NaN +Inf -Inf 0.25 -3.0 1e-7 ");
    }

    #[test]
    fn openmetrics_is_chosen_only_when_asked_for() {
        assert_eq!(Format::from_accept(None), Format::Text);
        assert_eq!(
            Format::from_accept(Some("text/plain;version=0.0.4")),
            Format::Text
        );
        assert_eq!(
            Format::from_accept(Some(
                "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
            )),
            Format::OpenMetrics
        );
    }

    #[test]
    fn counters_keep_total_in_text_and_drop_it_from_the_openmetrics_family() {
        let mut text = String::new();
        header(
            &mut text,
            Format::Text,
            "x_things",
            "Things.",
            Kind::Counter,
        );
        counter(&mut text, "x_things", "a=\"1\"", 3);
        assert_eq!(
            text,
            "# HELP x_things_total Things.\n# TYPE x_things_total counter\nx_things_total{a=\"1\"} 3\n"
        );
        let mut om = String::new();
        header(
            &mut om,
            Format::OpenMetrics,
            "x_things",
            "Things.",
            Kind::Counter,
        );
        assert_eq!(om, "# HELP x_things Things.\n# TYPE x_things counter\n");
    }
}
