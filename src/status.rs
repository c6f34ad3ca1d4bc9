//! The status page (`GET /`) and the page of one series
//! (`GET /series/{id}`): server-rendered HTML with inline SVG plots, no
//! scripts and no external assets, so it works in an air-gapped cluster.
//!
//! The markup is XHTML-compatible (every element closed, void elements
//! self-closed, every text and attribute escaped), so a test can check it
//! with an XML-style tag balance. Locks are held only to copy what a page
//! shows; sorting and rendering happen after they are released.

use std::collections::{BinaryHeap, HashMap};
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use crate::config::SourceKind;
use crate::detector::{Accumulate, DetectorParams, Direction, Evaluation, State};
use crate::engine::{SeriesEntry, Shared, SourceRuntime, lock, own_labels, selected};
use crate::history::{self, Change};
use crate::notify::ReceiverStats;
use crate::plot::{self, Layout, PlotPoint, PlotSeries, escape_into};
use crate::selector::Selector;

/// Rows per page of the series table: the page stays small and fast at any
/// number of series.
pub const PAGE_SIZE: usize = 100;

/// Pages of the series table one can step through; beyond them, a
/// selector narrows the list. Bounds the memory a request may take.
pub const MAX_PAGES: usize = 100;

/// Samples listed in the table of a series page.
const RECENT_ROWS: usize = 20;

/// A rendered page and its HTTP status.
pub struct Page {
    pub status: u16,
    pub body: String,
}

/// `GET /`: every watched series, worst first, with the sources and the
/// notifier. `query` holds the decoded query pairs (`match[]`, `page`).
pub fn index(shared: &Shared, query: &[(String, String)]) -> Page {
    let now = shared.clock.now_ms();
    let texts: Vec<&str> = query
        .iter()
        .filter(|(k, v)| k == "match[]" && !v.trim().is_empty())
        .map(|(_, v)| v.as_str())
        .collect();
    let page = query
        .iter()
        .find(|(k, _)| k == "page")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let mut html = String::with_capacity(64 * 1024);
    head(&mut html, "driftwatch");
    html.push_str("<h1>driftwatch</h1>\n");
    filter_form(&mut html, &texts);
    let status = match parse_selectors(&texts) {
        Ok(selectors) => {
            let sources = shared.sources();
            series_section(&mut html, &sources, &selectors, &texts, page, now);
            sources_section(&mut html, &sources, now);
            200
        }
        Err(e) => {
            html.push_str("<p class=\"error\">");
            escape_into(&mut html, &e);
            html.push_str("</p>\n");
            400
        }
    };
    notifier_section(&mut html, &shared.notifier.stats(), now);
    foot(&mut html, "./");
    Page { status, body: html }
}

/// `GET /series/{id}`: one series in detail. Opening it starts keeping the
/// series' history, if it had none, so a second look shows its samples.
pub fn series(shared: &Shared, id_text: &str) -> Page {
    let now = shared.clock.now_ms();
    let Some(detail) = u64::from_str_radix(id_text, 16)
        .ok()
        .and_then(|id| find(shared, id))
    else {
        let mut html = String::new();
        head(&mut html, "driftwatch: no such series");
        html.push_str(
            "<h1>No such series</h1>\n<p>It may have gone stale and been dropped, \
             or it belongs to another replica. <a href=\"../\">All series</a></p>\n",
        );
        foot(&mut html, "../");
        return Page {
            status: 404,
            body: html,
        };
    };
    Page {
        status: 200,
        body: detail_page(&detail, now),
    }
}

fn parse_selectors(texts: &[&str]) -> Result<Vec<Selector>, String> {
    texts.iter().map(|t| Selector::parse(t)).collect()
}

/// Degraded, then pending, then ok, then learning.
fn rank(state: State) -> u8 {
    match state {
        State::Degraded => 0,
        State::Pending => 1,
        State::Ok => 2,
        State::Learning => 3,
    }
}

/// The matching series of one watch: how many, the worst state among
/// them, and the first `keep` by (state rank, labels), ids only.
struct Group {
    source: usize,
    watch: u16,
    worst: u8,
    count: usize,
    first: BinaryHeap<(u8, Arc<str>, u64)>,
}

impl Group {
    fn new(source: usize, watch: u16) -> Group {
        Group {
            source,
            watch,
            worst: u8::MAX,
            count: 0,
            first: BinaryHeap::new(),
        }
    }

    /// Keeps the series if it is among the first `keep`; the heap's top is
    /// the last of those, so most series cost one comparison.
    fn add(&mut self, rank: u8, labels: &Arc<str>, id: u64, keep: usize) {
        self.worst = self.worst.min(rank);
        self.count += 1;
        if self.first.len() >= keep
            && self
                .first
                .peek()
                .is_some_and(|(r, l, _)| (rank, &**labels) >= (*r, &**l))
        {
            return;
        }
        self.first.push((rank, Arc::clone(labels), id));
        if self.first.len() > keep {
            self.first.pop();
        }
    }
}

/// What the series table is drawn from: the groups in page order, and
/// counts over every matching series.
struct Listing {
    groups: Vec<Group>,
    by_state: [usize; 4],
    total: usize,
}

/// One pass over every series, holding each source's lock in turn, that
/// keeps only the ids the first `keep` rows need: memory stays bounded by
/// the page, not by the number of series. Groups (a watch of a source)
/// with the worst state come first, then by source and metric.
fn list(sources: &[Arc<SourceRuntime>], selectors: &[Selector], keep: usize) -> Listing {
    let mut groups: HashMap<(usize, u16), Group> = HashMap::new();
    let mut by_state = [0; 4];
    for (si, runtime) in sources.iter().enumerate() {
        let table = lock(&runtime.table);
        for entry in table.iter() {
            if !selectors.is_empty() && !selected(runtime, entry, selectors) {
                continue;
            }
            let r = rank(entry.detector.state());
            by_state[r as usize] += 1;
            groups
                .entry((si, entry.watch))
                .or_insert_with(|| Group::new(si, entry.watch))
                .add(r, &entry.labels, runtime.series_id(entry), keep);
        }
    }
    let mut groups: Vec<Group> = groups.into_values().collect();
    groups.sort_by(|a, b| {
        let key = |g: &Group| {
            let runtime = &sources[g.source];
            (
                g.worst,
                Arc::clone(&runtime.name),
                Arc::clone(&runtime.watch_metrics[g.watch as usize]),
                g.watch,
            )
        };
        key(a).cmp(&key(b))
    });
    Listing {
        total: by_state.iter().sum(),
        by_state,
        groups,
    }
}

/// Where a row of the page comes from: its group (and how many series
/// the group has), and its series' id.
struct Pick {
    source: usize,
    watch: u16,
    in_group: usize,
    id: u64,
}

/// The rows `offset..offset + PAGE_SIZE` in page order.
fn pick(listing: Listing, offset: usize) -> Vec<Pick> {
    let mut picks = Vec::with_capacity(PAGE_SIZE);
    let mut skip = offset;
    for group in listing.groups {
        let (source, watch, in_group) = (group.source, group.watch, group.count);
        for (_, _, id) in group.first.into_sorted_vec() {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            if picks.len() == PAGE_SIZE {
                return picks;
            }
            picks.push(Pick {
                source,
                watch,
                in_group,
                id,
            });
        }
    }
    picks
}

/// One row of the table, copied out under the lock.
struct Row {
    source: usize,
    watch: u16,
    in_group: usize,
    id: u64,
    labels: Arc<str>,
    state: State,
    since_ms: i64,
    last: Option<Evaluation>,
    plot: PlotData,
}

/// What a plot needs.
struct PlotData {
    points: Vec<PlotPoint>,
    alerts: Vec<(i64, i64)>,
}

/// The rows of `picks`, in their order, one lock per source. A series that
/// went stale since it was picked is left out.
fn rows(sources: &[Arc<SourceRuntime>], picks: &[Pick]) -> Vec<Row> {
    let mut found: HashMap<u64, Row> = HashMap::with_capacity(picks.len());
    for (si, runtime) in sources.iter().enumerate() {
        let wanted: HashMap<u64, &Pick> = picks
            .iter()
            .filter(|p| p.source == si)
            .map(|p| (p.id, p))
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let table = lock(&runtime.table);
        for entry in table.iter() {
            let id = runtime.series_id(entry);
            let Some(pick) = wanted.get(&id).filter(|p| p.watch == entry.watch) else {
                continue;
            };
            let row = Row {
                source: si,
                watch: entry.watch,
                in_group: pick.in_group,
                id,
                labels: Arc::clone(&entry.labels),
                state: entry.detector.state(),
                since_ms: entry.detector.since_ms(),
                last: entry.detector.last(),
                plot: recent(runtime, entry),
            };
            found.insert(id, row);
        }
    }
    picks.iter().filter_map(|p| found.remove(&p.id)).collect()
}

/// The recent samples of a series: its history when it keeps one, else a
/// sketch from its baseline ring and latest sample.
fn recent(runtime: &SourceRuntime, entry: &SeriesEntry) -> PlotData {
    if let Some(h) = &entry.history {
        return PlotData {
            points: h.points(),
            alerts: h.alert_spans(),
        };
    }
    let step_ms = i64::try_from(runtime.config.interval.as_millis()).unwrap_or(1000);
    let mut points = history::baseline_points(&entry.detector, entry.last_seen_ms, step_ms);
    points.extend(
        entry
            .detector
            .last()
            .map(|e| PlotPoint::new(entry.last_seen_ms, &e)),
    );
    PlotData {
        points,
        alerts: Vec::new(),
    }
}

fn series_section(
    html: &mut String,
    sources: &[Arc<SourceRuntime>],
    selectors: &[Selector],
    texts: &[&str],
    page: usize,
    now: i64,
) {
    let page = page.min(MAX_PAGES);
    let listing = list(sources, selectors, page * PAGE_SIZE);
    let (total, by_state) = (listing.total, listing.by_state);
    let pages = total.min(MAX_PAGES * PAGE_SIZE).div_ceil(PAGE_SIZE).max(1);
    let picks = pick(listing, (page - 1) * PAGE_SIZE);
    let rows = rows(sources, &picks);
    summary(html, total, &by_state);

    html.push_str(
        "<table class=\"rows\">\n<thead><tr><th>state</th><th>series</th><th>since</th>\
         <th>value</th><th>z</th><th>mean</th><th>stddev</th><th>window</th>\
         <th>recent values</th></tr></thead>\n<tbody>\n",
    );
    let mut group: Option<(usize, u16)> = None;
    for row in &rows {
        let runtime = &sources[row.source];
        if group != Some((row.source, row.watch)) {
            group = Some((row.source, row.watch));
            group_header(html, runtime, row.watch, row.in_group);
        }
        series_row(html, runtime, row, now);
    }
    html.push_str("</tbody>\n</table>\n");
    if total == 0 {
        html.push_str("<p>No series to show: none is watched yet, or none matches.</p>\n");
    } else if rows.is_empty() {
        html.push_str("<p>No series on this page.</p>\n");
    }
    if total > MAX_PAGES * PAGE_SIZE {
        let _ = writeln!(
            html,
            "<p class=\"note\">The first {} of {total} series can be paged through; \
             narrow the rest down with a selector.</p>",
            MAX_PAGES * PAGE_SIZE
        );
    }
    pagination(html, texts, page, pages);
}

fn summary(html: &mut String, total: usize, by_state: &[usize; 4]) {
    let _ = write!(
        html,
        "<p class=\"summary\"><strong>{total}</strong> series:"
    );
    for state in [State::Degraded, State::Pending, State::Ok, State::Learning] {
        let n = by_state[rank(state) as usize];
        let class = if n == 0 { "zero" } else { state.as_str() };
        let _ = write!(
            html,
            " <span class=\"st st-{class}\">{n} {}</span>",
            state.as_str()
        );
    }
    html.push_str("</p>\n");
}

fn group_header(html: &mut String, runtime: &SourceRuntime, watch: u16, series: usize) {
    html.push_str("<tr class=\"group\"><th colspan=\"9\">");
    escape_into(html, &runtime.name);
    html.push_str(" / ");
    escape_into(html, &runtime.watch_metrics[watch as usize]);
    let _ = writeln!(
        html,
        " <span class=\"count\">{series} series</span></th></tr>"
    );
}

fn series_row(html: &mut String, runtime: &SourceRuntime, row: &Row, now: i64) {
    let state = row.state.as_str();
    let _ = write!(
        html,
        "<tr class=\"row\" id=\"s{id:016x}\" data-series=\"{id:016x}\" data-state=\"{state}\">\
         <td><span class=\"st st-{state}\">{state}</span></td>\
         <td class=\"name\"><a href=\"series/{id:016x}\">",
        id = row.id,
    );
    labels_text(html, &row.labels);
    html.push_str("</a></td><td>");
    time(html, row.since_ms, now);
    html.push_str("</td>");
    numbers(html, row.last.as_ref());
    let params = &runtime.config.watches[row.watch as usize].detector;
    let fill = row.last.as_ref().map_or(0, |e| e.window_samples);
    let _ = write!(
        html,
        "<td class=\"num\">{fill}/{}</td><td class=\"plot\">",
        params.window
    );
    html.push_str(&draw(&row.plot, params, "", &Layout::small()));
    html.push_str("</td></tr>\n");
}

/// Value, z-score, mean and stddev cells.
fn numbers(html: &mut String, last: Option<&Evaluation>) {
    let cells = [
        last.map(|e| e.value),
        last.and_then(|e| e.zscore),
        last.and_then(|e| e.mean),
        last.and_then(|e| e.stddev),
    ];
    for (i, cell) in cells.into_iter().enumerate() {
        html.push_str("<td class=\"num\">");
        match cell {
            Some(z) if i == 1 => {
                let _ = write!(html, "{z:+.2}");
            }
            Some(x) => html.push_str(&number(x)),
            None => html.push('\u{2013}'),
        }
        html.push_str("</td>");
    }
}

fn draw(data: &PlotData, params: &DetectorParams, title: &str, layout: &Layout) -> String {
    let series = PlotSeries {
        title,
        points: &data.points,
        alerts: data.alerts.clone(),
        threshold: params.threshold,
        direction: params.direction,
    };
    plot::render(&[series], layout)
}

fn pagination(html: &mut String, texts: &[&str], page: usize, pages: usize) {
    if pages <= 1 {
        return;
    }
    let link = |html: &mut String, to: usize, text: &str| {
        html.push_str("<a href=\"?");
        for t in texts {
            html.push_str("match%5B%5D=");
            percent_encode(html, t);
            html.push_str("&amp;");
        }
        let _ = write!(html, "page={to}\">{text}</a> ");
    };
    html.push_str("<p class=\"pages\">");
    if page > 1 {
        link(html, page - 1, "\u{2190} previous");
    }
    let _ = write!(html, "page {page} of {pages} ");
    if page < pages {
        link(html, page + 1, "next \u{2192}");
    }
    html.push_str("</p>\n");
}

fn filter_form(html: &mut String, texts: &[&str]) {
    html.push_str(
        "<form method=\"get\" action=\"\" class=\"filter\">\
         <label for=\"match\">Series selector</label> \
         <input type=\"text\" id=\"match\" name=\"match[]\" size=\"60\" \
         placeholder=\"model_accuracy{model=&quot;fraud&quot;}\" value=\"",
    );
    escape_into(html, texts.first().copied().unwrap_or(""));
    html.push_str("\"/> <button type=\"submit\">Filter</button> <a href=\"./\">clear</a></form>\n");
}

fn sources_section(html: &mut String, sources: &[Arc<SourceRuntime>], now: i64) {
    html.push_str(
        "<h2>Sources</h2>\n<table class=\"sources\">\n<thead><tr><th>source</th>\
         <th>endpoint</th><th>up</th><th>last scrape</th><th>duration</th>\
         <th>series</th><th>last error</th></tr></thead>\n<tbody>\n",
    );
    for runtime in sources {
        let health = lock(&runtime.health).clone();
        let series = lock(&runtime.table).len();
        let endpoint = match &runtime.config.kind {
            SourceKind::Scrape(s) => s.url.as_str(),
            SourceKind::Promql(q) => q.url.as_str(),
        };
        let (class, up) = match (health.last_scrape_ms, health.up) {
            (None, _) => ("learning", "not yet"),
            (Some(_), true) => ("ok", "up"),
            (Some(_), false) => ("degraded", "down"),
        };
        html.push_str("<tr><td>");
        escape_into(html, &runtime.name);
        html.push_str("</td><td>");
        escape_into(html, endpoint);
        let _ = write!(
            html,
            "</td><td><span class=\"st st-{class}\">{up}</span></td><td>"
        );
        match health.last_scrape_ms {
            Some(at) => time(html, at, now),
            None => html.push('\u{2013}'),
        }
        let _ = write!(
            html,
            "</td><td class=\"num\">{:.3}s</td><td class=\"num\">{series}</td><td class=\"err\">",
            health.last_duration.as_secs_f64()
        );
        escape_into(html, health.last_error.as_deref().unwrap_or(""));
        html.push_str("</td></tr>\n");
    }
    html.push_str("</tbody>\n</table>\n");
}

fn notifier_section(html: &mut String, receivers: &[ReceiverStats], now: i64) {
    html.push_str("<h2>Notifications</h2>\n");
    if receivers.is_empty() {
        html.push_str("<p>No Alertmanager or webhook is configured.</p>\n");
        return;
    }
    html.push_str(
        "<table class=\"receivers\">\n<thead><tr><th>receiver</th><th>pending</th>\
         <th>last success</th><th>last failure</th><th>reason</th><th>delivered</th>\
         <th>failed</th></tr></thead>\n<tbody>\n",
    );
    for r in receivers {
        let count = |name: &str| {
            r.results
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(0, |c| c.1)
        };
        html.push_str("<tr><td>");
        escape_into(html, &r.receiver);
        let _ = write!(html, "</td><td class=\"num\">{}</td><td>", r.queue_length);
        match r.last.success_ms {
            Some(at) => time(html, at, now),
            None => html.push_str("never"),
        }
        html.push_str("</td><td>");
        match &r.last.failure {
            Some((at, _)) => time(html, *at, now),
            None => html.push_str("never"),
        }
        html.push_str("</td><td class=\"err\">");
        escape_into(html, r.last.failure.as_ref().map_or("", |f| f.1.as_str()));
        let _ = writeln!(
            html,
            "</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            count("success"),
            count("failed")
        );
    }
    html.push_str("</tbody>\n</table>\n");
}

/// Everything the page of one series shows, copied out under the lock.
struct Detail {
    id: u64,
    source: Arc<str>,
    metric: Arc<str>,
    labels: Arc<str>,
    state: State,
    since_ms: i64,
    last: Option<Evaluation>,
    params: DetectorParams,
    interval: Duration,
    stale_after: Duration,
    recent: PlotData,
    /// Whether `recent` is only a sketch from the baseline ring.
    sketched: bool,
    seeded_until_ms: Option<i64>,
    baseline: PlotData,
    changes: Vec<Change>,
}

/// The series `id` as its page shows it; it keeps a history from now on
/// (budget allowing), so the next look shows its samples as evaluated.
fn find(shared: &Shared, id: u64) -> Option<Detail> {
    for runtime in shared.sources().iter() {
        let mut table = lock(&runtime.table);
        let Some(entry) = table.iter_mut().find(|e| runtime.series_id(e) == id) else {
            continue;
        };
        if entry.keep_history(&shared.histories, runtime.config.interval) {
            if let Some(h) = entry.history.as_mut() {
                h.touch();
            }
        }
        return Some(detail(runtime, entry));
    }
    None
}

fn detail(runtime: &SourceRuntime, entry: &SeriesEntry) -> Detail {
    let watch = &runtime.config.watches[entry.watch as usize];
    let history = entry.history.as_deref();
    Detail {
        id: runtime.series_id(entry),
        source: Arc::clone(&runtime.name),
        metric: Arc::clone(&runtime.watch_metrics[entry.watch as usize]),
        labels: Arc::clone(&entry.labels),
        state: entry.detector.state(),
        since_ms: entry.detector.since_ms(),
        last: entry.detector.last(),
        params: watch.detector.clone(),
        interval: runtime.config.interval,
        stale_after: watch.stale_after,
        sketched: history.is_none(),
        recent: recent(runtime, entry),
        seeded_until_ms: history.and_then(|h| h.seeded_until_ms()),
        baseline: baseline(runtime, entry),
        changes: history.map_or_else(Vec::new, |h| h.changes().copied().collect()),
    }
}

/// The baseline ring, each sample with its z against today's band, which
/// is the band its plot draws.
fn baseline(runtime: &SourceRuntime, entry: &SeriesEntry) -> PlotData {
    let step_ms = i64::try_from(runtime.config.interval.as_millis()).unwrap_or(1000);
    let mut points = history::baseline_points(&entry.detector, entry.last_seen_ms, step_ms);
    for p in &mut points {
        p.zscore = p.mean.zip(p.stddev).map(|(m, s)| (p.value - m) / s);
    }
    PlotData {
        points,
        alerts: Vec::new(),
    }
}

fn detail_page(d: &Detail, now: i64) -> String {
    let mut title = String::new();
    let _ = write!(title, "{}{{", d.metric);
    for (i, (k, v)) in own_labels(&d.labels).iter().enumerate() {
        let _ = write!(title, "{}{k}=\"{v}\"", if i > 0 { ", " } else { "" });
    }
    title.push('}');
    let mut html = String::with_capacity(32 * 1024);
    head(&mut html, &format!("driftwatch: {title}"));
    html.push_str("<p><a href=\"../\">\u{2190} all series</a></p>\n<h1>");
    escape_into(&mut html, &title);
    let _ = writeln!(
        html,
        "</h1>\n<p class=\"ident\" data-series=\"{:016x}\">source <strong>",
        d.id
    );
    escape_into(&mut html, &d.source);
    let _ = writeln!(html, "</strong>, series id <code>{:016x}</code></p>", d.id);
    detail_summary(&mut html, d, now);
    detail_plots(&mut html, d, &title, now);
    changes_table(&mut html, &d.changes, now);
    recent_table(&mut html, &d.recent.points, now);
    labels_table(&mut html, d);
    settings_table(&mut html, d);
    foot(&mut html, "../");
    html
}

fn detail_summary(html: &mut String, d: &Detail, now: i64) {
    let state = d.state.as_str();
    let _ = write!(
        html,
        "<table class=\"rows\"><thead><tr><th>state</th><th>since</th><th>value</th>\
         <th>z</th><th>mean</th><th>stddev</th><th>window</th></tr></thead>\n<tbody>\
         <tr class=\"row\" data-state=\"{state}\"><td><span class=\"st st-{state}\">{state}</span></td><td>"
    );
    time(html, d.since_ms, now);
    html.push_str("</td>");
    numbers(html, d.last.as_ref());
    let fill = d.last.as_ref().map_or(0, |e| e.window_samples);
    let _ = writeln!(
        html,
        "<td class=\"num\">{fill}/{}</td></tr></tbody></table>",
        d.params.window
    );
}

fn detail_plots(html: &mut String, d: &Detail, title: &str, now: i64) {
    html.push_str("<h2>Recent samples</h2>\n");
    if d.sketched {
        html.push_str(
            "<p class=\"note\">This series keeps no history (too many series do \
             already), so this is its baseline ring with times assumed one interval apart.</p>\n",
        );
    } else if let Some(until) = d.seeded_until_ms {
        html.push_str("<p class=\"note\">Samples up to ");
        time(html, until, now);
        html.push_str(
            " come from the baseline ring as it was when recording began (times assumed \
             one interval apart, no z-scores); later ones are recorded as evaluated.</p>\n",
        );
    }
    html.push_str("<div class=\"big\">");
    html.push_str(&draw(&d.recent, &d.params, title, &Layout::default()));
    let _ = writeln!(
        html,
        "</div>\n<h2>Baseline window</h2>\n<p class=\"note\">The {} samples the \
         baseline holds now, oldest first, against today's band.</p>\n<div class=\"big\">",
        d.baseline.points.len()
    );
    html.push_str(&draw(
        &d.baseline,
        &d.params,
        "baseline window",
        &Layout::default(),
    ));
    html.push_str("</div>\n");
}

fn changes_table(html: &mut String, changes: &[Change], now: i64) {
    html.push_str("<h2>State changes</h2>\n");
    if changes.is_empty() {
        html.push_str(
            "<p>None recorded. Changes are kept while a series is in trouble or watched.</p>\n",
        );
        return;
    }
    html.push_str(
        "<table class=\"changes\"><thead><tr><th>at</th><th>from</th><th>to</th>\
         <th>value</th><th>z</th></tr></thead>\n<tbody>\n",
    );
    for c in changes {
        html.push_str("<tr><td>");
        exact_time(html, c.at_ms, now);
        let (from, to) = (c.from.as_str(), c.to.as_str());
        let _ = writeln!(
            html,
            "</td><td><span class=\"st st-{from}\">{from}</span></td>\
             <td><span class=\"st st-{to}\">{to}</span></td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td></tr>",
            number(c.value),
            c.zscore
                .map_or_else(|| "\u{2013}".to_owned(), |z| format!("{z:+.2}")),
        );
    }
    html.push_str("</tbody></table>\n");
}

fn recent_table(html: &mut String, points: &[PlotPoint], now: i64) {
    let recent = &points[points.len().saturating_sub(RECENT_ROWS)..];
    if recent.is_empty() {
        return;
    }
    html.push_str(
        "<h2>Latest z-scores</h2>\n<table class=\"recent\"><thead><tr><th>at</th>\
         <th>value</th><th>z</th><th>mean</th><th>stddev</th></tr></thead>\n<tbody>\n",
    );
    for p in recent.iter().rev() {
        html.push_str("<tr><td>");
        exact_time(html, p.at_ms, now);
        html.push_str("</td>");
        let evaluation = Evaluation {
            value: p.value,
            zscore: p.zscore,
            badness: None,
            mean: p.mean,
            stddev: p.stddev,
            window_samples: 0,
            evidence: None,
        };
        numbers(html, Some(&evaluation));
        html.push_str("</tr>\n");
    }
    html.push_str("</tbody></table>\n");
}

fn labels_table(html: &mut String, d: &Detail) {
    html.push_str("<h2>Labels</h2>\n<table class=\"kv\"><tbody>\n");
    for (k, v) in [("source", &*d.source), ("metric", &*d.metric)] {
        kv(html, k, v);
    }
    for (k, v) in own_labels(&d.labels) {
        kv(html, &k, &v);
    }
    html.push_str("</tbody></table>\n");
}

fn settings_table(html: &mut String, d: &Detail) {
    let p = &d.params;
    html.push_str("<h2>Detector settings</h2>\n<table class=\"kv\"><tbody>\n");
    let direction = match p.direction {
        Direction::LowerIsWorse => "lower_is_worse",
        Direction::HigherIsWorse => "higher_is_worse",
        Direction::Both => "both",
    };
    let duration = |d: Duration| humantime::format_duration(d).to_string();
    let rows = [
        ("interval", duration(d.interval)),
        ("window", p.window.to_string()),
        ("min_samples", p.min_samples.to_string()),
        ("threshold", p.threshold.to_string()),
        ("for", duration(p.for_duration)),
        (
            "consecutive",
            p.consecutive.map_or("\u{2013}".into(), |n| n.to_string()),
        ),
        ("recover_threshold", p.recover_threshold.to_string()),
        ("recover_consecutive", p.recover_consecutive.to_string()),
        ("accumulate", accumulate(&p.accumulate)),
        ("direction", direction.to_owned()),
        (
            "relearn_after",
            p.relearn_after.map_or("never".into(), duration),
        ),
        ("stale_after", duration(d.stale_after)),
        ("min_stddev", p.min_stddev.to_string()),
        ("min_relative_stddev", p.min_relative_stddev.to_string()),
    ];
    for (k, v) in rows {
        kv(html, k, &v);
    }
    html.push_str("</tbody></table>\n");
}

/// The accumulated statistic as its configuration keys would write it.
fn accumulate(accumulate: &Accumulate) -> String {
    match *accumulate {
        Accumulate::Off => "none".to_owned(),
        Accumulate::Ewma { lambda, limit } => {
            format!("ewma (ewma_lambda {lambda}, ewma_threshold {limit})")
        }
        Accumulate::Cusum { k, h } => format!("cusum (cusum_slack {k}, cusum_threshold {h})"),
    }
}

fn kv(html: &mut String, key: &str, value: &str) {
    html.push_str("<tr><th>");
    escape_into(html, key);
    html.push_str("</th><td>");
    escape_into(html, value);
    html.push_str("</td></tr>\n");
}

/// `{a="1", b="2"}` from the stored label text, escaped for HTML.
fn labels_text(html: &mut String, labels: &str) {
    html.push('{');
    for (i, (k, v)) in own_labels(labels).iter().enumerate() {
        if i > 0 {
            html.push_str(", ");
        }
        escape_into(html, k);
        html.push_str("=\"");
        escape_into(html, v);
        html.push('"');
    }
    html.push('}');
}

/// A time as `<time>`: how long ago, with the exact UTC time on hover.
fn time(html: &mut String, at_ms: i64, now: i64) {
    let exact = crate::http::rfc3339(at_ms);
    let _ = write!(
        html,
        "<time datetime=\"{exact}\" title=\"{exact}\">{} ago</time>",
        ago(at_ms, now)
    );
}

/// A time as `<time>`: the exact UTC time, then how long ago, where the
/// moment matters (when a series crossed the threshold).
fn exact_time(html: &mut String, at_ms: i64, now: i64) {
    let exact = crate::http::rfc3339(at_ms);
    let _ = write!(
        html,
        "<time datetime=\"{exact}\">{exact}</time> <span class=\"ago\">({} ago)</span>",
        ago(at_ms, now)
    );
}

fn ago(at_ms: i64, now: i64) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_secs(((now - at_ms).max(0) / 1000) as u64))
}

/// Enough digits for a metric near its baseline, in a narrow column.
fn number(x: f64) -> String {
    let a = x.abs();
    if x == 0.0 || (1e-3..1e6).contains(&a) {
        format!("{x:.4}")
    } else {
        format!("{x:.3e}")
    }
}

fn percent_encode(out: &mut String, text: &str) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// The document start, with the one style sheet, inline.
fn head(html: &mut String, title: &str) {
    html.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>",
    );
    escape_into(html, title);
    html.push_str("</title>\n<link rel=\"icon\" href=\"data:,\"/>\n");
    html.push_str(STYLE);
    html.push_str("</head>\n<body>\n");
}

/// The document end. `root` is the relative way back to `/`, so the page
/// works behind a proxy that serves it under a path prefix.
fn foot(html: &mut String, root: &str) {
    let _ = write!(
        html,
        "<p class=\"foot\">driftwatch \u{b7} <a href=\"{root}metrics\">/metrics</a> \u{b7} \
         <a href=\"{root}api/v1/series\">/api/v1/series</a> \u{b7} \
         <a href=\"{root}api/v1/alerts\">/api/v1/alerts</a></p>\n</body>\n</html>\n",
    );
}

/// The page's look. Class names stay clear of those the plots' own style
/// uses (`band`, `series`, `alert`, ...), since inline SVG styles apply to
/// the whole document.
const STYLE: &str = "<style>\
body{font-family:system-ui,sans-serif;margin:1.2em 2em;color:#222;font-size:14px}\
h1{font-size:1.4em;margin:.2em 0 .6em}h2{font-size:1.15em;margin:1.4em 0 .4em}\
table{border-collapse:collapse;margin:.4em 0}\
th,td{padding:3px 8px;border-bottom:1px solid #e4e4e4;text-align:left;vertical-align:middle}\
thead th{background:#f3f3f3;font-weight:600}\
tr.group th{background:#eef3f8;font-weight:600;padding-top:6px}\
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\
td.name{font-family:ui-monospace,monospace;font-size:13px;max-width:28em;overflow-wrap:anywhere}\
td.plot{padding:1px 4px}td.plot svg{display:block}\
td.err{color:#a00;max-width:30em;overflow-wrap:anywhere}\
.st{display:inline-block;padding:1px 6px;border-radius:3px;font-size:12px;font-weight:600}\
.st-degraded{background:#d62728;color:#fff}.st-pending{background:#ff9f1c;color:#222}\
.st-ok{background:#dff0d8;color:#2b6a2b}.st-learning{background:#e8e8e8;color:#555}\
.st-zero{background:#f4f4f4;color:#999}\
.error{color:#a00;font-weight:600}.note{color:#555;max-width:60em}\
.filter input{font-family:ui-monospace,monospace;padding:3px 4px}\
.foot{color:#777;margin-top:2em}.big svg{max-width:100%;height:auto}\
code{font-size:13px}.ago{color:#777}.count{font-weight:400;color:#666;margin-left:.6em}\
</style>\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_keeps_its_first_rows_by_state_then_labels() {
        let mut group = Group::new(0, 0);
        let labels: Vec<Arc<str>> = ["d", "a", "c", "b"].map(Arc::from).to_vec();
        group.add(rank(State::Ok), &labels[0], 1, 2);
        group.add(rank(State::Ok), &labels[1], 2, 2);
        group.add(rank(State::Degraded), &labels[2], 3, 2);
        group.add(rank(State::Learning), &labels[3], 4, 2);
        let ids: Vec<u64> = group.first.into_sorted_vec().iter().map(|e| e.2).collect();
        assert_eq!(ids, vec![3, 2]);
        assert_eq!((group.count, group.worst), (4, rank(State::Degraded)));
    }

    #[test]
    fn page_links_carry_the_selector_percent_encoded() {
        let mut html = String::new();
        pagination(&mut html, &["up{job=\"a b\"}"], 2, 3);
        assert!(
            html.contains("href=\"?match%5B%5D=up%7Bjob%3D%22a%20b%22%7D&amp;page=1\""),
            "{html}"
        );
        assert!(html.contains("page=3\""), "{html}");
    }

    #[test]
    fn numbers_keep_four_decimals_or_go_scientific() {
        assert_eq!(number(0.905), "0.9050");
        assert_eq!(number(0.0), "0.0000");
        assert_eq!(number(0.00002), "2.000e-5");
        assert_eq!(number(12_345_678.0), "1.235e7");
    }
}
