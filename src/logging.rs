//! Log setup: `--log.level` and `--log.format=logfmt|json`, as Prometheus
//! and Alertmanager take them.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Logfmt,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "logfmt" => Ok(LogFormat::Logfmt),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "unknown log format {other:?}, expected logfmt or json"
            )),
        }
    }
}

/// Parses `debug`, `info`, `warn` or `error`.
pub fn parse_level(s: &str) -> Result<Level, String> {
    match s {
        "debug" => Ok(Level::DEBUG),
        "info" => Ok(Level::INFO),
        "warn" => Ok(Level::WARN),
        "error" => Ok(Level::ERROR),
        "trace" => Ok(Level::TRACE),
        other => Err(format!(
            "unknown log level {other:?}, expected debug, info, warn or error"
        )),
    }
}

/// Installs the global subscriber, writing to stderr. A second call (as in
/// tests) leaves the first in place.
pub fn init(level: Level, format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Logfmt => builder.event_format(Logfmt).try_init(),
    };
}

/// `ts=… level=info msg="…" key=value`, the format of Prometheus's logs.
struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let now = humantime::format_rfc3339_millis(std::time::SystemTime::now());
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        write!(writer, "ts={now} level={level}")?;
        let mut visitor = LogfmtFields {
            out: String::new(),
            message: None,
        };
        event.record(&mut visitor);
        if let Some(message) = visitor.message {
            writer.write_str(" msg=")?;
            write_value(&mut writer, &message)?;
        }
        writer.write_str(&visitor.out)?;
        writeln!(writer)
    }
}

struct LogfmtFields {
    out: String,
    message: Option<String>,
}

impl Visit for LogfmtFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, &format!("{value:?}"));
    }
}

impl LogfmtFields {
    fn push(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
            return;
        }
        self.out.push(' ');
        self.out.push_str(field.name());
        self.out.push('=');
        let _ = write_value(&mut self.out, value);
    }
}

/// Quotes a value when it holds anything a logfmt reader would split on.
fn write_value(out: &mut impl fmt::Write, value: &str) -> fmt::Result {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| !c.is_whitespace() && c != '"' && c != '=' && c != '\\' && !c.is_control());
    if plain {
        return out.write_str(value);
    }
    out.write_char('"')?;
    for c in value.chars() {
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            c => out.write_char(c)?,
        }
    }
    out.write_char('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logfmt_values_are_quoted_only_when_needed() {
        let mut out = String::new();
        write_value(&mut out, "plain").unwrap();
        out.push(' ');
        write_value(&mut out, "connection refused \"x\"").unwrap();
        out.push(' ');
        write_value(&mut out, "").unwrap();
        assert_eq!(out, r#"plain "connection refused \"x\"" """#);
    }
}
