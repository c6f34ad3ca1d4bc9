//! The command line, with flags spelled as Prometheus and Alertmanager spell
//! theirs (`--config.file`, `--web.listen-address`, `--log.level`).

use std::path::PathBuf;

use tracing::Level;

use crate::logging::{self, LogFormat};

pub const USAGE: &str = "\
usage:
  driftwatch [flags]                 run the daemon
  driftwatch check-config FILE       validate a configuration file
  driftwatch demo [flags]            watch a simulated model, no setup needed
  driftwatch replay [replay flags]   run the detectors offline over recorded samples

flags:
  --config.file=FILE             configuration file (default driftwatch.yml)
  --web.listen-address=HOST:PORT address of /metrics and the API (default 0.0.0.0:9871;
                                 the demo uses 127.0.0.1:9871)
  --web.external-url=URL         URL users reach driftwatch at, for links in alerts
  --storage.path=DIR             where state snapshots are kept (optional)
  --shard.total=N                split the series between N replicas (default 1)
  --shard.index=I                this replica's share, 0 to N-1 (default: the
                                 ordinal ending $POD_NAME, as in a StatefulSet)
  --log.level=LEVEL              debug, info, warn or error (default info)
  --log.format=FORMAT            logfmt or json (default logfmt)
  -h, --help                     this text
  --version                      the version

replay flags:
  --input=CSV                    samples: `timestamp,value`, `series,timestamp,value`, or
                                 other columns as labels (`-` reads stdin)
  --from-prometheus=URL          instead of --input: pull history with --query, --start,
                                 --end (RFC 3339 or Unix seconds) and --step (e.g. 1m)
  --config.file=FILE             detector settings from the file's first watch (default:
                                 the built-in defaults)
  --watch=METRIC                 the watch of the configuration to use instead
  --output=CSV                   per-sample rows (default stdout)
  --alerts=CSV                   the alerts that would have fired (default stderr)
  --plot=SVG                     values, baseline band, z-scores and alerts, per series
  --on-error=skip|fail           an unparsable row is skipped with a warning (default) or
                                 ends the replay
";

/// What the user asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Run(Flags),
    CheckConfig(PathBuf),
    Demo(Flags),
    Replay(ReplayFlags),
    Help,
    Version,
}

/// The daemon's flags.
#[derive(Debug, Clone, PartialEq)]
pub struct Flags {
    pub config_file: PathBuf,
    pub listen_address: Option<String>,
    pub external_url: Option<String>,
    pub storage_path: Option<PathBuf>,
    /// `--shard.total`; 1 keeps every series.
    pub shard_total: u32,
    /// `--shard.index`; `None` takes the ordinal of `POD_NAME`.
    pub shard_index: Option<u32>,
    pub log_level: Level,
    pub log_format: LogFormat,
}

impl Default for Flags {
    fn default() -> Self {
        Flags {
            config_file: PathBuf::from("driftwatch.yml"),
            listen_address: None,
            external_url: None,
            storage_path: None,
            shard_total: 1,
            shard_index: None,
            log_level: Level::INFO,
            log_format: LogFormat::Logfmt,
        }
    }
}

/// What `driftwatch replay` reads and writes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReplayFlags {
    pub config_file: Option<PathBuf>,
    /// The metric of the watch whose detector settings apply.
    pub watch: Option<String>,
    /// `-` for stdin.
    pub input: Option<PathBuf>,
    pub prometheus: Option<PrometheusRange>,
    pub output: Option<PathBuf>,
    pub alerts: Option<PathBuf>,
    pub plot: Option<PathBuf>,
    pub on_error: OnError,
}

/// A range query to replay instead of a file.
#[derive(Debug, Clone, PartialEq)]
pub struct PrometheusRange {
    pub url: String,
    pub query: String,
    /// Unix ms.
    pub start_ms: i64,
    pub end_ms: i64,
    pub step: std::time::Duration,
}

/// What replay does with a row it cannot read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Warn with the line number and go on.
    #[default]
    Skip,
    /// Stop with the line number.
    Fail,
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut args = args.into_iter().peekable();
    let command = match args.peek().map(String::as_str) {
        Some("check-config") => {
            args.next();
            let file = args
                .next()
                .ok_or("check-config needs a file: driftwatch check-config FILE")?;
            if let Some(extra) = args.next() {
                return Err(format!("unexpected argument {extra:?} after the file"));
            }
            return Ok(Command::CheckConfig(PathBuf::from(file)));
        }
        Some("demo") => {
            args.next();
            "demo"
        }
        Some("replay") => {
            args.next();
            return parse_replay(args);
        }
        _ => "run",
    };
    let mut flags = Flags::default();
    while let Some(arg) = args.next() {
        let (name, inline) = split_flag(&arg);
        match name.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--version" => return Ok(Command::Version),
            _ => {}
        }
        let mut value = || flag_value(&name, inline.clone(), &mut args);
        match name.as_str() {
            "--config.file" => flags.config_file = PathBuf::from(value()?),
            "--web.listen-address" => flags.listen_address = Some(value()?),
            "--web.external-url" => {
                flags.external_url = Some(value()?.trim_end_matches('/').to_owned())
            }
            "--storage.path" => flags.storage_path = Some(PathBuf::from(value()?)),
            "--shard.total" => flags.shard_total = number(&name, &value()?)?,
            "--shard.index" => flags.shard_index = Some(number(&name, &value()?)?),
            "--log.level" => flags.log_level = logging::parse_level(&value()?)?,
            "--log.format" => flags.log_format = value()?.parse()?,
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    Ok(if command == "demo" {
        Command::Demo(flags)
    } else {
        Command::Run(flags)
    })
}

/// `--name=value` or `--name`, whose value is then the next argument.
fn split_flag(arg: &str) -> (String, Option<String>) {
    match arg.split_once('=') {
        Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
        None => (arg.to_owned(), None),
    }
}

fn flag_value(
    name: &str,
    inline: Option<String>,
    args: &mut impl Iterator<Item = String>,
) -> Result<String, String> {
    inline
        .or_else(|| args.next())
        .ok_or(format!("flag {name} needs a value"))
}

fn number(flag: &str, text: &str) -> Result<u32, String> {
    text.parse()
        .map_err(|_| format!("{flag} needs a whole number, not {text:?}"))
}

fn parse_replay(args: impl Iterator<Item = String>) -> Result<Command, String> {
    let mut flags = ReplayFlags::default();
    let (mut url, mut query, mut start, mut end, mut step) = (None, None, None, None, None);
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let (name, inline) = split_flag(&arg);
        if name == "-h" || name == "--help" {
            return Ok(Command::Help);
        }
        let mut value = || flag_value(&name, inline.clone(), &mut args);
        match name.as_str() {
            "--config.file" => flags.config_file = Some(PathBuf::from(value()?)),
            "--watch" => flags.watch = Some(value()?),
            "--input" => flags.input = Some(PathBuf::from(value()?)),
            "--output" => flags.output = Some(PathBuf::from(value()?)),
            "--alerts" => flags.alerts = Some(PathBuf::from(value()?)),
            "--plot" => flags.plot = Some(PathBuf::from(value()?)),
            "--on-error" => {
                flags.on_error = match value()?.as_str() {
                    "skip" => OnError::Skip,
                    "fail" => OnError::Fail,
                    other => return Err(format!("--on-error must be skip or fail, not {other:?}")),
                }
            }
            "--from-prometheus" => url = Some(value()?),
            "--query" => query = Some(value()?),
            "--start" => start = Some(parse_time(&value()?, "--start")?),
            "--end" => end = Some(parse_time(&value()?, "--end")?),
            "--step" => {
                let text = value()?;
                let parsed = crate::config::units::parse_duration(&text)
                    .map_err(|e| format!("--step {text:?}: {e}"))?;
                if parsed.is_zero() {
                    return Err("--step must be above 0".to_owned());
                }
                step = Some(parsed);
            }
            _ => return Err(format!("unknown replay argument {arg:?}")),
        }
    }
    if let Some(url) = url {
        let missing = |flag: &str| format!("--from-prometheus needs {flag}");
        let range = PrometheusRange {
            url,
            query: query.ok_or_else(|| missing("--query"))?,
            start_ms: start.ok_or_else(|| missing("--start"))?,
            end_ms: end.ok_or_else(|| missing("--end"))?,
            step: step.ok_or_else(|| missing("--step"))?,
        };
        if range.end_ms < range.start_ms {
            return Err("--end is before --start".to_owned());
        }
        if flags.input.is_some() {
            return Err("give either --input or --from-prometheus, not both".to_owned());
        }
        flags.prometheus = Some(range);
    } else if flags.input.is_none() {
        return Err("replay needs --input=CSV or --from-prometheus=URL".to_owned());
    } else if query.is_some() || start.is_some() || end.is_some() || step.is_some() {
        return Err("--query, --start, --end and --step go with --from-prometheus".to_owned());
    }
    Ok(Command::Replay(flags))
}

/// A time given on the command line: Unix seconds or RFC 3339, as Unix ms.
fn parse_time(text: &str, flag: &str) -> Result<i64, String> {
    crate::replay::parse_timestamp(text).ok_or(format!(
        "{flag} {text:?} is neither Unix seconds nor an RFC 3339 time"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn flags_take_values_with_or_without_equals() {
        let Ok(Command::Run(flags)) = parse(args(
            "--config.file=a.yml --web.listen-address 127.0.0.1:1 --log.format json",
        )) else {
            panic!("not a run command");
        };
        assert_eq!(flags.config_file, PathBuf::from("a.yml"));
        assert_eq!(flags.listen_address.as_deref(), Some("127.0.0.1:1"));
        assert_eq!(flags.log_format, LogFormat::Json);
    }

    #[test]
    fn check_config_needs_exactly_one_file() {
        assert_eq!(
            parse(args("check-config x.yml")),
            Ok(Command::CheckConfig("x.yml".into()))
        );
        assert!(parse(args("check-config")).is_err());
        assert!(parse(args("check-config a b")).is_err());
    }

    #[test]
    fn unknown_flags_and_levels_are_refused() {
        assert!(
            parse(args("--config.flie=x"))
                .unwrap_err()
                .contains("unknown argument")
        );
        assert!(
            parse(args("--log.level=loud"))
                .unwrap_err()
                .contains("unknown log level")
        );
    }

    #[test]
    fn replay_takes_a_file_or_a_range_query() {
        let Ok(Command::Replay(flags)) =
            parse(args("replay --input=a.csv --on-error fail --watch=acc"))
        else {
            panic!("not a replay command");
        };
        assert_eq!(flags.input, Some(PathBuf::from("a.csv")));
        assert_eq!(flags.on_error, OnError::Fail);
        assert_eq!(flags.watch.as_deref(), Some("acc"));
        let Ok(Command::Replay(flags)) = parse(args(
            "replay --from-prometheus=http://p:9090 --query=up --start=0 --end=2024-01-01T00:00:00Z --step=15s",
        )) else {
            panic!("not a replay command");
        };
        let range = flags.prometheus.unwrap();
        assert_eq!((range.start_ms, range.end_ms), (0, 1_704_067_200_000));
        assert_eq!(range.step, std::time::Duration::from_secs(15));
    }

    #[test]
    fn replay_refuses_missing_or_mixed_inputs() {
        assert!(parse(args("replay")).unwrap_err().contains("--input"));
        assert!(
            parse(args("replay --from-prometheus=http://p --query=up"))
                .unwrap_err()
                .contains("--start")
        );
        assert!(parse(args("replay --input=a --step=1m")).is_err());
        assert!(parse(args("replay --input=a --on-error=maybe")).is_err());
    }
}
