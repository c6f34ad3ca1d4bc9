//! PromQL sources against a real Prometheus and a real VictoriaMetrics that
//! hold the same history: backfill fills the window at once, both servers
//! give the same z-scores, and those equal the definition computed here.
//! Then every way a query can fail, each shown as the source being down.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::daemon::Daemon;
use support::prometheus::Prometheus;
use support::victoria::VictoriaMetrics;
use support::{free_port, get_text, sample_value, start_binary, wait_until};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The source interval, and so the spacing of the backfilled points.
const INTERVAL_S: i64 = 300;
/// Spacing of the stored history.
const DATA_STEP_S: i64 = 60;
const WINDOW: usize = 30;
const MODELS: [&str; 2] = ["a", "b"];

/// The stored value of `model` at `t` (a multiple of 60 s), as the text
/// both servers are given. Four decimals, so each server stores and prints
/// it exactly; 37 and 1009 are coprime, so a value names its minute within
/// 1009 minutes.
fn value_text(model: usize, t: i64) -> String {
    let k = (t / DATA_STEP_S * 37 + model as i64 * 500).rem_euclid(1009);
    let n = 9000 + k;
    format!("{}.{:04}", n / 10000, n % 10000)
}

fn value(model: usize, t: i64) -> f64 {
    value_text(model, t).parse().expect("a number")
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time after 1970")
        .as_secs() as i64
}

/// History from well before the window to ten minutes ahead, so the data
/// is "live" for the whole test.
fn history(now: i64) -> Vec<(usize, i64)> {
    let start = (now / DATA_STEP_S - (WINDOW as i64 + 5) * INTERVAL_S / DATA_STEP_S) * DATA_STEP_S;
    let end = now + 600;
    let mut points = Vec::new();
    for model in 0..MODELS.len() {
        let mut t = start;
        while t <= end {
            points.push((model, t));
            t += DATA_STEP_S;
        }
    }
    points
}

fn openmetrics(points: &[(usize, i64)]) -> String {
    let mut text = String::from("# TYPE model_accuracy gauge\n");
    for &(model, t) in points {
        let name = MODELS[model];
        text.push_str(&format!(
            "model_accuracy{{model=\"{name}\"}} {} {t}\n",
            value_text(model, t)
        ));
    }
    text.push_str("# EOF\n");
    text
}

fn prometheus_text(points: &[(usize, i64)]) -> String {
    let mut text = String::new();
    for &(model, t) in points {
        let name = MODELS[model];
        let line = format!(
            "model_accuracy{{model=\"{name}\"}} {} {}\n",
            value_text(model, t),
            t * 1000
        );
        text.push_str(&line);
    }
    text
}

/// The definition of DESIGN.md, two passes over the baseline: the `WINDOW`
/// points before `at`, one interval apart. Returns (mean, stddev, z).
fn expected(model: usize, at: i64) -> (f64, f64, f64) {
    let baseline: Vec<f64> = (1..=WINDOW as i64)
        .map(|k| value(model, at - k * INTERVAL_S))
        .collect();
    let n = baseline.len() as f64;
    let mean = baseline.iter().sum::<f64>() / n;
    let variance = baseline.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    // The default relative floor, far below this spread, never applies.
    let stddev = variance.sqrt().max(1e-4 * mean.abs());
    (mean, stddev, (value(model, at) - mean) / stddev)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-12)
}

/// A configuration with a backfilled source per (name, url, query, metric).
fn config(sources: &[(&str, &str, &str, &str)]) -> String {
    let mut yaml = format!(
        "global:\n  interval: {INTERVAL_S}s\n  timeout: 10s\n\
         detector:\n  window: {WINDOW}\n  min_samples: {WINDOW}\n  stale_after: 1h\nsources:\n"
    );
    for (name, url, query, metric) in sources {
        yaml.push_str(&format!(
            "  - name: {name}\n    promql:\n      url: {url}\n      query: '{query}'\n      \
             backfill: true\n    watch:\n      - metric: {metric}\n        \
             direction: lower_is_worse\n"
        ));
    }
    yaml
}

async fn series(daemon: &Daemon) -> Vec<Value> {
    let text = get_text(&format!("{}/api/v1/series", daemon.base_url))
        .await
        .expect("series API");
    let body: Value = serde_json::from_str(&text).expect("series JSON");
    body["data"].as_array().cloned().unwrap_or_default()
}

fn number(record: &Value, key: &str) -> f64 {
    record[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {record}"))
}

#[tokio::test]
async fn prometheus_and_victoriametrics_give_the_same_zscores_as_the_definition() {
    let now = now_s();
    let points = history(now);
    let prometheus = Prometheus::start_with_history(&openmetrics(&points)).await;
    let victoria = VictoriaMetrics::start().await;
    victoria.import(prometheus_text(&points)).await;

    let daemon = Daemon::start(&config(&[
        (
            "prometheus",
            &prometheus.url,
            "model_accuracy",
            "model_accuracy",
        ),
        (
            "victoriametrics",
            &victoria.url,
            "model_accuracy",
            "model_accuracy",
        ),
        // Arithmetic drops __name__: the result is named by the watch.
        (
            "unnamed",
            &prometheus.url,
            "model_accuracy{model=\"a\"} * 1",
            "accuracy_scaled",
        ),
    ]))
    .await;

    // Backfill fills the whole window before the first live sample, so a
    // verdict comes within seconds, not after window × interval.
    let records = wait_until(
        "every series to have a full window",
        Duration::from_secs(20),
        || {
            let daemon = &daemon;
            async move {
                let records = series(daemon).await;
                let full = records.len() == 5
                    && records.iter().all(|r| {
                        r["window_samples"] == WINDOW
                            && r["zscore"].is_number()
                            && r["state"] == "ok"
                    });
                full.then_some(records)
            }
        },
    )
    .await;

    let aligned = now.div_euclid(INTERVAL_S) * INTERVAL_S;
    for record in &records {
        let source = record["source"].as_str().unwrap();
        let model = MODELS
            .iter()
            .position(|m| record["labels"]["model"] == *m)
            .unwrap();
        let observed = number(record, "value");
        // The query ran at an interval boundary near the start; which one
        // is told by the value, which names its minute.
        let at = (-1..=2)
            .map(|j| aligned + j * INTERVAL_S)
            .find(|&t| value(model, t) == observed)
            .unwrap_or_else(|| panic!("{source}: value {observed} is not at a boundary near now"));
        let (mean, stddev, z) = expected(model, at);
        for (key, want) in [("mean", mean), ("stddev", stddev), ("zscore", z)] {
            let got = number(record, key);
            assert!(
                close(got, want),
                "{source} model {model}: {key} {got} != {want}"
            );
        }
        let metric = if source == "unnamed" {
            "accuracy_scaled"
        } else {
            "model_accuracy"
        };
        assert_eq!(record["metric"], metric, "{record}");
    }

    // The same numbers on /metrics, for both servers.
    let metrics = daemon.metrics().await;
    for model in MODELS {
        let z = |source| {
            sample_value(
                &metrics,
                "driftwatch_series_zscore",
                &[("source", source), ("model", model)],
            )
        };
        let from_prometheus = z("prometheus").expect("z-score from Prometheus");
        let from_victoria = z("victoriametrics").expect("z-score from VictoriaMetrics");
        assert!(
            close(from_prometheus, from_victoria),
            "{from_prometheus} != {from_victoria}"
        );
    }
    daemon.shutdown().await;
}

/// A stand-in server answering every query with `response`.
async fn answering(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/query"))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn each_failing_query_is_down_with_the_servers_message_and_the_daemon_stays_healthy() {
    let now = now_s();
    let prometheus = Prometheus::start_with_history(&openmetrics(&history(now))).await;
    let unprocessable = answering(ResponseTemplate::new(422).set_body_json(serde_json::json!({
        "status": "error", "errorType": "execution", "error": "query processing would load too many samples"
    })))
    .await;
    let unavailable =
        answering(ResponseTemplate::new(503).set_body_string("<html>maintenance</html>")).await;
    let hanging = answering(ResponseTemplate::new(200).set_delay(Duration::from_secs(30))).await;
    let warning = answering(ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "status": "success", "warnings": ["store 10.0.0.7 unreachable"],
        "data": {"resultType": "vector", "result": []}
    })))
    .await;

    let cases = [
        (
            "bad_promql",
            prometheus.url.clone(),
            "rate(model_accuracy[5m]",
            "bad_data",
        ),
        (
            "matrix",
            prometheus.url.clone(),
            "model_accuracy[10m]",
            "returned a matrix",
        ),
        (
            "string",
            prometheus.url.clone(),
            "\"some text\"",
            "returned a string",
        ),
        (
            "unprocessable",
            unprocessable.uri(),
            "up",
            "execution: query processing would load",
        ),
        ("unavailable", unavailable.uri(), "up", "HTTP 503"),
        ("hanging", hanging.uri(), "up", "timed out"),
        ("warning", warning.uri(), "up", "store 10.0.0.7 unreachable"),
    ];
    let mut yaml = String::from("global:\n  interval: 500ms\n  timeout: 400ms\nsources:\n");
    for (name, url, query, _) in &cases {
        yaml.push_str(&format!(
            "  - name: {name}\n    promql: {{url: '{url}', query: '{}'}}\n    watch: [{{metric: m}}]\n",
            query.replace('\'', "''")
        ));
    }
    yaml.push_str(&format!(
        "  - name: scalar\n    promql: {{url: '{}', query: 'scalar(vector(0.5))'}}\n    \
         watch: [{{metric: constant}}]\n",
        prometheus.url
    ));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("driftwatch.yml");
    std::fs::write(&config, &yaml).unwrap();
    let log = dir.path().join("driftwatch.log");
    let port = free_port();
    let _daemon = start_binary(&config, &log, port);
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");

    let last_metrics = std::sync::Mutex::new(String::new());
    let metrics = support::wait_until_explained(
        "every failing source to fail three times",
        Duration::from_secs(30),
        || async {
            let metrics = get_text(&metrics_url).await?;
            last_metrics.lock().unwrap().clone_from(&metrics);
            let failed = cases
                .iter()
                .all(|(name, ..)| support::failed_fetches(&metrics, name) >= 3.0);
            let scalar = sample_value(
                &metrics,
                "driftwatch_series_last_value",
                &[("source", "scalar")],
            );
            (failed && scalar == Some(0.5)).then_some(metrics)
        },
        || {
            let metrics = last_metrics.lock().unwrap();
            let counts: Vec<String> = cases
                .iter()
                .map(|(name, ..)| format!("{name}: {}", support::failed_fetches(&metrics, name)))
                .collect();
            let scalar = sample_value(
                &metrics,
                "driftwatch_series_last_value",
                &[("source", "scalar")],
            );
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            format!("failed fetches: {counts:?}; scalar: {scalar:?}\ndaemon log:\n{log}")
        },
    )
    .await;
    for (name, ..) in &cases {
        let up = sample_value(&metrics, "driftwatch_source_up", &[("source", name)]);
        assert_eq!(up, Some(0.0), "{name}");
    }
    assert_eq!(
        sample_value(&metrics, "driftwatch_source_up", &[("source", "scalar")]),
        Some(1.0)
    );
    let scalar = [("source", "scalar"), ("metric", "constant")];
    assert_eq!(
        sample_value(&metrics, "driftwatch_series_last_value", &scalar),
        Some(0.5)
    );
    assert!(
        get_text(&format!("http://127.0.0.1:{port}/-/healthy"))
            .await
            .is_some()
    );

    // One line per source with the server's own words, not one per query.
    let text = std::fs::read_to_string(&log).unwrap();
    for (name, _, _, words) in &cases {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.contains("\"Source fetch failed\"")
                    && l.contains(&format!("\"source\":\"{name}\""))
            })
            .collect();
        assert_eq!(lines.len(), 1, "{name}: {lines:#?}");
        assert!(lines[0].contains(words), "{name}: {}", lines[0]);
    }
}
