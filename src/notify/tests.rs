//! The notifier over a scripted transport, with paused time: resends,
//! leases, retries, `min_interval`, draining, reloads, and exact bodies.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::delivery::{DeliveryError, Request, Sending, Transport};
use super::*;
use crate::config::{AlertmanagerConfig, WebhookEvent};

const START_MS: i64 = 1_764_000_000_000;

#[derive(Clone, Copy, Debug)]
enum Reply {
    Ok,
    Status(u16),
    Refused,
    Hang,
}

/// Records every request with its time and answers from a script per URL
/// (`Ok` once a script runs out, unless a fallback is set).
#[derive(Default)]
struct Scripted {
    sent: Mutex<Vec<(Instant, Request)>>,
    scripts: Mutex<HashMap<String, VecDeque<Reply>>>,
    fallbacks: Mutex<HashMap<String, Reply>>,
}

impl Scripted {
    fn script(&self, url: &str, replies: &[Reply]) {
        self.scripts
            .lock()
            .unwrap()
            .entry(url.to_owned())
            .or_default()
            .extend(replies);
    }

    fn fallback(&self, url: &str, reply: Reply) {
        self.fallbacks.lock().unwrap().insert(url.to_owned(), reply);
    }

    fn to(&self, url: &str) -> Vec<(Instant, serde_json::Value)> {
        let sent = self.sent.lock().unwrap();
        let to_url = sent.iter().filter(|(_, r)| r.url == url);
        to_url
            .map(|(at, r)| (*at, serde_json::from_slice(&r.body).unwrap()))
            .collect()
    }
}

impl Transport for Scripted {
    fn post(&self, request: Request) -> Sending {
        let url = request.url.clone();
        let scripted = self
            .scripts
            .lock()
            .unwrap()
            .get_mut(&url)
            .and_then(VecDeque::pop_front);
        let fallback = self.fallbacks.lock().unwrap().get(&url).copied();
        let reply = scripted.or(fallback).unwrap_or(Reply::Ok);
        self.sent.lock().unwrap().push((Instant::now(), request));
        Box::pin(async move {
            match reply {
                Reply::Ok => Ok(()),
                Reply::Status(status) => Err(DeliveryError::Status {
                    url,
                    status,
                    body: "scripted".into(),
                }),
                Reply::Refused => Err(DeliveryError::Connect {
                    url,
                    reason: "refused".into(),
                }),
                Reply::Hang => std::future::pending().await,
            }
        })
    }
}

const AM: &str = "http://am:9093";
const AM_ENDPOINT: &str = "http://am:9093/api/v2/alerts";

fn alerting(urls: &[&str], resend: Duration) -> AlertingConfig {
    AlertingConfig {
        alertmanagers: urls
            .iter()
            .map(|url| AlertmanagerConfig {
                url: (*url).to_owned(),
                timeout: Duration::from_secs(10),
                bearer_token_file: None,
            })
            .collect(),
        resend_interval: resend,
        labels: BTreeMap::from([("severity".to_owned(), "warning".to_owned())]),
        alertname: "ModelPerformanceDegraded".to_owned(),
        drop_labels: vec!["replica".to_owned()],
    }
}

fn webhook(name: &str, events: &[WebhookEvent], min_interval: Duration) -> WebhookConfig {
    WebhookConfig {
        name: name.to_owned(),
        url: format!("http://{name}/hook"),
        events: events.to_vec(),
        min_interval,
        hmac_secret_file: None,
        timeout: Duration::from_secs(5),
    }
}

const BOTH: &[WebhookEvent] = &[WebhookEvent::Degraded, WebhookEvent::Recovered];

fn update(series_id: u64, status: AlertStatus, started_at_ms: i64, at_ms: i64) -> AlertUpdate {
    AlertUpdate {
        series_id,
        source: Arc::from("fraud"),
        metric: Arc::from("model_accuracy"),
        labels: vec![
            ("model".into(), "fraud".into()),
            ("source".into(), "upstream".into()),
        ],
        status,
        value: 0.8,
        zscore: -12.5,
        baseline_mean: 0.9,
        baseline_stddev: 0.008,
        started_at_ms,
        at_ms,
        interval: Duration::from_secs(15),
        generator_url: format!("http://dw:9871/series/{series_id:016x}"),
    }
}

fn start(
    alerting: Option<&AlertingConfig>,
    webhooks: &[WebhookConfig],
) -> (Notifier, Arc<Scripted>) {
    let transport = Arc::new(Scripted::default());
    let external = BTreeMap::from([("cluster".to_owned(), "prod".to_owned())]);
    let notifier = Notifier::with_transport(alerting, webhooks, &external, transport.clone());
    (notifier, transport)
}

/// Lets paused time run until `check` holds, failing after an hour of it.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(3600);
    while !check() {
        assert!(Instant::now() < give_up, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn results(notifier: &Notifier, receiver: &str) -> HashMap<&'static str, u64> {
    let stats = notifier.stats();
    let stats = stats
        .iter()
        .find(|s| s.receiver == receiver)
        .expect("receiver in stats");
    stats.results.iter().copied().collect()
}

fn ms(text: &serde_json::Value) -> i64 {
    let at = humantime::parse_rfc3339(text.as_str().unwrap()).unwrap();
    at.duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn alertmanager_body_is_exactly_this() {
    let settings = alertmanager::Settings {
        alertname: "ModelPerformanceDegraded".into(),
        labels: BTreeMap::from([("severity".into(), "warning".into())]),
        drop_labels: vec!["replica".into()],
        external_labels: BTreeMap::from([
            ("cluster".into(), "prod".into()),
            ("model".into(), "not-this".into()),
            ("replica".into(), "a".into()),
        ]),
        resend_interval: Duration::from_secs(60),
    };
    let firing = update(0xab, AlertStatus::Firing, START_MS, START_MS);
    let alert = alertmanager::Alert::new(&settings, &firing, Instant::now());
    let body = alertmanager::body(std::iter::once(&alert), START_MS + 10_000);
    let expected = concat!(
        r#"[{"labels":{"alertname":"ModelPerformanceDegraded","cluster":"prod","#,
        r#""exported_source":"upstream","metric":"model_accuracy","model":"fraud","#,
        r#""severity":"warning","source":"fraud"},"#,
        r#""annotations":{"baseline_mean":"0.9","baseline_stddev":"0.008","#,
        r#""description":"model_accuracy{model=\"fraud\",source=\"upstream\"} is 0.8, "#,
        r#"z-score -12.50 against a baseline mean of 0.9 (standard deviation 0.008)","#,
        r#""summary":"model_accuracy of source fraud degraded","value":"0.8","zscore":"-12.5"},"#,
        r#""startsAt":"2025-11-24T16:00:00.000Z","endsAt":"2025-11-24T16:04:10.000Z","#,
        r#""generatorURL":"http://dw:9871/series/00000000000000ab"}]"#,
    );
    assert_eq!(String::from_utf8(body).unwrap(), expected);
}

#[test]
fn alert_labels_follow_prometheus_precedence() {
    let settings = alertmanager::Settings {
        alertname: "Drift".into(),
        labels: BTreeMap::from([
            ("model".into(), "forced".into()),
            ("team".into(), "".into()),
        ]),
        drop_labels: vec!["pod".into()],
        external_labels: BTreeMap::from([
            ("cluster".into(), "prod".into()),
            ("pod".into(), "x".into()),
        ]),
        resend_interval: Duration::from_secs(60),
    };
    let mut firing = update(1, AlertStatus::Firing, START_MS, START_MS);
    firing.labels = vec![
        ("alertname".into(), "theirs".into()),
        ("cluster".into(), "own".into()),
        ("model".into(), "fraud".into()),
    ];
    let labels = settings.labels_of(&firing);
    let expected: BTreeMap<String, String> = [
        ("alertname", "Drift"),
        ("cluster", "own"),
        ("exported_alertname", "theirs"),
        ("metric", "model_accuracy"),
        ("model", "forced"),
        ("source", "fraud"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(labels, expected);
}

#[test]
fn webhook_body_is_exactly_this_with_unknown_numbers_as_null() {
    let mut recovered = update(7, AlertStatus::Resolved, START_MS, START_MS + 90_500);
    recovered.baseline_stddev = f64::NAN;
    let body = webhook::body(&recovered);
    let expected = concat!(
        r#"{"event":"recovered","source":"fraud","metric":"model_accuracy","#,
        r#""labels":{"model":"fraud","source":"upstream"},"value":0.8,"zscore":-12.5,"#,
        r#""baseline_mean":0.9,"baseline_stddev":null,"started_at":"2025-11-24T16:00:00.000Z","#,
        r#""at":"2025-11-24T16:01:30.500Z"}"#,
    );
    assert_eq!(String::from_utf8(body).unwrap(), expected);
}

#[test]
fn signature_agrees_with_an_independent_hmac() {
    use hmac::Mac;
    let body = br#"{"event":"degraded"}"#;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(webhook::signature(b"s3cret", body), format!("sha256={hex}"));
}

#[tokio::test(start_paused = true)]
async fn firing_alert_is_resent_with_its_lease_and_a_resolved_one_for_fifteen_minutes() {
    let resend = Duration::from_secs(60);
    let (notifier, transport) = start(Some(&alerting(&[AM], resend)), &[]);
    let clock = Clock::new();
    let t0 = Instant::now();
    let started = clock.now_ms();
    notifier.update(update(1, AlertStatus::Firing, started, started));

    // Sent at once, then every resend interval, each leased 4 × 1m ahead.
    until("two sends", || transport.to(AM_ENDPOINT).len() == 2).await;
    let sent = transport.to(AM_ENDPOINT);
    assert_eq!(sent[1].0.duration_since(t0), resend);
    for (at, body) in &sent {
        let sent_ms = started + at.duration_since(t0).as_millis() as i64;
        let lease = ms(&body[0]["endsAt"]) - sent_ms;
        assert!((lease - 240_000).abs() <= 5, "lease {lease}ms");
        assert_eq!(ms(&body[0]["startsAt"]), started);
    }

    // The recovery goes out at once with endsAt = the recovery time.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let resolved_at = clock.now_ms();
    let t_resolved = Instant::now();
    notifier.update(update(1, AlertStatus::Resolved, started, resolved_at));
    until("the resolved alert", || {
        transport.to(AM_ENDPOINT).len() == 3
    })
    .await;

    tokio::time::sleep(Duration::from_secs(20 * 60)).await;
    let resolved: Vec<_> = transport.to(AM_ENDPOINT).into_iter().skip(2).collect();
    assert!(
        resolved
            .iter()
            .all(|(_, body)| ms(&body[0]["endsAt"]) == resolved_at)
    );
    let last = resolved.last().unwrap().0.duration_since(t_resolved);
    assert!(
        last <= alertmanager::RESOLVED_RESEND_FOR,
        "resent after 15m: {last:?}"
    );
    assert!(
        last > alertmanager::RESOLVED_RESEND_FOR - resend,
        "stopped early: {last:?}"
    );
    assert_eq!(
        resolved.len(),
        16,
        "once at recovery and every minute for 15 minutes"
    );
    assert_eq!(notifier.stats()[0].queue_length, 0);
}

#[tokio::test(start_paused = true)]
async fn alertmanager_that_refuses_connections_gets_the_alert_once_back() {
    let resend = Duration::from_secs(60);
    let (notifier, transport) = start(Some(&alerting(&[AM], resend)), &[]);
    transport.fallback(AM_ENDPOINT, Reply::Refused);
    notifier.update(update(1, AlertStatus::Firing, START_MS, START_MS));
    until("a given-up send", || results(&notifier, AM)["failed"] == 1).await;
    let tries = transport.to(AM_ENDPOINT).len();
    assert!(tries > 3, "retried with backoff before giving up: {tries}");
    assert_eq!(results(&notifier, AM)["retried"], tries as u64 - 1);

    assert_eq!(
        notifier.stats()[0].queue_length,
        1,
        "given up is not delivered"
    );
    let last = notifier.stats()[0].last.clone();
    assert_eq!(last.success_ms, None);
    let (_, reason) = last
        .failure
        .expect("the failure is kept for the status page");
    assert!(!reason.is_empty());

    transport.fallback(AM_ENDPOINT, Reply::Ok);
    until("a delivery", || results(&notifier, AM)["success"] == 1).await;
    assert_eq!(notifier.stats()[0].queue_length, 0);
    let last = notifier.stats()[0].last.clone();
    assert!(last.success_ms.is_some() && last.failure.is_some());
    let (_, body) = transport.to(AM_ENDPOINT).pop().unwrap();
    assert_eq!(body[0]["labels"]["alertname"], "ModelPerformanceDegraded");
}

#[tokio::test(start_paused = true)]
async fn every_alertmanager_gets_every_alert() {
    let second = "http://am2:9093";
    let (notifier, transport) = start(Some(&alerting(&[AM, second], Duration::from_secs(60))), &[]);
    notifier.update(update(1, AlertStatus::Firing, START_MS, START_MS));
    notifier.update(update(2, AlertStatus::Firing, START_MS, START_MS));
    until("both receive both", || {
        let count = |url| {
            transport
                .to(url)
                .iter()
                .map(|(_, b)| b.as_array().unwrap().len())
                .sum::<usize>()
        };
        count(AM_ENDPOINT) == 2 && count("http://am2:9093/api/v2/alerts") == 2
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn webhook_server_errors_are_retried_with_backoff_until_delivered() {
    let hook = webhook("retrain", BOTH, Duration::ZERO);
    let (notifier, transport) = start(None, std::slice::from_ref(&hook));
    transport.script(
        &hook.url,
        &[Reply::Status(500), Reply::Status(429), Reply::Ok],
    );
    notifier.update(update(1, AlertStatus::Firing, START_MS, START_MS));
    until("delivery", || results(&notifier, "retrain")["success"] == 1).await;
    let sent = transport.to(&hook.url);
    assert_eq!(sent.len(), 3);
    let gaps: Vec<Duration> = sent
        .windows(2)
        .map(|w| w[1].0.duration_since(w[0].0))
        .collect();
    assert!(
        (Duration::from_millis(250)..=Duration::from_millis(500)).contains(&gaps[0]),
        "{gaps:?}"
    );
    assert!(
        (Duration::from_millis(500)..=Duration::from_millis(1000)).contains(&gaps[1]),
        "{gaps:?}"
    );
    assert_eq!(results(&notifier, "retrain")["retried"], 2);
    assert_eq!(notifier.stats()[0].queue_length, 0);
}

#[tokio::test(start_paused = true)]
async fn webhook_client_error_is_not_retried() {
    let hook = webhook("retrain", BOTH, Duration::ZERO);
    let (notifier, transport) = start(None, std::slice::from_ref(&hook));
    transport.script(&hook.url, &[Reply::Status(400)]);
    notifier.update(update(1, AlertStatus::Firing, START_MS, START_MS));
    until("failure", || results(&notifier, "retrain")["failed"] == 1).await;
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(transport.to(&hook.url).len(), 1);
    assert_eq!(results(&notifier, "retrain")["retried"], 0);
}

#[tokio::test(start_paused = true)]
async fn webhook_retries_end_after_a_bounded_time() {
    let hook = webhook("retrain", BOTH, Duration::ZERO);
    let (notifier, transport) = start(None, std::slice::from_ref(&hook));
    transport.fallback(&hook.url, Reply::Status(503));
    let t0 = Instant::now();
    notifier.update(update(1, AlertStatus::Firing, START_MS, START_MS));
    until("giving up", || results(&notifier, "retrain")["failed"] == 1).await;
    let gave_up = t0.elapsed();
    assert!(gave_up <= Duration::from_secs(5 * 60), "{gave_up:?}");
    let tries = transport.to(&hook.url).len();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(
        transport.to(&hook.url).len(),
        tries,
        "tried again after giving up"
    );
    assert_eq!(notifier.stats()[0].queue_length, 0);
}

#[tokio::test(start_paused = true)]
async fn degraded_waits_for_min_interval_and_recovered_is_never_held_back() {
    let hour = Duration::from_secs(3600);
    let hook = webhook("retrain", BOTH, hour);
    let (notifier, transport) = start(None, std::slice::from_ref(&hook));
    let events = || -> Vec<(Instant, String)> {
        let sent = transport.to(&hook.url);
        sent.iter()
            .map(|(at, b)| (*at, b["event"].as_str().unwrap().to_owned()))
            .collect()
    };
    notifier.update(update(1, AlertStatus::Firing, START_MS, START_MS));
    until("first degraded", || events().len() == 1).await;
    let first = events()[0].0;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let recovered_at = Instant::now();
    notifier.update(update(
        1,
        AlertStatus::Resolved,
        START_MS,
        START_MS + 60_000,
    ));
    until("recovered", || events().len() == 2).await;
    assert_eq!(events()[1], (recovered_at, "recovered".to_owned()));

    // Degraded again within the hour: held until the hour is over.
    tokio::time::sleep(Duration::from_secs(60)).await;
    notifier.update(update(
        1,
        AlertStatus::Firing,
        START_MS + 120_000,
        START_MS + 120_000,
    ));
    until("second degraded", || events().len() == 3).await;
    assert_eq!(events()[2], (first + hour, "degraded".to_owned()));
    // Another series is not held back by the first one's interval.
    let other_at = Instant::now();
    notifier.update(update(2, AlertStatus::Firing, START_MS, START_MS));
    until("other series", || events().len() == 4).await;
    assert_eq!(events()[3], (other_at, "degraded".to_owned()));
}

#[tokio::test(start_paused = true)]
async fn recovery_replaces_a_degraded_not_delivered_yet() {
    let hook = webhook("retrain", &[WebhookEvent::Degraded], Duration::ZERO);
    let (notifier, transport) = start(None, std::slice::from_ref(&hook));
    transport.script(&hook.url, &[Reply::Status(503)]);
    notifier.update(update(1, AlertStatus::Firing, START_MS, START_MS));
    until("the first try", || transport.to(&hook.url).len() == 1).await;
    notifier.update(update(1, AlertStatus::Resolved, START_MS, START_MS + 1));
    notifier.update(update(2, AlertStatus::Firing, START_MS, START_MS));
    until("series 2", || results(&notifier, "retrain")["success"] == 1).await;
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(
        transport.to(&hook.url).len(),
        2,
        "the stale degraded was retried"
    );
    assert_eq!(results(&notifier, "retrain")["dropped"], 1);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_webhook_holds_up_neither_updates_nor_other_receivers() {
    let slow = webhook("slow", BOTH, Duration::ZERO);
    let fast = webhook("fast", BOTH, Duration::ZERO);
    let (notifier, transport) = start(None, &[slow.clone(), fast.clone()]);
    transport.fallback(&slow.url, Reply::Hang);
    for id in 0..20 {
        notifier.update(update(id, AlertStatus::Firing, START_MS, START_MS));
    }
    until("fast gets all", || transport.to(&fast.url).len() == 20).await;
    assert_eq!(transport.to(&slow.url).len(), webhook::MAX_IN_FLIGHT);
    let slow_stats = notifier
        .stats()
        .into_iter()
        .find(|s| s.receiver == "slow")
        .unwrap();
    assert_eq!(slow_stats.queue_length, 20);
}

#[tokio::test(start_paused = true)]
async fn shutdown_delivers_what_it_can_within_its_bound() {
    let slow = webhook("slow", BOTH, Duration::ZERO);
    let fast = webhook("fast", BOTH, Duration::ZERO);
    let (notifier, transport) = start(None, &[slow.clone(), fast.clone()]);
    transport.fallback(&slow.url, Reply::Hang);
    notifier.update(update(1, AlertStatus::Firing, START_MS, START_MS));
    let observer = notifier.clone();
    let t0 = Instant::now();
    notifier.shutdown(Duration::from_secs(5)).await;
    assert_eq!(t0.elapsed(), Duration::from_secs(5));
    assert_eq!(transport.to(&fast.url).len(), 1);
    assert_eq!(results(&observer, "fast")["success"], 1);
    assert_eq!(results(&observer, "slow")["dropped"], 1);
}

#[tokio::test(start_paused = true)]
async fn shutdown_with_nothing_to_deliver_is_immediate() {
    let (notifier, _transport) = start(Some(&alerting(&[AM], Duration::from_secs(60))), &[]);
    notifier.update(update(1, AlertStatus::Firing, START_MS, START_MS));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t0 = Instant::now();
    notifier.shutdown(Duration::from_secs(5)).await;
    assert!(
        t0.elapsed() < Duration::from_millis(100),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn reload_keeps_unchanged_receivers_and_briefs_a_new_alertmanager() {
    let resend = Duration::from_secs(60);
    let external = BTreeMap::from([("cluster".to_owned(), "prod".to_owned())]);
    let (notifier, transport) = start(Some(&alerting(&[AM], resend)), &[]);
    notifier.update(update(1, AlertStatus::Firing, START_MS, START_MS));
    until("first send", || results(&notifier, AM)["success"] == 1).await;

    notifier.reload(Some(&alerting(&[AM, "http://am2"], resend)), &[], &external);
    until("the new one is told", || {
        transport.to("http://am2/api/v2/alerts").len() == 1
    })
    .await;
    assert_eq!(
        results(&notifier, AM)["success"],
        1,
        "the kept one kept its counters"
    );
    assert_eq!(
        transport.to(AM_ENDPOINT).len(),
        1,
        "the kept one was not sent the alert again"
    );

    notifier.reload(None, &[], &external);
    assert!(notifier.stats().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_resumed_alert_goes_to_alertmanager_but_not_to_webhooks() {
    let hook = webhook("retrain", BOTH, Duration::ZERO);
    let resend = Duration::from_secs(60);
    let (notifier, transport) = start(Some(&alerting(&[AM], resend)), std::slice::from_ref(&hook));
    notifier.resume(update(
        1,
        AlertStatus::Firing,
        START_MS,
        START_MS + 3_600_000,
    ));
    until("the alert", || transport.to(AM_ENDPOINT).len() == 1).await;
    assert_eq!(ms(&transport.to(AM_ENDPOINT)[0].1[0]["startsAt"]), START_MS);
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert!(transport.to(&hook.url).is_empty());

    // Its recovery is news to both.
    notifier.update(update(
        1,
        AlertStatus::Resolved,
        START_MS,
        START_MS + 3_700_000,
    ));
    until("the recovery", || transport.to(&hook.url).len() == 1).await;
}
