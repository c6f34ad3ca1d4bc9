//! Alert delivery as users see it: a real Alertmanager receives, keeps and
//! resolves driftwatch's alerts, also across its own restart, and webhook
//! receivers that fail, refuse, hang or check signatures get what the
//! contract in DESIGN.md promises.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::Mac;
use serde_json::{Value, json};
use support::alertmanager::Alertmanager;
use support::daemon::Daemon;
use support::target::{Answer, Target, gauge};
use support::{sample_value, wait_until};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const DEADLINE: Duration = Duration::from_secs(20);
const HEALTHY: f64 = 0.905;
const DROPPED: f64 = 0.5;

/// A source scraped every 100ms whose series learn a baseline from 20
/// samples, followed by `extra` (the alerting and webhook sections).
fn config(target: &Target, extra: &str) -> String {
    let global = "global:\n  interval: 100ms\n  timeout: 80ms\n  \
                  external_labels: {cluster: test, replica: r1}\n";
    let detector = "detector:\n  window: 20\n  min_samples: 10\n  threshold: 3\n  \
                    recover_threshold: 1.5\n  recover_consecutive: 1\n  stale_after: 1h\n";
    let url = &target.url;
    let sources = format!(
        "sources:\n  - name: model\n    scrape:\n      url: {url}\n    watch:\n      \
         - metric: model_accuracy\n        direction: lower_is_worse\n"
    );
    format!("{global}{detector}{sources}{extra}")
}

/// One scrape with the accuracy of models `a` and `b`.
fn scrape(a: f64, b: f64) -> Answer {
    Answer::Body(gauge(
        "model_accuracy",
        &[("model=\"a\"", a), ("model=\"b\"", b)],
    ))
}

/// A target that serves a healthy baseline and then `then` for good.
async fn target_then(then: Answer) -> Target {
    let target = Target::start().await;
    target.push((0..20).map(|i| {
        let v = if i % 2 == 0 { 0.90 } else { 0.91 };
        scrape(v, v)
    }));
    target.set_fallback(then);
    target
}

fn notifications(metrics: &str, receiver: &str, result: &str) -> f64 {
    let labels = [("receiver", receiver), ("result", result)];
    sample_value(metrics, "driftwatch_notifications_total", &labels).unwrap_or(-1.0)
}

fn ms_of(rfc3339: &Value) -> i64 {
    let text = rfc3339
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {rfc3339}"));
    let at = humantime::parse_rfc3339_weak(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    at.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// When the daemon saw `model` go from one state to another.
fn change_at(daemon: &Daemon, model: &str, from: &str, to: &str) -> Option<i64> {
    let changes = daemon.changes.lock().unwrap();
    let wanted = format!("model=\"{model}\"");
    changes
        .iter()
        .find(|c| *c.labels == *wanted && c.from.as_str() == from && c.to.as_str() == to)
        .map(|c| c.at_ms)
}

#[tokio::test]
async fn alertmanager_receives_the_alert_and_learns_that_it_resolved() {
    let alertmanager = Alertmanager::start().await;
    let target = target_then(scrape(DROPPED, HEALTHY)).await;
    let alerting = format!(
        "alerting:\n  alertmanagers:\n    - url: {}\n  resend_interval: 10s\n  \
         labels: {{severity: page}}\n  drop_labels: [replica]\n",
        alertmanager.url
    );
    let daemon = Daemon::start(&config(&target, &alerting)).await;

    let alerts = wait_until("the alert in Alertmanager", DEADLINE, || async {
        alertmanager.alerts().await.filter(|a| !a.is_empty())
    })
    .await;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let alert = &alerts[0];
    let expected_labels = json!({
        "alertname": "ModelPerformanceDegraded",
        "cluster": "test",
        "metric": "model_accuracy",
        "model": "a",
        "severity": "page",
        "source": "model",
    });
    assert_eq!(alert["labels"], expected_labels);
    assert_eq!(alert["status"]["state"], "active");

    let annotations = &alert["annotations"];
    assert_eq!(annotations["value"], "0.5");
    let z: f64 = annotations["zscore"].as_str().unwrap().parse().unwrap();
    let mean: f64 = annotations["baseline_mean"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let stddev: f64 = annotations["baseline_stddev"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((mean - 0.905).abs() < 1e-9, "{annotations}");
    assert!((stddev - 0.005).abs() < 1e-9, "{annotations}");
    assert!(
        (z - (DROPPED - mean) / stddev).abs() < 1e-6,
        "{annotations}"
    );
    for key in ["summary", "description"] {
        assert!(
            annotations[key]
                .as_str()
                .is_some_and(|s| s.contains("model_accuracy")),
            "{key}"
        );
    }

    // startsAt is when the series degraded; a firing alert is leased for
    // 4 × resend_interval from its last send.
    let degraded_at = change_at(&daemon, "a", "ok", "degraded").expect("a degraded");
    assert_eq!(ms_of(&alert["startsAt"]), degraded_at);
    let lease = ms_of(&alert["endsAt"]) - now_ms();
    assert!(
        (25_000..=40_500).contains(&lease),
        "endsAt {}ms ahead",
        lease
    );
    let generator = alert["generatorURL"].as_str().unwrap();
    assert!(
        generator.starts_with(&format!("{}/series/", daemon.base_url)),
        "{generator}"
    );

    // Recovery: Alertmanager drops the alert from its active list long
    // before the 40s lease would have run out.
    target.set_fallback(scrape(HEALTHY, HEALTHY));
    wait_until("the alert to resolve", Duration::from_secs(15), || async {
        alertmanager.alerts().await.filter(|a| a.is_empty())
    })
    .await;
    assert!(change_at(&daemon, "a", "degraded", "ok").is_some());
    let metrics = daemon.metrics().await;
    assert!(
        notifications(&metrics, &alertmanager.url, "success") >= 2.0,
        "{metrics}"
    );
    daemon.shutdown().await;
}

#[tokio::test]
async fn an_alert_raised_while_alertmanager_is_down_arrives_once_it_is_back() {
    let mut alertmanager = Alertmanager::start().await;
    alertmanager.stop();
    let target = target_then(scrape(DROPPED, HEALTHY)).await;
    let alerting = format!(
        "alerting:\n  alertmanagers:\n    - url: {}\n  resend_interval: 1s\n",
        alertmanager.url
    );
    let daemon = Daemon::start(&config(&target, &alerting)).await;

    wait_until(
        "failed tries while Alertmanager is down",
        DEADLINE,
        || async {
            let metrics = daemon.metrics().await;
            let tries = notifications(&metrics, &alertmanager.url, "retried");
            let queued = sample_value(
                &metrics,
                "driftwatch_notification_queue_length",
                &[("receiver", &alertmanager.url)],
            );
            (tries >= 2.0 && queued == Some(1.0)).then_some(())
        },
    )
    .await;

    alertmanager.resume().await;
    let alerts = wait_until("the alert after the restart", DEADLINE, || async {
        alertmanager.alerts().await.filter(|a| !a.is_empty())
    })
    .await;
    assert_eq!(alerts[0]["labels"]["model"], "a", "{}", alertmanager.log());
    assert_eq!(alerts[0]["labels"]["replica"], "r1");
    daemon.shutdown().await;
}

async fn mock_hook(status: u16, body: &str) -> MockServer {
    let server = MockServer::start().await;
    let response = ResponseTemplate::new(status).set_body_string(body);
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

fn webhook(name: &str, server: &MockServer, extra: &str) -> String {
    format!(
        "  - name: {name}\n    url: {}/hook\n    events: [degraded, recovered]\n    \
         min_interval: 0s\n    timeout: 2s\n{extra}",
        server.uri()
    )
}

async fn requests(server: &MockServer) -> Vec<wiremock::Request> {
    server.received_requests().await.unwrap_or_default()
}

#[tokio::test]
async fn a_webhook_answering_500_twice_gets_the_event_on_the_third_try() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let target = target_then(scrape(DROPPED, HEALTHY)).await;
    let hooks = format!("webhooks:\n{}", webhook("retrain", &server, ""));
    let daemon = Daemon::start(&config(&target, &hooks)).await;

    let metrics = wait_until("delivery after two retries", DEADLINE, || async {
        let metrics = daemon.metrics().await;
        (notifications(&metrics, "retrain", "success") == 1.0).then_some(metrics)
    })
    .await;
    assert_eq!(
        notifications(&metrics, "retrain", "retried"),
        2.0,
        "{metrics}"
    );
    assert_eq!(notifications(&metrics, "retrain", "failed"), 0.0);
    let queued = sample_value(
        &metrics,
        "driftwatch_notification_queue_length",
        &[("receiver", "retrain")],
    );
    assert_eq!(queued, Some(0.0));

    let received = requests(&server).await;
    assert_eq!(received.len(), 3);
    let body: Value = received[2].body_json().expect("a JSON body");
    let degraded_at = change_at(&daemon, "a", "ok", "degraded").expect("a degraded");
    assert_eq!(body["event"], "degraded");
    assert_eq!(body["source"], "model");
    assert_eq!(body["metric"], "model_accuracy");
    assert_eq!(body["labels"], json!({"model": "a"}));
    assert_eq!(body["value"], json!(DROPPED));
    assert!(body["zscore"].as_f64().is_some_and(|z| z < -3.0), "{body}");
    assert!((body["baseline_mean"].as_f64().unwrap() - 0.905).abs() < 1e-9);
    assert_eq!(ms_of(&body["started_at"]), degraded_at);
    assert_eq!(ms_of(&body["at"]), degraded_at);
    assert_eq!(
        received[0].body, received[2].body,
        "a retry sends the same body"
    );
    daemon.shutdown().await;
}

#[tokio::test]
async fn a_webhook_answering_400_is_not_tried_again() {
    let server = mock_hook(400, "invalid payload: no field retrain_job\nsecond line").await;
    let target = target_then(scrape(DROPPED, HEALTHY)).await;
    let hooks = format!("webhooks:\n{}", webhook("retrain", &server, ""));
    let daemon = Daemon::start(&config(&target, &hooks)).await;

    let metrics = wait_until("the failure to be counted", DEADLINE, || async {
        let metrics = daemon.metrics().await;
        (notifications(&metrics, "retrain", "failed") == 1.0).then_some(metrics)
    })
    .await;
    // A retry would have been counted before the failure.
    assert_eq!(
        notifications(&metrics, "retrain", "retried"),
        0.0,
        "{metrics}"
    );
    assert_eq!(requests(&server).await.len(), 1);
    daemon.shutdown().await;
}

#[tokio::test]
async fn a_hanging_webhook_delays_neither_detection_nor_the_other_receivers() {
    let slow = MockServer::start().await;
    let hang = ResponseTemplate::new(200).set_delay(Duration::from_secs(120));
    Mock::given(method("POST"))
        .respond_with(hang)
        .mount(&slow)
        .await;
    let fast = mock_hook(200, "").await;

    // Model a degrades first; b follows while a's call to `slow` hangs.
    let target = target_then(scrape(DROPPED, HEALTHY)).await;
    let hooks = format!(
        "webhooks:\n{}{}",
        webhook("slow", &slow, "").replace("timeout: 2s", "timeout: 60s"),
        webhook("fast", &fast, "")
    );
    let daemon = Daemon::start(&config(&target, &hooks)).await;
    wait_until("slow to be called", DEADLINE, || async {
        (!requests(&slow).await.is_empty()).then_some(())
    })
    .await;

    target.set_fallback(scrape(DROPPED, DROPPED));
    wait_until("b to degrade", Duration::from_secs(5), || async {
        change_at(&daemon, "b", "ok", "degraded")
    })
    .await;
    let fast_models = wait_until("fast to hear of both", Duration::from_secs(5), || async {
        let mut models: Vec<String> = requests(&fast)
            .await
            .iter()
            .filter_map(|r| r.body_json::<Value>().ok())
            .filter_map(|b| b["labels"]["model"].as_str().map(str::to_owned))
            .collect();
        models.sort();
        (models.len() == 2).then_some(models)
    })
    .await;
    assert_eq!(fast_models, ["a", "b"]);
    let metrics = daemon.metrics().await;
    let queued = sample_value(
        &metrics,
        "driftwatch_notification_queue_length",
        &[("receiver", "slow")],
    );
    assert_eq!(queued, Some(2.0), "{metrics}");
    assert_eq!(notifications(&metrics, "slow", "success"), 0.0);

    // Shutdown gives the stuck calls its bounded drain time, not theirs.
    let started = std::time::Instant::now();
    daemon.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_pending_series_sends_nothing() {
    let server = mock_hook(200, "").await;
    let target = target_then(scrape(DROPPED, HEALTHY)).await;
    let hooks = format!("webhooks:\n{}", webhook("retrain", &server, ""));
    let yaml = config(&target, &hooks).replace("stale_after: 1h\n", "stale_after: 1h\n  for: 1h\n");
    let daemon = Daemon::start(&yaml).await;
    wait_until("a to be pending", DEADLINE, || async {
        change_at(&daemon, "a", "ok", "pending")
    })
    .await;

    // Twenty more evaluations of the breach while pending.
    let served = target.served_count();
    wait_until("more scrapes", DEADLINE, || async {
        (target.served_count() >= served + 20).then_some(())
    })
    .await;
    let metrics = daemon.metrics().await;
    assert_eq!(
        notifications(&metrics, "retrain", "success"),
        0.0,
        "{metrics}"
    );
    let queued = sample_value(
        &metrics,
        "driftwatch_notification_queue_length",
        &[("receiver", "retrain")],
    );
    assert_eq!(queued, Some(0.0));
    assert!(requests(&server).await.is_empty());
    assert_eq!(change_at(&daemon, "a", "pending", "degraded"), None);
    daemon.shutdown().await;
}

/// `sha256=<hex>` computed with the hmac and sha2 crates, independent of
/// the ring code under test.
fn expected_signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

#[tokio::test]
async fn webhook_calls_are_signed_and_a_rotated_secret_is_used_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let secret_path = dir.path().join("hmac");
    std::fs::write(&secret_path, "first-secret").unwrap();
    let server = mock_hook(200, "").await;
    let target = target_then(scrape(DROPPED, HEALTHY)).await;
    let extra = format!("    hmac_secret_file: {}\n", secret_path.display());
    let hooks = format!("webhooks:\n{}", webhook("retrain", &server, &extra));
    let daemon = Daemon::start(&config(&target, &hooks)).await;

    let degraded = wait_until("the degraded call", DEADLINE, || async {
        requests(&server).await.into_iter().next()
    })
    .await;
    let signature = degraded
        .headers
        .get("x-driftwatch-signature")
        .expect("a signature header");
    assert_eq!(
        signature.to_str().unwrap(),
        expected_signature(b"first-secret", &degraded.body)
    );

    std::fs::write(&secret_path, "the-second-secret\n").unwrap();
    target.set_fallback(scrape(HEALTHY, HEALTHY));
    let recovered = wait_until("the recovered call", DEADLINE, || async {
        requests(&server).await.into_iter().nth(1)
    })
    .await;
    assert_eq!(
        recovered.body_json::<Value>().unwrap()["event"],
        "recovered"
    );
    let signature = recovered
        .headers
        .get("x-driftwatch-signature")
        .expect("a signature header");
    assert_eq!(
        signature.to_str().unwrap(),
        expected_signature(b"the-second-secret", &recovered.body)
    );
    daemon.shutdown().await;
}
