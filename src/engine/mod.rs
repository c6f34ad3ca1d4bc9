//! The series registry and the scheduler: one task per source scrapes on a
//! steady interval, routes each sample to its series' detector and reports
//! state changes to the notifier.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::{Config, PromqlConfig, ScrapeConfig, SourceConfig, SourceKind, WatchConfig};
use crate::detector::{Detector, SavedDetector, State, Transition};
use crate::history::{self, History};
use crate::notify::{AlertStatus, AlertUpdate, Notifier};
use crate::parse::{self, Sample};
use crate::selector::Selector;
use crate::shard::Shard;
use crate::source::promql::{self, QueryRequest, ResultSeries};
use crate::source::{self, ScrapeError, ScrapeRequest};
use crate::state;

mod index;

use index::{Route, SeriesIndex, SpellingId};

/// A position of `Ingest::order` not known yet.
const UNKNOWN: SpellingId = SpellingId::MAX;

/// Most series one source may create; samples of further series are skipped
/// and counted, so a target that explodes its label cardinality cannot take
/// the process down.
pub const MAX_SERIES_PER_SOURCE: usize = 1_000_000;

/// Wall-clock milliseconds derived from tokio's clock, so that tests with
/// paused time see `for`, staleness and resends move with the paused clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall_at_anchor_ms: i64,
    anchor: Instant,
}

impl Clock {
    pub fn new() -> Clock {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Clock {
            wall_at_anchor_ms: wall,
            anchor: Instant::now(),
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.wall_at_anchor_ms + self.anchor.elapsed().as_millis() as i64
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// Why samples were not evaluated; the `reason` label of
/// `driftwatch_samples_skipped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipCause {
    NotFinite,
    SeriesLimit,
    BadLabels,
    LabelLimit,
    LabelValueLength,
    TotalSeriesLimit,
}

impl SkipCause {
    pub const ALL: [SkipCause; 6] = [
        SkipCause::NotFinite,
        SkipCause::SeriesLimit,
        SkipCause::BadLabels,
        SkipCause::LabelLimit,
        SkipCause::LabelValueLength,
        SkipCause::TotalSeriesLimit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SkipCause::NotFinite => "not_finite",
            SkipCause::SeriesLimit => "series_limit",
            SkipCause::BadLabels => "bad_labels",
            SkipCause::LabelLimit => "label_limit",
            SkipCause::LabelValueLength => "label_value_length_limit",
            SkipCause::TotalSeriesLimit => "total_series_limit",
        }
    }

    /// The configuration key of the limit, for the log line of a hit.
    fn limit_key(self) -> &'static str {
        match self {
            SkipCause::SeriesLimit => "series_limit",
            SkipCause::LabelLimit => "label_limit",
            SkipCause::LabelValueLength => "label_value_length_limit",
            SkipCause::TotalSeriesLimit => "global.total_series_limit",
            SkipCause::NotFinite | SkipCause::BadLabels => "",
        }
    }
}

/// A change of state of one series, as the log, the notifier and the demo
/// see it.
#[derive(Debug, Clone)]
pub struct StateChange {
    pub source: Arc<str>,
    pub metric: Arc<str>,
    /// The series' own labels in exposition form, `a="1",b="2"`.
    pub labels: Arc<str>,
    pub from: State,
    pub to: State,
    pub at_ms: i64,
    pub value: f64,
    pub zscore: Option<f64>,
}

/// Something outside the engine that wants every state change (the demo
/// prints them).
pub type StateObserver = Arc<dyn Fn(&StateChange) + Send + Sync>;

/// What everything outside the source tasks shares: the sources as the
/// exporter and API see them, and the process-wide counters.
pub struct Shared {
    pub clock: Clock,
    sources: RwLock<Arc<Vec<Arc<SourceRuntime>>>>,
    pub skipped: [AtomicU64; SkipCause::ALL.len()],
    /// Series held over all sources, against `total_series_limit`.
    series_total: AtomicUsize,
    total_series_limit: AtomicUsize,
    /// Detectors read from the snapshot at start, claimed by their series
    /// as each appears; the flag spares the lock once none are left.
    restores: Mutex<state::Restored>,
    has_restores: AtomicBool,
    /// The part of the series this replica keeps, as (index, total).
    shard: (AtomicU32, AtomicU32),
    pub ready: AtomicBool,
    pub reload_successful: AtomicBool,
    pub notifier: Notifier,
    observer: Option<StateObserver>,
    external_url: String,
    /// The histories series keep for the status page, against their cap.
    pub histories: Arc<history::Budget>,
}

impl Shared {
    pub fn new(
        notifier: Notifier,
        observer: Option<StateObserver>,
        external_url: String,
    ) -> Shared {
        Shared {
            clock: Clock::new(),
            sources: RwLock::new(Arc::new(Vec::new())),
            skipped: Default::default(),
            series_total: AtomicUsize::new(0),
            total_series_limit: AtomicUsize::new(usize::MAX),
            restores: Mutex::new(state::Restored::new()),
            has_restores: AtomicBool::new(false),
            shard: (AtomicU32::new(0), AtomicU32::new(1)),
            ready: AtomicBool::new(false),
            reload_successful: AtomicBool::new(true),
            notifier,
            observer,
            external_url,
            histories: Arc::default(),
        }
    }

    /// Keeps only the series of `shard` from now on.
    pub fn set_shard(&self, shard: Shard) {
        self.shard.0.store(shard.index, Ordering::Relaxed);
        self.shard.1.store(shard.total, Ordering::Relaxed);
    }

    fn shard(&self) -> Shard {
        Shard {
            index: self.shard.0.load(Ordering::Relaxed),
            total: self.shard.1.load(Ordering::Relaxed),
        }
    }

    /// Hands over the detectors of a snapshot, for series to claim.
    pub fn set_restores(&self, restores: state::Restored) {
        self.has_restores
            .store(!restores.is_empty(), Ordering::Relaxed);
        *lock(&self.restores) = restores;
    }

    /// The saved detector of series `id`, once.
    fn take_restore(&self, id: u64) -> Option<SavedDetector> {
        if !self.has_restores.load(Ordering::Relaxed) {
            return None;
        }
        let mut restores = lock(&self.restores);
        let saved = restores.remove(&id);
        if restores.is_empty() {
            self.has_restores.store(false, Ordering::Relaxed);
        }
        saved
    }

    /// A whole snapshot: every series' detector, and the saved ones no
    /// series has claimed yet (a target briefly down across a restart must
    /// not lose its baselines at the first snapshot after it).
    pub fn snapshot(&self) -> (Vec<u8>, usize) {
        let mut encoder = state::Encoder::new();
        for runtime in self.sources().iter() {
            let table = lock(&runtime.table);
            for entry in table.iter() {
                encoder.add(runtime.series_id(entry), &entry.detector.save());
            }
        }
        for (id, saved) in lock(&self.restores).iter() {
            encoder.add(*id, saved);
        }
        let records = encoder.records();
        (encoder.finish(), records)
    }

    /// Replaces the sources the exporter and API see.
    pub fn set_sources(&self, sources: Vec<Arc<SourceRuntime>>) {
        match self.sources.write() {
            Ok(mut guard) => *guard = Arc::new(sources),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(sources),
        }
    }

    pub fn sources(&self) -> Arc<Vec<Arc<SourceRuntime>>> {
        match self.sources.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    pub fn count_skipped(&self, cause: SkipCause, n: u64) {
        self.skipped[cause as usize].fetch_add(n, Ordering::Relaxed);
    }

    pub fn skipped(&self, cause: SkipCause) -> u64 {
        self.skipped[cause as usize].load(Ordering::Relaxed)
    }
}

/// One configured source as the outside sees it.
pub struct SourceRuntime {
    pub config: SourceConfig,
    pub name: Arc<str>,
    pub health: Mutex<SourceHealth>,
    pub table: Mutex<SeriesTable>,
    /// Per watch: its metric name as an `Arc` shared by all its series.
    pub watch_metrics: Vec<Arc<str>>,
}

impl SourceRuntime {
    /// The id of a series of this source: a hash of the source's name, the
    /// metric and the labels, the same after a restart. Computed when asked
    /// rather than kept, which saves eight bytes a series for a hash that
    /// costs tens of nanoseconds.
    pub fn series_id(&self, entry: &SeriesEntry) -> u64 {
        let metric = self
            .watch_metrics
            .get(entry.watch as usize)
            .map_or("", |m| &**m);
        series_id(&self.name, metric, &entry.labels)
    }

    pub fn new(config: SourceConfig) -> SourceRuntime {
        SourceRuntime {
            name: Arc::from(config.name.as_str()),
            watch_metrics: config
                .watches
                .iter()
                .map(|w| Arc::from(w.metric.as_str()))
                .collect(),
            table: Mutex::new(SeriesTable::new(&config)),
            config,
            health: Mutex::new(SourceHealth::default()),
        }
    }
}

/// How the last scrapes of a source went.
#[derive(Debug, Default, Clone)]
pub struct SourceHealth {
    pub up: bool,
    pub last_scrape_ms: Option<i64>,
    pub last_duration: Duration,
    pub last_error: Option<String>,
    /// Scrapes by bounded result label.
    pub scrapes: Vec<(&'static str, u64)>,
}

impl SourceHealth {
    fn count(&mut self, result: &'static str) {
        match self.scrapes.iter_mut().find(|(name, _)| *name == result) {
            Some((_, n)) => *n += 1,
            None => self.scrapes.push((result, 1)),
        }
    }
}

/// The series of one source: the detectors, behind the source's lock.
pub struct SeriesTable {
    slots: Vec<Option<SeriesEntry>>,
    live: usize,
    /// Per watch: the labels every one of its series carries on our
    /// /metrics, `source="…",metric="…"`. Kept once here rather than in each
    /// series' exported label text, which would hold its labels twice.
    export_prefixes: Vec<Box<str>>,
}

impl SeriesTable {
    fn new(config: &SourceConfig) -> SeriesTable {
        let export_prefixes = config
            .watches
            .iter()
            .map(|watch| {
                let mut prefix = String::from("source=\"");
                escape_label_value(&mut prefix, &config.name);
                prefix.push_str("\",metric=\"");
                escape_label_value(&mut prefix, &watch.metric);
                prefix.push('"');
                prefix.into_boxed_str()
            })
            .collect();
        SeriesTable {
            slots: Vec::new(),
            live: 0,
            export_prefixes,
        }
    }

    /// Writes the labels `entry` carries on our /metrics, without braces:
    /// `source` and `metric` first, then its own, a clashing name renamed
    /// `exported_<name>` as Prometheus does with target labels.
    pub fn write_export_labels(&self, out: &mut String, entry: &SeriesEntry) {
        out.push_str(
            self.export_prefixes
                .get(entry.watch as usize)
                .map_or("", |p| &**p),
        );
        if entry.labels.is_empty() {
            return;
        }
        out.push(',');
        if !entry.clash {
            out.push_str(&entry.labels);
            return;
        }
        for (i, (name, value)) in own_labels(&entry.labels).iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            if name == "source" || name == "metric" {
                out.push_str("exported_");
            }
            out.push_str(name);
            out.push_str("=\"");
            escape_label_value(out, value);
            out.push('"');
        }
    }
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = &SeriesEntry> {
        self.slots.iter().flatten()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut SeriesEntry> {
        self.slots.iter_mut().flatten()
    }

    /// The series in slots `start..start + count`, so that a long walk (a
    /// render of /metrics) can let go of the lock between runs of slots.
    /// Empty once `start` is past the last slot.
    pub fn slots(&self, start: usize, count: usize) -> impl Iterator<Item = &SeriesEntry> {
        let end = start.saturating_add(count).min(self.slots.len());
        self.slots
            .get(start..end)
            .unwrap_or_default()
            .iter()
            .flatten()
    }

    /// One past the last slot in use or free.
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// Makes room for `new` more series. A source's series arrive together
    /// in its first fetch, so room is made for exactly those rather than
    /// doubling past them (up to twice the memory the slots need); later
    /// growth is by at least an eighth, which keeps the copies amortised.
    fn reserve(&mut self, new: usize, free: usize) {
        let needed = new.saturating_sub(free);
        if self.slots.capacity() - self.slots.len() < needed {
            self.slots.reserve_exact(needed.max(self.slots.len() / 8));
        }
    }

    fn insert(&mut self, free: &mut Vec<u32>, entry: SeriesEntry) -> u32 {
        self.live += 1;
        match free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(entry);
                slot
            }
            None => {
                self.slots.push(Some(entry));
                (self.slots.len() - 1) as u32
            }
        }
    }

    fn remove(&mut self, slot: u32) -> Option<SeriesEntry> {
        let entry = self.slots.get_mut(slot as usize)?.take();
        if entry.is_some() {
            self.live -= 1;
        }
        entry
    }
}

/// One watched series. Its id is not kept, since it follows from the
/// source, metric and labels: see [`SourceRuntime::series_id`].
pub struct SeriesEntry {
    /// Index of the watch in the source's configuration.
    pub watch: u16,
    /// Whether a label of the series is named `source` or `metric`, which
    /// our /metrics renames (see [`SeriesTable::write_export_labels`]).
    pub clash: bool,
    /// The series' own labels (without `__name__`), sorted, escaped as in the
    /// exposition format: `a="1",b="2"`. When the target writes them so,
    /// which is usual, the source's index shares this text.
    pub labels: Arc<str>,
    pub detector: Detector,
    pub last_seen_ms: i64,
    /// Recent samples and state changes for the status page; only while
    /// the series is in trouble or watched (see [`history`]).
    pub history: Option<Box<History>>,
}

impl SeriesEntry {
    /// Starts keeping a history unless there is one or the cap is reached;
    /// whether the series has one now.
    pub fn keep_history(&mut self, budget: &Arc<history::Budget>, step: Duration) -> bool {
        if self.history.is_none() {
            let step_ms = i64::try_from(step.as_millis()).unwrap_or(i64::MAX);
            self.history = History::start(budget, &self.detector, self.last_seen_ms, step_ms);
        }
        self.history.is_some()
    }
}

/// The running daemon core: the shared state plus the source tasks.
pub struct Engine {
    shared: Arc<Shared>,
    client: reqwest::Client,
    tasks: Vec<SourceTaskHandle>,
}

struct SourceTaskHandle {
    runtime: Arc<SourceRuntime>,
    stop: watch::Sender<bool>,
    join: JoinHandle<()>,
}

impl Engine {
    pub fn new(
        client: reqwest::Client,
        notifier: Notifier,
        observer: Option<StateObserver>,
        external_url: String,
    ) -> Engine {
        let shared = Arc::new(Shared::new(notifier, observer, external_url));
        Engine {
            shared,
            client,
            tasks: Vec::new(),
        }
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Starts the sources of `config`. A source whose configuration did not
    /// change keeps its task and its windows; the others start afresh.
    pub fn apply(&mut self, config: &Config) {
        let mut kept = Vec::new();
        let mut old: Vec<SourceTaskHandle> = std::mem::take(&mut self.tasks);
        for source in &config.sources {
            if let Some(pos) = old.iter().position(|t| t.runtime.config == *source) {
                kept.push(old.swap_remove(pos));
                continue;
            }
            kept.push(self.spawn_source(source.clone()));
        }
        for task in old {
            let _ = task.stop.send(true);
            task.join.abort();
            resolve_all(&self.shared, &task.runtime);
            let held = lock(&task.runtime.table).len();
            self.shared.series_total.fetch_sub(held, Ordering::Relaxed);
        }
        let total_limit = config.global.total_series_limit;
        self.shared
            .total_series_limit
            .store(total_limit, Ordering::Relaxed);
        self.tasks = kept;
        self.shared
            .set_sources(self.tasks.iter().map(|t| Arc::clone(&t.runtime)).collect());
        self.shared.ready.store(true, Ordering::Relaxed);
    }

    fn spawn_source(&self, config: SourceConfig) -> SourceTaskHandle {
        let runtime = Arc::new(SourceRuntime::new(config));
        let (stop, stop_rx) = watch::channel(false);
        let task = SourceTask {
            client: source_client(&self.client, &runtime.config),
            ingest: Ingest::new(Arc::clone(&runtime), Arc::clone(&self.shared)),
            backfill_failing: false,
        };
        let join = tokio::spawn(task.run(stop_rx));
        SourceTaskHandle {
            runtime,
            stop,
            join,
        }
    }

    /// Stops every source task, letting those that are mid-fetch finish
    /// for up to `grace`, then cutting them off.
    pub async fn stop(&mut self, grace: Duration) {
        for task in &self.tasks {
            let _ = task.stop.send(true);
        }
        let deadline = Instant::now() + grace;
        for mut task in self.tasks.drain(..) {
            if tokio::time::timeout_at(deadline, &mut task.join)
                .await
                .is_err()
            {
                task.join.abort();
            }
        }
    }
}

/// Resolves the alerts of a source that goes away, so no alert is left
/// firing for a series nobody watches any more.
fn resolve_all(shared: &Shared, runtime: &SourceRuntime) {
    let now = shared.clock.now_ms();
    let table = lock(&runtime.table);
    for entry in table.iter() {
        if entry.detector.state() == State::Degraded {
            let change = change_of(runtime, entry, State::Degraded, State::Learning, now);
            report(shared, runtime, entry, &change, entry.detector.since_ms());
        }
    }
}

/// Makes every series that one of `selectors` matches relearn its
/// baseline, ending any incident it had (so its alert resolves); returns
/// how many series were reset. Matching is as in [`selected`].
pub fn reset_baselines(shared: &Shared, selectors: &[Selector]) -> usize {
    let now = shared.clock.now_ms();
    let mut reset = 0;
    for runtime in shared.sources().iter() {
        let mut table = lock(&runtime.table);
        for entry in table.iter_mut() {
            if !selected(runtime, entry, selectors) {
                continue;
            }
            reset += 1;
            let params = &runtime.config.watches[entry.watch as usize].detector;
            let previous_since = entry.detector.since_ms();
            if let Some(transition) = entry.detector.reset_baseline(params, now) {
                let last = entry.detector.last();
                let value = last.as_ref().map_or(f64::NAN, |e| e.value);
                let change = change_from(
                    runtime,
                    entry,
                    &transition,
                    value,
                    last.and_then(|e| e.zscore),
                );
                report(shared, runtime, entry, &change, previous_since);
                if let Some(history) = entry.history.as_mut() {
                    history.change(history::Change {
                        at_ms: transition.at_ms,
                        from: transition.from,
                        to: transition.to,
                        value,
                        zscore: None,
                    });
                }
            }
        }
    }
    reset
}

/// Whether one of `selectors` matches the series, on `__name__` (its
/// watch's metric) and the labels it has on /metrics: `source`, `metric`
/// and its own, clashing ones as `exported_<name>`.
pub fn selected(runtime: &SourceRuntime, entry: &SeriesEntry, selectors: &[Selector]) -> bool {
    let metric = &*runtime.watch_metrics[entry.watch as usize];
    let labels = own_labels(&entry.labels);
    let own = |name: &str| {
        labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let label = |name: &str| match name {
        "__name__" | "metric" => Some(metric),
        "source" => Some(&*runtime.name),
        "exported_source" => own("source"),
        "exported_metric" => own("metric"),
        other => own(other),
    };
    selectors.iter().any(|s| s.matches(label))
}

/// A lock that survives a panic elsewhere: the data is plain numbers and
/// stays usable, and the daemon must keep serving.
pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// A watched metric name and the watches on it.
struct Family {
    name: Arc<str>,
    /// Indices of the watches on this metric name.
    watches: Vec<u16>,
}

/// A sample of a series seen for the first time in this fetch.
struct Fresh {
    family: u16,
    labels: Box<str>,
    value: f64,
}

/// The synchronous half of a source task, which it owns alone so that the
/// per-sample path takes no lock: the index from exposition text to slot and
/// the buffers of one fetch. Public so that benchmarks drive it directly.
pub struct Ingest {
    runtime: Arc<SourceRuntime>,
    shared: Arc<Shared>,
    /// Metric name → its index in `families`.
    family_of: HashMap<Box<str>, u16, foldhash::fast::RandomState>,
    families: Vec<Family>,
    index: SeriesIndex,
    /// The spellings of the watched samples of the last fetch, in the
    /// order the target wrote them. A target writes its series in the same
    /// order every time, so the sample at position k is nearly always the
    /// one that was at k before: comparing with the texts in that order
    /// reads memory almost sequentially, where probing the index at a
    /// million series costs several cache misses per sample. [`UNKNOWN`]
    /// marks a position not known yet.
    order: Vec<SpellingId>,
    /// Position of the next watched sample in this fetch.
    position: usize,
    /// The values of this fetch's watched samples by position; those whose
    /// position in `order` has a slot are applied at commit.
    values: Vec<f64>,
    free: Vec<u32>,
    /// Samples of series seen for the first time in this fetch.
    fresh: Vec<Fresh>,
    /// Backfilled values by series text, for the fresh series of this fetch.
    history: HashMap<Box<str>, Vec<f64>, foldhash::fast::RandomState>,
    hash_seed: foldhash::fast::FixedState,
    /// Bits by [`SkipCause`] of the limits this fetch and the last one hit.
    limits_hit: u8,
    limits_hit_before: u8,
    /// The time of the last commit that saw every series the source has,
    /// when it did: none of them can be stale then, and the walk over them
    /// all that looks for stale ones is skipped.
    all_seen_at_ms: Option<i64>,
}

/// The parser hands a scrape's samples straight to the ingest, and asks it
/// which series to expect next.
impl parse::SampleSink for Ingest {
    fn sample(&mut self, sample: &Sample<'_>) {
        self.route(sample);
    }

    fn expected(&self) -> Option<(&str, &str)> {
        Ingest::expected(self)
    }
}

/// A source's scheduler loop around its [`Ingest`].
struct SourceTask {
    ingest: Ingest,
    /// The shared client, or the source's own when it trusts its own CA; an
    /// unreadable CA file fails every fetch with the reason.
    client: Result<reqwest::Client, String>,
    /// Whether the last backfill failed, so a failure logs once.
    backfill_failing: bool,
}

/// The client a source uses: the shared one unless it names a CA file.
fn source_client(
    shared: &reqwest::Client,
    config: &SourceConfig,
) -> Result<reqwest::Client, String> {
    let SourceKind::Promql(PromqlConfig {
        tls_ca_file: Some(path),
        ..
    }) = &config.kind
    else {
        return Ok(shared.clone());
    };
    let pem =
        std::fs::read(path).map_err(|e| format!("reading tls_ca_file {}: {e}", path.display()))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        format!(
            "tls_ca_file {} holds no usable PEM certificate: {e}",
            path.display()
        )
    })?;
    crate::daemon::client_builder()
        .tls_certs_merge(certificates)
        .build()
        .map_err(|e| format!("building a client trusting {}: {e}", path.display()))
}

impl SourceTask {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let runtime = Arc::clone(&self.ingest.runtime);
        let interval = runtime.config.interval;
        // Spread sources over the interval so they do not all fire at once,
        // with a stable offset per source name. The first fetch comes within
        // a second whatever the offset, so a new source (and its backfill)
        // has data at once rather than up to an interval later.
        let offset_ms = self.ingest.hash_seed.hash_one(&*runtime.name)
            % u64::try_from(interval.as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
        let started = Instant::now();
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(offset_ms % 1000)) => {}
            _ = stop.changed() => return,
        }
        self.scrape_once().await;
        let mut ticker =
            tokio::time::interval_at(started + Duration::from_millis(offset_ms), interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        // The first tick lands at the offset, possibly right after the
        // first fetch; skip it when it would fetch twice within a second.
        if offset_ms < 1000 {
            ticker.tick().await;
        }
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.changed() => return,
            }
            self.scrape_once().await;
        }
    }

    async fn scrape_once(&mut self) {
        let started = Instant::now();
        let runtime = Arc::clone(&self.ingest.runtime);
        let now_ms = self.ingest.shared.clock.now_ms();
        self.ingest.begin();
        let (at_ms, result) = match &runtime.config.kind {
            SourceKind::Scrape(scrape) => (now_ms, self.scrape(&runtime, scrape).await),
            SourceKind::Promql(query) => {
                let at_ms = promql::aligned(now_ms, runtime.config.interval);
                (at_ms, self.query(&runtime, query, at_ms).await)
            }
        };
        let duration = started.elapsed();
        // Only a fetch that succeeded tells which series are gone: while
        // the source fails, its series and their alerts are kept as they
        // were, since an outage says nothing of the model, and
        // `driftwatch_source_up` says the source is down.
        if result.is_ok() {
            self.ingest.commit(at_ms);
            self.ingest.drop_stale(at_ms);
        }
        self.ingest.record_health(at_ms, duration, result.err());
    }

    async fn scrape(
        &mut self,
        runtime: &SourceRuntime,
        scrape: &ScrapeConfig,
    ) -> Result<(), ScrapeError> {
        let client = self
            .client
            .as_ref()
            .map_err(|e| ScrapeError::Client(e.clone()))?;
        let request = ScrapeRequest {
            url: &scrape.url,
            bearer_token_file: scrape.bearer_token_file.as_deref(),
            timeout: runtime.config.timeout,
            body_size_limit: runtime.config.body_size_limit,
        };
        let ingest = &mut self.ingest;
        source::scrape(client, &request, ingest).await.map(|_| ())
    }

    /// Runs the source's query at `at_ms` and routes one sample per result;
    /// with backfill on, series seen for the first time get their history.
    async fn query(
        &mut self,
        runtime: &SourceRuntime,
        query: &PromqlConfig,
        at_ms: i64,
    ) -> Result<(), ScrapeError> {
        let client = self.client.clone().map_err(ScrapeError::Client)?;
        let request = QueryRequest {
            url: &query.url,
            query: &query.query,
            bearer_token_file: query.bearer_token_file.as_deref(),
            basic_auth: query.basic_auth.as_ref(),
            timeout: runtime.config.timeout,
            body_size_limit: runtime.config.body_size_limit,
        };
        let results = promql::instant(&client, &request, at_ms).await?;
        let mut text = String::new();
        for series in &results {
            let Some(&(_, value)) = series.points.last() else {
                continue;
            };
            let name = self.ingest.result_name(series);
            let labels = render_labels(&series.labels);
            series_text(&mut text, &name, &labels);
            self.ingest.route(&Sample {
                name: &name,
                labels: &labels,
                series: &text,
                value,
                timestamp_ms: None,
            });
        }
        if query.backfill && !self.ingest.fresh.is_empty() {
            self.backfill(runtime, &client, &request, at_ms).await;
        }
        Ok(())
    }

    /// Fetches the history of the whole query in one range request, so a
    /// start-up with many new series costs the server one query, not one per
    /// series. Its points are learned by the new series only.
    async fn backfill(
        &mut self,
        runtime: &SourceRuntime,
        client: &reqwest::Client,
        request: &QueryRequest<'_>,
        at_ms: i64,
    ) {
        let interval = runtime.config.interval;
        let step_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
        let window = runtime
            .config
            .watches
            .iter()
            .map(|w| w.detector.window)
            .max()
            .unwrap_or(0);
        let points = window.min(promql::MAX_RANGE_POINTS) as i64;
        let (start_ms, end_ms) = (at_ms - points * step_ms, at_ms - step_ms);
        let source = &*runtime.name;
        match promql::range(client, request, start_ms, end_ms, interval).await {
            Ok(results) => {
                let mut text = String::new();
                for series in results {
                    let name = self.ingest.result_name(&series);
                    series_text(&mut text, &name, &render_labels(&series.labels));
                    let values = series.points.iter().map(|&(_, v)| v).collect();
                    self.ingest.history.insert(Box::from(text.as_str()), values);
                }
                if self.backfill_failing {
                    tracing::info!(source, "Backfill works again");
                }
                self.backfill_failing = false;
                tracing::debug!(source, series = self.ingest.history.len(), "Backfilled");
            }
            Err(error) => {
                if !self.backfill_failing {
                    tracing::warn!(source, error = %error, "Backfill failed; new series learn from live samples");
                }
                self.backfill_failing = true;
            }
        }
    }
}

/// `name{labels}` in exposition form, from label text in exposition form.
fn series_text(out: &mut String, name: &str, labels: &str) {
    out.clear();
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        out.push_str(labels);
        out.push('}');
    }
}

impl Ingest {
    pub fn new(runtime: Arc<SourceRuntime>, shared: Arc<Shared>) -> Ingest {
        let mut family_of: HashMap<Box<str>, u16, _> = HashMap::default();
        let mut families: Vec<Family> = Vec::new();
        for (i, watch) in runtime.config.watches.iter().enumerate() {
            let next = families.len() as u16;
            let family = *family_of
                .entry(Box::from(watch.metric.as_str()))
                .or_insert(next);
            if family == next {
                families.push(Family {
                    name: Arc::clone(&runtime.watch_metrics[i]),
                    watches: Vec::new(),
                });
            }
            families[family as usize].watches.push(i as u16);
        }
        Ingest {
            runtime,
            shared,
            family_of,
            families,
            index: SeriesIndex::default(),
            order: Vec::new(),
            position: 0,
            values: Vec::new(),
            free: Vec::new(),
            fresh: Vec::new(),
            history: HashMap::default(),
            hash_seed: foldhash::fast::FixedState::with_seed(SERIES_ID_SEED),
            limits_hit: 0,
            limits_hit_before: 0,
            all_seen_at_ms: None,
        }
    }

    /// Starts a fetch: forgets the samples of the previous one.
    pub fn begin(&mut self) {
        self.position = 0;
        self.values.clear();
        self.fresh.clear();
        self.history.clear();
    }

    /// The metric name a query result goes by: its own `__name__`, or else
    /// the metric of the first watch whose matchers it meets (of the first
    /// watch when none does).
    fn result_name(&self, series: &ResultSeries) -> Arc<str> {
        if let Some(name) = &series.name {
            return Arc::from(name.as_str());
        }
        let watches = &self.runtime.config.watches;
        let index = watches
            .iter()
            .position(|w| matches(w, &series.labels))
            .unwrap_or(0);
        self.runtime
            .watch_metrics
            .get(index)
            .cloned()
            .unwrap_or_else(|| Arc::from(""))
    }

    /// The per-sample hot path: no lock, and no allocation for a known series.
    pub fn route(&mut self, sample: &Sample<'_>) {
        let position = self.position;
        // The sample expected here tells its family, which spares hashing
        // the name when it is that family's.
        let expected = self.order.get(position).copied().unwrap_or(UNKNOWN);
        let family = match self.index.family(expected) {
            Some(family) if *self.families[family as usize].name == *sample.name => family,
            _ => match self.family_of.get(sample.name) {
                Some(&family) => family,
                None => return,
            },
        };
        self.position += 1;
        self.values.push(sample.value);
        // Each sample is compared with the text expected at its position
        // (by the parser, then here), and those texts lie scattered over
        // the heap: asking for one a few samples early hides the wait for
        // memory behind the samples between.
        if let Some(text) = self
            .order
            .get(position + LOOKAHEAD)
            .and_then(|&id| self.index.text(id))
        {
            prefetch_bytes(text.as_bytes());
        }
        if self.index.is(expected, family, sample.labels) {
            return;
        }
        let id = match self.index.find(family, sample.labels) {
            Some(id) => id,
            None => {
                self.fresh.push(Fresh {
                    family,
                    labels: Box::from(sample.labels),
                    value: sample.value,
                });
                UNKNOWN
            }
        };
        if self.order.len() <= position {
            self.order.resize(position + 1, UNKNOWN);
        }
        self.order[position] = id;
    }

    /// The name and label text of the sample expected next: the one that
    /// came at this position in the last fetch.
    pub fn expected(&self) -> Option<(&str, &str)> {
        let id = *self.order.get(self.position)?;
        let family = self.index.family(id)?;
        let labels = self.index.text(id)?;
        Some((&self.families[family as usize].name, labels))
    }

    fn record_health(&self, at_ms: i64, duration: Duration, error: Option<ScrapeError>) {
        let mut health = lock(&self.runtime.health);
        health.last_scrape_ms = Some(at_ms);
        health.last_duration = duration;
        let source = &*self.runtime.name;
        match error {
            None => {
                if !health.up && health.last_error.is_some() {
                    tracing::info!(source, "Source is up again");
                }
                health.up = true;
                health.last_error = None;
                health.count("success");
            }
            Some(error) => {
                let text = error.to_string();
                // One line per failure episode: only when the source goes
                // down or the reason changes.
                if health.up || health.last_error.as_deref() != Some(text.as_str()) {
                    tracing::warn!(source, error = %text, "Source fetch failed");
                }
                health.up = false;
                health.last_error = Some(text);
                health.count(error.result_label());
            }
        }
    }

    /// Applies the samples of a fetch that succeeded as a whole.
    pub fn commit(&mut self, at_ms: i64) {
        let runtime = Arc::clone(&self.runtime);
        let shared = Arc::clone(&self.shared);
        let mut table = lock(&runtime.table);
        let mut not_finite = 0;
        let mut seen = 0;
        self.order.truncate(self.position);
        let slot_at = |k: usize| {
            let id = *self.order.get(k)?;
            (id != UNKNOWN).then(|| self.index.route(id).slot())?
        };
        for (k, &value) in self.values.iter().enumerate() {
            // At a million series each sample's series and window lie far
            // from the last one's in memory. Asking for those of the samples
            // a little ahead now overlaps their cache misses with this
            // sample's work: first the series, then (once it has arrived)
            // the slot of its window the sample will write.
            if let Some(ahead) = slot_at(k + 2 * LOOKAHEAD) {
                prefetch_all(table.slots.as_ptr().wrapping_add(ahead as usize));
            }
            if let Some(Some(entry)) =
                slot_at(k + LOOKAHEAD).and_then(|s| table.slots.get(s as usize))
            {
                prefetch(entry.detector.window_write_address());
            }
            let Some(slot) = slot_at(k) else {
                continue;
            };
            let Some(Some(entry)) = table.slots.get_mut(slot as usize) else {
                continue;
            };
            seen += usize::from(entry.last_seen_ms != at_ms);
            not_finite += observe(&shared, &runtime, entry, value, at_ms);
        }
        let fresh = std::mem::take(&mut self.fresh);
        table.reserve(fresh.len(), self.free.len());
        // Room for a spelling per new series; one written in other than
        // canonical form brings a second, which is rare, so it grows then.
        self.index.reserve(fresh.len());
        let mut text = String::new();
        for sample in &fresh {
            let live_before = table.len();
            let Some(slot) = self.admit(&mut table, sample.family, &sample.labels, at_ms) else {
                continue;
            };
            let created = table.len() > live_before;
            let Some(Some(entry)) = table.slots.get_mut(slot as usize) else {
                continue;
            };
            seen += usize::from(created || entry.last_seen_ms != at_ms);
            // History goes only to a series created just now, never to
            // another spelling of one that already has a baseline.
            let brand_new = entry.detector.last().is_none() && entry.detector.window_len() == 0;
            if brand_new && !self.history.is_empty() {
                let name = &self.families[sample.family as usize].name;
                series_text(&mut text, name, &sample.labels);
                if let Some(history) = self.history.get(text.as_str()) {
                    let params = &runtime.config.watches[entry.watch as usize].detector;
                    for &past in history {
                        entry.detector.learn(params, past);
                    }
                }
            }
            not_finite += observe(&shared, &runtime, entry, sample.value, at_ms);
        }
        self.fresh = fresh;
        // The first fetch of a large target brings all its series at once;
        // the buffer they needed is not kept for the few that come later.
        if self.fresh.capacity() > 1024 {
            self.fresh = Vec::new();
        }
        // The order and values grew by doubling while the first fetches
        // came in; once the target's size is known, they need no more room
        // than it takes.
        if self.order.capacity() > self.order.len() + self.order.len() / 8 + 64 {
            self.order.shrink_to_fit();
            self.values.shrink_to_fit();
        }
        self.all_seen_at_ms = (seen == table.len()).then_some(at_ms);
        drop(table);
        if not_finite > 0 {
            shared.count_skipped(SkipCause::NotFinite, not_finite);
        }
        self.log_limits();
    }

    /// Decides what a series seen for the first time is: a new watched
    /// series, another spelling of a known one, or one no watch matches.
    fn admit(
        &mut self,
        table: &mut SeriesTable,
        family_ix: u16,
        spelling: &str,
        at_ms: i64,
    ) -> Option<u32> {
        let runtime = Arc::clone(&self.runtime);
        let index = &mut self.index;
        // The same new series twice in one scrape.
        if let Some(id) = index.find(family_ix, spelling) {
            return index.route(id).slot();
        }
        let Some(canonical) = canonical_labels(spelling) else {
            self.shared.count_skipped(SkipCause::BadLabels, 1);
            return None;
        };
        let labels_text = render_labels(&canonical);
        // Another spelling of a known series (labels in another order).
        if let Some(id) = index.find(family_ix, &labels_text) {
            let route = index.route(id);
            index.insert(family_ix, Arc::from(spelling), route);
            return route.slot();
        }
        let family = &self.families[family_ix as usize];
        let name = Arc::clone(&family.name);
        let Some(watch) = family
            .watches
            .iter()
            .copied()
            .find(|&w| matches(&runtime.config.watches[w as usize], &canonical))
        else {
            index.insert(family_ix, Arc::from(spelling), Route::IGNORED);
            return None;
        };
        let id = series_id(&runtime.name, &name, &labels_text);
        // Another replica's series: remembered as unwatched, so it costs one
        // lookup a fetch from now on.
        if !self.shared.shard().owns(id) {
            index.insert(family_ix, Arc::from(spelling), Route::IGNORED);
            return None;
        }
        if let Some(cause) = self.over_limit(table.len(), &canonical) {
            self.shared.count_skipped(cause, 1);
            self.limits_hit |= 1 << cause as u8;
            return None;
        }
        self.shared.series_total.fetch_add(1, Ordering::Relaxed);
        let params = &runtime.config.watches[watch as usize].detector;
        let restored = self.shared.take_restore(id);
        let detector = match &restored {
            Some(saved) => Detector::restore(params, saved),
            None => Detector::new(params, at_ms),
        };
        let labels: Arc<str> = Arc::from(labels_text.as_str());
        let entry = SeriesEntry {
            watch,
            clash: canonical
                .iter()
                .any(|(name, _)| name == "source" || name == "metric"),
            labels: Arc::clone(&labels),
            detector,
            last_seen_ms: at_ms,
            history: None,
        };
        if restored.is_some() {
            resume(&self.shared, &runtime, &entry);
        }
        let slot = table.insert(&mut self.free, entry);
        tracing::debug!(
            source = &*runtime.name,
            metric = &*name,
            series = spelling,
            "New series"
        );
        if *labels != *spelling {
            self.index
                .insert(family_ix, Arc::from(spelling), Route::to(slot));
        }
        self.index.insert(family_ix, labels, Route::to(slot));
        Some(slot)
    }

    /// Which limit, if any, keeps a new series with these labels out.
    fn over_limit(&self, held: usize, labels: &[(String, String)]) -> Option<SkipCause> {
        let limits = &self.runtime.config.limits;
        if labels.len() > limits.labels {
            return Some(SkipCause::LabelLimit);
        }
        if labels
            .iter()
            .any(|(_, value)| value.len() > limits.label_value_length)
        {
            return Some(SkipCause::LabelValueLength);
        }
        if held >= limits.series {
            return Some(SkipCause::SeriesLimit);
        }
        let total = self.shared.series_total.load(Ordering::Relaxed);
        if total >= self.shared.total_series_limit.load(Ordering::Relaxed) {
            return Some(SkipCause::TotalSeriesLimit);
        }
        None
    }

    /// Logs a limit when a fetch first hits it and when one no longer
    /// does, not at every fetch in between.
    fn log_limits(&mut self) {
        let (hit, before) = (self.limits_hit, self.limits_hit_before);
        for cause in SkipCause::ALL {
            let bit = 1u8 << cause as u8;
            let source = &*self.runtime.name;
            if hit & bit != 0 && before & bit == 0 {
                tracing::warn!(
                    source,
                    reason = cause.as_str(),
                    limit = cause.limit_key(),
                    "New series over a limit are not watched"
                );
            } else if hit & bit == 0 && before & bit != 0 {
                tracing::info!(
                    source,
                    reason = cause.as_str(),
                    "No new series over the limit"
                );
            }
        }
        self.limits_hit_before = hit;
        self.limits_hit = 0;
    }

    /// Drops series their source stopped returning for `stale_after`,
    /// resolving any alert they had.
    pub fn drop_stale(&mut self, now_ms: i64) {
        if self.all_seen_at_ms == Some(now_ms) {
            return;
        }
        let runtime = Arc::clone(&self.runtime);
        let mut table = lock(&runtime.table);
        let stale: Vec<u32> = table
            .slots
            .iter()
            .enumerate()
            .filter_map(|(slot, entry)| {
                let entry = entry.as_ref()?;
                let stale_after = runtime.config.watches[entry.watch as usize].stale_after;
                (now_ms - entry.last_seen_ms > stale_after.as_millis() as i64)
                    .then_some(slot as u32)
            })
            .collect();
        if stale.is_empty() {
            return;
        }
        for slot in &stale {
            let Some(entry) = table.remove(*slot) else {
                continue;
            };
            self.free.push(*slot);
            self.shared.series_total.fetch_sub(1, Ordering::Relaxed);
            if entry.detector.state() == State::Degraded {
                let change = change_of(&runtime, &entry, State::Degraded, State::Learning, now_ms);
                report(
                    &self.shared,
                    &runtime,
                    &entry,
                    &change,
                    entry.detector.since_ms(),
                );
            }
            tracing::info!(
                source = &*runtime.name,
                series = &*entry.labels,
                "Series went stale and was dropped"
            );
        }
        let stale: std::collections::HashSet<u32, foldhash::fast::RandomState> =
            stale.into_iter().collect();
        // Unwatched spellings are forgotten too once they pile up, so a target
        // that churns label values cannot grow the index without bound.
        let forget_ignored = self.index.len() > 2 * MAX_SERIES_PER_SOURCE;
        self.index.retain(|route| match route.slot() {
            Some(slot) => !stale.contains(&slot),
            None => !forget_ignored,
        });
        // A freed slot may go to another series, and the index renumbers its
        // spellings when it compacts: no remembered spelling may lead there.
        // The next fetch relearns the order from the index.
        self.order.clear();
    }
}

/// How many samples ahead [`Ingest::commit`] asks for a window's memory:
/// enough to cover a miss to main memory at the cost of a sample's work.
pub const LOOKAHEAD: usize = 8;

/// Asks the CPU to bring the cache line at `address` in, without waiting for
/// it. A hint only: it never faults, whatever the address. Public for the
/// benchmarks, which drive windows the way [`Ingest::commit`] does.
#[inline(always)]
pub fn prefetch<T>(address: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` reads nothing the program sees and cannot fault,
    // so any address is sound; SSE is part of the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

/// [`prefetch`] for every cache line of `bytes`.
#[inline(always)]
fn prefetch_bytes(bytes: &[u8]) {
    prefetch_range(bytes.as_ptr(), bytes.len());
}

/// [`prefetch`] for every cache line of the `T` at `address`.
#[inline(always)]
fn prefetch_all<T>(address: *const T) {
    prefetch_range(address.cast(), size_of::<T>());
}

/// [`prefetch`] for every cache line of the `len` bytes at `start`,
/// counted from the line the first byte is on, so that the last byte's is
/// reached however they are aligned.
#[inline(always)]
fn prefetch_range(start: *const u8, len: usize) {
    let misalignment = start as usize % 64;
    let first_line = start.wrapping_sub(misalignment);
    for offset in (0..misalignment + len).step_by(64) {
        prefetch(first_line.wrapping_add(offset));
    }
}

/// Evaluates one sample; returns 1 when it was skipped as not finite.
fn observe(
    shared: &Shared,
    runtime: &SourceRuntime,
    entry: &mut SeriesEntry,
    value: f64,
    at_ms: i64,
) -> u64 {
    entry.last_seen_ms = at_ms;
    let params = &runtime.config.watches[entry.watch as usize].detector;
    let before = (entry.detector.state(), entry.detector.since_ms());
    match entry.detector.observe(params, value, at_ms) {
        Err(_) => 1,
        Ok(verdict) => {
            tracing::trace!(source = &*runtime.name, series = &*entry.labels, value, zscore = ?verdict.zscore, "Sample evaluated");
            if let Some(transition) = verdict.transition {
                let change = change_from(runtime, entry, &transition, value, verdict.zscore);
                report(shared, runtime, entry, &change, before.1);
            }
            record_history(shared, runtime, entry, at_ms, verdict.transition.as_ref());
            0
        }
    }
}

/// Keeps the history of a series in trouble: starts one when it is pending
/// or degraded, adds the sample and any change, and lets it go once the
/// series has been quiet for long. A healthy series without one pays a
/// state check; the one allocation comes when an incident starts, not per
/// sample.
fn record_history(
    shared: &Shared,
    runtime: &SourceRuntime,
    entry: &mut SeriesEntry,
    at_ms: i64,
    transition: Option<&Transition>,
) {
    let state = entry.detector.state();
    if entry.history.is_none() {
        if !matches!(state, State::Pending | State::Degraded) {
            return;
        }
        if !entry.keep_history(&shared.histories, runtime.config.interval) {
            return;
        }
    }
    let (Some(history), Some(last)) = (entry.history.as_mut(), entry.detector.last()) else {
        return;
    };
    if let Some(t) = transition {
        history.change(history::Change {
            at_ms: t.at_ms,
            from: t.from,
            to: t.to,
            value: last.value,
            zscore: last.zscore,
        });
    }
    history.record(at_ms, &last, state);
    if history.expired() {
        entry.history = None;
    }
}

fn change_from(
    runtime: &SourceRuntime,
    entry: &SeriesEntry,
    transition: &Transition,
    value: f64,
    zscore: Option<f64>,
) -> StateChange {
    StateChange {
        source: Arc::clone(&runtime.name),
        metric: Arc::clone(&runtime.watch_metrics[entry.watch as usize]),
        labels: Arc::clone(&entry.labels),
        from: transition.from,
        to: transition.to,
        at_ms: transition.at_ms,
        value,
        zscore,
    }
}

fn change_of(
    runtime: &SourceRuntime,
    entry: &SeriesEntry,
    from: State,
    to: State,
    at_ms: i64,
) -> StateChange {
    let last = entry.detector.last();
    StateChange {
        source: Arc::clone(&runtime.name),
        metric: Arc::clone(&runtime.watch_metrics[entry.watch as usize]),
        labels: Arc::clone(&entry.labels),
        from,
        to,
        at_ms,
        value: last.as_ref().map_or(f64::NAN, |e| e.value),
        zscore: last.and_then(|e| e.zscore),
    }
}

/// Logs a state change, tells the observer, and hands alerts to the
/// notifier. `previous_since_ms` is when the state being left began: the
/// start of the incident when a degradation ends.
fn report(
    shared: &Shared,
    runtime: &SourceRuntime,
    entry: &SeriesEntry,
    change: &StateChange,
    previous_since_ms: i64,
) {
    macro_rules! log_change {
        ($level:expr) => {
            tracing::event!(
                $level,
                source = &*change.source,
                metric = &*change.metric,
                series = &*change.labels,
                from = change.from.as_str(),
                to = change.to.as_str(),
                value = change.value,
                zscore = change.zscore.unwrap_or(f64::NAN),
                "Series changed state"
            )
        };
    }
    // Going into or out of degraded is what an operator watches for; the
    // other changes (every series leaves learning once, and pending often
    // comes to nothing) would bury those lines at scale.
    if change.from == State::Degraded || change.to == State::Degraded {
        log_change!(tracing::Level::INFO);
    } else {
        log_change!(tracing::Level::DEBUG);
    }
    if let Some(observer) = &shared.observer {
        observer(change);
    }
    let status = if change.to == State::Degraded {
        AlertStatus::Firing
    } else if change.from == State::Degraded {
        AlertStatus::Resolved
    } else {
        return;
    };
    let started_at_ms = if matches!(status, AlertStatus::Firing) {
        change.at_ms
    } else {
        previous_since_ms
    };
    let mut update = alert_update(shared, runtime, entry, status, started_at_ms);
    (update.value, update.zscore, update.at_ms) =
        (change.value, change.zscore.unwrap_or(0.0), change.at_ms);
    shared.notifier.update(update);
}

/// An alert about `entry` as its latest evaluation describes it.
fn alert_update(
    shared: &Shared,
    runtime: &SourceRuntime,
    entry: &SeriesEntry,
    status: AlertStatus,
    started_at_ms: i64,
) -> AlertUpdate {
    let last = entry.detector.last();
    let series_id = runtime.series_id(entry);
    AlertUpdate {
        series_id,
        source: Arc::clone(&runtime.name),
        metric: Arc::clone(&runtime.watch_metrics[entry.watch as usize]),
        labels: own_labels(&entry.labels),
        status,
        value: last.as_ref().map_or(f64::NAN, |e| e.value),
        zscore: last.as_ref().and_then(|e| e.zscore).unwrap_or(0.0),
        baseline_mean: last.as_ref().and_then(|e| e.mean).unwrap_or(f64::NAN),
        baseline_stddev: last.as_ref().and_then(|e| e.stddev).unwrap_or(f64::NAN),
        started_at_ms,
        at_ms: entry.last_seen_ms,
        interval: runtime.config.interval,
        generator_url: format!("{}/series/{series_id:016x}", shared.external_url),
    }
}

/// Tells the notifier about a series restored in the middle of an incident
/// that was already announced: its alert goes on being resent with its
/// original start, and no webhook hears of it as new.
fn resume(shared: &Shared, runtime: &SourceRuntime, entry: &SeriesEntry) {
    if entry.detector.state() != State::Degraded {
        return;
    }
    tracing::info!(
        source = &*runtime.name,
        series = &*entry.labels,
        "Resuming a restored alert"
    );
    let mut update = alert_update(
        shared,
        runtime,
        entry,
        AlertStatus::Firing,
        entry.detector.since_ms(),
    );
    update.at_ms = shared.clock.now_ms();
    shared.notifier.resume(update);
}

/// The series' labels as owned pairs, unescaped.
pub fn own_labels(labels_text: &str) -> Vec<(String, String)> {
    parse::labels(labels_text)
        .filter_map(Result::ok)
        .map(|(name, value)| (name.to_owned(), value.into_owned()))
        .collect()
}

/// Sorted, unescaped labels; `None` when the text does not parse.
fn canonical_labels(raw: &str) -> Option<Vec<(String, String)>> {
    let mut labels = Vec::new();
    for label in parse::labels(raw) {
        let (name, value) = label.ok()?;
        // An empty label value is the same as no label, as in Prometheus.
        if !value.is_empty() {
            labels.push((name.to_owned(), value.into_owned()));
        }
    }
    labels.sort();
    Some(labels)
}

fn matches(watch: &WatchConfig, labels: &[(String, String)]) -> bool {
    watch.matchers.iter().all(|(name, want)| {
        let have = labels
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str());
        have == want
    })
}

/// Writes a label value escaped as the text format wants it.
pub fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn render_labels(labels: &[(String, String)]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        escape_label_value(&mut out, value);
        out.push('"');
    }
    out
}

/// The seed of series ids, fixed so that ids stay the same across restarts.
const SERIES_ID_SEED: u64 = 0x6472_6966_7477_6174;

/// A stable id: the same series gets the same id after a restart, which the
/// snapshot and the alert's generatorURL rely on.
fn series_id(source: &str, name: &str, labels: &str) -> u64 {
    let mut hasher = foldhash::fast::FixedState::with_seed(SERIES_ID_SEED).build_hasher();
    hasher.write(source.as_bytes());
    hasher.write_u8(0xff);
    hasher.write(name.as_bytes());
    hasher.write_u8(0xff);
    hasher.write(labels.as_bytes());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ingest of source `name` watching `model_accuracy`, window 10.
    fn ingest_of(name: &str) -> (Arc<SourceRuntime>, Arc<Shared>, Ingest) {
        let yaml = format!(
            "detector:\n  window: 10\n  min_samples: 5\n\
             sources:\n  - name: {name}\n    scrape:\n      url: http://127.0.0.1:9/m\n    \
             watch:\n      - metric: model_accuracy\n"
        );
        let config = crate::config::parse_str(&yaml, "t.yml")
            .expect("valid")
            .config;
        let client = crate::daemon::http_client().expect("client");
        let notifier = Notifier::start(None, &[], &Default::default(), client);
        let shared = Arc::new(Shared::new(notifier, None, String::new()));
        let runtime = Arc::new(SourceRuntime::new(config.sources[0].clone()));
        shared.set_sources(vec![Arc::clone(&runtime)]);
        let ingest = Ingest::new(Arc::clone(&runtime), Arc::clone(&shared));
        (runtime, shared, ingest)
    }

    /// Routes one sample of `model_accuracy` with this label text.
    fn route(ingest: &mut Ingest, labels: &str, value: f64) {
        let series = format!("model_accuracy{{{labels}}}");
        ingest.route(&Sample {
            name: "model_accuracy",
            labels,
            series: &series,
            value,
            timestamp_ms: None,
        });
    }

    #[tokio::test]
    async fn a_series_gone_from_its_target_is_dropped_after_stale_after() {
        let (runtime, _shared, mut ingest) = ingest_of("ours");
        let stale_ms = runtime.config.watches[0].stale_after.as_millis() as i64;
        let fetch = |ingest: &mut Ingest, at_ms: i64, labels: &[&str]| {
            ingest.begin();
            for labels in labels {
                route(ingest, labels, 1.0);
            }
            ingest.commit(at_ms);
            ingest.drop_stale(at_ms);
        };
        let series_left = |runtime: &SourceRuntime| {
            let table = lock(&runtime.table);
            let mut labels: Vec<String> = table.iter().map(|e| e.labels.to_string()).collect();
            labels.sort();
            labels
        };
        fetch(&mut ingest, 0, &[r#"m="a",z="1""#, r#"m="b""#]);
        // From then on the target writes `a` twice, once in another
        // spelling, and `b` no more: as many samples as series, which must
        // not pass for every series seen.
        let step_ms = stale_ms / 4;
        let mut at_ms = 0;
        while at_ms + step_ms <= stale_ms {
            at_ms += step_ms;
            fetch(&mut ingest, at_ms, &[r#"m="a",z="1""#, r#"z="1",m="a""#]);
            assert_eq!(series_left(&runtime), [r#"m="a",z="1""#, r#"m="b""#]);
        }
        fetch(
            &mut ingest,
            stale_ms + 1,
            &[r#"m="a",z="1""#, r#"z="1",m="a""#],
        );
        assert_eq!(series_left(&runtime), [r#"m="a",z="1""#]);
    }

    #[tokio::test]
    async fn clashing_labels_are_renamed_exported() {
        let (runtime, _shared, mut ingest) = ingest_of("ours");
        ingest.begin();
        route(
            &mut ingest,
            r#"source="theirs",metric="m\"x",model="fraud""#,
            1.0,
        );
        route(&mut ingest, r#"model="plain""#, 1.0);
        ingest.commit(1_000);
        let table = lock(&runtime.table);
        let mut exported: Vec<String> = table
            .iter()
            .map(|entry| {
                let mut out = String::new();
                table.write_export_labels(&mut out, entry);
                out
            })
            .collect();
        exported.sort();
        assert_eq!(
            exported,
            [
                r#"source="ours",metric="model_accuracy",exported_metric="m\"x",model="fraud",exported_source="theirs""#,
                r#"source="ours",metric="model_accuracy",model="plain""#,
            ]
        );
    }

    #[tokio::test]
    async fn spellings_of_one_series_share_its_slot_and_its_text() {
        let (runtime, _shared, mut ingest) = ingest_of("s");
        for round in 0..3 {
            ingest.begin();
            // The canonical spelling first, then the same labels reordered
            // and with an empty label, which Prometheus treats as absent.
            route(&mut ingest, r#"a="1",b="2""#, 1.0);
            route(&mut ingest, r#"b="2",c="",a="1""#, 2.0);
            route(&mut ingest, r#"b="3",a="1""#, 3.0);
            ingest.commit(1_000 * (round + 1));
        }
        let table = lock(&runtime.table);
        assert_eq!(table.len(), 2);
        let ab = table
            .iter()
            .find(|e| &*e.labels == r#"a="1",b="2""#)
            .expect("series a=1,b=2");
        // Both spellings' samples reached the one series: 2 per round.
        assert_eq!(ab.detector.window_len(), 6);
        // Its text is the index's key, not a copy: the series and the
        // index hold one allocation.
        assert_eq!(Arc::strong_count(&ab.labels), 2);
        // Each series' canonical text is a key shared in the same way; the
        // two reordered spellings are keys of their own.
        let ba = table
            .iter()
            .find(|e| &*e.labels == r#"a="1",b="3""#)
            .expect("series a=1,b=3");
        assert_eq!(ba.detector.window_len(), 3);
        assert_eq!(Arc::strong_count(&ba.labels), 2);
        assert_eq!(ingest.index.len(), 4);
    }

    #[test]
    fn label_order_and_empty_values_do_not_make_another_series() {
        let a = canonical_labels(r#"b="2",a="1",c="""#).unwrap();
        let b = canonical_labels(r#"a="1",b="2""#).unwrap();
        assert_eq!(a, b);
        assert_eq!(render_labels(&a), r#"a="1",b="2""#);
    }

    /// Scrapes `values` (series `model="a"` and `model="b"`) once.
    fn scrape(ingest: &mut Ingest, round: i64, a: f64, b: f64) {
        ingest.begin();
        route(ingest, "model=\"a\"", a);
        route(ingest, "model=\"b\"", b);
        ingest.commit(1_000_000 + round * 1000);
    }

    #[tokio::test]
    async fn only_series_in_trouble_keep_a_history() {
        let (runtime, shared, mut ingest) = ingest_of("s");
        for round in 0..20 {
            let v = if round % 2 == 0 { 0.90 } else { 0.91 };
            scrape(&mut ingest, round, v, v);
        }
        assert_eq!(shared.histories.used(), 0, "healthy series pay no history");

        scrape(&mut ingest, 20, 0.905, 0.5);
        assert_eq!(shared.histories.used(), 1);
        let table = lock(&runtime.table);
        let b = table
            .iter()
            .find(|e| &*e.labels == "model=\"b\"")
            .expect("series b");
        let history = b.history.as_ref().expect("b keeps a history");
        let changes: Vec<_> = history.changes().map(|c| (c.from, c.to)).collect();
        assert_eq!(changes, vec![(State::Ok, State::Degraded)]);
        assert_eq!(history.alert_spans(), vec![(1_020_000, 1_020_000)]);
        // Seeded with the baseline before the drop, then the drop itself.
        assert_eq!(history.points().len(), 11);
    }
}
