//! Per-series anomaly detection: a rolling baseline window with O(1) running
//! statistics, the z-score of each new sample against it, and the
//! learning → ok → pending → degraded state machine.

use std::time::Duration;

use crate::window::Window;

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
    /// Recovered when badness <= this (hysteresis) ...
    pub recover_threshold: f64,
    /// ... for this many samples in a row (1: at the first such sample).
    pub recover_consecutive: u32,
    pub direction: Direction,
    /// Accept a lasting new level after an incident has lasted this long.
    /// `None` means never.
    pub relearn_after: Option<Duration>,
    /// Absolute floor for the baseline standard deviation.
    pub min_stddev: f64,
    /// Floor for the baseline standard deviation relative to |mean|.
    pub min_relative_stddev: f64,
    /// Evidence accumulated over samples, beside each sample's own z.
    pub accumulate: Accumulate,
}

/// A statistic that accumulates evidence over samples, so that a small
/// lasting shift, which no single z-score reaches the threshold for, still
/// becomes a breach. It is fed each sample's z-score, clipped to
/// ±threshold: an outlier is the plain z-score's to catch, and one must not
/// hold the accumulated statistic up long after it has passed.
///
/// A sample breaches when its own badness reaches `threshold` or the
/// statistic's badness reaches its own limit. The statistic's badness is
/// scaled by `threshold / limit` before the state machine sees it, so a
/// degraded series recovers when both are at or below `recover_threshold`
/// on their own scales. Whether a sample enters the baseline still depends
/// on its own badness only, as the design states.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Accumulate {
    /// Each sample on its own: a plain rolling z-score.
    Off,
    /// The exponentially weighted moving average of the z-scores,
    /// `e ← (1 − λ)·e + λ·z`, divided by its in-control standard deviation
    /// `√(λ / (2 − λ))`, so that it is itself a z-score; it breaches at
    /// `limit`.
    Ewma { lambda: f64, limit: f64 },
    /// A two-sided tabular CUSUM of the z-scores with slack `k`, breaching
    /// at the decision interval `h` and capped at `2h`, so that it drains
    /// within a bounded number of samples after a long incident.
    Cusum { k: f64, h: f64 },
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

/// Default for [`DetectorParams::min_relative_stddev`].
///
/// A metric that held one value through its whole baseline (an accuracy
/// computed on a fixed evaluation set, a cached gauge) has a standard
/// deviation of zero, and without a floor its next tiny wobble would be an
/// infinite z-score. A floor of 1e-4 × |mean| means a flat accuracy of 0.95
/// needs a move of 3 × 0.000095 ≈ 0.0003 to reach a threshold of 3: far below
/// any change a model owner acts on, and far above float rounding (1e-16).
pub const DEFAULT_MIN_RELATIVE_STDDEV: f64 = 1e-4;

/// Default for [`DetectorParams::min_stddev`]: no absolute floor, because the
/// detector cannot know a metric's unit; the relative floor covers flat
/// metrics away from zero.
pub const DEFAULT_MIN_STDDEV: f64 = 0.0;

/// Why a sample was not evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    #[error("sample value is NaN or infinite")]
    NotFinite,
}

impl SkipReason {
    /// The value of the `reason` label of `driftwatch_samples_skipped_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NotFinite => "not_finite",
        }
    }
}

/// A change of state, the event the notifier acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub to: State,
    /// Timestamp of the sample (or reset) that caused it, Unix ms.
    pub at_ms: i64,
}

/// What one sample did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// `None` while the baseline holds fewer than `min_samples`.
    pub zscore: Option<f64>,
    pub badness: Option<f64>,
    pub transition: Option<Transition>,
}

/// The latest sample of a series and the baseline it was compared against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    pub value: f64,
    /// `None` while learning.
    pub zscore: Option<f64>,
    pub badness: Option<f64>,
    /// Baseline mean; `None` only when the baseline was empty.
    pub mean: Option<f64>,
    /// The effective standard deviation (after the floors), so that
    /// `(value - mean) / stddev == zscore`; `None` when the baseline was empty.
    pub stddev: Option<f64>,
    /// How many samples the baseline held.
    pub window_samples: usize,
    /// The accumulated statistic after this sample, signed like z; `None`
    /// while learning or with [`Accumulate::Off`].
    pub evidence: Option<f64>,
}

/// A detector taken apart for a snapshot; see [`Detector::save`].
#[derive(Debug, Clone, PartialEq)]
pub struct SavedDetector {
    pub state: State,
    pub since_ms: i64,
    pub incident_ms: i64,
    pub breaches: u32,
    pub last: Option<Evaluation>,
    /// Oldest first.
    pub baseline: Vec<f64>,
    /// The accumulator's state; see [`Accumulate`].
    pub accumulator: [f32; 2],
}

/// The detector of one series: its baseline window and its state.
///
/// # Rules
///
/// A sample x is compared against the baseline B of the samples that entered
/// before it. With m the mean and s the population standard deviation of B,
/// the effective deviation is `s_eff = max(s, min_stddev,
/// min_relative_stddev × |m|)` and `z = (x − m) / s_eff`. When `s_eff` is still
/// zero (a flat baseline with both floors at zero), z is 0 if x equals m and
/// ±infinity otherwise, so an exact repeat is normal and any move is a breach;
/// never NaN. Badness is −z, z or |z| by [`Direction`].
///
/// With fewer than `min_samples` in B there is no verdict and the series is
/// learning. The first verdict leaves learning. A breach (badness ≥
/// threshold) makes the series pending; it becomes degraded once the breach
/// has lasted `for_duration` and, when `consecutive` is set, has spanned that
/// many breaching samples in a row (with neither, at once). Pending falls back
/// to ok on a sample below threshold; degraded recovers to ok after
/// `recover_consecutive` samples in a row with badness ≤ `recover_threshold`.
/// With an [`Accumulate`] statistic, "breach" and "calm" also look at it.
/// Durations are measured between sample timestamps: a detector only moves
/// when a sample arrives.
///
/// A sample enters B only if, after its evaluation, the state is learning or
/// ok and its badness is below threshold (or absent). An incident that has
/// lasted `relearn_after` since its first breaching sample clears B and
/// returns to learning, so a lasting new level becomes the baseline;
/// `Some(Duration::ZERO)` means never, like `None`, as `0s` does in the
/// configuration.
///
/// # Cost
///
/// Each sample is O(1): the baseline is a [`Window`], whose running sums
/// are of `x − K` with K a sample of the window, and are recomputed from the
/// samples once per `window` updates (amortised O(1)), so rounding neither
/// accumulates over long runs nor cancels catastrophically on a large offset
/// with a small spread.
#[derive(Debug, Clone)]
pub struct Detector {
    baseline: Window,
    last: LastSample,
    since_ms: i64,
    /// When the current incident (pending, then degraded) began.
    incident_ms: i64,
    /// [`Accumulate::Ewma`]: the scaled EWMA in slot 0. [`Accumulate::Cusum`]:
    /// the upper and lower sums. Infinity in slot 0 (which no statistic
    /// reaches: z is clipped) until the first verdict; not NaN, so that a
    /// saved detector compares equal to its restored copy. f32 is plenty for
    /// a statistic compared with a threshold of a few units, and keeps the
    /// detector small.
    accumulator: [f32; 2],
    /// Breaching samples in a row within the current incident.
    breaches: u32,
    /// The state, and what the last sample's evaluation needs besides
    /// [`LastSample`].
    marks: Marks,
}

const NO_ACCUMULATOR: [f32; 2] = [f32::INFINITY, 0.0];
/// Slot 1 of an EWMA's accumulator, which a CUSUM's lower sum (never
/// negative) cannot hold.
const EWMA_MARK: f32 = -1.0;

impl Detector {
    /// A detector with an empty baseline, learning since `now_ms`.
    ///
    /// The ring is allocated by the first sample.
    pub fn new(_params: &DetectorParams, now_ms: i64) -> Self {
        Detector {
            baseline: Window::new(),
            last: LastSample::NONE,
            since_ms: now_ms,
            incident_ms: now_ms,
            accumulator: NO_ACCUMULATOR,
            breaches: 0,
            marks: Marks::LEARNING,
        }
    }

    /// Evaluates one sample taken at `at_ms` (Unix ms).
    ///
    /// A NaN or infinite value changes nothing and is reported as skipped.
    pub fn observe(
        &mut self,
        params: &DetectorParams,
        value: f64,
        at_ms: i64,
    ) -> Result<Verdict, SkipReason> {
        if !value.is_finite() {
            return Err(SkipReason::NotFinite);
        }
        let mut eval = self.evaluate(params, value);
        let evidence = self.accumulate(params, eval.zscore);
        eval.evidence = evidence.map(|(signed, _)| signed);
        // The state machine follows the worse of the two; the baseline
        // admits by the sample's own badness, as the design says.
        let level = match (eval.badness, evidence) {
            (Some(b), Some((_, e))) => Some(b.max(e)),
            (b, _) => b,
        };
        let mut to = self.step(params, level, at_ms);
        if self.relearn_due(params, to, at_ms) {
            self.baseline.clear();
            self.accumulator = NO_ACCUMULATOR;
            to = State::Learning;
        }
        let transition = self.enter(to, at_ms);
        if admits(params, to, eval.badness) {
            self.baseline.push(value, params.window);
        }
        self.last = LastSample::from(&eval);
        self.marks = self.marks.with_last(&eval, params.direction);
        Ok(Verdict {
            zscore: eval.zscore,
            badness: eval.badness,
            transition,
        })
    }

    /// Forgets the baseline and learns again, leaving any incident.
    ///
    /// The ring keeps its allocation, since the series will refill it.
    pub fn reset_baseline(&mut self, _params: &DetectorParams, now_ms: i64) -> Option<Transition> {
        self.baseline.clear();
        self.accumulator = NO_ACCUMULATOR;
        // The last verdict was against the baseline just forgotten: keep the
        // value, drop what no longer describes the series.
        self.last = LastSample {
            value: self.last.value,
            ..LastSample::NONE
        };
        self.marks = self.marks.without_verdict();
        self.enter(State::Learning, now_ms)
    }

    /// Learns from a historical sample (a backfill) without a verdict: it
    /// enters the baseline under the same rule as a live sample in the ok
    /// state, so outliers in the history stay out of it, and the state does
    /// not move. Returns whether it entered.
    pub fn learn(&mut self, params: &DetectorParams, value: f64) -> bool {
        if !value.is_finite() {
            return false;
        }
        let eval = self.evaluate(params, value);
        let enters = admits(params, State::Ok, eval.badness);
        if enters {
            self.baseline.push(value, params.window);
        }
        enters
    }

    /// Everything a restart needs to carry on as if it had not happened.
    pub fn save(&self) -> SavedDetector {
        SavedDetector {
            state: self.state(),
            since_ms: self.since_ms,
            incident_ms: self.incident_ms,
            breaches: self.breaches,
            last: self.last(),
            baseline: self.baseline.iter().collect(),
            accumulator: self.accumulator,
        }
    }

    /// A detector as [`Detector::save`] left it. A baseline longer than the
    /// window (the window shrank across the restart) keeps its newest
    /// samples; non-finite values, which no window ever holds, are dropped.
    pub fn restore(params: &DetectorParams, saved: &SavedDetector) -> Detector {
        let mut baseline = Window::new();
        let keep = saved.baseline.len().saturating_sub(params.window.max(1));
        for &x in saved.baseline[keep..].iter().filter(|x| x.is_finite()) {
            baseline.push(x, params.window);
        }
        let marks = Marks::LEARNING.with_state(saved.state);
        let (last, marks) = match &saved.last {
            Some(eval) => (
                LastSample::from(eval),
                marks.with_last(eval, params.direction),
            ),
            None => (LastSample::NONE, marks),
        };
        Detector {
            baseline,
            last,
            since_ms: saved.since_ms,
            incident_ms: saved.incident_ms,
            accumulator: saved.accumulator,
            breaches: saved.breaches,
            marks,
        }
    }

    pub fn state(&self) -> State {
        self.marks.state()
    }

    /// When the current state began, Unix ms.
    pub fn since_ms(&self) -> i64 {
        self.since_ms
    }

    /// The latest evaluated sample, `None` before the first one.
    pub fn last(&self) -> Option<Evaluation> {
        let mut eval = self.last.evaluation(self.marks)?;
        let [a, b] = self.accumulator;
        if eval.zscore.is_some() && a.is_finite() {
            let signed = if b == EWMA_MARK || a >= b { a } else { -b };
            eval.evidence = Some(f64::from(signed));
        }
        Some(eval)
    }

    /// Where the window will write the next sample that enters it, so that
    /// a caller about to feed many detectors can prefetch it.
    pub fn window_write_address(&self) -> *const f64 {
        self.baseline.next_slot_address()
    }

    /// How many samples the baseline holds now.
    pub fn window_len(&self) -> usize {
        self.baseline.len()
    }

    /// The baseline samples, oldest first.
    pub fn baseline(&self) -> impl Iterator<Item = f64> + '_ {
        self.baseline.iter()
    }
}

impl Detector {
    /// Compares `value` with the baseline as it stands, before `value` enters.
    fn evaluate(&self, params: &DetectorParams, value: f64) -> Evaluation {
        let window_samples = self.baseline.len();
        let Some((mean, raw_stddev)) = self.baseline.stats() else {
            return Evaluation {
                value,
                zscore: None,
                badness: None,
                mean: None,
                stddev: None,
                window_samples,
                evidence: None,
            };
        };
        let stddev = effective_stddev(params, mean, raw_stddev);
        let zscore =
            (window_samples >= params.min_samples.max(1)).then(|| zscore(value, mean, stddev));
        Evaluation {
            value,
            zscore,
            badness: zscore.map(|z| badness(params.direction, z)),
            mean: Some(mean),
            stddev: Some(stddev),
            window_samples,
            evidence: None,
        }
    }

    /// Feeds a verdict's z-score to the accumulator: the statistic signed
    /// like z, and its badness scaled so that its own limit maps onto
    /// `threshold`. `None` while learning or when off.
    fn accumulate(&mut self, params: &DetectorParams, z: Option<f64>) -> Option<(f64, f64)> {
        let z = z?;
        let cap = params.threshold;
        let z = z.clamp(-cap, cap);
        let [a, b] = self.accumulator;
        let (a, b) = if a.is_infinite() {
            (0.0, 0.0)
        } else {
            (f64::from(a), f64::from(b))
        };
        let (signed, worse, limit, state) = match params.accumulate {
            Accumulate::Off => return None,
            Accumulate::Ewma { lambda, limit } => {
                let spread = (lambda / (2.0 - lambda)).sqrt();
                let e = (1.0 - lambda) * a + lambda * z / spread;
                (
                    e,
                    badness(params.direction, e),
                    limit,
                    [e, f64::from(EWMA_MARK)],
                )
            }
            Accumulate::Cusum { k, h } => {
                let up = (a + z - k).clamp(0.0, 2.0 * h);
                let down = (b - z - k).clamp(0.0, 2.0 * h);
                let signed = if up >= down { up } else { -down };
                let worse = match params.direction {
                    Direction::LowerIsWorse => down,
                    Direction::HigherIsWorse => up,
                    Direction::Both => up.max(down),
                };
                (signed, worse, h, [up, down])
            }
        };
        self.accumulator = state.map(|x| x as f32);
        Some((signed, worse * params.threshold / limit))
    }

    /// The state this sample leads to, keeping the incident's bookkeeping.
    fn step(&mut self, params: &DetectorParams, badness: Option<f64>, at_ms: i64) -> State {
        let Some(badness) = badness else {
            return State::Learning;
        };
        let breach = badness >= params.threshold;
        match self.state() {
            State::Learning | State::Ok if breach => {
                self.incident_ms = at_ms;
                self.breaches = 1;
                self.pending_outcome(params, at_ms)
            }
            State::Pending if breach => {
                self.breaches = self.breaches.saturating_add(1);
                self.pending_outcome(params, at_ms)
            }
            State::Learning | State::Ok | State::Pending => State::Ok,
            State::Degraded if badness <= params.recover_threshold => {
                // While degraded, `breaches` counts the calm samples in a row.
                self.breaches = self.breaches.saturating_add(1);
                if self.breaches >= params.recover_consecutive.max(1) {
                    State::Ok
                } else {
                    State::Degraded
                }
            }
            State::Degraded => {
                self.breaches = 0;
                State::Degraded
            }
        }
    }

    /// Degraded once the breach has lasted `for` and spanned `consecutive`.
    fn pending_outcome(&self, params: &DetectorParams, at_ms: i64) -> State {
        let lasted = elapsed_ms(self.incident_ms, at_ms) >= duration_ms(params.for_duration);
        let counted = params.consecutive.is_none_or(|n| self.breaches >= n);
        if lasted && counted {
            State::Degraded
        } else {
            State::Pending
        }
    }

    fn relearn_due(&self, params: &DetectorParams, to: State, at_ms: i64) -> bool {
        let in_incident = matches!(to, State::Pending | State::Degraded);
        match params.relearn_after {
            Some(after) if in_incident && !after.is_zero() => {
                elapsed_ms(self.incident_ms, at_ms) >= duration_ms(after)
            }
            _ => false,
        }
    }

    fn enter(&mut self, to: State, at_ms: i64) -> Option<Transition> {
        let from = self.state();
        if to == from {
            return None;
        }
        self.marks = self.marks.with_state(to);
        self.since_ms = at_ms;
        // Pending counts breaches; degraded counts calm samples afresh.
        if to != State::Pending {
            self.breaches = 0;
        }
        Some(Transition { from, to, at_ms })
    }
}

/// Whether a sample joins the baseline: only outside incidents, and only
/// when it is not itself a breach.
fn admits(params: &DetectorParams, state: State, badness: Option<f64>) -> bool {
    matches!(state, State::Learning | State::Ok) && badness.is_none_or(|b| b < params.threshold)
}

fn effective_stddev(params: &DetectorParams, mean: f64, stddev: f64) -> f64 {
    stddev
        .max(params.min_stddev)
        .max(params.min_relative_stddev * mean.abs())
}

/// z of `value`; see [`Detector`] for the zero-deviation rule.
fn zscore(value: f64, mean: f64, stddev: f64) -> f64 {
    let diff = value - mean;
    let z = if stddev > 0.0 {
        diff / stddev
    } else if diff == 0.0 {
        0.0
    } else {
        f64::INFINITY.copysign(diff)
    };
    // Only reachable with values near f64::MAX, where both sides overflow:
    // no evidence either way is better than a NaN in every output.
    if z.is_nan() { 0.0 } else { z }
}

fn badness(direction: Direction, z: f64) -> f64 {
    match direction {
        Direction::LowerIsWorse => -z,
        Direction::HigherIsWorse => z,
        Direction::Both => z.abs(),
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Time from `start` to `now`; a clock that steps back counts as no time.
fn elapsed_ms(start: i64, now: i64) -> i64 {
    now.saturating_sub(start).max(0)
}

/// The numbers of the latest evaluation; NaN stands for an absent one (no
/// evaluated quantity is ever NaN). The z-score and badness follow from
/// them and are computed again when asked for; the rest is in [`Marks`].
#[derive(Debug, Clone, Copy)]
struct LastSample {
    value: f64,
    mean: f64,
    /// The effective standard deviation, after the floors.
    stddev: f64,
}

impl LastSample {
    const NONE: LastSample = LastSample {
        value: f64::NAN,
        mean: f64::NAN,
        stddev: f64::NAN,
    };

    fn from(eval: &Evaluation) -> Self {
        let pack = |x: Option<f64>| x.unwrap_or(f64::NAN);
        LastSample {
            value: eval.value,
            mean: pack(eval.mean),
            stddev: pack(eval.stddev),
        }
    }

    fn evaluation(&self, marks: Marks) -> Option<Evaluation> {
        if self.value.is_nan() {
            return None;
        }
        let unpack = |x: f64| (!x.is_nan()).then_some(x);
        let zscore = marks
            .scored()
            .then(|| zscore(self.value, self.mean, self.stddev));
        Some(Evaluation {
            value: self.value,
            zscore,
            badness: zscore.map(|z| badness(marks.direction(), z)),
            mean: unpack(self.mean),
            stddev: unpack(self.stddev),
            window_samples: marks.window_samples(),
            evidence: None,
        })
    }
}

/// The small parts of a detector, packed into one word so that a detector
/// takes 104 bytes rather than 112 (the bytes a million series pay for
/// alignment): the state, and of the last sample whether it got a z-score,
/// the direction its badness was judged in and how many samples its
/// baseline held.
///
/// Bits 0–1 state, 2 scored, 3–4 direction, 5–31 window samples (up to
/// 2^27 − 1, far above the largest window the configuration allows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Marks(u32);

impl Marks {
    const LEARNING: Marks = Marks(0);
    const STATE: u32 = 0b11;
    const SCORED: u32 = 1 << 2;
    const DIRECTION_SHIFT: u32 = 3;
    const SAMPLES_SHIFT: u32 = 5;
    const MAX_SAMPLES: u32 = u32::MAX >> Marks::SAMPLES_SHIFT;

    fn state(self) -> State {
        match self.0 & Marks::STATE {
            0 => State::Learning,
            1 => State::Ok,
            2 => State::Pending,
            _ => State::Degraded,
        }
    }

    fn with_state(self, state: State) -> Marks {
        let bits = match state {
            State::Learning => 0,
            State::Ok => 1,
            State::Pending => 2,
            State::Degraded => 3,
        };
        Marks(self.0 & !Marks::STATE | bits)
    }

    fn scored(self) -> bool {
        self.0 & Marks::SCORED != 0
    }

    fn direction(self) -> Direction {
        match (self.0 >> Marks::DIRECTION_SHIFT) & 0b11 {
            0 => Direction::Both,
            1 => Direction::LowerIsWorse,
            _ => Direction::HigherIsWorse,
        }
    }

    fn window_samples(self) -> usize {
        (self.0 >> Marks::SAMPLES_SHIFT) as usize
    }

    /// The marks after evaluating `eval`, judged in `direction`.
    fn with_last(self, eval: &Evaluation, direction: Direction) -> Marks {
        let direction = match direction {
            Direction::Both => 0,
            Direction::LowerIsWorse => 1,
            Direction::HigherIsWorse => 2,
        };
        let samples = u32::try_from(eval.window_samples)
            .unwrap_or(u32::MAX)
            .min(Marks::MAX_SAMPLES);
        let scored = if eval.zscore.is_some() {
            Marks::SCORED
        } else {
            0
        };
        Marks(
            self.0 & Marks::STATE
                | scored
                | direction << Marks::DIRECTION_SHIFT
                | samples << Marks::SAMPLES_SHIFT,
        )
    }

    /// The marks once the last sample's baseline is forgotten.
    fn without_verdict(self) -> Marks {
        Marks(self.0 & Marks::STATE)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    const SEC: i64 = 1000;

    /// Window 10, verdicts from 5 samples, threshold 3, recovery at 1.5, no
    /// floors: a baseline of alternating 9 and 11 has mean 10 and stddev 1,
    /// so a sample's value minus 10 is its z-score.
    fn params() -> DetectorParams {
        DetectorParams {
            window: 10,
            min_samples: 5,
            threshold: 3.0,
            for_duration: Duration::ZERO,
            consecutive: None,
            recover_threshold: 1.5,
            recover_consecutive: 1,
            direction: Direction::Both,
            relearn_after: None,
            min_stddev: 0.0,
            min_relative_stddev: 0.0,
            accumulate: Accumulate::Off,
        }
    }

    /// A detector that has learned mean 10, stddev 1 from ten samples taken a
    /// second apart, the last at 9 s; it is ok since 5 s.
    fn learned(p: &DetectorParams) -> Detector {
        let mut d = Detector::new(p, 0);
        for i in 0..10 {
            let x = if i % 2 == 0 { 9.0 } else { 11.0 };
            d.observe(p, x, i * SEC).unwrap();
        }
        assert_eq!(d.state(), State::Ok);
        d
    }

    fn feed(d: &mut Detector, p: &DetectorParams, x: f64, at: i64) -> Option<Transition> {
        d.observe(p, x, at).unwrap().transition
    }

    fn moved(from: State, to: State, at_ms: i64) -> Option<Transition> {
        Some(Transition { from, to, at_ms })
    }

    #[test]
    fn marks_keep_each_part_apart() {
        let states = [State::Learning, State::Ok, State::Pending, State::Degraded];
        let directions = [
            Direction::Both,
            Direction::LowerIsWorse,
            Direction::HigherIsWorse,
        ];
        let max_window = crate::config::load::MAX_WINDOW;
        for state in states {
            for direction in directions {
                for samples in [0, 1, 100, max_window] {
                    for scored in [false, true] {
                        let eval = Evaluation {
                            value: 1.0,
                            zscore: scored.then_some(2.0),
                            badness: None,
                            mean: None,
                            stddev: None,
                            window_samples: samples,
                            evidence: None,
                        };
                        let marks = Marks::LEARNING
                            .with_state(state)
                            .with_last(&eval, direction);
                        let parts = (marks.state(), marks.direction(), marks.scored());
                        assert_eq!(parts, (state, direction, scored));
                        assert_eq!(marks.window_samples(), samples);
                        let moved = marks.with_state(State::Pending);
                        assert_eq!(moved.state(), State::Pending);
                        assert_eq!(moved.window_samples(), samples);
                        assert_eq!(marks.without_verdict().state(), state);
                        assert!(!marks.without_verdict().scored());
                    }
                }
            }
        }
    }

    fn baseline_of(d: &Detector) -> Vec<f64> {
        d.baseline().collect()
    }

    #[test]
    fn no_verdict_until_min_samples_then_ok() {
        let p = params();
        let mut d = Detector::new(&p, 0);
        for i in 0..5 {
            let v = d.observe(&p, 10.0 + i as f64, i * SEC).unwrap();
            assert_eq!((v.zscore, v.badness, v.transition), (None, None, None));
            assert_eq!(d.state(), State::Learning);
        }
        let v = d.observe(&p, 12.0, 5 * SEC).unwrap();
        assert!(v.zscore.is_some());
        assert_eq!(v.transition, moved(State::Learning, State::Ok, 5 * SEC));
        assert_eq!(d.since_ms(), 5 * SEC);
    }

    #[test]
    fn zscore_is_against_the_baseline_before_the_sample() {
        let p = params();
        let mut d = learned(&p);
        let v = d.observe(&p, 12.0, 10 * SEC).unwrap();
        assert_eq!(v.zscore, Some(2.0));
        assert_eq!(v.badness, Some(2.0));
        let last = d.last().unwrap();
        assert_eq!((last.mean, last.stddev), (Some(10.0), Some(1.0)));
        assert_eq!(last.window_samples, 10);
        assert_eq!(last.value, 12.0);
    }

    #[test]
    fn exported_stddev_is_the_effective_one() {
        let p = DetectorParams {
            min_stddev: 4.0,
            ..params()
        };
        let mut d = learned(&p);
        let v = d.observe(&p, 12.0, 10 * SEC).unwrap();
        let last = d.last().unwrap();
        assert_eq!(last.stddev, Some(4.0));
        let (mean, stddev) = (last.mean.unwrap(), last.stddev.unwrap());
        assert_eq!(Some((12.0 - mean) / stddev), v.zscore);
    }

    #[test]
    fn breach_with_for_zero_goes_straight_to_degraded() {
        let p = params();
        let mut d = learned(&p);
        let t = feed(&mut d, &p, 13.0, 10 * SEC);
        assert_eq!(t, moved(State::Ok, State::Degraded, 10 * SEC));
        assert_eq!(d.since_ms(), 10 * SEC);
    }

    #[test]
    fn first_verdict_can_be_a_breach() {
        let p = params();
        let mut d = Detector::new(&p, 0);
        for (i, x) in [9.0, 11.0, 9.0, 11.0].into_iter().enumerate() {
            feed(&mut d, &p, x, i as i64 * SEC);
        }
        // Four samples of ±1 around 10: stddev 1, and the fifth enters too.
        feed(&mut d, &p, 10.0, 4 * SEC);
        let t = feed(&mut d, &p, 20.0, 5 * SEC);
        assert_eq!(t, moved(State::Learning, State::Degraded, 5 * SEC));
    }

    #[test]
    fn pending_waits_for_the_for_duration() {
        let p = DetectorParams {
            for_duration: Duration::from_secs(60),
            ..params()
        };
        let mut d = learned(&p);
        let start = 100 * SEC;
        assert_eq!(
            feed(&mut d, &p, 14.0, start),
            moved(State::Ok, State::Pending, start)
        );
        assert_eq!(feed(&mut d, &p, 14.0, start + 59 * SEC), None);
        assert_eq!(d.state(), State::Pending);
        assert_eq!(d.since_ms(), start);
        let at = start + 60 * SEC;
        assert_eq!(
            feed(&mut d, &p, 14.0, at),
            moved(State::Pending, State::Degraded, at)
        );
    }

    #[test]
    fn pending_falls_back_to_ok_below_threshold() {
        let p = DetectorParams {
            for_duration: Duration::from_secs(60),
            ..params()
        };
        let mut d = learned(&p);
        feed(&mut d, &p, 14.0, 100 * SEC);
        // 2.9 is above recover_threshold but below threshold: enough to
        // leave pending, which has no hysteresis.
        let t = feed(&mut d, &p, 12.9, 110 * SEC);
        assert_eq!(t, moved(State::Pending, State::Ok, 110 * SEC));
        // A new breach starts a new wait. 12.9 entered the baseline (mean
        // 10.39, stddev 1.26), so it takes 15 to breach again.
        feed(&mut d, &p, 15.0, 120 * SEC);
        assert_eq!(d.state(), State::Pending);
        assert_eq!(feed(&mut d, &p, 15.0, 170 * SEC), None);
        assert_eq!(d.state(), State::Pending);
    }

    #[test]
    fn consecutive_counts_breaching_samples_in_a_row() {
        let p = DetectorParams {
            consecutive: Some(3),
            ..params()
        };
        let mut d = learned(&p);
        assert_eq!(
            feed(&mut d, &p, 14.0, 10 * SEC),
            moved(State::Ok, State::Pending, 10 * SEC)
        );
        assert_eq!(feed(&mut d, &p, 14.0, 11 * SEC), None);
        // An interruption starts the count again.
        feed(&mut d, &p, 10.0, 12 * SEC);
        assert_eq!(d.state(), State::Ok);
        feed(&mut d, &p, 14.0, 13 * SEC);
        feed(&mut d, &p, 14.0, 14 * SEC);
        assert_eq!(d.state(), State::Pending);
        assert_eq!(
            feed(&mut d, &p, 14.0, 15 * SEC),
            moved(State::Pending, State::Degraded, 15 * SEC)
        );
    }

    #[test]
    fn consecutive_one_degrades_at_once() {
        let p = DetectorParams {
            consecutive: Some(1),
            ..params()
        };
        let mut d = learned(&p);
        let t = feed(&mut d, &p, 14.0, 10 * SEC);
        assert_eq!(t, moved(State::Ok, State::Degraded, 10 * SEC));
    }

    #[test]
    fn for_and_consecutive_must_both_be_met() {
        let p = DetectorParams {
            for_duration: Duration::from_secs(60),
            consecutive: Some(2),
            ..params()
        };
        let mut d = learned(&p);
        feed(&mut d, &p, 14.0, 100 * SEC);
        // Two samples, but only 30 s.
        feed(&mut d, &p, 14.0, 130 * SEC);
        assert_eq!(d.state(), State::Pending);
        feed(&mut d, &p, 14.0, 160 * SEC);
        assert_eq!(d.state(), State::Degraded);

        let mut d = learned(&p);
        // 60 s, but a single breaching sample so far.
        feed(&mut d, &p, 14.0, 100 * SEC);
        assert_eq!(d.state(), State::Pending);
        feed(&mut d, &p, 14.0, 200 * SEC);
        assert_eq!(d.state(), State::Degraded);
    }

    #[test]
    fn degraded_stays_degraded_between_recover_and_threshold() {
        let p = params();
        let mut d = learned(&p);
        feed(&mut d, &p, 14.0, 10 * SEC);
        assert_eq!(feed(&mut d, &p, 12.0, 11 * SEC), None);
        assert_eq!(feed(&mut d, &p, 11.6, 12 * SEC), None);
        assert_eq!(d.state(), State::Degraded);
        let t = feed(&mut d, &p, 11.5, 13 * SEC);
        assert_eq!(t, moved(State::Degraded, State::Ok, 13 * SEC));
    }

    #[test]
    fn baseline_is_frozen_during_an_incident() {
        let p = DetectorParams {
            for_duration: Duration::from_secs(5),
            ..params()
        };
        let mut d = learned(&p);
        let before = baseline_of(&d);
        feed(&mut d, &p, 14.0, 10 * SEC);
        assert_eq!(d.state(), State::Pending);
        feed(&mut d, &p, 15.0, 20 * SEC);
        assert_eq!(d.state(), State::Degraded);
        // Inside the hysteresis band: still degraded, still not learned.
        feed(&mut d, &p, 12.0, 30 * SEC);
        assert_eq!(d.state(), State::Degraded);
        assert_eq!(baseline_of(&d), before);
        assert_eq!(d.last().unwrap().window_samples, 10);
    }

    #[test]
    fn sample_that_ends_an_incident_enters_the_baseline() {
        let p = params();
        let mut d = learned(&p);
        feed(&mut d, &p, 14.0, 10 * SEC);
        feed(&mut d, &p, 11.25, 11 * SEC);
        assert_eq!(d.state(), State::Ok);
        assert_eq!(d.baseline().last(), Some(11.25));
    }

    #[test]
    fn sample_that_falls_back_from_pending_enters_the_baseline() {
        let p = DetectorParams {
            consecutive: Some(2),
            ..params()
        };
        let mut d = learned(&p);
        feed(&mut d, &p, 14.0, 10 * SEC);
        assert_eq!(d.baseline().last(), Some(11.0));
        feed(&mut d, &p, 12.5, 11 * SEC);
        assert_eq!(d.baseline().last(), Some(12.5));
    }

    #[test]
    fn breaching_sample_never_enters_the_baseline() {
        let p = DetectorParams {
            consecutive: Some(5),
            ..params()
        };
        let mut d = learned(&p);
        let before = baseline_of(&d);
        feed(&mut d, &p, 14.0, 10 * SEC);
        assert_eq!(d.state(), State::Pending);
        assert_eq!(baseline_of(&d), before);
    }

    #[test]
    fn ok_sample_below_threshold_enters_the_baseline() {
        let p = params();
        let mut d = learned(&p);
        feed(&mut d, &p, 12.5, 10 * SEC);
        assert_eq!(d.state(), State::Ok);
        assert_eq!(d.baseline().last(), Some(12.5));
        assert_eq!(d.window_len(), 10);
    }

    #[test]
    fn window_keeps_the_newest_samples() {
        let p = DetectorParams {
            min_samples: 100,
            ..params()
        };
        let mut d = Detector::new(&p, 0);
        for i in 0..25 {
            feed(&mut d, &p, i as f64, i * SEC);
        }
        let want: Vec<f64> = (15..25).map(|i| i as f64).collect();
        assert_eq!(baseline_of(&d), want);
        assert_eq!(d.window_len(), 10);
    }

    #[test]
    fn window_follows_a_reloaded_size() {
        let p = DetectorParams {
            min_samples: 100,
            ..params()
        };
        let mut d = Detector::new(&p, 0);
        for i in 0..10 {
            feed(&mut d, &p, i as f64, i * SEC);
        }
        let small = DetectorParams {
            window: 4,
            ..p.clone()
        };
        feed(&mut d, &small, 10.0, 10 * SEC);
        assert_eq!(baseline_of(&d), [7.0, 8.0, 9.0, 10.0]);
        assert_eq!(d.last().unwrap().mean, Some(4.5));
        let large = DetectorParams { window: 6, ..p };
        for i in 11..14 {
            feed(&mut d, &large, i as f64, i * SEC);
        }
        assert_eq!(baseline_of(&d), [8.0, 9.0, 10.0, 11.0, 12.0, 13.0]);
    }

    #[test]
    fn relearn_after_accepts_a_lasting_new_level() {
        let p = DetectorParams {
            relearn_after: Some(Duration::from_secs(3600)),
            ..params()
        };
        let mut d = learned(&p);
        let start = 100 * SEC;
        feed(&mut d, &p, 20.0, start);
        assert_eq!(d.state(), State::Degraded);
        assert_eq!(feed(&mut d, &p, 20.0, start + 3599 * SEC), None);
        let at = start + 3600 * SEC;
        let t = feed(&mut d, &p, 20.0, at);
        assert_eq!(t, moved(State::Degraded, State::Learning, at));
        assert_eq!(d.window_len(), 0);
        assert_eq!(d.since_ms(), at);

        // The new level is learned and is then normal.
        for i in 1..=6 {
            feed(&mut d, &p, 20.0 + (i % 2) as f64, at + i * SEC);
        }
        assert_eq!(d.state(), State::Ok);
        assert!(d.last().unwrap().mean.unwrap() > 20.0);
    }

    #[test]
    fn relearn_after_counts_from_the_start_of_pending() {
        let p = DetectorParams {
            for_duration: Duration::from_secs(600),
            relearn_after: Some(Duration::from_secs(900)),
            ..params()
        };
        let mut d = learned(&p);
        feed(&mut d, &p, 20.0, 0);
        feed(&mut d, &p, 20.0, 600 * SEC);
        assert_eq!(d.state(), State::Degraded);
        let t = feed(&mut d, &p, 20.0, 900 * SEC);
        assert_eq!(t, moved(State::Degraded, State::Learning, 900 * SEC));
    }

    #[test]
    fn without_relearn_after_a_lasting_drop_stays_an_alert() {
        for relearn_after in [None, Some(Duration::ZERO)] {
            let p = DetectorParams {
                relearn_after,
                ..params()
            };
            let mut d = learned(&p);
            for i in 0..1000 {
                feed(&mut d, &p, 20.0, (10 + i * 3600) * SEC);
            }
            assert_eq!(d.state(), State::Degraded);
            assert_eq!(d.since_ms(), 10 * SEC);
            assert_eq!(d.window_len(), 10);
        }
    }

    #[test]
    fn reset_baseline_leaves_an_incident_and_learns_again() {
        let p = params();
        let mut d = learned(&p);
        feed(&mut d, &p, 20.0, 10 * SEC);
        let t = d.reset_baseline(&p, 11 * SEC);
        assert_eq!(t, moved(State::Degraded, State::Learning, 11 * SEC));
        assert_eq!(d.window_len(), 0);
        assert_eq!(d.baseline().count(), 0);
        // What is exported until the next sample describes no old baseline.
        let last = d.last().unwrap();
        assert_eq!(
            (last.value, last.zscore, last.mean, last.window_samples),
            (20.0, None, None, 0)
        );
        let v = d.observe(&p, 20.0, 12 * SEC).unwrap();
        assert_eq!((v.zscore, v.transition), (None, None));
        assert_eq!(d.last().unwrap().window_samples, 0);
        assert_eq!(d.last().unwrap().mean, None);
    }

    #[test]
    fn learned_history_fills_the_baseline_but_leaves_out_outliers() {
        let p = params();
        let mut d = Detector::new(&p, 0);
        for i in 0..30 {
            assert!(d.learn(&p, 10.0 + (i % 3) as f64));
        }
        assert!(!d.learn(&p, 100.0), "an outlier entered the baseline");
        assert!(!d.learn(&p, f64::NAN));
        assert_eq!(d.state(), State::Learning);
        assert_eq!(d.window_len(), 30.min(p.window));
        let v = d.observe(&p, 11.0, SEC).unwrap();
        assert!(v.zscore.is_some(), "no verdict from the first live sample");
    }

    #[test]
    fn a_restored_detector_carries_on_as_the_saved_one() {
        let ewma = Accumulate::Ewma {
            lambda: 0.2,
            limit: 3.0,
        };
        for accumulate in [Accumulate::Off, ewma] {
            let p = DetectorParams {
                accumulate,
                ..params()
            };
            let mut original = learned(&p);
            original.observe(&p, 0.0, 10 * SEC).unwrap();
            assert_eq!(original.state(), State::Degraded);
            let mut restored = Detector::restore(&p, &original.save());
            assert_eq!(restored.save(), original.save());
            for (i, x) in [0.5, 9.0, 10.5, 11.0].into_iter().enumerate() {
                let at = (11 + i as i64) * SEC;
                assert_eq!(restored.observe(&p, x, at), original.observe(&p, x, at));
                assert_eq!(restored.last(), original.last());
            }
        }
    }

    /// Window 100 of alternating 9 and 11, then a lasting drop to 8: each
    /// sample's z is only −2.
    fn lasting_small_drop(p: &DetectorParams) -> Detector {
        let mut d = Detector::new(p, 0);
        for i in 0..100 {
            feed(&mut d, p, if i % 2 == 0 { 9.0 } else { 11.0 }, i * SEC);
        }
        for i in 100..130 {
            feed(&mut d, p, 8.0, i * SEC);
        }
        d
    }

    fn wide() -> DetectorParams {
        DetectorParams {
            window: 100,
            min_samples: 20,
            threshold: 5.0,
            ..params()
        }
    }

    #[test]
    fn plain_zscore_lets_a_small_lasting_drop_into_the_baseline() {
        let d = lasting_small_drop(&wide());
        assert_eq!(d.state(), State::Ok);
        assert!(d.last().unwrap().mean.unwrap() < 9.8);
        assert_eq!(d.last().unwrap().evidence, None);
    }

    #[test]
    fn ewma_catches_a_small_lasting_drop() {
        let p = DetectorParams {
            accumulate: Accumulate::Ewma {
                lambda: 0.15,
                limit: 4.5,
            },
            ..wide()
        };
        let d = lasting_small_drop(&p);
        assert_eq!(d.state(), State::Degraded);
        // Caught before the drop could move the baseline much.
        assert!(d.last().unwrap().mean.unwrap() > 9.7);
        assert!(d.last().unwrap().evidence.unwrap() < -4.5);
    }

    #[test]
    fn cusum_catches_a_small_lasting_drop() {
        let p = DetectorParams {
            accumulate: Accumulate::Cusum { k: 1.0, h: 6.0 },
            ..wide()
        };
        let d = lasting_small_drop(&p);
        assert_eq!(d.state(), State::Degraded);
        // The lower sum, capped at 2h, shown negative like the drop.
        assert_eq!(d.last().unwrap().evidence, Some(-12.0));
    }

    #[test]
    fn one_outlier_does_not_hold_the_accumulated_statistic_up() {
        let p = DetectorParams {
            accumulate: Accumulate::Ewma {
                lambda: 0.15,
                limit: 4.5,
            },
            recover_consecutive: 1,
            ..wide()
        };
        let mut d = Detector::new(&p, 0);
        for i in 0..100 {
            feed(&mut d, &p, if i % 2 == 0 { 9.0 } else { 11.0 }, i * SEC);
        }
        feed(&mut d, &p, 1e9, 100 * SEC);
        assert_eq!(d.state(), State::Degraded);
        // z was clipped to the threshold before it entered the EWMA: one
        // step of λ·5/√(λ/(2−λ)) ≈ 2.6 on top of the ±0.4 the alternating
        // baseline leaves, not the 10⁸ a raw z would have made it.
        let evidence = d.last().unwrap().evidence.unwrap();
        assert!((2.0..3.1).contains(&evidence), "{evidence}");
        // So it drains within a few normal samples, as from any z of 5.
        for i in 1..=5 {
            feed(&mut d, &p, 10.0, (100 + i) * SEC);
        }
        assert_eq!(d.state(), State::Ok);
    }

    #[test]
    fn recovery_waits_for_recover_consecutive_calm_samples() {
        let p = DetectorParams {
            recover_consecutive: 3,
            ..params()
        };
        let mut d = learned(&p);
        feed(&mut d, &p, 14.0, 10 * SEC);
        assert_eq!(feed(&mut d, &p, 10.0, 11 * SEC), None);
        assert_eq!(feed(&mut d, &p, 10.0, 12 * SEC), None);
        // A sample above recover_threshold starts the count again.
        assert_eq!(feed(&mut d, &p, 12.0, 13 * SEC), None);
        assert_eq!(feed(&mut d, &p, 10.0, 14 * SEC), None);
        assert_eq!(feed(&mut d, &p, 10.0, 15 * SEC), None);
        let t = feed(&mut d, &p, 10.0, 16 * SEC);
        assert_eq!(t, moved(State::Degraded, State::Ok, 16 * SEC));
        // The samples of the incident stayed out; the one that ended it entered.
        assert_eq!(d.baseline().last(), Some(10.0));
        assert_eq!(d.window_len(), 10);
    }

    #[test]
    fn a_restored_baseline_fits_a_smaller_window() {
        let p = params();
        let mut saved = learned(&p).save();
        saved.baseline = (0..50).map(f64::from).collect();
        let small = DetectorParams { window: 5, ..p };
        let restored = Detector::restore(&small, &saved);
        assert_eq!(
            restored.baseline().collect::<Vec<_>>(),
            vec![45.0, 46.0, 47.0, 48.0, 49.0]
        );
    }

    #[test]
    fn reset_while_learning_is_no_transition() {
        let p = params();
        let mut d = Detector::new(&p, 0);
        feed(&mut d, &p, 1.0, 0);
        assert_eq!(d.reset_baseline(&p, SEC), None);
        assert_eq!(d.window_len(), 0);
    }

    #[test]
    fn non_finite_samples_are_skipped_and_change_nothing() {
        let p = params();
        let mut d = learned(&p);
        feed(&mut d, &p, 14.0, 10 * SEC);
        let before = (baseline_of(&d), d.last(), d.state(), d.since_ms());
        for x in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(d.observe(&p, x, 20 * SEC), Err(SkipReason::NotFinite));
        }
        let after = (baseline_of(&d), d.last(), d.state(), d.since_ms());
        assert_eq!(after, before);
        assert_eq!(SkipReason::NotFinite.as_str(), "not_finite");
    }

    #[test]
    fn flat_baseline_without_floors_gives_zero_or_infinite_z() {
        let p = params();
        let mut d = Detector::new(&p, 0);
        for i in 0..10 {
            feed(&mut d, &p, 0.95, i * SEC);
        }
        let v = d.observe(&p, 0.95, 10 * SEC).unwrap();
        assert_eq!(v.zscore, Some(0.0));
        assert_eq!(d.state(), State::Ok);
        let v = d.observe(&p, 0.9501, 11 * SEC).unwrap();
        assert_eq!(v.zscore, Some(f64::INFINITY));
        assert_eq!(d.state(), State::Degraded);
        let v = d.observe(&p, 0.94, 12 * SEC).unwrap();
        assert_eq!(v.zscore, Some(f64::NEG_INFINITY));
        assert_eq!(d.last().unwrap().stddev, Some(0.0));
    }

    #[test]
    fn flat_baseline_with_relative_floor_gives_finite_z() {
        let p = DetectorParams {
            min_relative_stddev: DEFAULT_MIN_RELATIVE_STDDEV,
            ..params()
        };
        let mut d = Detector::new(&p, 0);
        for i in 0..10 {
            feed(&mut d, &p, 2.0, i * SEC);
        }
        let v = d.observe(&p, 2.0002, 10 * SEC).unwrap();
        let z = v.zscore.unwrap();
        assert!((z - 1.0).abs() < 1e-9, "z = {z}");
        assert_eq!(d.state(), State::Ok);
        assert_eq!(d.last().unwrap().stddev, Some(2e-4));
    }

    #[test]
    fn upward_jump_of_lower_is_worse_metric_is_not_a_degradation() {
        let p = DetectorParams {
            direction: Direction::LowerIsWorse,
            ..params()
        };
        let mut d = learned(&p);
        let v = d.observe(&p, 50.0, 10 * SEC).unwrap();
        assert_eq!(v.zscore, Some(40.0));
        assert_eq!(v.badness, Some(-40.0));
        assert_eq!(d.state(), State::Ok);
        // The same baseline sees a drop as the degradation it is.
        let mut d = learned(&p);
        let v = d.observe(&p, 0.0, 10 * SEC).unwrap();
        assert_eq!(v.badness, Some(10.0));
        assert_eq!(d.state(), State::Degraded);
    }

    #[test]
    fn drop_of_higher_is_worse_metric_is_not_a_degradation() {
        let p = DetectorParams {
            direction: Direction::HigherIsWorse,
            ..params()
        };
        let mut d = learned(&p);
        let v = d.observe(&p, 0.0, 10 * SEC).unwrap();
        assert_eq!(v.badness, Some(-10.0));
        assert_eq!(d.state(), State::Ok);
        let mut d = learned(&p);
        feed(&mut d, &p, 14.0, 10 * SEC);
        assert_eq!(d.state(), State::Degraded);
    }

    #[test]
    fn both_directions_count_either_way() {
        let p = params();
        let mut d = learned(&p);
        let v = d.observe(&p, 6.0, 10 * SEC).unwrap();
        assert_eq!((v.zscore, v.badness), (Some(-4.0), Some(4.0)));
        assert_eq!(d.state(), State::Degraded);
    }

    #[test]
    fn a_clock_that_steps_back_does_not_end_the_wait() {
        let p = DetectorParams {
            for_duration: Duration::from_secs(60),
            ..params()
        };
        let mut d = learned(&p);
        feed(&mut d, &p, 14.0, 100 * SEC);
        feed(&mut d, &p, 14.0, 10 * SEC);
        assert_eq!(d.state(), State::Pending);
    }

    #[test]
    fn detector_stays_small() {
        assert!(
            size_of::<Detector>() <= 136,
            "{} bytes",
            size_of::<Detector>()
        );
    }

    /// Mean and population standard deviation by the textbook two passes.
    pub(crate) fn two_pass(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        (mean, var.sqrt())
    }

    proptest! {
        #[test]
        fn ewma_matches_a_naive_recursion(
            values in prop::collection::vec(-1e3f64..1e3, 2..200),
            lambda in 0.01f64..1.0,
        ) {
            // No breaches (the limits are far away), so every sample enters
            // and z is never clipped: the EWMA is the textbook one.
            let p = DetectorParams {
                window: 30,
                min_samples: 1,
                threshold: 1e12,
                min_stddev: 1e-3,
                accumulate: Accumulate::Ewma { lambda, limit: 1e12 },
                ..params()
            };
            let mut d = Detector::new(&p, 0);
            let spread = (lambda / (2.0 - lambda)).sqrt();
            let (mut e, mut largest) = (0.0f64, 0.0f64);
            for (i, &x) in values.iter().enumerate() {
                d.observe(&p, x, i as i64).unwrap();
                if i == 0 {
                    prop_assert_eq!(d.last().unwrap().evidence, None);
                    continue;
                }
                let b = &values[i.saturating_sub(30)..i];
                let (mean, stddev) = two_pass(b);
                let z = (x - mean) / stddev.max(1e-3);
                e = (1.0 - lambda) * e + lambda * z / spread;
                // The state is kept in f32: its rounding is relative to the
                // largest value it has held.
                largest = largest.max(e.abs());
                let got = d.last().unwrap().evidence.unwrap();
                prop_assert!((got - e).abs() <= 1e-5 * (1.0 + largest), "{got} vs {e}");
            }
        }

        #[test]
        fn stats_match_a_two_pass_computation(
            values in prop::collection::vec(-1e3f64..1e3, 1..300),
            window in 1usize..40,
            offset in prop::sample::select(vec![0.0, 1e6, -1e9]),
        ) {
            let p = DetectorParams {
                window,
                min_samples: 1,
                threshold: f64::INFINITY,
                min_stddev: 1e-3,
                ..params()
            };
            let mut d = Detector::new(&p, 0);
            let mut seen: Vec<f64> = Vec::new();
            for (i, v) in values.iter().enumerate() {
                let x = offset + v;
                let verdict = d.observe(&p, x, i as i64).unwrap();
                if !seen.is_empty() {
                    let b = &seen[seen.len().saturating_sub(window)..];
                    let (mean, stddev) = two_pass(b);
                    let stddev = stddev.max(1e-3);
                    let z = (x - mean) / stddev;
                    let last = d.last().unwrap();
                    let scale = 1e-12 * (offset.abs() + 1e3);
                    prop_assert!((last.mean.unwrap() - mean).abs() <= scale);
                    prop_assert!((last.stddev.unwrap() - stddev).abs() <= scale + 1e-9 * stddev);
                    let got = verdict.zscore.unwrap();
                    prop_assert!((got - z).abs() <= 1e-6 * (1.0 + z.abs()), "{got} vs {z}");
                    prop_assert_eq!(last.window_samples, b.len());
                }
                seen.push(x);
            }
        }
    }
}
