//! driftwatch started in-process on a loopback port, as a user would run
//! it, with every state change recorded for the test to inspect.

use std::sync::{Arc, Mutex};

use driftwatch::config;
use driftwatch::daemon::{self, Options};
use driftwatch::engine::StateChange;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct Daemon {
    pub base_url: String,
    pub changes: Arc<Mutex<Vec<StateChange>>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Daemon {
    /// Starts driftwatch with the configuration `yaml`, which must be valid.
    pub async fn start(yaml: &str) -> Daemon {
        Self::start_with_path(yaml, None).await
    }

    /// As `start`, with a file that reloads read.
    pub async fn start_with_path(yaml: &str, path: Option<std::path::PathBuf>) -> Daemon {
        let loaded = match config::parse_str(yaml, "test.yml") {
            Ok(loaded) => loaded,
            Err(problems) => panic!("test configuration is invalid:\n{problems}"),
        };
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding driftwatch");
        let base_url = format!(
            "http://{}",
            listener.local_addr().expect("driftwatch address")
        );
        let changes = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&changes);
        let options = Options {
            config: loaded.config,
            config_path: path,
            external_url: base_url.clone(),
            observer: Some(Arc::new(move |change: &StateChange| {
                recorded.lock().unwrap().push(change.clone());
            })),
            storage_path: None,
            shard: driftwatch::shard::Shard::ALL,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(daemon::run(options, listener, async {
            let _ = stopped.await;
        }));
        Daemon {
            base_url,
            changes,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn metrics(&self) -> String {
        super::get_text(&format!("{}/metrics", self.base_url))
            .await
            .expect("GET /metrics")
    }

    /// The (from, to) pairs of every state change so far.
    pub fn transitions(&self) -> Vec<(&'static str, &'static str)> {
        self.changes
            .lock()
            .unwrap()
            .iter()
            .map(|c| (c.from.as_str(), c.to.as_str()))
            .collect()
    }

    /// Stops the daemon and waits for it to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("daemon task panicked")
                .expect("daemon failed");
        }
    }
}
