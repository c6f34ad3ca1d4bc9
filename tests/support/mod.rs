//! Test harness: real servers on loopback ports, a target whose answers the
//! test scripts, driftwatch itself in-process, and waiting on conditions.
#![allow(dead_code)]

pub mod alertmanager;
pub mod daemon;
pub mod markup;
pub mod prometheus;
pub mod target;
pub mod victoria;

use std::future::Future;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A free loopback port. The port is released before use, so another
/// process could take it in between; tests start their server at once.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding an ephemeral loopback port");
    listener
        .local_addr()
        .expect("local address of a bound socket")
        .port()
}

/// Polls `check` until it returns `Some`, failing the test with `what` once
/// `deadline` has passed.
pub async fn wait_until<T, F, Fut>(what: &str, deadline: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wait_until_explained(what, deadline, check, String::new).await
}

/// [`wait_until`], adding what `explain` says to the failure, such as the
/// daemon's log, for a wait that failed once and could not be reproduced.
pub async fn wait_until_explained<T, F, Fut>(
    what: &str,
    deadline: Duration,
    mut check: F,
    explain: impl FnOnce() -> String,
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let give_up = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > give_up {
            panic!(
                "timed out after {deadline:?} waiting for {what}\n{}",
                explain()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A child process that is killed when the test ends, however it ends.
pub struct ChildGuard {
    pub child: Child,
    pub name: &'static str,
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The path of a program the tests need, or a failure that says what to
/// install. A test never skips silently because a server is missing.
pub fn require_program(program: &str, package: &str) -> String {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let path = Path::new(dir).join(program);
        if path.exists() {
            return path.to_string_lossy().into_owned();
        }
    }
    panic!(
        "{program} is not installed; run `apt-get install -y {package}` (or the README's test command, which installs it)"
    );
}

/// Starts a program with its output going to a log file in `dir`.
pub fn spawn_logged(name: &'static str, program: &str, args: &[String], dir: &Path) -> ChildGuard {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("creating a log file");
    let err = log.try_clone().expect("cloning a file handle");
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {program}: {e}"));
    ChildGuard { child, name }
}

/// An HTTP client for the tests, built the way driftwatch builds its own
/// (rustls on the `ring` provider, which must be installed first).
pub fn client() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| driftwatch::daemon::http_client().expect("building an HTTP client"))
        .clone()
}

/// GETs a URL and returns the body of a 2xx answer.
pub async fn get_text(url: &str) -> Option<String> {
    let response = client().get(url).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.text().await.ok()
}

/// The fetches of `source` that did not succeed, summed over every failure
/// result of `driftwatch_source_scrapes_total` in an exposition.
pub fn failed_fetches(exposition: &str, source: &str) -> f64 {
    let prefix = format!("driftwatch_source_scrapes_total{{source=\"{source}\"");
    exposition
        .lines()
        .filter(|l| l.starts_with(&prefix) && !l.contains("result=\"success\""))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// The value of the one sample of `name` whose labels contain every pair in
/// `labels`, read from an exposition text.
pub fn sample_value(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            return None;
        }
        let (series, value) = rest.rsplit_once(' ')?;
        let all = labels
            .iter()
            .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")));
        if !all {
            return None;
        }
        match value {
            "NaN" => Some(f64::NAN),
            "+Inf" => Some(f64::INFINITY),
            "-Inf" => Some(f64::NEG_INFINITY),
            v => v.parse().ok(),
        }
    })
}

/// Runs the driftwatch binary on `config`, listening on `port`, with JSON
/// logs written to `log`, as a user would start it.
pub fn start_binary(config: &Path, log: &Path, port: u16) -> ChildGuard {
    start_binary_with(config, log, port, &[])
}

/// As [`start_binary`], with more flags; the log is appended to, so one
/// file can hold the logs of several runs.
pub fn start_binary_with(config: &Path, log: &Path, port: u16, flags: &[String]) -> ChildGuard {
    start_binary_env(config, log, port, flags, &[])
}

/// As [`start_binary_with`], with environment variables set for the
/// daemon (`POD_NAME`, as Kubernetes sets it from the downward API).
pub fn start_binary_env(
    config: &Path,
    log: &Path,
    port: u16,
    flags: &[String],
    env: &[(&str, &str)],
) -> ChildGuard {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("opening the log file");
    let child = Command::new(env!("CARGO_BIN_EXE_driftwatch"))
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.format=json")
        .args(flags)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting driftwatch");
    ChildGuard {
        child,
        name: "driftwatch",
    }
}
