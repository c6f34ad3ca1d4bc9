//! Restarts with `--storage.path`: baselines, states and alerts come back,
//! nothing already announced is announced again, and a snapshot that cannot
//! be read is set aside without stopping the daemon.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::alertmanager::Alertmanager;
use support::target::{Answer, Target, gauge};
use support::{ChildGuard, free_port, get_text, start_binary_with, wait_until};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const DEADLINE: Duration = Duration::from_secs(20);

fn body(value: f64) -> Answer {
    Answer::Body(gauge("model_accuracy", &[("model=\"fraud\"", value)]))
}

fn config(target: &str, alertmanager: &str, webhook: &str) -> String {
    format!(
        "global:\n  interval: 100ms\n  timeout: 80ms\n  snapshot_interval: 300ms\n\
         detector:\n  window: 200\n  min_samples: 10\n  direction: lower_is_worse\n\
         \x20 relearn_after: 0s\n  recover_consecutive: 1\n\
         sources:\n  - name: model\n    scrape: {{url: '{target}'}}\n    watch: [{{metric: model_accuracy}}]\n\
         alerting:\n  alertmanagers: [{{url: '{alertmanager}'}}]\n  resend_interval: 200ms\n\
         webhooks:\n  - {{name: retrain, url: '{webhook}/hook', events: [degraded, recovered], \
         min_interval: 0s}}\n"
    )
}

struct Run {
    port: u16,
    child: ChildGuard,
}

impl Run {
    fn start(dir: &Path, port: u16) -> Run {
        let flags = [format!("--storage.path={}", dir.join("state").display())];
        let child = start_binary_with(&dir.join("driftwatch.yml"), &dir.join("log"), port, &flags);
        Run { port, child }
    }

    async fn series(&self) -> Option<Value> {
        let text = get_text(&format!("http://127.0.0.1:{}/api/v1/series", self.port)).await?;
        let body: Value = serde_json::from_str(&text).ok()?;
        body["data"].as_array()?.first().cloned()
    }

    /// Sends `signal` and waits for the process to end, within `bound`.
    fn stop(mut self, signal: &str, bound: Duration) {
        let pid = self.child.child.id().to_string();
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} failed");
        let give_up = std::time::Instant::now() + bound;
        loop {
            if self.child.child.try_wait().unwrap().is_some() {
                return;
            }
            assert!(
                std::time::Instant::now() < give_up,
                "driftwatch still running after {bound:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

async fn webhook_events(server: &MockServer) -> Vec<String> {
    let requests = server.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter_map(|v| v["event"].as_str().map(str::to_owned))
        .collect()
}

async fn firing_starts_at(alertmanager: &Alertmanager) -> Option<String> {
    let alerts = alertmanager.alerts().await?;
    let alert = alerts.iter().find(|a| a["status"]["state"] == "active")?;
    alert["startsAt"].as_str().map(str::to_owned)
}

async fn restart_keeps_state_and_announces_nothing_again(signal: &str) {
    let target = Target::start().await;
    target.set_fallback(body(0.9));
    let alertmanager = Alertmanager::start().await;
    let webhook = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&webhook)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(&target.url, &alertmanager.url, &webhook.uri());
    std::fs::write(dir.path().join("driftwatch.yml"), yaml).unwrap();
    let port = free_port();

    // Learn a baseline that varies, then degrade.
    let values: Vec<f64> = (0..30)
        .map(|i| 0.9 + 0.005 * ((i % 5) as f64 - 2.0))
        .collect();
    target.push(values.iter().map(|v| body(*v)));
    let first = Run::start(dir.path(), port);
    wait_until("the baseline to fill", DEADLINE, || async {
        let series = first.series().await?;
        (series["window_samples"].as_u64()? >= 25).then_some(())
    })
    .await;
    target.set_fallback(body(0.5));
    let before = wait_until(
        "the series to degrade and its alert to arrive",
        DEADLINE,
        || async {
            let series = first.series().await?;
            let starts_at = firing_starts_at(&alertmanager).await?;
            let announced = webhook_events(&webhook).await == ["degraded"];
            (series["state"] == "degraded" && announced).then_some((series, starts_at))
        },
    )
    .await;
    // Let a snapshot after the degradation land before a kill -9.
    tokio::time::sleep(Duration::from_millis(700)).await;
    first.stop(signal, Duration::from_secs(12));

    let second = Run::start(dir.path(), port);
    let after = wait_until("the restored series", Duration::from_secs(5), || async {
        let series = second.series().await?;
        (series["value"].as_f64()? == 0.5).then_some(series)
    })
    .await;
    let (series, starts_at) = before;
    assert_eq!(after["state"], "degraded", "{after}");
    assert_eq!(
        after["since"], series["since"],
        "the incident start changed"
    );
    assert_eq!(
        after["window_samples"], series["window_samples"],
        "the baseline changed"
    );
    assert_eq!(after["mean"], series["mean"]);

    // Alertmanager keeps the original start; the webhook heard nothing new.
    let resent = wait_until(
        "the alert to be resent by the new process",
        DEADLINE,
        || async {
            let requests = get_text(&format!("http://127.0.0.1:{port}/metrics")).await?;
            let sent = support::sample_value(
                &requests,
                "driftwatch_notifications_total",
                &[("receiver", &alertmanager.url), ("result", "success")],
            )?;
            (sent >= 2.0).then_some(())
        },
    )
    .await;
    let () = resent;
    assert_eq!(firing_starts_at(&alertmanager).await, Some(starts_at));
    assert_eq!(
        webhook_events(&webhook).await,
        ["degraded"],
        "the restart re-announced"
    );

    // A recovery after the restart is announced as usual.
    target.set_fallback(body(0.9));
    wait_until("the recovery to reach the webhook", DEADLINE, || async {
        (webhook_events(&webhook).await == ["degraded", "recovered"]).then_some(())
    })
    .await;
    second.stop("-TERM", Duration::from_secs(12));
}

#[tokio::test]
async fn sigterm_and_restart_keep_baselines_states_and_alerts() {
    restart_keeps_state_and_announces_nothing_again("-TERM").await;
}

#[tokio::test]
async fn kill_9_and_restart_carry_on_from_the_last_snapshot() {
    restart_keeps_state_and_announces_nothing_again("-KILL").await;
}

#[tokio::test]
async fn unreadable_snapshots_are_set_aside_and_the_daemon_starts_fresh() {
    let target = Target::start().await;
    target.set_fallback(body(0.9));
    let mut future_version = b"DRIFTWCH".to_vec();
    future_version.extend_from_slice(&99u32.to_le_bytes());
    future_version.extend_from_slice(&[0; 8]);
    let cases: [(&str, Vec<u8>); 4] = [
        ("empty", Vec::new()),
        ("corrupt", b"{\"this is\": \"not a snapshot\"}".to_vec()),
        ("truncated", b"DRIFTWCH\x01\x00\x00\x00\x07\x00".to_vec()),
        ("future", future_version),
    ];
    for (name, bytes) in cases {
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!(
            "global: {{interval: 100ms, timeout: 80ms}}\nsources:\n  - name: model\n    \
             scrape: {{url: '{}'}}\n    watch: [{{metric: model_accuracy}}]\n",
            target.url
        );
        std::fs::write(dir.path().join("driftwatch.yml"), yaml).unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        std::fs::write(state.join("driftwatch.snapshot"), bytes).unwrap();
        let run = Run::start(dir.path(), free_port());
        wait_until(
            &format!("{name}: the daemon to watch its series"),
            DEADLINE,
            || async { run.series().await.map(|_| ()) },
        )
        .await;
        assert!(
            state.join("driftwatch.snapshot.unreadable").exists(),
            "{name}: not set aside"
        );
        let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
        let lines = log
            .lines()
            .filter(|l| l.contains("Snapshot unreadable"))
            .count();
        assert_eq!(lines, 1, "{name}:\n{log}");
        // The daemon writes a good snapshot in its place at shutdown.
        run.stop("-TERM", Duration::from_secs(12));
        assert!(
            state.join("driftwatch.snapshot").exists(),
            "{name}: no new snapshot"
        );
    }
}
