//! A real Alertmanager (Debian's `prometheus-alertmanager`) on a loopback
//! port with its own storage folder and clustering off, which can be
//! stopped and started again on the same port.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::{ChildGuard, free_port, require_program, spawn_logged, wait_until};

/// A routing tree that accepts every alert and sends it nowhere.
const CONFIG: &str = "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n";

pub struct Alertmanager {
    pub url: String,
    port: u16,
    program: String,
    dir: tempfile::TempDir,
    child: Option<ChildGuard>,
}

impl Alertmanager {
    /// Starts Alertmanager on a free port and waits until it is ready.
    pub async fn start() -> Alertmanager {
        let program = require_program("prometheus-alertmanager", "prometheus-alertmanager");
        let dir = tempfile::tempdir().expect("temp dir for Alertmanager");
        std::fs::write(dir.path().join("alertmanager.yml"), CONFIG)
            .expect("writing alertmanager.yml");
        let port = free_port();
        let mut alertmanager = Alertmanager {
            url: format!("http://127.0.0.1:{port}"),
            port,
            program,
            dir,
            child: None,
        };
        alertmanager.resume().await;
        alertmanager
    }

    /// Stops the process; the port stays this Alertmanager's to resume on.
    pub fn stop(&mut self) {
        self.child = None;
    }

    /// Starts the process again on the same port, with empty storage, as an
    /// Alertmanager that lost its state in a restart.
    pub async fn resume(&mut self) {
        let storage: PathBuf = self.dir.path().join(format!("data-{}", fastrand::u32(..)));
        let args = vec![
            format!(
                "--config.file={}",
                self.dir.path().join("alertmanager.yml").display()
            ),
            format!("--storage.path={}", storage.display()),
            format!("--web.listen-address=127.0.0.1:{}", self.port),
            "--cluster.listen-address=".to_owned(),
        ];
        self.child = Some(spawn_logged(
            "alertmanager",
            &self.program,
            &args,
            self.dir.path(),
        ));
        let ready = format!("{}/-/ready", self.url);
        wait_until("Alertmanager to be ready", Duration::from_secs(30), || {
            super::get_text(&ready)
        })
        .await;
    }

    /// The alerts Alertmanager holds now (its API leaves out resolved ones).
    pub async fn alerts(&self) -> Option<Vec<Value>> {
        let body = super::get_text(&format!("{}/api/v2/alerts", self.url)).await?;
        serde_json::from_str::<Value>(&body)
            .ok()?
            .as_array()
            .cloned()
    }

    /// Its log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("alertmanager.log")).unwrap_or_default()
    }
}
