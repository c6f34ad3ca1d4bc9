//! `driftwatch replay` over a series' samples writes, per sample, what the
//! daemon exports on /metrics after scraping the same samples: both run the
//! same detector from the same configuration.

mod support;

use std::time::Duration;

use driftwatch::replay::{self, Replayer};
use support::daemon::Daemon;
use support::target::{Answer, Target, gauge};
use support::{sample_value, wait_until};

const DEADLINE: Duration = Duration::from_secs(20);

/// The shipped detector defaults, but for a window short enough to fill and
/// breach within a few seconds of scraping.
fn config(url: &str) -> String {
    format!(
        "global:\n  interval: 100ms\n  timeout: 80ms\n\
         detector:\n  window: 20\n  min_samples: 10\n  stale_after: 1h\n\
         sources:\n  - name: model\n    scrape:\n      url: {url}\n    watch:\n      \
         - metric: model_accuracy\n        direction: lower_is_worse\n"
    )
}

/// What /metrics (or a replay row) says of one sample.
#[derive(Debug, PartialEq)]
struct Seen {
    zscore: Option<f64>,
    degraded: bool,
}

/// Noise around 0.9, a lasting drop to 0.8 and the return; every value is
/// distinct, so the test can tell which sample the daemon last evaluated.
fn values() -> Vec<f64> {
    let mut rng = fastrand::Rng::with_seed(5);
    (0..45)
        .map(|i| {
            let level = if (25..35).contains(&i) { 0.8 } else { 0.9 };
            level + (rng.f64() - 0.5) * 0.01 + i as f64 * 1e-9
        })
        .collect()
}

async fn scrape_each(daemon: &Daemon, target: &Target, values: &[f64]) -> Vec<Seen> {
    let labels = [("source", "model"), ("metric", "model_accuracy")];
    let mut seen = Vec::new();
    for &value in values {
        target.push([Answer::Body(gauge("model_accuracy", &[("", value)]))]);
        let metrics = wait_until("the sample to be evaluated", DEADLINE, || async {
            let metrics = daemon.metrics().await;
            let last = sample_value(&metrics, "driftwatch_series_last_value", &labels)?;
            (last == value).then_some(metrics)
        })
        .await;
        seen.push(Seen {
            zscore: sample_value(&metrics, "driftwatch_series_zscore", &labels),
            degraded: sample_value(&metrics, "driftwatch_series_degraded", &labels) == Some(1.0),
        });
    }
    seen
}

fn replayed(yaml: &str, values: &[f64]) -> Vec<Seen> {
    let loaded = driftwatch::config::parse_str(yaml, "test.yml").expect("valid config");
    let params = loaded.config.sources[0].watches[0].detector.clone();
    let mut csv = String::from("timestamp,value\n");
    for (i, v) in values.iter().enumerate() {
        csv.push_str(&format!("{},{v}\n", 1_700_000_000 + i));
    }
    let mut out = Vec::new();
    let on_error = driftwatch::cli::OnError::Fail;
    replay::replay_csv(
        Replayer::new(params, None),
        csv.as_bytes(),
        on_error,
        &mut out,
    )
    .unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            Seen {
                zscore: fields[2].parse().ok(),
                degraded: fields[4] == "degraded",
            }
        })
        .collect()
}

#[tokio::test]
async fn replay_writes_what_the_daemon_exports_for_the_same_samples() {
    let target = Target::start().await;
    let yaml = config(&target.url);
    let daemon = Daemon::start(&yaml).await;
    let values = values();
    let from_daemon = scrape_each(&daemon, &target, &values).await;
    daemon.shutdown().await;

    let from_replay = replayed(&yaml, &values);
    assert_eq!(from_replay.len(), values.len());
    for (i, (d, r)) in from_daemon.iter().zip(&from_replay).enumerate() {
        assert_eq!(d, r, "sample {i} ({})", values[i]);
    }
    // The run held every phase: learning, normal samples and a degradation.
    assert!(from_replay[0].zscore.is_none());
    assert!(from_replay.iter().any(|s| s.degraded));
    assert!(
        from_replay
            .iter()
            .any(|s| s.zscore.is_some() && !s.degraded)
    );
}
