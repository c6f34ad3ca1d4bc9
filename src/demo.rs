//! `driftwatch demo`: a simulated model server whose accuracy degrades for
//! a while every two minutes, watched by an embedded configuration, so a new
//! user sees the whole loop (learning, ok, degraded, ok) with no setup.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::config;
use crate::daemon::{self, Options};
use crate::detector::State;
use crate::engine::StateChange;

/// One cycle of the simulation: healthy, then degraded from `DROP_AT` to
/// `RECOVER_AT`, then healthy again until the cycle repeats.
const CYCLE: Duration = Duration::from_secs(120);
const DROP_AT: Duration = Duration::from_secs(50);
const RECOVER_AT: Duration = Duration::from_secs(80);

/// The embedded configuration; `{target}` is the simulated model's address.
const CONFIG: &str = r#"
global:
  interval: 1s
  timeout: 900ms
detector:
  window: 60
  min_samples: 20
  # The shipped threshold of 5: the drop is some 20 standard deviations,
  # and 3 now and then fired for a few seconds on the noise alone.
  recover_threshold: 1.5
  # The shipped 144 calm samples would hold the demo's alert for minutes.
  recover_consecutive: 5
sources:
  - name: demo-model
    scrape:
      url: http://{target}/metrics
    watch:
      - metric: model_accuracy
        direction: lower_is_worse
      - metric: model_latency_seconds
        direction: higher_is_worse
"#;

/// Runs the demo until `shutdown`.
pub async fn run(
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let model = TcpListener::bind("127.0.0.1:0").await?;
    let target = model.local_addr()?;
    let started = Instant::now();
    tokio::spawn(serve_model(model, started));

    let text = CONFIG.replace("{target}", &target.to_string());
    let loaded = config::parse_str(&text, "<demo>").map_err(|e| anyhow::anyhow!("{e}"))?;
    let address = listener.local_addr()?;
    println!("driftwatch demo");
    println!("  simulated model server: http://{target}/metrics");
    println!("  driftwatch /metrics:    http://{address}/metrics");
    println!("  series API:             http://{address}/api/v1/series");
    println!(
        "  The model's accuracy drops {}s into every {}s cycle and comes back {}s later.",
        DROP_AT.as_secs(),
        CYCLE.as_secs(),
        RECOVER_AT.as_secs() - DROP_AT.as_secs()
    );
    println!("  Press Ctrl-C to stop.\n");

    let options = Options {
        config: loaded.config,
        config_path: None,
        external_url: format!("http://{address}"),
        observer: Some(Arc::new(print_change)),
        storage_path: None,
        shard: crate::shard::Shard::ALL,
    };
    daemon::run(options, listener, shutdown).await
}

fn print_change(change: &StateChange) {
    let at = crate::http::rfc3339(change.at_ms);
    let series = format!("{}{{{}}}", change.metric, change.labels);
    let z = change.zscore.map_or("-".to_owned(), |z| format!("{z:+.2}"));
    println!(
        "{at}  {series}  {} -> {}  value={:.4} z={z}",
        change.from.as_str(),
        change.to.as_str(),
        change.value
    );
    if change.to == State::Degraded {
        println!("{at}  ALERT FIRING    ModelPerformanceDegraded {series}");
    } else if change.from == State::Degraded {
        println!("{at}  ALERT RESOLVED  ModelPerformanceDegraded {series}");
    }
}

async fn serve_model(listener: TcpListener, started: Instant) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service = service_fn(move |_: Request<hyper::body::Incoming>| async move {
                let body = exposition(started.elapsed());
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// What the simulated model exposes `elapsed` after the demo started.
pub fn exposition(elapsed: Duration) -> String {
    let in_cycle = Duration::from_millis((elapsed.as_millis() % CYCLE.as_millis()) as u64);
    let degraded = in_cycle >= DROP_AT && in_cycle < RECOVER_AT;
    let accuracy = if degraded { 0.84 } else { 0.92 } + gaussian() * 0.004;
    let latency = 0.120 + gaussian() * 0.006;
    let mut out = String::new();
    out.push_str("# HELP model_accuracy Share of correct predictions over the last minute.\n");
    out.push_str("# TYPE model_accuracy gauge\n");
    let _ = writeln!(
        out,
        "model_accuracy{{model=\"fraud\",version=\"3\"}} {accuracy}"
    );
    out.push_str("# HELP model_latency_seconds Mean inference latency over the last minute.\n");
    out.push_str("# TYPE model_latency_seconds gauge\n");
    let _ = writeln!(
        out,
        "model_latency_seconds{{model=\"fraud\",version=\"3\"}} {latency}"
    );
    out
}

/// A standard normal draw (Box-Muller); the demo needs no better.
fn gaussian() -> f64 {
    let u1 = fastrand::f64().max(f64::MIN_POSITIVE);
    let u2 = fastrand::f64();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}
