//! Fetching samples from a source: an HTTP scrape of a Prometheus text
//! endpoint, streamed through the parser as the body arrives, or a PromQL
//! query ([`promql`]).

pub mod promql;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::parse::{ExpositionParser, ParseError, SampleSink};

/// The Accept header Prometheus sends; exporters that speak several formats
/// answer with the classic text format we parse.
const ACCEPT_TEXT: &str = "text/plain;version=0.0.4;q=1,*/*;q=0.1";

/// Why a scrape failed. Every variant is a normal operating condition that
/// the engine reports as `driftwatch_source_up 0` and one log line.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("connecting to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("scrape of {url} timed out after {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} answered with Content-Type {content_type}, not a Prometheus text exposition")]
    ContentType { url: String, content_type: String },
    #[error("body of {url} exceeds the limit of {limit} bytes")]
    BodyTooLarge { url: String, limit: u64 },
    #[error("reading the body of {url}: {reason}")]
    Body { url: String, reason: String },
    #[error("malformed exposition from {url}: {source}")]
    Parse { url: String, source: ParseError },
    #[error("reading bearer token file {path}: {reason}")]
    TokenFile { path: PathBuf, reason: String },
    #[error("reading {path}: {reason}")]
    SecretFile { path: PathBuf, reason: String },
    #[error("the query to {url} failed: {message}")]
    Query { url: String, message: String },
    #[error("undecodable answer from {url}: {reason}")]
    Decode { url: String, reason: String },
    #[error("{0}")]
    Client(String),
}

impl ScrapeError {
    /// A bounded label value for `driftwatch_source_scrapes_total{result}`.
    pub fn result_label(&self) -> &'static str {
        match self {
            ScrapeError::Connect { .. } => "connect_error",
            ScrapeError::Timeout { .. } => "timeout",
            ScrapeError::Status { .. } => "http_error",
            ScrapeError::ContentType { .. } | ScrapeError::Parse { .. } => "parse_error",
            ScrapeError::BodyTooLarge { .. } => "body_too_large",
            ScrapeError::Body { .. } => "body_error",
            ScrapeError::TokenFile { .. }
            | ScrapeError::SecretFile { .. }
            | ScrapeError::Client(_) => "config_error",
            ScrapeError::Query { .. } => "query_error",
            ScrapeError::Decode { .. } => "parse_error",
        }
    }
}

/// What one scrape asks for.
pub struct ScrapeRequest<'a> {
    pub url: &'a str,
    pub bearer_token_file: Option<&'a Path>,
    pub timeout: Duration,
    pub body_size_limit: u64,
}

/// Fetches `request.url` and feeds every sample to `sink` while the body
/// streams in, so a large target is never held in memory whole. The caller
/// decides what to keep: a failed scrape reports an error after some samples
/// may already have been seen.
pub async fn scrape(
    client: &reqwest::Client,
    request: &ScrapeRequest<'_>,
    sink: &mut impl SampleSink,
) -> Result<usize, ScrapeError> {
    let url = request.url;
    match tokio::time::timeout(request.timeout, scrape_inner(client, request, sink)).await {
        Ok(result) => result,
        Err(_) => Err(ScrapeError::Timeout {
            url: url.to_owned(),
            timeout: request.timeout,
        }),
    }
}

async fn scrape_inner(
    client: &reqwest::Client,
    request: &ScrapeRequest<'_>,
    sink: &mut impl SampleSink,
) -> Result<usize, ScrapeError> {
    let url = request.url;
    let mut builder = client
        .get(url)
        .header(reqwest::header::ACCEPT, ACCEPT_TEXT)
        .header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            request.timeout.as_secs_f64().to_string(),
        );
    if let Some(path) = request.bearer_token_file {
        builder = builder.bearer_auth(read_token(path).await?);
    }
    let mut response = builder.send().await.map_err(|e| ScrapeError::Connect {
        url: url.to_owned(),
        reason: error_chain(&e),
    })?;

    // Status and content type first: an HTML error page would otherwise show up
    // as a confusing parse error on its first line.
    let status = response.status();
    if !status.is_success() {
        return Err(ScrapeError::Status {
            url: url.to_owned(),
            status: status.as_u16(),
        });
    }
    if let Some(content_type) = response.headers().get(reqwest::header::CONTENT_TYPE) {
        let content_type = content_type.to_str().unwrap_or("").to_ascii_lowercase();
        if content_type.starts_with("text/html") || content_type.starts_with("application/json") {
            return Err(ScrapeError::ContentType {
                url: url.to_owned(),
                content_type,
            });
        }
    }
    if response
        .content_length()
        .is_some_and(|len| len > request.body_size_limit)
    {
        return Err(ScrapeError::BodyTooLarge {
            url: url.to_owned(),
            limit: request.body_size_limit,
        });
    }

    // Stream the body through the parser, counting decompressed bytes so a
    // small gzip bomb cannot get past the limit.
    let mut parser = ExpositionParser::new();
    let mut received: u64 = 0;
    loop {
        let chunk = response.chunk().await.map_err(|e| ScrapeError::Body {
            url: url.to_owned(),
            reason: error_chain(&e),
        })?;
        let Some(chunk) = chunk else { break };
        received += chunk.len() as u64;
        if received > request.body_size_limit {
            return Err(ScrapeError::BodyTooLarge {
                url: url.to_owned(),
                limit: request.body_size_limit,
            });
        }
        parser
            .feed(&chunk, sink)
            .map_err(|source| ScrapeError::Parse {
                url: url.to_owned(),
                source,
            })?;
    }
    parser.finish(sink).map_err(|source| ScrapeError::Parse {
        url: url.to_owned(),
        source,
    })?;
    Ok(received as usize)
}

/// Reads a bearer token on every scrape, so a rotated token is used at once.
pub(crate) async fn read_token(path: &Path) -> Result<String, ScrapeError> {
    match tokio::fs::read_to_string(path).await {
        Ok(token) => Ok(token.trim().to_owned()),
        Err(e) => Err(ScrapeError::TokenFile {
            path: path.to_owned(),
            reason: e.to_string(),
        }),
    }
}

/// reqwest's top-level messages ("error sending request") hide the cause; the
/// operator needs the innermost one ("connection refused").
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}
