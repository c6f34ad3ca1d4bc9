//! Sharded replicas over one target, run as real binaries: together they
//! watch every series exactly once, and a replica added later takes only
//! its share, from every old replica, moving nothing between old ones.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use support::target::{Answer, Target, gauge};
use support::{ChildGuard, free_port, get_text, sample_value, start_binary_env, wait_until};

const SERIES: usize = 300;
const DEADLINE: Duration = Duration::from_secs(30);

/// A target serving `SERIES` watched series and one unwatched family.
async fn target() -> Target {
    let labels: Vec<String> = (0..SERIES).map(|i| format!("model=\"m{i}\"")).collect();
    let samples: Vec<(&str, f64)> = labels.iter().map(|l| (l.as_str(), 0.9)).collect();
    let mut body = gauge("model_accuracy", &samples);
    body.push_str(&gauge("process_cpu_seconds", &[("", 1.0)]));
    let target = Target::start().await;
    target.set_fallback(Answer::Body(body));
    target
}

/// A replica started with `flags` and `env`, answering on its own port.
struct Replica {
    port: u16,
    _process: ChildGuard,
}

fn start(dir: &Path, url: &str, name: &str, flags: &[String], env: &[(&str, &str)]) -> Replica {
    let yaml = format!(
        "global:\n  interval: 200ms\n  timeout: 150ms\nsources:\n  - name: model\n    \
         scrape:\n      url: {url}\n    watch:\n      - metric: model_accuracy\n"
    );
    let config = dir.join(format!("{name}.yml"));
    std::fs::write(&config, yaml).expect("writing the configuration");
    let port = free_port();
    let process = start_binary_env(&config, &dir.join(format!("{name}.log")), port, flags, env);
    Replica {
        port,
        _process: process,
    }
}

fn shard_flags(index: u32, total: u32) -> Vec<String> {
    vec![
        format!("--shard.total={total}"),
        format!("--shard.index={index}"),
    ]
}

/// The ids of the series a replica watches, read once it has fetched the
/// target successfully (every later fetch serves the same series).
async fn watched(replica: &Replica) -> BTreeSet<String> {
    let base = format!("http://127.0.0.1:{}", replica.port);
    wait_until("a successful fetch", DEADLINE, || async {
        let metrics = get_text(&format!("{base}/metrics")).await?;
        let labels = [("source", "model"), ("result", "success")];
        let fetched = sample_value(&metrics, "driftwatch_source_scrapes_total", &labels)?;
        (fetched >= 1.0).then_some(())
    })
    .await;
    let text = get_text(&format!("{base}/api/v1/series"))
        .await
        .expect("GET /api/v1/series");
    let answer: serde_json::Value = serde_json::from_str(&text).expect("JSON from /api/v1/series");
    answer["data"]
        .as_array()
        .expect("a data array")
        .iter()
        .map(|s| s["id"].as_str().expect("a series id").to_owned())
        .collect()
}

async fn split(dir: &Path, url: &str, total: u32) -> Vec<BTreeSet<String>> {
    let replicas: Vec<Replica> = (0..total)
        .map(|i| {
            start(
                dir,
                url,
                &format!("{total}-{i}"),
                &shard_flags(i, total),
                &[],
            )
        })
        .collect();
    let mut shards = Vec::new();
    for replica in &replicas {
        shards.push(watched(replica).await);
    }
    shards
}

fn assert_partition(shards: &[BTreeSet<String>], everything: &BTreeSet<String>) {
    for (i, a) in shards.iter().enumerate() {
        assert!(!a.is_empty(), "shard {i} watches nothing");
        for (j, b) in shards.iter().enumerate().skip(i + 1) {
            let both: Vec<_> = a.intersection(b).collect();
            assert!(both.is_empty(), "shards {i} and {j} both watch {both:?}");
        }
    }
    let union: BTreeSet<String> = shards.iter().flatten().cloned().collect();
    assert_eq!(&union, everything, "the shards together miss series");
}

#[tokio::test]
async fn three_replicas_watch_every_series_exactly_once_and_a_fourth_takes_a_quarter() {
    let target = target().await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let all = start(dir.path(), &target.url, "all", &[], &[]);
    let everything = watched(&all).await;
    assert_eq!(everything.len(), SERIES);

    let three = split(dir.path(), &target.url, 3).await;
    assert_partition(&three, &everything);

    let four = split(dir.path(), &target.url, 4).await;
    assert_partition(&four, &everything);
    for (i, (old, new)) in three.iter().zip(&four).enumerate() {
        assert!(
            new.is_subset(old),
            "replica {i} gained series from another old replica"
        );
    }
    let moved = four[3].len() as f64 / SERIES as f64;
    assert!((0.15..0.35).contains(&moved), "{moved} of the series moved");
}

#[tokio::test]
async fn a_statefulset_pod_takes_its_shard_from_its_name() {
    let target = target().await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let by_flag = start(dir.path(), &target.url, "flag", &shard_flags(2, 3), &[]);
    let total = vec!["--shard.total=3".to_owned()];
    let env = [("POD_NAME", "driftwatch-2")];
    let by_pod = start(dir.path(), &target.url, "pod", &total, &env);

    let (by_flag, by_pod) = (watched(&by_flag).await, watched(&by_pod).await);
    assert!(!by_pod.is_empty());
    assert_eq!(by_pod, by_flag);
}
