//! A scrape target of many model-quality series for load tests and
//! `bench/vs-prometheus.sh`: `--targets T` targets of `--series N` series
//! each, at /metrics/0 to /metrics/T-1 (/metrics is the first), always
//! gzip-compressed as real exporters answer Prometheus. /requests counts
//! the scrapes by the `who` query parameter (`/metrics?who=prometheus`), so
//! a benchmark counts each scraper's samples without asking the scraper.
//!
//! The bodies are generated and compressed once at start-up, in a few
//! variants whose values differ, and the variant served changes every
//! `--interval`, so every scraper that fetches within one interval sees the
//! same values and every series keeps moving. Serving then costs next to no
//! CPU, so the target does not compete with what is being measured.
//!
//! cargo run --release --example target -- --series 100000 --listen 127.0.0.1:9100

#[path = "../benches/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Distinct value sets per target, served in turn.
const VARIANTS: u64 = 4;

struct Flags {
    series: usize,
    targets: usize,
    listen: String,
    interval: Duration,
}

fn main() -> anyhow::Result<()> {
    let flags = parse_flags()?;
    let started = std::time::Instant::now();
    let bodies: Vec<Vec<Bytes>> = (0..flags.targets)
        .map(|t| body_variants(t * flags.series, flags.series))
        .collect::<anyhow::Result<_>>()?;
    let compressed: usize = bodies.iter().flatten().map(Bytes::len).sum();
    eprintln!(
        "target: {} x {} series, {} variants, {:.1} MB compressed, ready in {:.1?} on {}",
        flags.targets,
        flags.series,
        VARIANTS,
        compressed as f64 / 1e6,
        started.elapsed(),
        flags.listen,
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(flags, Arc::new(bodies)))
}

fn parse_flags() -> anyhow::Result<Flags> {
    let mut flags = Flags {
        series: 100_000,
        targets: 1,
        listen: "127.0.0.1:9100".to_owned(),
        interval: Duration::from_secs(15),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--series" => flags.series = value.parse()?,
            "--targets" => flags.targets = value.parse()?,
            "--listen" => flags.listen = value,
            "--interval" => flags.interval = Duration::from_secs(value.parse()?),
            _ => anyhow::bail!("unknown flag {flag}; see the module comment"),
        }
    }
    anyhow::ensure!(flags.targets > 0 && flags.series > 0, "nothing to serve");
    Ok(flags)
}

/// The compressed bodies of series `first..first + count`, one per variant.
fn body_variants(first: usize, count: usize) -> anyhow::Result<Vec<Bytes>> {
    let mut text = String::with_capacity(count * 130);
    (0..VARIANTS)
        .map(|variant| {
            text.clear();
            for metric in common::METRICS {
                text.push_str(&format!("# HELP {metric} A model quality signal.\n"));
                text.push_str(&format!("# TYPE {metric} gauge\n"));
            }
            for i in first..first + count {
                common::write_series(&mut text, i);
                text.push(' ');
                text.push_str(ryu::Buffer::new().format(common::value(i, variant)));
                text.push('\n');
            }
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(text.as_bytes())?;
            Ok(Bytes::from(encoder.finish()?))
        })
        .collect()
}

/// Requests by the `who` of their query string.
type Counts = Arc<Mutex<BTreeMap<String, u64>>>;

async fn serve(flags: Flags, bodies: Arc<Vec<Vec<Bytes>>>) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&flags.listen).await?;
    let interval = flags.interval.as_secs().max(1);
    let counts = Counts::default();
    loop {
        let (stream, _) = listener.accept().await?;
        let bodies = Arc::clone(&bodies);
        let counts = Arc::clone(&counts);
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let uri = request.uri();
                let response = if uri.path() == "/requests" {
                    report(&counts)
                } else {
                    count(&counts, uri.query());
                    answer(&bodies, uri.path(), interval)
                };
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn count(counts: &Counts, query: Option<&str>) {
    let who = query
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("who="))
        .unwrap_or("anonymous");
    let mut counts = counts.lock().unwrap_or_else(|e| e.into_inner());
    *counts.entry(who.to_owned()).or_default() += 1;
}

/// One `who count` line per scraper.
fn report(counts: &Counts) -> Response<Full<Bytes>> {
    let counts = counts.lock().unwrap_or_else(|e| e.into_inner());
    let text: String = counts
        .iter()
        .map(|(who, n)| format!("{who} {n}\n"))
        .collect();
    Response::new(Full::new(Bytes::from(text)))
}

fn answer(bodies: &[Vec<Bytes>], path: &str, interval: u64) -> Response<Full<Bytes>> {
    let target = match path.strip_prefix("/metrics") {
        Some("") => Some(0),
        Some(rest) => rest.strip_prefix('/').and_then(|n| n.parse::<usize>().ok()),
        None => None,
    };
    let Some(variants) = target.and_then(|t| bodies.get(t)) else {
        let mut response = Response::new(Full::new(Bytes::from_static(b"not found\n")));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let body = variants[((now / interval) % VARIANTS) as usize].clone();
    let mut response = Response::new(Full::new(body));
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    headers.insert(
        hyper::header::CONTENT_ENCODING,
        hyper::header::HeaderValue::from_static("gzip"),
    );
    response
}
