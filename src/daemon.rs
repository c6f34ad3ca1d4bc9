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
use crate::engine::{Engine, StateObserver};
use crate::http::{self, Api, ReloadRequest};
use crate::notify::Notifier;

/// How long shutdown may take to deliver what the notifier still holds.
pub const NOTIFY_DRAIN: Duration = Duration::from_secs(5);

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
    engine.apply(&config);
    tracing::info!(sources = config.sources.len(), "Configuration loaded");

    let (reload_tx, mut reload_rx) = mpsc::channel::<ReloadRequest>(1);
    let api = Arc::new(Api {
        shared: Arc::clone(engine.shared()),
        reload: reload_tx,
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
                let _ = reply.send(result);
            }
            Some(()) = hangups.recv() => {
                let _ = reload(&mut engine, &notifier, options.config_path.as_ref());
            }
        }
    }

    tracing::info!("Shutting down");
    engine.stop().await;
    notifier.shutdown(NOTIFY_DRAIN).await;
    let _ = stop_http.send(());
    let _ = server.await;
    Ok(())
}

/// Loads the file again and applies it; a bad file changes nothing.
fn reload(engine: &mut Engine, notifier: &Notifier, path: Option<&PathBuf>) -> Result<(), String> {
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
            Ok(())
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
