//! A scrape target whose answers the test scripts: each request takes the
//! next scripted answer, and what was served is recorded in order.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// One scripted answer.
#[derive(Clone, Debug)]
pub enum Answer {
    /// 200 with this body and `text/plain`.
    Body(String),
    /// This status, content type and body.
    Raw {
        status: u16,
        content_type: &'static str,
        body: String,
    },
    /// Waits this long before answering with the body.
    Slow(Duration, String),
}

#[derive(Default)]
struct Script {
    queue: VecDeque<Answer>,
    /// Served when the queue is empty.
    fallback: Option<Answer>,
    served: Vec<Answer>,
}

/// A running target on a loopback port.
#[derive(Clone)]
pub struct Target {
    pub url: String,
    script: Arc<Mutex<Script>>,
}

impl Target {
    pub async fn start() -> Target {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the target");
        let url = format!(
            "http://{}/metrics",
            listener.local_addr().expect("target address")
        );
        let script = Arc::new(Mutex::new(Script::default()));
        let shared = Arc::clone(&script);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let script = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = service_fn(move |_: Request<hyper::body::Incoming>| {
                        let script = Arc::clone(&script);
                        async move { Ok::<_, Infallible>(answer(&script).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Target { url, script }
    }

    /// Queues answers to serve in order.
    pub fn push(&self, answers: impl IntoIterator<Item = Answer>) {
        self.script.lock().unwrap().queue.extend(answers);
    }

    /// What to serve once the queue is empty (by default: 503).
    pub fn set_fallback(&self, answer: Answer) {
        self.script.lock().unwrap().fallback = Some(answer);
    }

    pub fn served(&self) -> Vec<Answer> {
        self.script.lock().unwrap().served.clone()
    }

    pub fn served_count(&self) -> usize {
        self.script.lock().unwrap().served.len()
    }

    pub fn queued(&self) -> usize {
        self.script.lock().unwrap().queue.len()
    }
}

async fn answer(script: &Mutex<Script>) -> Response<Full<Bytes>> {
    let next = {
        let mut script = script.lock().unwrap();
        let next = script.queue.pop_front().or_else(|| script.fallback.clone());
        if let Some(answer) = &next {
            script.served.push(answer.clone());
        }
        next
    };
    let (status, content_type, body) = match next {
        None => (503, "text/plain", "script exhausted\n".to_owned()),
        Some(Answer::Body(body)) => (200, "text/plain; version=0.0.4", body),
        Some(Answer::Raw {
            status,
            content_type,
            body,
        }) => (status, content_type, body),
        Some(Answer::Slow(delay, body)) => {
            tokio::time::sleep(delay).await;
            (200, "text/plain; version=0.0.4", body)
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

/// An exposition with one gauge sample per (labels, value).
pub fn gauge(name: &str, samples: &[(&str, f64)]) -> String {
    let mut out = format!("# HELP {name} Test metric.\n# TYPE {name} gauge\n");
    for (labels, value) in samples {
        out.push_str(&format!("{name}{{{labels}}} {value}\n"));
    }
    out
}
