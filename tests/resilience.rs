//! Reloads, baseline resets and limits: the configuration changes under a
//! running driftwatch, an operator resets baselines after a retrain, and
//! targets send more than the process should hold.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::daemon::Daemon;
use support::target::{Answer, Target, gauge};
use support::{client, free_port, get_text, sample_value, start_binary, wait_until};

const DEADLINE: Duration = Duration::from_secs(20);

fn source(name: &str, url: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    scrape: {{url: '{url}'}}\n{extra}    watch:\n      - metric: model_accuracy\n"
    )
}

fn config(sources: &[String]) -> String {
    format!(
        "global:\n  interval: 100ms\n  timeout: 80ms\ndetector:\n  window: 1000\n  min_samples: 5\n\
         sources:\n{}",
        sources.concat()
    )
}

async fn target(models: &[(&str, f64)]) -> Target {
    let target = Target::start().await;
    let labels: Vec<(String, f64)> = models
        .iter()
        .map(|(m, v)| (format!("model=\"{m}\""), *v))
        .collect();
    let refs: Vec<(&str, f64)> = labels.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    target.set_fallback(Answer::Body(gauge("model_accuracy", &refs)));
    target
}

fn window(metrics: &str, source: &str) -> Option<f64> {
    sample_value(
        metrics,
        "driftwatch_series_window_samples",
        &[("source", source)],
    )
}

async fn post(url: &str) -> (u16, String) {
    let response = client().post(url).send().await.expect("POST");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn reload_keeps_unchanged_sources_applies_changes_and_refuses_a_broken_file() {
    let (kept, changed, removed, added) = (
        target(&[("a", 0.9)]).await,
        target(&[("b", 0.9)]).await,
        target(&[("c", 0.9)]).await,
        target(&[("d", 0.9)]).await,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("driftwatch.yml");
    let before = config(&[
        source("kept", &kept.url, ""),
        source("changed", &changed.url, ""),
        source("removed", &removed.url, ""),
    ]);
    std::fs::write(&path, &before).unwrap();
    let daemon = Daemon::start_with_path(&before, Some(path.clone())).await;
    let metrics_url = format!("{}/metrics", daemon.base_url);
    let reload_url = format!("{}/-/reload", daemon.base_url);

    wait_until("every source to learn 20 samples", DEADLINE, || async {
        let metrics = get_text(&metrics_url).await?;
        ["kept", "changed", "removed"]
            .iter()
            .all(|s| window(&metrics, s).is_some_and(|n| n >= 20.0))
            .then_some(())
    })
    .await;

    // kept: the same; changed: another interval; removed: gone; added: new.
    let after = config(&[
        source("kept", &kept.url, ""),
        source("changed", &changed.url, "    interval: 150ms\n"),
        source("added", &added.url, ""),
    ]);
    std::fs::write(&path, &after).unwrap();
    let learned_before = window(&get_text(&metrics_url).await.unwrap(), "kept").unwrap();
    let (status, body) = post(&reload_url).await;
    assert_eq!(status, 200, "{body}");
    let metrics = get_text(&metrics_url).await.unwrap();
    assert!(
        window(&metrics, "kept").unwrap() >= learned_before,
        "kept source lost its window"
    );
    assert!(
        window(&metrics, "changed").is_none_or(|n| n < 20.0),
        "changed source kept its window"
    );
    assert_eq!(
        window(&metrics, "removed"),
        None,
        "removed source still exported"
    );
    wait_until("the added source to be watched", DEADLINE, || async {
        window(&get_text(&metrics_url).await?, "added").map(|_| ())
    })
    .await;
    assert_eq!(
        sample_value(&metrics, "driftwatch_config_last_reload_successful", &[]),
        Some(1.0)
    );

    // A broken file changes nothing and says why, with places.
    std::fs::write(&path, after.replace("interval: 150ms", "interval: fast")).unwrap();
    let (status, body) = post(&reload_url).await;
    assert_eq!(status, 400);
    assert!(body.contains(":14:15: sources[1].interval:"), "{body}");
    let kept_now = window(&get_text(&metrics_url).await.unwrap(), "kept").unwrap();
    wait_until(
        "the old configuration to keep running",
        DEADLINE,
        || async {
            let metrics = get_text(&metrics_url).await?;
            let failed = sample_value(&metrics, "driftwatch_config_last_reload_successful", &[]);
            (failed == Some(0.0) && window(&metrics, "kept")? > kept_now).then_some(())
        },
    )
    .await;
    daemon.shutdown().await;
}

#[tokio::test]
async fn sighup_reloads_the_running_binary() {
    let (first, second) = (target(&[("a", 0.9)]).await, target(&[("b", 0.9)]).await);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("driftwatch.yml");
    std::fs::write(&path, config(&[source("first", &first.url, "")])).unwrap();
    let port = free_port();
    let daemon = start_binary(&path, &dir.path().join("log"), port);
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    wait_until("the first source", DEADLINE, || async {
        window(&get_text(&metrics_url).await?, "first").map(|_| ())
    })
    .await;

    let both = config(&[
        source("first", &first.url, ""),
        source("second", &second.url, ""),
    ]);
    std::fs::write(&path, both).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &daemon.child.id().to_string()])
        .status()
        .expect("running kill");
    assert!(status.success());
    wait_until("the second source after SIGHUP", DEADLINE, || async {
        window(&get_text(&metrics_url).await?, "second").map(|_| ())
    })
    .await;
}

fn series_record<'a>(records: &'a [Value], model: &str) -> Option<&'a Value> {
    records.iter().find(|r| r["labels"]["model"] == model)
}

async fn records(daemon: &Daemon) -> Vec<Value> {
    let text = get_text(&format!("{}/api/v1/series", daemon.base_url))
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    body["data"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn baseline_reset_relearns_the_selected_series_and_resolves_their_incident() {
    let model = target(&[("a", 0.9), ("b", 0.9)]).await;
    let yaml = config(&[source("models", &model.url, "")]).replace(
        "  window: 1000\n",
        "  window: 1000\n  direction: lower_is_worse\n",
    );
    let daemon = Daemon::start(&yaml).await;
    let learned = |n: u64| {
        let daemon = &daemon;
        move || async move {
            let records = records(daemon).await;
            let all = ["a", "b"].iter().all(|m| {
                series_record(&records, m).is_some_and(|r| r["window_samples"].as_u64() >= Some(n))
            });
            all.then_some(records)
        }
    };
    wait_until("both series to learn", DEADLINE, learned(10)).await;

    // Model a drops and is degraded; then it is retrained and reset.
    model.set_fallback(Answer::Body(gauge(
        "model_accuracy",
        &[("model=\"a\"", 0.5), ("model=\"b\"", 0.9)],
    )));
    wait_until("model a to be degraded", DEADLINE, || async {
        let records = records(&daemon).await;
        (series_record(&records, "a")?["state"] == "degraded").then_some(())
    })
    .await;
    let before = records(&daemon).await;
    let b_before = series_record(&before, "b").unwrap()["window_samples"]
        .as_u64()
        .unwrap();

    let url = format!(
        "{}/api/v1/baseline/reset?match[]=model_accuracy{{model=%22a%22}}",
        daemon.base_url
    );
    let (status, body) = post(&url).await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["data"]["reset"], 1);
    assert!(
        daemon.transitions().contains(&("degraded", "learning")),
        "{:?}",
        daemon.transitions()
    );
    let after = records(&daemon).await;
    let a = series_record(&after, "a").unwrap();
    assert!(
        a["window_samples"].as_u64().unwrap() < 5,
        "a kept its baseline: {a}"
    );
    let b = series_record(&after, "b").unwrap();
    assert!(
        b["window_samples"].as_u64().unwrap() >= b_before,
        "b was reset too: {b}"
    );

    // The new level is learned as normal.
    wait_until("model a to be ok at its new level", DEADLINE, || async {
        let records = records(&daemon).await;
        (series_record(&records, "a")?["state"] == "ok").then_some(())
    })
    .await;

    for (query, words) in [
        ("", "no match[] selector"),
        ("match[]={}", "at least one matcher"),
        ("match[]={model=~%22(%22}", "bad regular expression"),
    ] {
        let (status, body) = post(&format!(
            "{}/api/v1/baseline/reset?{query}",
            daemon.base_url
        ))
        .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(words), "{query}: {body}");
    }
    daemon.shutdown().await;
}

/// Runs the binary on `yaml` until every reason in `reasons` has been
/// counted three times; returns /metrics then and the log so far.
async fn run_until_limited(yaml: &str, reasons: &[&str]) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("driftwatch.yml");
    std::fs::write(&path, yaml).unwrap();
    let log = dir.path().join("log");
    let port = free_port();
    let _daemon = start_binary(&path, &log, port);
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let metrics = wait_until("every limit to be hit three times", DEADLINE, || async {
        let metrics = get_text(&metrics_url).await?;
        reasons
            .iter()
            .all(|reason| {
                let skipped = sample_value(
                    &metrics,
                    "driftwatch_samples_skipped_total",
                    &[("reason", reason)],
                );
                skipped.is_some_and(|n| n >= 3.0)
            })
            .then_some(metrics)
    })
    .await;
    assert!(
        get_text(&format!("http://127.0.0.1:{port}/-/healthy"))
            .await
            .is_some()
    );
    (metrics, std::fs::read_to_string(&log).unwrap())
}

fn assert_logged_once(log: &str, reasons: &[&str]) {
    for reason in reasons {
        let warnings = log
            .lines()
            .filter(|l| {
                l.contains("over a limit") && l.contains(&format!("\"reason\":\"{reason}\""))
            })
            .count();
        assert_eq!(warnings, 1, "{reason}:\n{log}");
    }
}

#[tokio::test]
async fn each_source_limit_is_counted_and_logged_once_and_the_daemon_stays_healthy() {
    let many = target(&[("a", 0.9), ("b", 0.9), ("c", 0.9), ("d", 0.9), ("e", 0.9)]).await;
    let wide = Target::start().await;
    wide.set_fallback(Answer::Body(gauge(
        "model_accuracy",
        &[("a=\"1\",b=\"2\",c=\"3\"", 0.9)],
    )));
    let long = Target::start().await;
    let value = "x".repeat(100);
    long.set_fallback(Answer::Body(gauge(
        "model_accuracy",
        &[(&format!("model=\"{value}\""), 0.9)],
    )));
    let yaml = format!(
        "global:\n  interval: 100ms\n  timeout: 80ms\nsources:\n{}{}{}",
        source("many", &many.url, "    series_limit: 3\n"),
        source("wide", &wide.url, "    label_limit: 2\n"),
        source("long", &long.url, "    label_value_length_limit: 64\n"),
    );
    let reasons = ["series_limit", "label_limit", "label_value_length_limit"];
    let (metrics, log) = run_until_limited(&yaml, &reasons).await;
    let held = |source| sample_value(&metrics, "driftwatch_source_series", &[("source", source)]);
    assert_eq!(held("many"), Some(3.0));
    assert_eq!(held("wide"), Some(0.0));
    assert_eq!(held("long"), Some(0.0));
    assert_logged_once(&log, &reasons);
}

#[tokio::test]
async fn the_total_series_limit_holds_over_all_sources() {
    let first = target(&[("a", 0.9), ("b", 0.9), ("c", 0.9), ("d", 0.9)]).await;
    let second = target(&[("e", 0.9), ("f", 0.9), ("g", 0.9), ("h", 0.9)]).await;
    let yaml = format!(
        "global:\n  interval: 100ms\n  timeout: 80ms\n  total_series_limit: 5\nsources:\n{}{}",
        source("first", &first.url, ""),
        source("second", &second.url, ""),
    );
    let (metrics, log) = run_until_limited(&yaml, &["total_series_limit"]).await;
    assert_eq!(
        sample_value(&metrics, "driftwatch_series_tracked", &[]),
        Some(5.0)
    );
    let total_warnings = log
        .lines()
        .filter(|l| l.contains("total_series_limit"))
        .count();
    assert!(
        (1..=2).contains(&total_warnings),
        "one warning per source at most:\n{log}"
    );
}
