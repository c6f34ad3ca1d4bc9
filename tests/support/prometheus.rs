//! A real Prometheus (Debian's `prometheus`) on a free loopback port with its
//! own data folder, scraping the targets the test names.

use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use super::{ChildGuard, free_port, require_program, spawn_logged, wait_until};

pub struct Prometheus {
    pub url: String,
    _dir: TempDir,
    _child: ChildGuard,
}

impl Prometheus {
    /// Starts Prometheus scraping each `host:port` in `targets` every
    /// `scrape_interval`, with extra `rule_files` if given, and waits until
    /// it is ready.
    pub async fn start(
        targets: &[String],
        scrape_interval: &str,
        rule_files: &[String],
    ) -> Prometheus {
        let program = require_program("prometheus", "prometheus");
        let dir = tempfile::tempdir().expect("temp dir for Prometheus");
        let port = free_port();
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let rules: Vec<String> = rule_files.iter().map(|r| format!("'{r}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: {scrape_interval}\n  evaluation_interval: {scrape_interval}\n\
             rule_files: [{}]\nscrape_configs:\n  - job_name: driftwatch\n    honor_labels: true\n\
             \x20   static_configs:\n      - targets: [{}]\n",
            rules.join(", "),
            targets.join(", ")
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("writing prometheus.yml");
        let args = vec![
            format!("--config.file={}", config_path.display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--web.enable-lifecycle".to_owned(),
        ];
        Prometheus::launch(&program, &args, dir, port).await
    }

    /// Starts a Prometheus that scrapes nothing and holds `openmetrics` (an
    /// OpenMetrics text with timestamps in seconds, ending in `# EOF`), made
    /// into TSDB blocks by `promtool` before the server starts.
    pub async fn start_with_history(openmetrics: &str) -> Prometheus {
        let program = require_program("prometheus", "prometheus");
        let promtool = require_program("promtool", "prometheus");
        let dir = tempfile::tempdir().expect("temp dir for Prometheus");
        let data = dir.path().join("data");
        let input = dir.path().join("history.om");
        std::fs::write(&input, openmetrics).expect("writing the history");
        let output = std::process::Command::new(promtool)
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(&input)
            .arg(&data)
            .output()
            .expect("running promtool");
        assert!(
            output.status.success(),
            "promtool refused the history: {output:?}"
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, "global:\n  scrape_interval: 1m\n")
            .expect("writing prometheus.yml");
        let port = free_port();
        let args = vec![
            format!("--config.file={}", config_path.display()),
            format!("--storage.tsdb.path={}", data.display()),
            "--storage.tsdb.retention.time=10y".to_owned(),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ];
        Prometheus::launch(&program, &args, dir, port).await
    }

    /// Starts the server with `args` in `dir` and waits until it is ready.
    async fn launch(program: &str, args: &[String], dir: TempDir, port: u16) -> Prometheus {
        let child = spawn_logged("prometheus", program, args, dir.path());
        let url = format!("http://127.0.0.1:{port}");
        let ready = format!("{url}/-/ready");
        wait_until("Prometheus to be ready", Duration::from_secs(30), || {
            super::get_text(&ready)
        })
        .await;
        Prometheus {
            url,
            _dir: dir,
            _child: child,
        }
    }

    /// Runs an instant query and returns its `data.result` array.
    pub async fn query(&self, promql: &str) -> Option<Vec<Value>> {
        let response = crate::support::client()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", promql)])
            .send()
            .await
            .ok()?;
        let body: Value = serde_json::from_slice(&response.bytes().await.ok()?).ok()?;
        if body["status"] != "success" {
            return None;
        }
        body["data"]["result"].as_array().cloned()
    }
}
