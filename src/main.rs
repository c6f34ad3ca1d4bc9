//! The driftwatch binary: parses the command line, sets up logging, loads
//! the configuration and hands over to the library.

use std::process::ExitCode;

use driftwatch::cli::{self, Command, Flags};
use driftwatch::shard::Shard;
use driftwatch::{config, daemon, demo, logging};
use tokio::net::TcpListener;

const DEFAULT_LISTEN: &str = "0.0.0.0:9871";
const DEMO_LISTEN: &str = "127.0.0.1:9871";

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args().skip(1)) {
        Ok(command) => command,
        Err(problem) => {
            eprintln!("driftwatch: {problem}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Help => {
            print!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("driftwatch {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::CheckConfig(path) => check_config(&path),
        Command::Run(flags) => with_runtime(|| run(flags)),
        Command::Demo(flags) => with_runtime(|| demo(flags)),
        Command::Replay(flags) => replay(&flags),
    }
}

fn replay(flags: &cli::ReplayFlags) -> ExitCode {
    logging::init(tracing::Level::WARN, logging::LogFormat::Logfmt);
    match driftwatch::replay::run(flags) {
        Ok(summary) => {
            eprintln!(
                "replayed {} rows of {} series in {:.2}s ({:.0} rows/s): {} alerts, \
                 {} unparsable rows skipped, {} NaN or infinite values skipped",
                summary.rows,
                summary.series,
                summary.elapsed.as_secs_f64(),
                summary.rows_per_second(),
                summary.alerts,
                summary.bad_rows,
                summary.not_finite,
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("driftwatch replay: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(path: &std::path::Path) -> ExitCode {
    match config::load_file(path) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                println!("warning: {warning}");
            }
            println!("{}: valid", path.display());
            ExitCode::SUCCESS
        }
        Err(problems) => {
            print!("{problems}");
            ExitCode::FAILURE
        }
    }
}

fn with_runtime<F: std::future::Future<Output = anyhow::Result<()>>>(
    f: impl FnOnce() -> F,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("driftwatch: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(f()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("driftwatch: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(flags: Flags) -> anyhow::Result<()> {
    logging::init(flags.log_level, flags.log_format);
    let loaded = config::load_file(&flags.config_file).map_err(|problems| {
        anyhow::anyhow!(
            "invalid configuration {}:\n{problems}",
            flags.config_file.display()
        )
    })?;
    for warning in &loaded.warnings {
        tracing::warn!(problem = %warning, "Suspicious configuration");
    }
    let pod_name = std::env::var("POD_NAME").ok();
    let shard = Shard::new(flags.shard_total, flags.shard_index, pod_name.as_deref())
        .map_err(|e| anyhow::anyhow!(e))?;
    if shard.total > 1 {
        tracing::info!(
            index = shard.index,
            total = shard.total,
            "Keeping one shard of the series"
        );
    }
    let address = flags.listen_address.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listener = TcpListener::bind(address)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {address}: {e}"))?;
    let external_url = flags.external_url.clone().unwrap_or_else(|| {
        format!(
            "http://{}",
            listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default()
        )
    });
    tracing::info!(version = env!("CARGO_PKG_VERSION"), config = %flags.config_file.display(), "Starting driftwatch");
    let options = daemon::Options {
        config: loaded.config,
        config_path: Some(flags.config_file.clone()),
        external_url,
        observer: None,
        storage_path: flags.storage_path.clone(),
        shard,
    };
    daemon::run(options, listener, termination()).await
}

async fn demo(flags: Flags) -> anyhow::Result<()> {
    logging::init(flags.log_level.min(tracing::Level::WARN), flags.log_format);
    let listener = match flags.listen_address.as_deref() {
        Some(address) => TcpListener::bind(address).await?,
        // The usual port if it is free, any port otherwise: the demo must
        // start on any machine.
        None => match TcpListener::bind(DEMO_LISTEN).await {
            Ok(listener) => listener,
            Err(_) => TcpListener::bind("127.0.0.1:0").await?,
        },
    };
    demo::run(listener, termination()).await
}

/// Completes on SIGTERM or Ctrl-C.
async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
