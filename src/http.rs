//! The HTTP server: /metrics, health and readiness, reload, the JSON API
//! and the status page.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use flate2::write::GzEncoder;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue, VARY};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::detector::State;
use crate::engine::{self, Shared, lock, own_labels};
use crate::exporter::{self, Format};
use crate::selector::Selector;
use crate::status;

/// A reload request from the API, answered with the problems if any.
pub type ReloadRequest = oneshot::Sender<Result<(), String>>;

/// Renders of /metrics that may run at once. Each holds a whole exposition
/// in memory (hundreds of megabytes at a million series), so scrapers beyond
/// an HA pair of Prometheus servers wait their turn rather than multiply it.
pub const CONCURRENT_RENDERS: usize = 2;

/// What the handlers need.
pub struct Api {
    pub shared: Arc<Shared>,
    pub reload: mpsc::Sender<ReloadRequest>,
    /// [`CONCURRENT_RENDERS`] permits.
    pub renders: Semaphore,
}

/// Serves until `shutdown` completes. Connections in flight are left to
/// finish on their own; a scrape of /metrics is short.
pub async fn serve(listener: TcpListener, api: Arc<Api>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "Accepting a connection failed");
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let api = Arc::clone(&api);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let api = Arc::clone(&api);
                async move { Ok::<_, Infallible>(route(&api, request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
        });
    }
}

async fn route(api: &Api, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    match (request.method(), path) {
        (&Method::GET | &Method::HEAD, "/metrics") => metrics(api, &request).await,
        (&Method::GET | &Method::HEAD, "/-/healthy") => text(StatusCode::OK, "Healthy.\n"),
        (&Method::GET | &Method::HEAD, "/-/ready") => {
            if api.shared.ready.load(Ordering::Relaxed) {
                text(StatusCode::OK, "Ready.\n")
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Not ready: the configuration is not loaded yet.\n",
                )
            }
        }
        (&Method::POST | &Method::PUT, "/-/reload") => reload(api).await,
        (&Method::GET, "/api/v1/series") => json_response(StatusCode::OK, series(api, false)),
        (&Method::GET, "/api/v1/alerts") => json_response(StatusCode::OK, series(api, true)),
        (&Method::POST, "/api/v1/baseline/reset") => reset(api, request).await,
        (&Method::GET | &Method::HEAD, "/") => {
            let query = form_pairs(request.uri().query().unwrap_or(""));
            html(status::index(&api.shared, &query))
        }
        (&Method::GET | &Method::HEAD, p) if p.starts_with("/series/") => {
            html(status::series(&api.shared, &p["/series/".len()..]))
        }
        (
            _,
            "/metrics"
            | "/-/healthy"
            | "/-/ready"
            | "/-/reload"
            | "/api/v1/series"
            | "/api/v1/alerts"
            | "/api/v1/baseline/reset"
            | "/",
        ) => text(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.\n"),
        _ => text(StatusCode::NOT_FOUND, "Not found.\n"),
    }
}

/// Renders /metrics on the blocking pool: a million series take long
/// enough that the async workers must stay free for fetches meanwhile.
async fn metrics(api: &Api, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let headers = request.headers();
    let accept = headers.get(ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::from_accept(accept);
    let encoding = headers.get(ACCEPT_ENCODING).and_then(|v| v.to_str().ok());
    let gzip = accepts_gzip(encoding);
    // The semaphore is never closed, so waiting always ends with a permit.
    let _permit = api.renders.acquire().await;
    let shared = Arc::clone(&api.shared);
    let rendered = tokio::task::spawn_blocking(move || render_body(&shared, format, gzip)).await;
    let body = match rendered {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "Compressing /metrics failed");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "Compressing failed.\n");
        }
        Err(e) => {
            tracing::error!(error = %e, "Rendering /metrics panicked");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "Rendering failed.\n");
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    if gzip {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

/// The exposition, gzip-compressed as it is rendered when `gzip`, so the
/// whole text is never held; at the fastest level, since exposition text
/// still shrinks about tenfold for a fraction of the default's CPU.
fn render_body(shared: &Shared, format: Format, gzip: bool) -> std::io::Result<Vec<u8>> {
    if !gzip {
        let mut body = Vec::new();
        exporter::render_into(shared, format, &mut body)?;
        return Ok(body);
    }
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    exporter::render_into(shared, format, &mut encoder)?;
    encoder.finish()
}

/// Whether `Accept-Encoding` admits gzip: named without `q=0`, or, when
/// not named, admitted by `*`.
fn accepts_gzip(header: Option<&str>) -> bool {
    let Some(header) = header else { return false };
    let codings: Vec<(&str, bool)> = header
        .split(',')
        .map(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (coding, !refused)
        })
        .collect();
    let named = |name: &str| codings.iter().find(|(c, _)| c.eq_ignore_ascii_case(name));
    match (named("gzip"), named("*")) {
        (Some(&(_, admitted)), _) | (None, Some(&(_, admitted))) => admitted,
        (None, None) => false,
    }
}

async fn reload(api: &Api) -> Response<Full<Bytes>> {
    let (reply, answer) = oneshot::channel();
    if api.reload.try_send(reply).is_err() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "A reload is already in progress.\n",
        );
    }
    match answer.await {
        Ok(Ok(())) => text(StatusCode::OK, "Configuration reloaded.\n"),
        Ok(Err(problems)) => text(
            StatusCode::BAD_REQUEST,
            &format!("Configuration refused:\n{problems}\n"),
        ),
        Err(_) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "The daemon is shutting down.\n",
        ),
    }
}

/// The series as JSON, in the envelope of Prometheus's API.
fn series(api: &Api, alerts_only: bool) -> Value {
    let mut data = Vec::new();
    for source in api.shared.sources().iter() {
        let table = lock(&source.table);
        for entry in table.iter() {
            let state = entry.detector.state();
            if alerts_only && !matches!(state, State::Pending | State::Degraded) {
                continue;
            }
            let last = entry.detector.last();
            let labels: serde_json::Map<String, Value> = own_labels(&entry.labels)
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            let params = &source.config.watches[entry.watch as usize].detector;
            data.push(json!({
                "id": format!("{:016x}", source.series_id(entry)),
                "source": &*source.name,
                "metric": &*source.watch_metrics[entry.watch as usize],
                "labels": labels,
                "state": state.as_str(),
                "since": rfc3339(entry.detector.since_ms()),
                "value": last.as_ref().map(|e| json_number(e.value)),
                "zscore": last.as_ref().and_then(|e| e.zscore).map(json_number),
                "evidence": last.as_ref().and_then(|e| e.evidence).map(json_number),
                "mean": last.as_ref().and_then(|e| e.mean).map(json_number),
                "stddev": last.as_ref().and_then(|e| e.stddev).map(json_number),
                // Of the baseline the z-score was computed against, as on
                // /metrics, so the numbers of one record fit together.
                "window_samples": last.as_ref().map_or(0, |e| e.window_samples),
                "window": params.window,
            }));
        }
    }
    json!({ "status": "success", "data": data })
}

/// JSON has no NaN or infinity; those become null.
fn json_number(value: f64) -> Value {
    serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number)
}

pub fn rfc3339(ms: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}

fn html(page: status::Page) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(page.body)));
    *response.status_mut() =
        StatusCode::from_u16(page.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // The page is live data; a cached copy would show a stale state.
    headers.insert(
        hyper::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    response
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The largest form body `POST /api/v1/baseline/reset` reads.
const MAX_FORM_BODY: usize = 64 * 1024;

/// `POST /api/v1/baseline/reset`: the series matching any `match[]`
/// selector (in the query string or a form body) relearn their baselines.
async fn reset(api: &Api, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let mut pairs: Vec<(String, String)> = form_pairs(request.uri().query().unwrap_or(""));
    let is_form = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        let limited = http_body_util::Limited::new(request.into_body(), MAX_FORM_BODY);
        match http_body_util::BodyExt::collect(limited).await {
            Ok(body) => pairs.extend(form_pairs(&String::from_utf8_lossy(&body.to_bytes()))),
            Err(e) => return bad_data(&format!("reading the form body: {e}")),
        }
    }
    let mut selectors = Vec::new();
    for (key, value) in pairs {
        if key != "match[]" {
            continue;
        }
        match Selector::parse(&value) {
            Ok(selector) => selectors.push(selector),
            Err(e) => return bad_data(&e),
        }
    }
    if selectors.is_empty() {
        return bad_data("no match[] selector given: say which series to reset");
    }
    let reset = engine::reset_baselines(&api.shared, &selectors);
    tracing::info!(series = reset, "Baselines reset by API request");
    json_response(
        StatusCode::OK,
        json!({ "status": "success", "data": { "reset": reset } }),
    )
}

fn form_pairs(text: &str) -> Vec<(String, String)> {
    let Ok(url) = reqwest::Url::parse(&format!("http://localhost/?{text}")) else {
        return Vec::new();
    };
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// An error in Prometheus's API envelope.
fn bad_data(message: &str) -> Response<Full<Bytes>> {
    json_response(
        StatusCode::BAD_REQUEST,
        json!({ "status": "error", "errorType": "bad_data", "error": message }),
    )
}

fn json_response(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_used_only_when_the_scraper_accepts_it() {
        assert!(accepts_gzip(Some("gzip")));
        assert!(accepts_gzip(Some("identity, GZIP;q=0.5")));
        assert!(accepts_gzip(Some("*")));
        assert!(!accepts_gzip(None));
        assert!(!accepts_gzip(Some("identity")));
        assert!(!accepts_gzip(Some("gzip;q=0, br")));
        assert!(!accepts_gzip(Some("deflate")));
        assert!(!accepts_gzip(Some("*, gzip;q=0")));
    }
}
