//! Targets that misbehave: each makes its source go down with one clear log
//! line, and the daemon keeps serving. Runs the real binary, as a user would.

mod support;

use std::process::Command;
use std::time::Duration;

use support::target::{Answer, Target, gauge};
use support::{free_port, sample_value, start_binary, wait_until};

const BAD: [&str; 6] = [
    "malformed",
    "html_page",
    "html_as_text",
    "too_large",
    "hangs",
    "refused",
];

fn source(name: &str, url: &str) -> String {
    format!(
        "  - name: {name}\n    scrape:\n      url: {url}\n    watch:\n      - metric: model_accuracy\n"
    )
}

async fn bad_targets() -> (Vec<Target>, Vec<String>) {
    let good = gauge("model_accuracy", &[("model=\"a\"", 0.9)]);
    let answers = [
        Answer::Body("model_accuracy{model=\"a\" 0.9\n".to_owned()),
        Answer::Raw {
            status: 200,
            content_type: "text/html",
            body: "<html><body>Oops</body></html>".to_owned(),
        },
        Answer::Raw {
            status: 200,
            content_type: "text/plain",
            body: "<html><body>Oops</body></html>\n".to_owned(),
        },
        Answer::Body(good.repeat(200)),
        Answer::Slow(Duration::from_secs(30), good.clone()),
    ];
    let mut targets = Vec::new();
    let mut urls = Vec::new();
    for answer in answers {
        let target = Target::start().await;
        target.set_fallback(answer);
        urls.push(target.url.clone());
        targets.push(target);
    }
    urls.push(format!("http://127.0.0.1:{}/metrics", free_port()));
    let ok = Target::start().await;
    ok.set_fallback(Answer::Body(good));
    urls.push(ok.url.clone());
    targets.push(ok);
    (targets, urls)
}

#[tokio::test]
async fn each_bad_target_is_down_with_one_log_line_and_the_daemon_stays_healthy() {
    let (_targets, urls) = bad_targets().await;
    let mut yaml = String::from(
        "global:\n  interval: 200ms\n  timeout: 150ms\n  body_size_limit: 1KiB\nsources:\n",
    );
    for (name, url) in BAD.iter().chain(["good"].iter()).zip(&urls) {
        yaml.push_str(&source(name, url));
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("driftwatch.yml");
    std::fs::write(&config, yaml).unwrap();
    let log = dir.path().join("driftwatch.log");
    let port = free_port();
    let _daemon = start_binary(&config, &log, port);
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");

    // Several failed scrapes of every bad source, and the good one up.
    let metrics = wait_until(
        "every bad source to fail three times",
        Duration::from_secs(30),
        || async {
            let metrics = support::get_text(&metrics_url).await?;
            let failed = BAD
                .iter()
                .all(|name| support::failed_fetches(&metrics, name) >= 3.0);
            let good_up =
                sample_value(&metrics, "driftwatch_source_up", &[("source", "good")]) == Some(1.0);
            (failed && good_up).then_some(metrics)
        },
    )
    .await;
    for name in BAD {
        assert_eq!(
            sample_value(&metrics, "driftwatch_source_up", &[("source", name)]),
            Some(0.0),
            "{name}"
        );
    }
    let health = support::get_text(&format!("http://127.0.0.1:{port}/-/healthy")).await;
    assert!(health.is_some(), "driftwatch is not healthy");

    // One warning per failure episode, not one per scrape.
    let text = std::fs::read_to_string(&log).unwrap();
    for name in BAD {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.contains("\"Source fetch failed\"")
                    && l.contains(&format!("\"source\":\"{name}\""))
            })
            .collect();
        assert_eq!(lines.len(), 1, "{name}: {lines:#?}\n{text}");
    }
    let expect = [
        ("malformed", "line 1"),
        ("html_page", "text/html"),
        ("html_as_text", "line 1"),
        ("too_large", "exceeds the limit of 1024 bytes"),
        ("hangs", "timed out"),
        ("refused", "onnect"),
    ];
    for (name, words) in expect {
        let line = text
            .lines()
            .find(|l| l.contains(&format!("\"source\":\"{name}\"")))
            .unwrap();
        assert!(line.contains(words), "{name}: {line}");
    }
}

#[test]
fn check_config_lists_every_problem_with_its_place_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yml");
    std::fs::write(
        &path,
        "global:\n  interval: 15 s\nsources:\n  - name: a\n    scrape: {}\n    watch:\n      - metric: m\n        colour: red\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_driftwatch"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let file = path.display().to_string();
    for place in [
        format!("{file}:2:13: global.interval:"),
        format!("{file}:5:13: sources[0].scrape"),
        format!("{file}:8:9: sources[0].watch[0].colour:"),
    ] {
        assert!(stdout.contains(&place), "missing {place:?} in:\n{stdout}");
    }

    std::fs::write(&path, "sources:\n  - name: a\n    scrape: {url: 'http://127.0.0.1:1/metrics'}\n    watch: [{metric: m}]\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_driftwatch"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}
