//! A real VictoriaMetrics (Debian's `victoria-metrics`) on a free loopback
//! port with its own data folder, loaded through its import API.

use std::time::Duration;

use super::{ChildGuard, client, free_port, get_text, require_program, spawn_logged, wait_until};

pub struct VictoriaMetrics {
    pub url: String,
    _dir: tempfile::TempDir,
    _child: ChildGuard,
}

impl VictoriaMetrics {
    /// Starts VictoriaMetrics and waits until it answers. Points become
    /// visible to queries at once (no latency offset, no result cache), so
    /// a test sees exactly the data it imported.
    pub async fn start() -> VictoriaMetrics {
        let program = require_program("victoria-metrics", "victoria-metrics");
        let dir = tempfile::tempdir().expect("temp dir for VictoriaMetrics");
        let port = free_port();
        let args = vec![
            format!("-storageDataPath={}", dir.path().join("data").display()),
            format!("-httpListenAddr=127.0.0.1:{port}"),
            "-search.latencyOffset=0s".to_owned(),
            "-search.disableCache".to_owned(),
            "-retentionPeriod=10y".to_owned(),
        ];
        let child = spawn_logged("victoria-metrics", &program, &args, dir.path());
        let url = format!("http://127.0.0.1:{port}");
        let health = format!("{url}/health");
        wait_until("VictoriaMetrics to answer", Duration::from_secs(30), || {
            get_text(&health)
        })
        .await;
        VictoriaMetrics {
            url,
            _dir: dir,
            _child: child,
        }
    }

    /// Imports samples in the Prometheus text format with millisecond
    /// timestamps, and flushes them so that queries see them.
    pub async fn import(&self, exposition: String) {
        let response = client()
            .post(format!("{}/api/v1/import/prometheus", self.url))
            .body(exposition)
            .send()
            .await
            .expect("importing into VictoriaMetrics");
        assert!(
            response.status().is_success(),
            "import refused: {}",
            response.status()
        );
        let flush = format!("{}/internal/force_flush", self.url);
        get_text(&flush).await.expect("flushing VictoriaMetrics");
    }
}
