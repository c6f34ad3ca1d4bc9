//! A small bounded record of one series' recent samples and state changes,
//! kept for the status page only while it is worth its memory.
//!
//! The detector's ring holds baseline samples only, so the samples of an
//! incident, their z-scores and the state changes live here. A series gets
//! a history when it leaves `ok` (or when someone opens its page) and lets
//! it go once it has been quiet for [`RETAIN`] samples, so a fleet of healthy
//! series pays one pointer each. At most [`MAX_HISTORIES`] exist at once.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::detector::{Detector, Evaluation, State};
use crate::plot::PlotPoint;

/// Samples kept per series: at a 15s interval, the last half hour.
pub const POINTS: usize = 120;

/// State changes kept per series.
pub const CHANGES: usize = 16;

/// Samples a series must stay `ok` or `learning`, unviewed, before its
/// history is let go: long enough that the page still shows an incident
/// that ended an hour or two ago at common intervals.
pub const RETAIN: u32 = 4 * POINTS as u32;

/// Most series holding a history at once, so an incident across a million
/// series cannot grow memory by gigabytes: at most about 46 MB.
pub const MAX_HISTORIES: usize = 10_000;

/// The heap bytes of one history (its box, ring and changes), checked by a
/// test: 96 + 120 × 32 + 16 × 40.
pub const HISTORY_BYTES: usize = 4576;

/// How many histories exist, shared by every series of the daemon.
#[derive(Debug, Default)]
pub struct Budget {
    used: AtomicUsize,
    /// Whether running out has been logged in this episode.
    warned: AtomicBool,
}

impl Budget {
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Takes a slot unless all are taken. Running out logs once, and again
    /// only after use has fallen to half, so a long incident is one line.
    fn claim(&self) -> bool {
        let claimed = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < MAX_HISTORIES).then_some(n + 1)
            });
        match claimed {
            Ok(n) => {
                if n < MAX_HISTORIES / 2 {
                    self.warned.store(false, Ordering::Relaxed);
                }
                true
            }
            Err(_) => {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        limit = MAX_HISTORIES,
                        "Series history limit reached; the status page sketches further series from their baselines"
                    );
                }
                false
            }
        }
    }
}

/// One change of state, as the series page lists it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Change {
    pub at_ms: i64,
    pub from: State,
    pub to: State,
    pub value: f64,
    pub zscore: Option<f64>,
}

/// A sample as kept: single precision is finer than any plot shows and
/// halves the ring. NaN stands for an absent z-score or baseline.
#[derive(Debug, Clone, Copy)]
struct Point {
    at_ms: i64,
    value: f32,
    zscore: f32,
    mean: f32,
    stddev: f32,
    state: State,
}

/// The recent samples and changes of one series.
#[derive(Debug)]
pub struct History {
    points: VecDeque<Point>,
    changes: VecDeque<Change>,
    /// Samples since the series was last pending, degraded or viewed.
    quiet: u32,
    /// Until when (Unix ms) the points were seeded from the baseline, with
    /// times assumed one interval apart.
    seeded_until_ms: Option<i64>,
    budget: Arc<Budget>,
}

impl History {
    /// A history for a series with this detector, seeded with its baseline
    /// samples spaced `step_ms` apart before its latest sample at
    /// `last_ms`, so the page shows what came before; `None` when the
    /// budget is spent.
    pub fn start(
        budget: &Arc<Budget>,
        detector: &Detector,
        last_ms: i64,
        step_ms: i64,
    ) -> Option<Box<History>> {
        if !budget.claim() {
            return None;
        }
        let mut history = Box::new(History {
            points: VecDeque::with_capacity(POINTS),
            changes: VecDeque::with_capacity(CHANGES),
            quiet: 0,
            seeded_until_ms: None,
            budget: Arc::clone(budget),
        });
        let points = baseline_points(detector, last_ms, step_ms);
        let skip = points.len().saturating_sub(POINTS - 1);
        history.seeded_until_ms = points.last().map(|p| p.at_ms);
        for p in &points[skip..] {
            history.push(p, State::Ok);
        }
        Some(history)
    }

    /// Adds the latest sample. No allocation: the ring is full-sized.
    pub fn record(&mut self, at_ms: i64, evaluation: &Evaluation, state: State) {
        self.push(&PlotPoint::new(at_ms, evaluation), state);
        if matches!(state, State::Pending | State::Degraded) {
            self.quiet = 0;
        } else {
            self.quiet = self.quiet.saturating_add(1);
        }
    }

    fn push(&mut self, p: &PlotPoint, state: State) {
        if self.points.len() == POINTS {
            self.points.pop_front();
        }
        let narrow = |x: Option<f64>| x.map_or(f32::NAN, |x| x as f32);
        self.points.push_back(Point {
            at_ms: p.at_ms,
            value: p.value as f32,
            zscore: narrow(p.zscore),
            mean: narrow(p.mean),
            stddev: narrow(p.stddev),
            state,
        });
    }

    pub fn change(&mut self, change: Change) {
        if self.changes.len() == CHANGES {
            self.changes.pop_front();
        }
        self.changes.push_back(change);
    }

    /// Someone looked: keep recording for a while.
    pub fn touch(&mut self) {
        self.quiet = 0;
    }

    /// Whether the series has been quiet long enough to let go.
    pub fn expired(&self) -> bool {
        self.quiet >= RETAIN
    }

    /// The kept samples, oldest first.
    pub fn points(&self) -> Vec<PlotPoint> {
        let widen = |x: f32| (!x.is_nan()).then_some(f64::from(x));
        self.points
            .iter()
            .map(|p| PlotPoint {
                at_ms: p.at_ms,
                value: f64::from(p.value),
                zscore: widen(p.zscore),
                mean: widen(p.mean),
                stddev: widen(p.stddev),
            })
            .collect()
    }

    /// (start, end) of each stretch of degraded samples; one still going
    /// ends at the latest sample.
    pub fn alert_spans(&self) -> Vec<(i64, i64)> {
        let mut spans = Vec::new();
        let mut start = None;
        for p in &self.points {
            match (p.state == State::Degraded, start) {
                (true, None) => start = Some(p.at_ms),
                (false, Some(s)) => {
                    spans.push((s, p.at_ms));
                    start = None;
                }
                _ => {}
            }
        }
        if let (Some(s), Some(last)) = (start, self.points.back()) {
            spans.push((s, last.at_ms));
        }
        spans
    }

    /// The kept changes, newest first.
    pub fn changes(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().rev()
    }

    pub fn seeded_until_ms(&self) -> Option<i64> {
        self.seeded_until_ms
    }
}

impl Drop for History {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The baseline samples of `detector` as plot points, spaced `step_ms`
/// apart and ending one step before `last_ms`, each against the baseline
/// as it stands now: the ring keeps neither times nor past baselines, so
/// this is a sketch of the recent past, not a record of it.
pub fn baseline_points(detector: &Detector, last_ms: i64, step_ms: i64) -> Vec<PlotPoint> {
    let last = detector.last();
    let mean = last.as_ref().and_then(|e| e.mean);
    let stddev = last.as_ref().and_then(|e| e.stddev);
    let n = detector.window_len() as i64;
    detector
        .baseline()
        .enumerate()
        .map(|(i, value)| PlotPoint {
            at_ms: last_ms - (n - i as i64) * step_ms,
            value,
            zscore: None,
            mean,
            stddev,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evaluation(value: f64, zscore: f64) -> Evaluation {
        Evaluation {
            value,
            zscore: Some(zscore),
            badness: Some(zscore.abs()),
            mean: Some(1.0),
            stddev: Some(0.1),
            window_samples: 10,
            evidence: None,
        }
    }

    fn history(budget: &Arc<Budget>) -> Box<History> {
        let params = crate::detector::DetectorParams {
            window: 10,
            min_samples: 5,
            threshold: 3.0,
            for_duration: std::time::Duration::ZERO,
            consecutive: None,
            recover_threshold: 1.5,
            direction: crate::detector::Direction::Both,
            relearn_after: None,
            min_stddev: 0.0,
            min_relative_stddev: 0.0,
            recover_consecutive: 1,
            accumulate: crate::detector::Accumulate::Off,
        };
        let detector = Detector::new(&params, 0);
        History::start(budget, &detector, 0, 1000).expect("budget left")
    }

    #[test]
    fn ring_stays_bounded_and_spans_follow_degraded_samples() {
        let budget = Arc::new(Budget::default());
        let mut h = history(&budget);
        for i in 0..(POINTS as i64 + 50) {
            let state = if (140..150).contains(&i) {
                State::Degraded
            } else {
                State::Ok
            };
            h.record(i * 1000, &evaluation(1.0, 0.5), state);
        }
        assert_eq!(h.points().len(), POINTS);
        assert_eq!(h.alert_spans(), vec![(140_000, 150_000)]);
    }

    #[test]
    fn a_history_costs_under_five_kib() {
        let bytes = std::mem::size_of::<History>()
            + POINTS * std::mem::size_of::<Point>()
            + CHANGES * std::mem::size_of::<Change>();
        assert!(bytes <= HISTORY_BYTES, "{bytes} bytes");
    }

    #[test]
    fn no_more_histories_than_the_cap() {
        let budget = Budget::default();
        assert!((0..MAX_HISTORIES).all(|_| budget.claim()));
        assert!(!budget.claim());
        assert_eq!(budget.used(), MAX_HISTORIES);
    }

    #[test]
    fn budget_is_returned_when_a_history_is_dropped() {
        let budget = Arc::new(Budget::default());
        let h = history(&budget);
        assert_eq!(budget.used(), 1);
        drop(h);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn quiet_series_expire_and_incidents_keep_them() {
        let budget = Arc::new(Budget::default());
        let mut h = history(&budget);
        for i in 0..RETAIN - 1 {
            h.record(i64::from(i), &evaluation(1.0, 0.1), State::Ok);
        }
        h.record(0, &evaluation(0.1, -9.0), State::Degraded);
        assert!(!h.expired());
        for i in 0..RETAIN {
            h.record(i64::from(i), &evaluation(1.0, 0.1), State::Ok);
        }
        assert!(h.expired());
    }
}
