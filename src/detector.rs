//! Per-series anomaly detection: a rolling baseline window with O(1) running
//! statistics, the z-score of each new sample against it, and the
//! learning → ok → pending → degraded state machine.

use std::time::Duration;

/// Which way a metric has to move to count as worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// An accuracy: only a drop is a degradation.
    LowerIsWorse,
    /// A latency or error rate: only a rise is a degradation.
    HigherIsWorse,
    /// Any move away from the baseline is a degradation.
    Both,
}

/// The settings of one watch, shared by every series it matches.
///
/// A detector never stores its params: the engine passes them on each call,
/// so a million series share one copy.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorParams {
    /// Baseline samples kept per series.
    pub window: usize,
    /// No verdict before the baseline holds this many samples.
    pub min_samples: usize,
    /// Degraded when badness >= threshold ...
    pub threshold: f64,
    /// ... for this long (zero: at once) ...
    pub for_duration: Duration,
    /// ... or for this many consecutive samples, when set.
    pub consecutive: Option<u32>,
    /// Recovered when badness <= this (hysteresis).
    pub recover_threshold: f64,
    pub direction: Direction,
    /// Accept a lasting new level after an incident has lasted this long.
    /// `None` means never.
    pub relearn_after: Option<Duration>,
    /// Absolute floor for the baseline standard deviation.
    pub min_stddev: f64,
    /// Floor for the baseline standard deviation relative to |mean|.
    pub min_relative_stddev: f64,
}

/// Where a series stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Learning,
    Ok,
    Pending,
    Degraded,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Learning => "learning",
            State::Ok => "ok",
            State::Pending => "pending",
            State::Degraded => "degraded",
        }
    }
}
