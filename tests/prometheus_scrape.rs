//! A real Prometheus scrapes driftwatch, and promtool lints its output:
//! what we export is what the Prometheus ecosystem accepts.

mod support;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::daemon::Daemon;
use support::prometheus::Prometheus;
use support::target::{Answer, Target, gauge};
use support::{require_program, wait_until};

fn config(url: &str) -> String {
    format!(
        "global:\n  interval: 200ms\n  timeout: 150ms\n\
         detector:\n  window: 10\n  min_samples: 3\n\
         sources:\n  - name: fraud\n    scrape:\n      url: {url}\n    watch:\n      - metric: model_accuracy\n        direction: lower_is_worse\n"
    )
}

async fn started_daemon() -> (Target, Daemon) {
    let target = Target::start().await;
    // Labels that need escaping and one that clashes with ours.
    let labels = r#"model="fr\"aud",path="C:\\models",source="upstream""#;
    target.push(
        (0..5).map(|i| Answer::Body(gauge("model_accuracy", &[(labels, 0.9 + i as f64 * 0.001)]))),
    );
    target.set_fallback(Answer::Body(gauge("model_accuracy", &[(labels, 0.9)])));
    let daemon = Daemon::start(&config(&target.url)).await;
    let url = format!("{}/metrics", daemon.base_url);
    wait_until("a z-score on /metrics", Duration::from_secs(20), || async {
        support::get_text(&url)
            .await
            .filter(|m| m.contains("driftwatch_series_zscore{"))
    })
    .await;
    (target, daemon)
}

#[tokio::test]
async fn prometheus_scrapes_driftwatch_and_queries_its_zscores() {
    let (_target, daemon) = started_daemon().await;
    let address = daemon.base_url.trim_start_matches("http://").to_owned();
    let prometheus = Prometheus::start(&[address], "1s", &[]).await;

    let up = wait_until(
        "Prometheus to scrape driftwatch",
        Duration::from_secs(30),
        || async {
            let result = prometheus.query("up{job=\"driftwatch\"}").await?;
            let value = result.first()?["value"][1].as_str()?.to_owned();
            (value == "1").then_some(value)
        },
    )
    .await;
    assert_eq!(up, "1");

    let series = wait_until(
        "driftwatch_series_zscore in Prometheus",
        Duration::from_secs(30),
        || async {
            prometheus
                .query("driftwatch_series_zscore")
                .await
                .filter(|r| !r.is_empty())
        },
    )
    .await;
    assert_eq!(series.len(), 1, "{series:?}");
    let labels = &series[0]["metric"];
    assert_eq!(labels["source"], "fraud");
    assert_eq!(labels["metric"], "model_accuracy");
    assert_eq!(labels["model"], "fr\"aud");
    assert_eq!(labels["path"], "C:\\models");
    assert_eq!(labels["exported_source"], "upstream");
    daemon.shutdown().await;
}

#[tokio::test]
async fn promtool_accepts_the_exposition() {
    let (_target, daemon) = started_daemon().await;
    promtool_check(&daemon.metrics().await);
    daemon.shutdown().await;
}

#[tokio::test]
async fn gzip_is_served_when_asked_for_and_holds_the_same_exposition() {
    let (_target, daemon) = started_daemon().await;
    let plain = daemon.metrics().await;
    let text = gzip_metrics(&daemon).await;

    // Values move between the two fetches (scrape durations); the
    // series and their order do not.
    let series = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| {
                l.rsplit_once(' ')
                    .map_or(l, |(series, _)| series)
                    .to_owned()
            })
            .collect()
    };
    assert_eq!(series(&text), series(&plain));
    promtool_check(&text);
    daemon.shutdown().await;
}

#[tokio::test]
async fn a_large_exposition_comes_whole_plain_and_gzip() {
    // More series than one hold of a source's lock renders, and more text
    // than one flush to the gzip encoder.
    const SERIES: usize = 10_000;
    let target = Target::start().await;
    let labels: Vec<String> = (0..SERIES).map(|i| format!("model=\"m{i}\"")).collect();
    let samples: Vec<(&str, f64)> = labels.iter().map(|l| (l.as_str(), 0.9)).collect();
    target.set_fallback(Answer::Body(gauge("model_accuracy", &samples)));
    let daemon = Daemon::start(&config(&target.url)).await;
    let plain = wait_until(
        "every series on /metrics",
        Duration::from_secs(30),
        || async {
            let metrics = support::get_text(&format!("{}/metrics", daemon.base_url)).await?;
            let tracked = support::sample_value(&metrics, "driftwatch_series_tracked", &[])?;
            (tracked == SERIES as f64).then_some(metrics)
        },
    )
    .await;
    let gzip = gzip_metrics(&daemon).await;

    let degraded = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("driftwatch_series_degraded{"))
            .count()
    };
    assert_eq!(degraded(&plain), SERIES);
    assert_eq!(degraded(&gzip), SERIES);
    promtool_check(&gzip);
    daemon.shutdown().await;
}

/// GETs /metrics asking for gzip, checks it came compressed, and inflates it.
async fn gzip_metrics(daemon: &Daemon) -> String {
    // A client that leaves the body as it came, so the test sees the gzip.
    let raw = driftwatch::daemon::client_builder()
        .no_gzip()
        .build()
        .unwrap();
    let response = raw
        .get(format!("{}/metrics", daemon.base_url))
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-encoding"], "gzip");
    let compressed = response.bytes().await.unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_string(&mut text)
        .expect("a gzip body");
    assert!(compressed.len() < text.len());
    text
}

/// Fails the test unless `promtool check metrics` accepts `metrics` silently.
fn promtool_check(metrics: &str) {
    let promtool = require_program("promtool", "prometheus");
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && report.trim().is_empty(),
        "promtool check metrics:\n{report}\n---\n{metrics}"
    );
}

#[tokio::test]
async fn openmetrics_is_served_when_asked_for() {
    let (_target, daemon) = started_daemon().await;
    let response = crate::support::client()
        .get(format!("{}/metrics", daemon.base_url))
        .header("Accept", "application/openmetrics-text;version=1.0.0")
        .send()
        .await
        .unwrap();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.text().await.unwrap();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(body.ends_with("# EOF\n"));
    assert!(body.contains("# TYPE driftwatch_source_scrapes counter\n"));
    assert!(body.contains("driftwatch_source_scrapes_total{source=\"fraud\",result=\"success\"}"));
    daemon.shutdown().await;
}
