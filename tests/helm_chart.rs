//! The Helm chart. `helm/test.sh` renders and validates it offline; then a
//! real Prometheus, scraping a real driftwatch and loaded with the chart's
//! rules, runs every rule and dashboard query, and driftwatch's /metrics
//! must hold every metric name they use.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::daemon::Daemon;
use support::prometheus::Prometheus;
use support::target::{Answer, Target, gauge};
use support::{free_port, wait_until};

/// How long helm/test.sh may take; the first run installs its virtualenv.
const CHART_CHECK_DEADLINE: Duration = Duration::from_secs(600);

/// One rule expression or dashboard query, as helm/test.sh wrote it.
#[derive(Debug, Clone)]
struct Query {
    origin: String,
    expr: String,
}

/// What helm/test.sh leaves for the checks below.
struct ChartChecks {
    rules: PathBuf,
    queries: Vec<Query>,
    metric_names: Vec<String>,
}

/// Runs helm/test.sh once for all the tests in this file; a failure fails
/// each of them with the script's own report.
fn chart_checks() -> &'static ChartChecks {
    static CHECKS: OnceLock<ChartChecks> = OnceLock::new();
    CHECKS.get_or_init(run_chart_checks)
}

fn run_chart_checks() -> ChartChecks {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("helm-check");
    std::fs::create_dir_all(&out).expect("creating the helm-check folder");
    let log_path = out.join("test.sh.log");
    let log = std::fs::File::create(&log_path).expect("creating the helm/test.sh log");
    let mut child = Command::new("bash")
        .arg(repo.join("helm/test.sh"))
        .arg(&out)
        .current_dir(repo)
        .env("DRIFTWATCH_BIN", env!("CARGO_BIN_EXE_driftwatch"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("cloning a file handle"))
        .stderr(log)
        .spawn()
        .expect("starting bash helm/test.sh");
    let give_up = Instant::now() + CHART_CHECK_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for helm/test.sh") {
            break status;
        }
        if Instant::now() > give_up {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "helm/test.sh took longer than {CHART_CHECK_DEADLINE:?}:\n{}",
                read(&log_path)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let report = read(&log_path);
    assert!(
        status.success(),
        "helm/test.sh failed ({status}); its report:\n{report}"
    );

    let queries: Value = serde_json::from_str(&read(&out.join("queries.json")))
        .expect("helm/test.sh wrote queries.json that is not JSON");
    let queries: Vec<Query> = queries
        .as_array()
        .expect("queries.json is a list")
        .iter()
        .map(|q| Query {
            origin: q["origin"].as_str().expect("a query's origin").to_owned(),
            expr: q["expr"].as_str().expect("a query's expr").to_owned(),
        })
        .collect();
    let metric_names: Vec<String> = read(&out.join("metric-names.txt"))
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(
        queries.iter().any(|q| q.origin.starts_with("rule "))
            && queries.iter().any(|q| q.origin.starts_with("dashboard ")),
        "helm/test.sh found no rules or no dashboard queries:\n{report}"
    );
    assert!(
        !metric_names.is_empty(),
        "helm/test.sh found no metric names:\n{report}"
    );
    ChartChecks {
        rules: out.join("rules.yml"),
        queries,
        metric_names,
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

#[test]
fn chart_renders_and_validates_offline() {
    let checks = chart_checks();
    assert!(checks.rules.exists(), "helm/test.sh wrote no rules.yml");
}

/// A driftwatch with one healthy source whose accuracy has dropped (so a
/// series is degraded), one source that cannot be reached (so a source is
/// down), and a webhook receiver that answers.
async fn degraded_daemon() -> (Target, Target, Daemon) {
    let model = Target::start().await;
    let labels = r#"model="fraud""#;
    let baseline = [0.91, 0.9, 0.92, 0.9, 0.91, 0.89, 0.9, 0.91];
    model.push(
        baseline
            .iter()
            .map(|v| Answer::Body(gauge("model_accuracy", &[(labels, *v)]))),
    );
    model.set_fallback(Answer::Body(gauge("model_accuracy", &[(labels, 0.5)])));
    let receiver = Target::start().await;
    receiver.set_fallback(Answer::Body("ok\n".to_owned()));
    let unreachable = format!("http://127.0.0.1:{}/metrics", free_port());
    let config = format!(
        "global:\n  interval: 200ms\n  timeout: 150ms\n\
         detector:\n  window: 10\n  min_samples: 3\n\
         sources:\n\
         \x20 - name: fraud\n    scrape:\n      url: {}\n    watch:\n\
         \x20     - metric: model_accuracy\n        direction: lower_is_worse\n\
         \x20 - name: down\n    scrape:\n      url: {unreachable}\n    watch:\n\
         \x20     - metric: model_accuracy\n\
         webhooks:\n  - name: retrain\n    url: {}\n    events: [degraded, recovered]\n",
        model.url, receiver.url
    );
    let daemon = Daemon::start(&config).await;
    let url = format!("{}/metrics", daemon.base_url);
    wait_until(
        "a degraded series on driftwatch's /metrics",
        Duration::from_secs(30),
        || async {
            let metrics = support::get_text(&url).await?;
            let degraded = support::sample_value(
                &metrics,
                "driftwatch_series_degraded",
                &[("source", "fraud")],
            );
            (degraded == Some(1.0)).then_some(())
        },
    )
    .await;
    (model, receiver, daemon)
}

/// What a rule of the chart must return against [`degraded_daemon`]:
/// the sources of the series it returns, or nothing.
fn expected_rule_sources(alert: &str) -> Option<&'static [&'static str]> {
    match alert {
        "DriftwatchSourceDown" => Some(&["down"]),
        "DriftwatchSeriesDegraded" => Some(&["fraud"]),
        // The reload did not fail and the receiver answers.
        "DriftwatchConfigReloadFailed" | "DriftwatchNotificationsFailing" => Some(&[]),
        _ => None,
    }
}

/// Runs an instant query; an error names what Prometheus said.
async fn query(prometheus: &Prometheus, promql: &str) -> Result<Vec<Value>, String> {
    let response = support::client()
        .get(format!("{}/api/v1/query", prometheus.url))
        .query(&[("query", promql)])
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let bytes = response
        .bytes()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?;
    let body: Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("answer is not JSON: {e}"))?;
    if body["status"] != "success" {
        return Err(format!("{}: {}", body["errorType"], body["error"]));
    }
    Ok(body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

fn metric_names_in(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(start) = rest.find("driftwatch_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// A sample line of `name` (not its HELP or TYPE line) in an exposition.
fn has_sample(exposition: &str, name: &str) -> bool {
    exposition.lines().any(|line| {
        line.strip_prefix(name)
            .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
    })
}

fn sources_of(result: &[Value]) -> BTreeSet<String> {
    result
        .iter()
        .map(|s| s["metric"]["source"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// Calls `attempt` until it reports no problem or `deadline` has passed, and
/// returns the problems of the last attempt.
async fn settle<F, Fut>(deadline: Duration, mut attempt: F) -> Vec<String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    let give_up = Instant::now() + deadline;
    loop {
        let problems = attempt().await;
        if problems.is_empty() || Instant::now() > give_up {
            return problems;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What is wrong with the answers of Prometheus to the chart's queries.
async fn query_problems(
    prometheus: &Prometheus,
    queries: &[Query],
    exposition: &str,
) -> Vec<String> {
    let mut problems = Vec::new();
    for q in queries {
        let result = match query(prometheus, &q.expr).await {
            Ok(result) => result,
            Err(e) => {
                problems.push(format!("{}: `{}` refused: {e}", q.origin, q.expr));
                continue;
            }
        };
        if let Some(alert) = q.origin.strip_prefix("rule ") {
            let Some(expected) = expected_rule_sources(alert) else {
                problems.push(format!("{}: the test has no expectation for it", q.origin));
                continue;
            };
            let expected: BTreeSet<String> = expected.iter().map(|s| (*s).to_owned()).collect();
            if sources_of(&result) != expected {
                problems.push(format!(
                    "{}: `{}` returned {result:?}, expected sources {expected:?}",
                    q.origin, q.expr
                ));
            }
        } else {
            let sampled = metric_names_in(&q.expr)
                .iter()
                .all(|name| has_sample(exposition, name));
            if sampled && result.is_empty() {
                problems.push(format!("{}: `{}` found no data", q.origin, q.expr));
            }
        }
    }
    problems
}

#[tokio::test]
async fn rules_and_dashboard_queries_work_on_driftwatch_data_in_prometheus() {
    let checks = chart_checks();
    let (_model, _receiver, daemon) = degraded_daemon().await;
    let address = daemon.base_url.trim_start_matches("http://").to_owned();
    let rules = checks.rules.display().to_string();
    let prometheus = Prometheus::start(&[address], "1s", &[rules]).await;

    // Every metric name the chart uses is one driftwatch exports, with
    // samples (the webhook receiver gives the notification families theirs).
    let metrics_url = format!("{}/metrics", daemon.base_url);
    let missing = settle(Duration::from_secs(20), || async {
        let exposition = support::get_text(&metrics_url).await.unwrap_or_default();
        checks
            .metric_names
            .iter()
            .filter(|name| !has_sample(&exposition, name))
            .cloned()
            .collect()
    })
    .await;
    let exposition = daemon.metrics().await;
    assert!(
        missing.is_empty(),
        "the chart uses metric names that driftwatch's /metrics has no sample of: \
         {missing:?}\n---\n{exposition}"
    );

    // Prometheus accepts every query; each rule returns what this setup
    // must make it return, and each dashboard query whose metrics all have
    // samples finds data once Prometheus has scraped a few times.
    let problems = settle(Duration::from_secs(60), || {
        query_problems(&prometheus, &checks.queries, &exposition)
    })
    .await;
    assert!(problems.is_empty(), "{problems:#?}");

    // The rule file Prometheus loaded evaluates without error, and the
    // alerts that have data are active.
    let states = wait_until(
        "every chart rule to be evaluated",
        Duration::from_secs(30),
        || async {
            let body = support::get_text(&format!("{}/api/v1/rules", prometheus.url)).await?;
            let body: Value = serde_json::from_str(&body).ok()?;
            let mut states = Vec::new();
            for group in body["data"]["groups"].as_array()? {
                for rule in group["rules"].as_array()? {
                    if rule["lastEvaluation"].as_str()?.starts_with("0001-") {
                        return None;
                    }
                    states.push((
                        rule["name"].as_str()?.to_owned(),
                        rule["health"].as_str()?.to_owned(),
                        rule["state"].as_str().unwrap_or("").to_owned(),
                        rule["lastError"].as_str().unwrap_or("").to_owned(),
                    ));
                }
            }
            (!states.is_empty()).then_some(states)
        },
    )
    .await;
    for (name, health, state, error) in &states {
        assert_eq!(health, "ok", "rule {name} failed to evaluate: {error}");
        // An alert with data is pending (or firing, with a short `for`).
        let expected: &[&str] = match expected_rule_sources(name) {
            Some([]) => &["inactive"],
            Some(_) => &["pending", "firing"],
            None => panic!("rule {name} has no expectation in this test"),
        };
        assert!(
            expected.contains(&state.as_str()),
            "rule {name} is {state}, expected one of {expected:?}"
        );
    }
    let loaded: BTreeSet<&str> = states.iter().map(|(name, ..)| name.as_str()).collect();
    let in_chart: BTreeSet<&str> = checks
        .queries
        .iter()
        .filter_map(|q| q.origin.strip_prefix("rule "))
        .collect();
    assert_eq!(loaded, in_chart, "rules Prometheus loaded vs. the chart's");
    daemon.shutdown().await;
}
