//! PromQL sources: instant and range queries against the Prometheus HTTP API,
//! which VictoriaMetrics, Thanos and Mimir speak as well.
//!
//! Queries are evaluated at times aligned to the source's interval, so two
//! replicas (or two servers holding the same data) compute the same values
//! whenever within the interval they happen to run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ScrapeError, error_chain, read_token};
use crate::config::BasicAuth;

/// Prometheus refuses range queries of more points than this per series.
pub const MAX_RANGE_POINTS: usize = 11_000;

/// What a query asks for, besides its time.
pub struct QueryRequest<'a> {
    /// The server's base URL, e.g. `http://prometheus:9090`.
    pub url: &'a str,
    pub query: &'a str,
    pub bearer_token_file: Option<&'a std::path::Path>,
    pub basic_auth: Option<&'a BasicAuth>,
    pub timeout: Duration,
    pub body_size_limit: u64,
}

/// One series of a query's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultSeries {
    /// `__name__`, when the result kept it.
    pub name: Option<String>,
    /// The other labels, sorted by name.
    pub labels: Vec<(String, String)>,
    /// (Unix ms, value), oldest first; one point for an instant query.
    pub points: Vec<(i64, f64)>,
}

/// Runs `query` at `at_ms`. A vector gives a series per element, a scalar one
/// series without labels; a matrix or a string is refused, since a watch
/// needs one value per series.
pub async fn instant(
    client: &reqwest::Client,
    request: &QueryRequest<'_>,
    at_ms: i64,
) -> Result<Vec<ResultSeries>, ScrapeError> {
    let params = [
        ("query", request.query.to_owned()),
        ("time", seconds(at_ms)),
        ("timeout", format!("{}ms", request.timeout.as_millis())),
    ];
    let data = call(client, request, "api/v1/query", &params).await?;
    let url = request.url;
    match data {
        Data::Vector(items) => items
            .into_iter()
            .map(|item| item.into_series(url))
            .collect(),
        Data::Scalar(point) => Ok(vec![ResultSeries {
            name: None,
            labels: Vec::new(),
            points: vec![point.parse(url)?],
        }]),
        Data::Matrix(_) => Err(unexpected(url, "matrix")),
        Data::String(_) => Err(unexpected(url, "string")),
    }
}

/// Runs `query` over `[start_ms, end_ms]` every `step`, for backfill.
pub async fn range(
    client: &reqwest::Client,
    request: &QueryRequest<'_>,
    start_ms: i64,
    end_ms: i64,
    step: Duration,
) -> Result<Vec<ResultSeries>, ScrapeError> {
    let params = [
        ("query", request.query.to_owned()),
        ("start", seconds(start_ms)),
        ("end", seconds(end_ms)),
        ("step", format!("{}", step.as_secs_f64())),
        ("timeout", format!("{}ms", request.timeout.as_millis())),
    ];
    let url = request.url;
    match call(client, request, "api/v1/query_range", &params).await? {
        Data::Matrix(items) => items
            .into_iter()
            .map(|item| item.into_series(url))
            .collect(),
        Data::Vector(_) => Err(unexpected(url, "vector")),
        Data::Scalar(_) => Err(unexpected(url, "scalar")),
        Data::String(_) => Err(unexpected(url, "string")),
    }
}

/// The time a query of a source with `interval` runs for at `now_ms`: the
/// latest multiple of the interval.
pub fn aligned(now_ms: i64, interval: Duration) -> i64 {
    let step = i64::try_from(interval.as_millis())
        .unwrap_or(i64::MAX)
        .max(1);
    now_ms.div_euclid(step) * step
}

fn seconds(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

fn unexpected(url: &str, kind: &str) -> ScrapeError {
    ScrapeError::Query {
        url: url.to_owned(),
        message: format!(
            "the query returned a {kind}; a watched query must return an instant vector or a scalar"
        ),
    }
}

/// Sends one API request and returns the `data` of a successful answer.
async fn call(
    client: &reqwest::Client,
    request: &QueryRequest<'_>,
    endpoint: &str,
    params: &[(&str, String)],
) -> Result<Data, ScrapeError> {
    let base = request.url;
    let endpoint_url = format!("{}/{endpoint}", base.trim_end_matches('/'));
    let run = async {
        let mut builder = client.get(&endpoint_url).query(params);
        if let Some(path) = request.bearer_token_file {
            builder = builder.bearer_auth(read_token(path).await?);
        }
        if let Some(auth) = request.basic_auth {
            builder = builder.basic_auth(
                &auth.username,
                Some(read_secret(&auth.password_file).await?),
            );
        }
        let response = builder.send().await.map_err(|e| ScrapeError::Connect {
            url: base.to_owned(),
            reason: error_chain(&e),
        })?;
        let status = response.status();
        let body = read_limited(response, base, request.body_size_limit).await?;
        decode(base, status, &body)
    };
    match tokio::time::timeout(request.timeout, run).await {
        Ok(result) => result,
        Err(_) => Err(ScrapeError::Timeout {
            url: base.to_owned(),
            timeout: request.timeout,
        }),
    }
}

async fn read_secret(path: &std::path::Path) -> Result<String, ScrapeError> {
    match tokio::fs::read_to_string(path).await {
        Ok(secret) => Ok(secret.trim_end_matches(['\r', '\n']).to_owned()),
        Err(e) => Err(ScrapeError::SecretFile {
            path: PathBuf::from(path),
            reason: e.to_string(),
        }),
    }
}

async fn read_limited(
    mut response: reqwest::Response,
    url: &str,
    limit: u64,
) -> Result<Vec<u8>, ScrapeError> {
    let too_large = || ScrapeError::BodyTooLarge {
        url: url.to_owned(),
        limit,
    };
    if response.content_length().is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| ScrapeError::Body {
        url: url.to_owned(),
        reason: error_chain(&e),
    })? {
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads the API's envelope. A failed query carries the server's own
/// message, which is what the operator needs to fix the PromQL.
fn decode(url: &str, status: reqwest::StatusCode, body: &[u8]) -> Result<Data, ScrapeError> {
    let envelope: Envelope = match serde_json::from_slice(body) {
        Ok(envelope) => envelope,
        Err(_) if !status.is_success() => {
            return Err(ScrapeError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
            });
        }
        Err(e) => {
            return Err(ScrapeError::Decode {
                url: url.to_owned(),
                reason: e.to_string(),
            });
        }
    };
    if envelope.status != "success" || !status.is_success() {
        let message = match (envelope.error_type, envelope.error) {
            (Some(kind), Some(error)) => format!("{kind}: {error}"),
            (None, Some(error)) => error,
            _ => format!("HTTP {} with status {:?}", status.as_u16(), envelope.status),
        };
        return Err(ScrapeError::Query {
            url: url.to_owned(),
            message,
        });
    }
    // A warning means the answer may be partial (a store unreachable behind
    // Thanos, say): a baseline must not learn from half the data.
    if !envelope.warnings.is_empty() {
        return Err(ScrapeError::Query {
            url: url.to_owned(),
            message: format!("the server warned: {}", envelope.warnings.join("; ")),
        });
    }
    envelope.data.ok_or_else(|| ScrapeError::Decode {
        url: url.to_owned(),
        reason: "a successful answer without data".to_owned(),
    })
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    data: Option<Data>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum Data {
    Vector(Vec<VectorItem>),
    Matrix(Vec<MatrixItem>),
    Scalar(Point),
    /// Refused whatever it holds.
    String(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct VectorItem {
    metric: BTreeMap<String, String>,
    /// Absent for a native histogram, which has no single value.
    value: Option<Point>,
}

#[derive(Deserialize)]
struct MatrixItem {
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<Point>,
}

/// `[<unix seconds>, "<value>"]`.
#[derive(Deserialize)]
struct Point(f64, String);

impl Point {
    fn parse(&self, url: &str) -> Result<(i64, f64), ScrapeError> {
        let value = parse_value(&self.1).ok_or_else(|| ScrapeError::Decode {
            url: url.to_owned(),
            reason: format!("{:?} is not a sample value", self.1),
        })?;
        Ok(((self.0 * 1000.0).round() as i64, value))
    }
}

fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

fn split_name(mut metric: BTreeMap<String, String>) -> (Option<String>, Vec<(String, String)>) {
    let name = metric.remove("__name__");
    (name, metric.into_iter().collect())
}

impl VectorItem {
    fn into_series(self, url: &str) -> Result<ResultSeries, ScrapeError> {
        let points = match &self.value {
            Some(point) => vec![point.parse(url)?],
            None => Vec::new(),
        };
        let (name, labels) = split_name(self.metric);
        Ok(ResultSeries {
            name,
            labels,
            points,
        })
    }
}

impl MatrixItem {
    fn into_series(self, url: &str) -> Result<ResultSeries, ScrapeError> {
        let points = self
            .values
            .iter()
            .map(|p| p.parse(url))
            .collect::<Result<_, _>>()?;
        let (name, labels) = split_name(self.metric);
        Ok(ResultSeries {
            name,
            labels,
            points,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://p";

    fn ok(body: &str) -> Result<Data, ScrapeError> {
        decode(URL, reqwest::StatusCode::OK, body.as_bytes())
    }

    #[test]
    fn vector_results_become_series_with_sorted_labels() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"model":"b","__name__":"acc","a":"1"},"value":[1700000000.5,"0.95"]},
            {"metric":{},"value":[1700000000.5,"NaN"]}]}}"#;
        let Ok(Data::Vector(items)) = ok(body) else {
            panic!("not a vector")
        };
        let series: Vec<ResultSeries> = items
            .into_iter()
            .map(|i| i.into_series(URL).unwrap())
            .collect();
        assert_eq!(series[0].name.as_deref(), Some("acc"));
        assert_eq!(
            series[0].labels,
            vec![("a".into(), "1".into()), ("model".into(), "b".into())]
        );
        assert_eq!(series[0].points, vec![(1_700_000_000_500, 0.95)]);
        assert!(series[1].points[0].1.is_nan());
    }

    #[test]
    fn server_errors_carry_the_servers_message() {
        let body = r#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#;
        let error = decode(URL, reqwest::StatusCode::BAD_REQUEST, body.as_bytes())
            .err()
            .unwrap();
        assert_eq!(
            error.to_string(),
            "the query to http://p failed: bad_data: parse error at char 5"
        );
        assert_eq!(error.result_label(), "query_error");
        let error = decode(
            URL,
            reqwest::StatusCode::SERVICE_UNAVAILABLE,
            b"<html>busy</html>",
        )
        .err()
        .unwrap();
        assert_eq!(error.result_label(), "http_error");
    }

    #[test]
    fn warnings_fail_the_query() {
        let body = r#"{"status":"success","warnings":["store down"],
            "data":{"resultType":"vector","result":[]}}"#;
        let error = ok(body).err().unwrap();
        assert!(
            error.to_string().contains("the server warned: store down"),
            "{error}"
        );
    }

    #[test]
    fn garbage_is_a_decode_error() {
        assert_eq!(ok("{").err().unwrap().result_label(), "parse_error");
        assert_eq!(
            ok(r#"{"status":"success"}"#).err().unwrap().result_label(),
            "parse_error"
        );
    }

    #[test]
    fn query_times_align_to_the_interval() {
        let interval = Duration::from_secs(15);
        assert_eq!(aligned(1_700_000_007_123, interval), 1_699_999_995_000);
        assert_eq!(aligned(1_699_999_995_000, interval), 1_699_999_995_000);
        assert_eq!(seconds(1_700_000_007_023), "1700000007.023");
    }
}
