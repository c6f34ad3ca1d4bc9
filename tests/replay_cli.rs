//! `driftwatch replay` as a user runs it: the binary over a recorded CSV
//! with the faults recordings have (gaps, a repeated timestamp, a row that
//! does not parse), writing verdicts, alerts and a plot that is checked by
//! parsing it.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::markup::check_well_formed;

/// Detector settings that make the arithmetic easy to follow: a breach is
/// degraded at once and one calm sample recovers.
const CONFIG: &str = "detector:\n  window: 20\n  min_samples: 10\n  threshold: 3\n  \
    recover_threshold: 1.5\n  recover_consecutive: 1\n  accumulate: none\n  \
    direction: lower_is_worse\nsources:\n  - name: recorded\n    scrape:\n      \
    url: http://127.0.0.1:1/metrics\n    watch:\n      - metric: model_accuracy\n";

/// 30 normal rows an irregular 10 to 70 seconds apart (one timestamp
/// repeated), a row that does not parse, a drop of three rows, and recovery.
fn recording() -> String {
    let mut csv = String::from("timestamp,value\n");
    let mut t = 1_700_000_000;
    for i in 0..30 {
        if i != 12 {
            t += 10 + (i * 7) % 61;
        }
        csv.push_str(&format!("{t},{}\n", 0.90 + 0.01 * (i % 3) as f64));
    }
    csv.push_str("soon,0.9\n");
    for value in ["0.5", "0.52", "0.49", "0.91", "0.90"] {
        t += 30;
        csv.push_str(&format!("{t},{value}\n"));
    }
    csv
}

fn replay(dir: &Path, extra: &[&str]) -> Output {
    std::fs::write(dir.join("config.yml"), CONFIG).expect("writing the configuration");
    std::fs::write(dir.join("input.csv"), recording()).expect("writing the recording");
    let arg = |flag: &str, file: &str| format!("{flag}={}", dir.join(file).display());
    let mut args = vec![
        "replay".to_owned(),
        arg("--config.file", "config.yml"),
        arg("--input", "input.csv"),
        arg("--output", "verdicts.csv"),
        arg("--alerts", "alerts.csv"),
        arg("--plot", "plot.svg"),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    Command::new(env!("CARGO_BIN_EXE_driftwatch"))
        .args(&args)
        .output()
        .expect("running driftwatch replay")
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("reading {file}: {e}"))
}

#[test]
fn a_recording_with_faults_gives_verdicts_one_alert_and_a_well_formed_plot() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let out = replay(dir.path(), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "replay failed: {stderr}");
    assert!(
        stderr.contains("line 32"),
        "the unparsable row is not reported by its line: {stderr}"
    );

    let verdicts = read(dir.path(), "verdicts.csv");
    let rows: Vec<Vec<&str>> = verdicts
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(
        verdicts.lines().next(),
        Some("timestamp,value,zscore,badness,state")
    );
    assert_eq!(
        rows.len(),
        35,
        "every parsable row gets a verdict:\n{verdicts}"
    );
    let states: Vec<&str> = rows.iter().map(|r| r[4]).collect();
    assert_eq!(&states[..10], ["learning"; 10]);
    assert_eq!(
        &states[30..],
        ["degraded", "degraded", "degraded", "ok", "ok"]
    );
    assert!(states[10..30].iter().all(|s| *s == "ok"), "{states:?}");

    let alerts = read(dir.path(), "alerts.csv");
    let alert_rows: Vec<&str> = alerts.lines().skip(1).collect();
    assert_eq!(alert_rows.len(), 1, "{alerts}");
    let fields: Vec<&str> = alert_rows[0].split(',').collect();
    assert_eq!(
        (fields[1], fields[2]),
        (rows[30][0], rows[33][0]),
        "{alerts}"
    );
    assert_eq!(fields[4], "3", "samples while degraded: {alerts}");

    let svg = read(dir.path(), "plot.svg");
    check_well_formed(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
    assert!(svg.starts_with("<svg"), "{svg}");
    for class in ["series", "zscore", "threshold"] {
        assert!(
            svg.contains(&format!("class=\"{class}\"")),
            "no {class} in the plot"
        );
    }
    assert_eq!(
        svg.matches("class=\"alert\"").count(),
        2,
        "one span in each panel"
    );
}

#[test]
fn on_error_fail_stops_at_the_first_bad_row_with_its_line() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let out = replay(dir.path(), &["--on-error=fail"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "replay went past a bad row");
    assert!(stderr.contains("line 32"), "{stderr}");
}
