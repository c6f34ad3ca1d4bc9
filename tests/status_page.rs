//! The status page as a paged engineer sees it: loaded in a real headless
//! browser (Debian's `chromium`) from a running driftwatch with a degraded
//! series, opened again from the alert's `generatorURL`, checked for
//! well-formed markup and escaped label values, and kept fast at 10,000
//! series.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::alertmanager::Alertmanager;
use support::daemon::Daemon;
use support::markup::check_well_formed;
use support::target::{Answer, Target, gauge};
use support::{get_text, require_program, wait_until};

const DEADLINE: Duration = Duration::from_secs(30);

/// How long one chromium run may take before the test fails.
const BROWSER_DEADLINE: Duration = Duration::from_secs(90);

/// A label value that would run as a script if it were not escaped.
const HOSTILE: &str = "<script>alert('x&y')</script>";

fn config(target: &Target, extra: &str) -> String {
    format!(
        "global:\n  interval: 100ms\n  timeout: 80ms\n\
         detector:\n  window: 20\n  min_samples: 10\n  threshold: 3\n  \
         recover_threshold: 1.5\n  stale_after: 1h\n  direction: both\n\
         sources:\n  - name: model\n    scrape:\n      url: {}\n    watch:\n      \
         - metric: model_accuracy\n{extra}",
        target.url
    )
}

/// Three models: `aaa` (first by name) and the hostile one stay healthy,
/// `fraud` drops after a baseline of 20 scrapes and stays down.
fn scrape(fraud: f64, others: f64) -> Answer {
    let hostile = format!("model=\"{HOSTILE}\"");
    Answer::Body(gauge(
        "model_accuracy",
        &[
            ("model=\"aaa\"", others),
            ("model=\"fraud\"", fraud),
            (hostile.as_str(), others),
        ],
    ))
}

async fn degrading_target() -> Target {
    let target = Target::start().await;
    target.push((0..20).map(|i| {
        let v = if i % 2 == 0 { 0.90 } else { 0.91 };
        scrape(v, v)
    }));
    target.set_fallback(scrape(0.5, 0.905));
    target
}

/// Where the screenshots go: `target/`, beside the build.
fn artifact(name: &str) -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join(name)
}

/// Runs headless chromium with `args` after the common flags, in a fresh
/// profile, and returns what it printed. Blocking, so callers run it off
/// the runtime that serves driftwatch.
fn chromium(args: &[String]) -> String {
    let program = require_program("chromium", "chromium");
    let profile = tempfile::tempdir().expect("temp dir for the chromium profile");
    let mut child = Command::new(program)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting chromium");
    let stdout = child.stdout.take().expect("chromium stdout");
    let reader = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let stderr = child.stderr.take().expect("chromium stderr");
    let errors = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let give_up = Instant::now() + BROWSER_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for chromium") {
            break status;
        }
        if Instant::now() > give_up {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {args:?} took longer than {BROWSER_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = reader.join().unwrap_or_default();
    let err = errors.join().unwrap_or_default();
    assert!(
        status.success(),
        "chromium {args:?} failed: {status}\n{err}"
    );
    out
}

async fn dump_dom(url: &str) -> String {
    let args = vec!["--dump-dom".to_owned(), url.to_owned()];
    tokio::task::spawn_blocking(move || chromium(&args))
        .await
        .expect("chromium task")
}

async fn screenshot(url: &str, name: &str) -> PathBuf {
    let path = artifact(name);
    let _ = std::fs::remove_file(&path);
    let args = vec![
        format!("--screenshot={}", path.display()),
        "--window-size=1400,1000".to_owned(),
        "--hide-scrollbars".to_owned(),
        url.to_owned(),
    ];
    tokio::task::spawn_blocking(move || chromium(&args))
        .await
        .expect("chromium task");
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    assert!(size > 1000, "no screenshot at {}", path.display());
    path
}

/// The markup of the first element that starts with `open` (up to its
/// matching `close`), or a failure naming what was looked for.
fn element<'a>(html: &'a str, open: &str, close: &str) -> &'a str {
    let start = html
        .find(open)
        .unwrap_or_else(|| panic!("no {open} in:\n{html}"));
    let end = html[start..]
        .find(close)
        .unwrap_or_else(|| panic!("{open} is never closed"));
    &html[start..start + end + close.len()]
}

fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

/// Waits for the alert in Alertmanager and returns its `generatorURL`.
async fn generator_url(alertmanager: &Alertmanager) -> String {
    let alerts = wait_until("the alert in Alertmanager", DEADLINE, || async {
        alertmanager.alerts().await.filter(|a| !a.is_empty())
    })
    .await;
    let alert = alerts
        .iter()
        .find(|a| a["labels"]["model"] == "fraud")
        .unwrap_or_else(|| panic!("no alert for fraud: {alerts:#?}"));
    alert["generatorURL"]
        .as_str()
        .unwrap_or_else(|| panic!("no generatorURL: {alert}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn degraded_series_comes_first_with_its_plot_and_its_alert_link_opens_it() {
    let alertmanager = Alertmanager::start().await;
    let target = degrading_target().await;
    let alerting = format!(
        "alerting:\n  alertmanagers:\n    - url: {}\n  resend_interval: 10s\n",
        alertmanager.url
    );
    let daemon = Daemon::start(&config(&target, &alerting)).await;
    let generator = generator_url(&alertmanager).await;
    let id = generator
        .rsplit_once("/series/")
        .map(|(_, id)| id.to_owned())
        .unwrap_or_else(|| panic!("generatorURL {generator} names no series"));

    // The list: the degraded series is the first row, though `aaa` sorts
    // before it by name, and its plot has the band and the values.
    let dom = dump_dom(&format!("{}/", daemon.base_url)).await;
    let _ = std::fs::write(artifact("status-page.html"), &dom);
    let first = element(&dom, "<tr class=\"row\"", "</tr>");
    assert_eq!(attribute(first, "data-state"), Some("degraded"), "{first}");
    assert_eq!(
        attribute(first, "data-series"),
        Some(id.as_str()),
        "{first}"
    );
    assert!(first.contains("fraud"), "{first}");
    let svg = element(first, "<svg", "</svg>");
    assert!(svg.contains("class=\"band\""), "no band in {svg}");
    assert!(svg.contains("class=\"series\""), "no series path in {svg}");
    assert!(svg.contains("class=\"alert\""), "no alert span in {svg}");
    assert_eq!(dom.matches("<tr class=\"row\"").count(), 3, "{dom}");
    assert!(!dom.contains("<script"), "a label value became markup");
    screenshot(&format!("{}/", daemon.base_url), "status-page.png").await;

    // The alert's link: the same series, its plot and its state changes.
    let dom = dump_dom(&generator).await;
    let _ = std::fs::write(artifact("status-series.html"), &dom);
    let ident = element(&dom, "<p class=\"ident\"", "</p>");
    assert_eq!(
        attribute(ident, "data-series"),
        Some(id.as_str()),
        "{ident}"
    );
    let h1 = element(&dom, "<h1>", "</h1>");
    assert!(h1.contains("model_accuracy{model=\"fraud\"}"), "{h1}");
    let svg = element(&dom, "<svg", "</svg>");
    assert!(svg.contains("class=\"series\""), "{svg}");
    assert!(svg.contains("class=\"zscore\""), "{svg}");
    let changes = element(&dom, "<table class=\"changes\"", "</table>");
    assert!(changes.contains(">degraded<"), "{changes}");
    screenshot(&generator, "status-series.png").await;
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_well_formed_and_label_values_stay_text() {
    let target = degrading_target().await;
    let daemon = Daemon::start(&config(&target, "")).await;
    wait_until("fraud to degrade", DEADLINE, || async {
        daemon
            .transitions()
            .contains(&("ok", "degraded"))
            .then_some(())
    })
    .await;

    let index = get_text(&format!("{}/", daemon.base_url))
        .await
        .expect("GET /");
    check_well_formed(&index).unwrap_or_else(|e| panic!("{e}\n{index}"));
    assert!(!index.contains("<script"), "{index}");
    assert!(index.contains("&lt;script&gt;alert(&apos;x&amp;y&apos;)&lt;/script&gt;"));

    // Every series page, the hostile one among them.
    let series: Value = serde_json::from_str(
        &get_text(&format!("{}/api/v1/series", daemon.base_url))
            .await
            .expect("GET /api/v1/series"),
    )
    .expect("series JSON");
    let ids: Vec<&str> = series["data"]
        .as_array()
        .expect("series list")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 3, "{series}");
    for id in ids {
        let page = get_text(&format!("{}/series/{id}", daemon.base_url))
            .await
            .unwrap_or_else(|| panic!("GET /series/{id}"));
        check_well_formed(&page).unwrap_or_else(|e| panic!("{e}\n{page}"));
        assert!(!page.contains("<script"), "{page}");
    }
    let missing = support::client()
        .get(format!("{}/series/00000000000000ff", daemon.base_url))
        .send()
        .await
        .expect("GET a missing series");
    assert_eq!(missing.status(), 404);
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_series_page_fast_and_filter_by_selector() {
    const SERIES: usize = 10_000;
    let target = Target::start().await;
    let labels: Vec<String> = (0..SERIES).map(|i| format!("model=\"m{i:05}\"")).collect();
    let samples: Vec<(&str, f64)> = labels.iter().map(|l| (l.as_str(), 0.9)).collect();
    target.set_fallback(Answer::Body(gauge("model_accuracy", &samples)));
    let yaml = config(&target, "").replace("interval: 100ms", "interval: 1s");
    let yaml = yaml.replace("timeout: 80ms", "timeout: 900ms");
    let daemon = Daemon::start(&yaml).await;
    let base = daemon.base_url.clone();
    wait_until("every series to be watched", DEADLINE, || async {
        let metrics = daemon.metrics().await;
        let tracked = support::sample_value(&metrics, "driftwatch_series_tracked", &[])?;
        (tracked as usize == SERIES).then_some(())
    })
    .await;

    // The best of three, so one slow moment of a shared machine does not
    // decide; the bound is for a debug build.
    let mut best = Duration::MAX;
    let mut index = String::new();
    for _ in 0..3 {
        let started = Instant::now();
        index = get_text(&format!("{base}/")).await.expect("GET /");
        best = best.min(started.elapsed());
    }
    println!("GET / at {SERIES} series: {best:?}, {} bytes", index.len());
    assert!(best < Duration::from_secs(2), "GET / took {best:?}");
    check_well_formed(&index).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(index.matches("<tr class=\"row\"").count(), 100);
    assert!(index.contains("page 1 of 100"));

    let last = get_text(&format!("{base}/?page=100"))
        .await
        .expect("page 100");
    assert!(
        last.contains("m09999"),
        "the last page ends with the last series"
    );

    let selector = "%7Bmodel%3D%22m00042%22%7D";
    let one = get_text(&format!("{base}/?match[]={selector}"))
        .await
        .expect("filtered");
    assert_eq!(one.matches("<tr class=\"row\"").count(), 1);
    assert!(one.contains("m00042"));

    let bad = support::client()
        .get(format!("{base}/?match[]=%7Bmodel%3D~%22(%22%7D"))
        .send()
        .await
        .expect("GET with a bad selector");
    assert_eq!(bad.status(), 400);
    let body = bad.text().await.expect("body of the refusal");
    check_well_formed(&body).unwrap_or_else(|e| panic!("{e}"));
    assert!(body.contains("class=\"error\""), "{body}");
    daemon.shutdown().await;
}

#[test]
fn tag_checker_rejects_broken_markup() {
    assert!(check_well_formed("<html><body><p>a</p></body></html>").is_ok());
    for bad in [
        "<html><body><p>a</body></html>",
        "<html><body><br></body></html>",
        "<html><body>a < b</body></html>",
        "<html><body>a & b</body></html>",
        "<html><body title=\"<x>\"></body></html>",
        "<html><body><td></p></body></html>",
        "<html></html><html></html>",
    ] {
        assert!(check_well_formed(bad).is_err(), "accepted {bad}");
    }
}
