//! driftwatch scrapes a target whose values the test scripts, and its
//! /metrics and state changes are checked against the definitions of
//! DESIGN.md, computed here independently.

mod support;

use std::time::Duration;

use support::daemon::Daemon;
use support::target::{Answer, Target, gauge};
use support::{sample_value, wait_until};

const DEADLINE: Duration = Duration::from_secs(20);

fn config(url: &str, direction: &str, window: usize, min_samples: usize) -> String {
    format!(
        "global:\n  interval: 100ms\n  timeout: 80ms\n\
         detector:\n  window: {window}\n  min_samples: {min_samples}\n  threshold: 3\n  recover_threshold: 1.5\n  recover_consecutive: 1\n  stale_after: 1h\n\
         sources:\n  - name: model\n    scrape:\n      url: {url}\n    watch:\n      - metric: model_accuracy\n        direction: {direction}\n"
    )
}

/// Mean and population standard deviation, two passes.
fn two_pass(values: &[f64]) -> (f64, f64) {
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
    (mean, var.sqrt())
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-12)
}

fn body(value: f64) -> Answer {
    // An unwatched family and a series of another model ride along, as on a
    // real model server.
    let mut text = gauge("model_accuracy", &[("model=\"a\"", value)]);
    text.push_str(&gauge("process_cpu_seconds", &[("", 1.0)]));
    Answer::Body(text)
}

/// Waits until the target has served everything and driftwatch shows the
/// last value, so the test knows exactly which samples were evaluated.
async fn wait_for_last(daemon: &Daemon, target: &Target, last: f64) -> String {
    wait_until("the script to be served", DEADLINE, || async {
        (target.queued() == 0).then_some(())
    })
    .await;
    wait_until(
        "driftwatch to evaluate the last sample",
        DEADLINE,
        || async {
            let metrics = daemon.metrics().await;
            let value = sample_value(&metrics, "driftwatch_series_last_value", &[("model", "a")])?;
            (value == last).then_some(metrics)
        },
    )
    .await
}

#[tokio::test]
async fn exported_zscore_and_baseline_match_the_definition() {
    let target = Target::start().await;
    let values: Vec<f64> = (0..40)
        .map(|i| 0.9 + 0.01 * (i as f64 * 0.7).sin())
        .collect();
    target.push(values.iter().map(|v| body(*v)));
    let daemon = Daemon::start(&config(&target.url, "lower_is_worse", 20, 10)).await;

    let last = *values.last().unwrap();
    let metrics = wait_for_last(&daemon, &target, last).await;
    assert!(target.served().len() >= values.len());

    // The baseline of the last sample is the 20 samples before it.
    let baseline = &values[values.len() - 21..values.len() - 1];
    let (mean, stddev) = two_pass(baseline);
    let z = (last - mean) / stddev;
    let labels = [
        ("source", "model"),
        ("metric", "model_accuracy"),
        ("model", "a"),
    ];
    let got = |name| {
        sample_value(&metrics, name, &labels)
            .unwrap_or_else(|| panic!("{name} missing:\n{metrics}"))
    };
    assert!(
        close(got("driftwatch_series_zscore"), z),
        "z {} != {z}",
        got("driftwatch_series_zscore")
    );
    assert!(close(got("driftwatch_series_baseline_mean"), mean));
    assert!(close(got("driftwatch_series_baseline_stddev"), stddev));
    assert_eq!(got("driftwatch_series_window_samples"), 20.0);
    assert_eq!(got("driftwatch_series_degraded"), 0.0);
    let evidence = got("driftwatch_series_evidence");
    let want = ewma_zscore(&values, 20, 10);
    assert!(
        (evidence - want).abs() < 1e-5,
        "evidence {evidence} != {want}"
    );
    assert_eq!(daemon.transitions(), vec![("learning", "ok")]);
    daemon.shutdown().await;
}

/// The default accumulated statistic after the last of `values`: the EWMA
/// (λ 0.15) of every verdict's z, clipped to the threshold of 3, over its
/// in-control standard deviation. No sample here breaches, so each one
/// entered the baseline.
fn ewma_zscore(values: &[f64], window: usize, min_samples: usize) -> f64 {
    let lambda: f64 = 0.15;
    let spread = (lambda / (2.0 - lambda)).sqrt();
    let mut e = 0.0;
    for i in min_samples..values.len() {
        let (mean, stddev) = two_pass(&values[i.saturating_sub(window)..i]);
        let z = ((values[i] - mean) / stddev).clamp(-3.0, 3.0);
        e = (1.0 - lambda) * e + lambda * z / spread;
    }
    e
}

#[tokio::test]
async fn upward_jump_is_not_a_degradation_but_a_drop_is_and_recovery_follows_hysteresis() {
    let target = Target::start().await;
    let mut baseline: Vec<f64> = (0..20)
        .map(|i| if i % 2 == 0 { 0.90 } else { 0.91 })
        .collect();
    let jump = 0.95;
    target.push(baseline.iter().map(|v| body(*v)));
    target.push([body(jump)]);
    let daemon = Daemon::start(&config(&target.url, "lower_is_worse", 20, 10)).await;
    wait_for_last(&daemon, &target, jump).await;
    assert_eq!(
        daemon.transitions(),
        vec![("learning", "ok")],
        "an upward jump of an accuracy degraded it"
    );

    // The jump was healthy, so it entered the baseline.
    baseline.push(jump);
    let (mean, stddev) = two_pass(&baseline[baseline.len() - 20..]);
    let drop = mean - 10.0 * stddev;
    let between = mean - 2.0 * stddev; // worse than recover_threshold, better than threshold
    let healthy = mean;
    target.push([body(drop), body(between)]);
    wait_for_last(&daemon, &target, between).await;
    assert_eq!(
        daemon.transitions(),
        vec![("learning", "ok"), ("ok", "degraded")]
    );
    let alerts = support::get_text(&format!("{}/api/v1/alerts", daemon.base_url))
        .await
        .unwrap();
    assert!(alerts.contains("\"state\":\"degraded\""), "{alerts}");

    target.push([body(healthy)]);
    let metrics = wait_for_last(&daemon, &target, healthy).await;
    assert_eq!(
        daemon.transitions(),
        vec![("learning", "ok"), ("ok", "degraded"), ("degraded", "ok")]
    );
    let recovered = daemon.changes.lock().unwrap().last().cloned().unwrap();
    assert_eq!(recovered.value, healthy, "recovered on the wrong sample");
    assert_eq!(
        sample_value(&metrics, "driftwatch_series_degraded", &[("model", "a")]),
        Some(0.0)
    );
    daemon.shutdown().await;
}

#[tokio::test]
async fn not_finite_samples_are_counted_and_skipped() {
    let target = Target::start().await;
    let values = [0.5, 0.6, f64::NAN, 0.7, f64::INFINITY, 0.8];
    target.push(values.iter().map(|v| {
        let text = format!(
            "model_accuracy{{model=\"a\"}} {}\n",
            match *v {
                v if v.is_nan() => "NaN".to_owned(),
                v if v.is_infinite() => "+Inf".to_owned(),
                v => v.to_string(),
            }
        );
        Answer::Body(text)
    }));
    let daemon = Daemon::start(&config(&target.url, "both", 10, 3)).await;
    let metrics = wait_for_last(&daemon, &target, 0.8).await;
    assert_eq!(
        sample_value(
            &metrics,
            "driftwatch_samples_skipped_total",
            &[("reason", "not_finite")]
        ),
        Some(2.0)
    );
    // The baseline of 0.8 holds the three finite samples before it.
    assert_eq!(
        sample_value(
            &metrics,
            "driftwatch_series_window_samples",
            &[("model", "a")]
        ),
        Some(3.0)
    );
    daemon.shutdown().await;
}

#[tokio::test]
async fn an_outage_keeps_the_series_and_its_alert_and_only_a_fetch_without_it_drops_it() {
    let target = Target::start().await;
    let baseline: Vec<f64> = (0..10).map(|i| 0.90 + 0.01 * f64::from(i % 2)).collect();
    target.push(baseline.iter().map(|v| body(*v)));
    target.push([body(0.5)]);
    let yaml = config(&target.url, "lower_is_worse", 10, 5)
        .replace("stale_after: 1h", "stale_after: 300ms");
    let daemon = Daemon::start(&yaml).await;
    wait_for_last(&daemon, &target, 0.5).await;
    assert_eq!(
        daemon.transitions(),
        vec![("learning", "ok"), ("ok", "degraded")]
    );

    // The target now fails (the default answer once the script is served)
    // for many times stale_after.
    let metrics = wait_until("ten failed fetches", DEADLINE, || async {
        let metrics = daemon.metrics().await;
        (support::failed_fetches(&metrics, "model") >= 10.0).then_some(metrics)
    })
    .await;
    assert_eq!(
        sample_value(&metrics, "driftwatch_source_up", &[("source", "model")]),
        Some(0.0)
    );
    assert_eq!(
        sample_value(&metrics, "driftwatch_series_degraded", &[("model", "a")]),
        Some(1.0),
        "an outage dropped the series or resolved its alert"
    );
    assert_eq!(
        daemon.transitions(),
        vec![("learning", "ok"), ("ok", "degraded")]
    );

    // A fetch that succeeds without the series: it was last seen long
    // ago, so it goes, and its alert is resolved.
    target.set_fallback(Answer::Body(gauge(
        "model_accuracy",
        &[("model=\"b\"", 0.9)],
    )));
    wait_until("the series to be dropped", DEADLINE, || async {
        let metrics = daemon.metrics().await;
        sample_value(&metrics, "driftwatch_series_degraded", &[("model", "a")])
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(
        daemon.transitions(),
        vec![
            ("learning", "ok"),
            ("ok", "degraded"),
            ("degraded", "learning")
        ]
    );
    daemon.shutdown().await;
}
