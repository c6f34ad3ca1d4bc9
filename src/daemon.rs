//! Wires the parts together and runs them until shutdown: the engine, the
//! notifier, the HTTP server, and reloads on SIGHUP or `POST /-/reload`.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::config::{self, Config};
use crate::engine::{Engine, Shared, StateObserver};
use crate::http::{self, Api, ReloadRequest};
use crate::notify::Notifier;
use crate::shard::Shard;
use crate::state;

/// How long shutdown may take to deliver what the notifier still holds.
pub const NOTIFY_DRAIN: Duration = Duration::from_secs(5);

/// How long shutdown waits for fetches in flight before cutting them off.
pub const FETCH_DRAIN: Duration = Duration::from_secs(2);

/// Everything `run` needs besides the listener and the shutdown signal.
pub struct Options {
    pub config: Config,
    /// Where a reload reads the configuration again; `None` refuses reloads
    /// (the demo's embedded configuration).
    pub config_path: Option<PathBuf>,
    /// The URL under which users reach this driftwatch, for links in alerts.
    pub external_url: String,
    /// Told about every state change (the demo prints them).
    pub observer: Option<StateObserver>,
    /// Where snapshots are kept (`--storage.path`); `None` keeps no state.
    pub storage_path: Option<PathBuf>,
    /// The part of the series this replica keeps.
    pub shard: Shard,
}

/// Runs the daemon on `listener` until `shutdown` completes.
pub async fn run(
    options: Options,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let client = http_client()?;
    let config = options.config;
    let notifier = Notifier::start(
        config.alerting.as_ref(),
        &config.webhooks,
        &config.global.external_labels,
        client.clone(),
    );
    let mut engine = Engine::new(
        client,
        notifier.clone(),
        options.observer,
        options.external_url,
    );
    engine.shared().set_shard(options.shard);
    if let Some(dir) = &options.storage_path {
        restore(&engine, dir);
    }
    engine.apply(&config);
    tracing::info!(sources = config.sources.len(), "Configuration loaded");
    let mut snapshots = snapshot_ticker(config.global.snapshot_interval);
    let mut writing: Option<tokio::task::JoinHandle<()>> = None;

    let (reload_tx, mut reload_rx) = mpsc::channel::<ReloadRequest>(1);
    let api = Arc::new(Api {
        shared: Arc::clone(engine.shared()),
        reload: reload_tx,
        renders: tokio::sync::Semaphore::new(http::CONCURRENT_RENDERS),
    });
    let (stop_http, http_stopped) = oneshot::channel::<()>();
    let address = listener.local_addr()?;
    let server = tokio::spawn(http::serve(listener, api, async {
        let _ = http_stopped.await;
    }));
    tracing::info!(address = %address, "Listening");

    let mut hangups = hangup_signals();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(reply) = reload_rx.recv() => {
                let result = reload(&mut engine, &notifier, options.config_path.as_ref());
                if let Ok(every) = &result {
                    snapshots = snapshot_ticker(*every);
                }
                let _ = reply.send(result.map(|_| ()));
            }
            Some(()) = hangups.recv() => {
                if let Ok(every) = reload(&mut engine, &notifier, options.config_path.as_ref()) {
                    snapshots = snapshot_ticker(every);
                }
            }
            _ = snapshots.tick(), if options.storage_path.is_some() => {
                // One write at a time: a slow disk skips snapshots rather
                // than piling writers up.
                if writing.as_ref().is_none_or(|w| w.is_finished()) {
                    let shared = Arc::clone(engine.shared());
                    let dir = options.storage_path.clone().unwrap_or_default();
                    writing = Some(tokio::task::spawn_blocking(move || snapshot(&shared, &dir)));
                }
            }
        }
    }

    // Stop fetching, then write the final state, then deliver what the
    // notifier still holds: each step bounded, so SIGTERM ends in about
    // FETCH_DRAIN + NOTIFY_DRAIN plus the time of one snapshot.
    tracing::info!("Shutting down");
    engine.stop(FETCH_DRAIN).await;
    if let Some(dir) = options.storage_path.clone() {
        if let Some(previous) = writing.take() {
            let _ = previous.await;
        }
        let shared = Arc::clone(engine.shared());
        let _ = tokio::task::spawn_blocking(move || snapshot(&shared, &dir)).await;
    }
    notifier.shutdown(NOTIFY_DRAIN).await;
    let _ = stop_http.send(());
    let _ = server.await;
    Ok(())
}

fn snapshot_ticker(every: Duration) -> tokio::time::Interval {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    ticker
}

/// Reads the snapshot in `dir` for the series to claim as they appear. An
/// unreadable one has been moved aside; the daemon starts fresh.
fn restore(engine: &Engine, dir: &std::path::Path) {
    match state::read(dir) {
        Ok(restored) => {
            tracing::info!(path = %dir.display(), series = restored.len(), "Snapshot read");
            engine.shared().set_restores(restored);
        }
        Err(e) => {
            tracing::warn!(error = %e, "Snapshot unreadable and set aside; starting fresh");
        }
    }
}

/// Writes a snapshot; runs on a blocking thread, since it takes each
/// source's lock in turn and writes to disk.
fn snapshot(shared: &Shared, dir: &std::path::Path) {
    let started = std::time::Instant::now();
    let (bytes, series) = shared.snapshot();
    match state::write(dir, &bytes) {
        Ok(()) => tracing::debug!(
            series,
            bytes = bytes.len(),
            took = ?started.elapsed(),
            "Snapshot written"
        ),
        Err(e) => tracing::warn!(path = %dir.display(), error = %e, "Writing the snapshot failed"),
    }
}

/// Loads the file again and applies it; a bad file changes nothing.
/// Returns the new snapshot interval.
fn reload(
    engine: &mut Engine,
    notifier: &Notifier,
    path: Option<&PathBuf>,
) -> Result<Duration, String> {
    let shared = Arc::clone(engine.shared());
    let Some(path) = path else {
        shared.reload_successful.store(false, Ordering::Relaxed);
        return Err(
            "this driftwatch runs an embedded configuration and has no file to reload".into(),
        );
    };
    match config::load_file(path) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                tracing::warn!(problem = %warning, "Suspicious configuration");
            }
            let config = loaded.config;
            notifier.reload(
                config.alerting.as_ref(),
                &config.webhooks,
                &config.global.external_labels,
            );
            engine.apply(&config);
            shared.reload_successful.store(true, Ordering::Relaxed);
            tracing::info!(file = %path.display(), sources = config.sources.len(), "Configuration reloaded");
            Ok(config.global.snapshot_interval)
        }
        Err(problems) => {
            shared.reload_successful.store(false, Ordering::Relaxed);
            tracing::error!(file = %path.display(), problems = %problems, "Configuration reload refused; the running one stays");
            Err(problems.to_string())
        }
    }
}

/// SIGHUP as a stream; on platforms without it, a stream that never yields.
fn hangup_signals() -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel(1);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hangup) => {
                tokio::spawn(async move {
                    while hangup.recv().await.is_some() {
                        if tx.send(()).await.is_err() {
                            return;
                        }
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "Cannot listen for SIGHUP; reload by HTTP only"),
        }
    }
    #[cfg(not(unix))]
    drop(tx);
    rx
}

/// One client for every outgoing request, with our user agent. The `ring`
/// provider is installed once for the process before the first TLS use.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(client_builder().build()?)
}

/// The settings every client of ours shares; the starting point of a
/// source's own client when it trusts its own CA.
pub fn client_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("driftwatch/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(Duration::from_secs(90))
}
