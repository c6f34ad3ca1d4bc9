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

flags:
  --config.file=FILE             configuration file (default driftwatch.yml)
  --web.listen-address=HOST:PORT address of /metrics and the API (default 0.0.0.0:9871;
                                 the demo uses 127.0.0.1:9871)
  --web.external-url=URL         URL users reach driftwatch at, for links in alerts
  --storage.path=DIR             where state snapshots are kept (optional)
  --log.level=LEVEL              debug, info, warn or error (default info)
  --log.format=FORMAT            logfmt or json (default logfmt)
  -h, --help                     this text
  --version                      the version
";

/// What the user asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Run(Flags),
    CheckConfig(PathBuf),
    Demo(Flags),
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
            log_level: Level::INFO,
            log_format: LogFormat::Logfmt,
        }
    }
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut args = args.into_iter().peekable();
    let command = match args.peek().map(String::as_str) {
        Some("check-config") => {
            args.next();
            let file = args.next().ok_or("check-config needs a file: driftwatch check-config FILE")?;
            if let Some(extra) = args.next() {
                return Err(format!("unexpected argument {extra:?} after the file"));
            }
            return Ok(Command::CheckConfig(PathBuf::from(file)));
        }
        Some("demo") => {
            args.next();
            "demo"
        }
        _ => "run",
    };
    let mut flags = Flags::default();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (arg.clone(), None),
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--version" => return Ok(Command::Version),
            _ => {}
        }
        let mut value = || inline.clone().or_else(|| args.next()).ok_or(format!("flag {name} needs a value"));
        match name.as_str() {
            "--config.file" => flags.config_file = PathBuf::from(value()?),
            "--web.listen-address" => flags.listen_address = Some(value()?),
            "--web.external-url" => flags.external_url = Some(value()?.trim_end_matches('/').to_owned()),
            "--storage.path" => flags.storage_path = Some(PathBuf::from(value()?)),
            "--log.level" => flags.log_level = logging::parse_level(&value()?)?,
            "--log.format" => flags.log_format = value()?.parse()?,
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    Ok(if command == "demo" { Command::Demo(flags) } else { Command::Run(flags) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn flags_take_values_with_or_without_equals() {
        let Ok(Command::Run(flags)) = parse(args("--config.file=a.yml --web.listen-address 127.0.0.1:1 --log.format json"))
        else {
            panic!("not a run command");
        };
        assert_eq!(flags.config_file, PathBuf::from("a.yml"));
        assert_eq!(flags.listen_address.as_deref(), Some("127.0.0.1:1"));
        assert_eq!(flags.log_format, LogFormat::Json);
    }

    #[test]
    fn check_config_needs_exactly_one_file() {
        assert_eq!(parse(args("check-config x.yml")), Ok(Command::CheckConfig("x.yml".into())));
        assert!(parse(args("check-config")).is_err());
        assert!(parse(args("check-config a b")).is_err());
    }

    #[test]
    fn unknown_flags_and_levels_are_refused() {
        assert!(parse(args("--config.flie=x")).unwrap_err().contains("unknown argument"));
        assert!(parse(args("--log.level=loud")).unwrap_err().contains("unknown log level"));
    }
}
