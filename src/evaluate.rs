//! Scoring detections against labelled anomaly windows by the rules of the
//! Numenta Anomaly Benchmark (NAB), re-implemented from their description
//! and checked against NAB's `nab/sweeper.py`:
//! earliest detection in a window rewarded on a scaled sigmoid, misses and
//! false alarms penalised, a probationary period left unscored, and the
//! total normalised so that never alarming scores 0 and perfect scores 100.
//!
//! Row indexes are positions in a file's rows, from 0. Windows are inclusive
//! `(first, last)` row ranges.

/// How much a true detection, a miss and a false alarm weigh.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    pub name: &'static str,
    pub tp: f64,
    pub fn_: f64,
    pub fp: f64,
}

/// NAB's three application profiles.
pub const PROFILES: [Profile; 3] = [
    Profile {
        name: "standard",
        tp: 1.0,
        fn_: 1.0,
        fp: 0.11,
    },
    Profile {
        name: "reward_low_FP_rate",
        tp: 1.0,
        fn_: 1.0,
        fp: 0.22,
    },
    Profile {
        name: "reward_low_FN_rate",
        tp: 1.0,
        fn_: 2.0,
        fp: 0.11,
    },
];

/// Rows at the start of a file that are not scored: the detector's time to
/// learn, 15% of the rows and at most 750.
pub fn probation(rows: usize) -> usize {
    (rows * 15 / 100).min(750)
}

/// The curve of NAB's rewards: `2 / (1 + e^(5x)) − 1`, from about +0.987
/// at x = −1 through 0 at x = 0 to −1 beyond x = 3.
pub fn scaled_sigmoid(x: f64) -> f64 {
    if x > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * x).exp()) - 1.0
    }
}

/// One file: its length and its scored windows.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    pub rows: usize,
    /// Sorted, disjoint, none reaching into the probationary period.
    pub windows: Vec<(usize, usize)>,
}

impl Labelled {
    /// Keeps the windows that lie wholly after the probationary period,
    /// merging any that overlap.
    pub fn new(rows: usize, mut windows: Vec<(usize, usize)>) -> Labelled {
        let start = probation(rows);
        windows.retain(|&(first, last)| first >= start && first <= last && last < rows);
        windows.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(windows.len());
        for (first, last) in windows {
            match merged.last_mut() {
                Some(prev) if first <= prev.1 => prev.1 = prev.1.max(last),
                _ => merged.push((first, last)),
            }
        }
        Labelled {
            rows,
            windows: merged,
        }
    }

    /// What a detection at `row` is: in which window and how early, or how
    /// far after the window before it.
    pub fn classify(&self, row: usize) -> Placement {
        if row < probation(self.rows) {
            return Placement::Unscored;
        }
        let after = self.windows.partition_point(|&(first, _)| first <= row);
        if after == 0 {
            return Placement::False { relative: None };
        }
        let (first, last) = self.windows[after - 1];
        let len = (last - first + 1) as f64;
        if row <= last {
            // −1 at the window's first row, −1/len at its last.
            let relative = -((last - row + 1) as f64) / len;
            Placement::Window {
                index: after - 1,
                relative,
            }
        } else {
            // NAB measures the distance in (window length − 1) rows.
            Placement::False {
                relative: Some((row - last) as f64 / (len - 1.0).max(1.0)),
            }
        }
    }
}

/// Where a detection falls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Placement {
    /// In the probationary period.
    Unscored,
    /// In window `index`, at `relative` ∈ [−1, 0) of its length.
    Window { index: usize, relative: f64 },
    /// Outside every window: `relative` is the distance after the end of
    /// the previous window in its lengths less one (NAB's measure), `None`
    /// with no window before.
    False { relative: Option<f64> },
}

/// What the earliest detection in a window earns: the sigmoid, divided by
/// its value at the window's first row as NAB's sweeper does, so that a
/// detection there earns exactly `tp` and a perfect detector scores
/// `tp × windows`.
fn true_reward(relative: f64, profile: &Profile) -> f64 {
    profile.tp * scaled_sigmoid(relative) / scaled_sigmoid(-1.0)
}

impl Placement {
    /// The weight a false detection costs (negative).
    fn false_cost(relative: Option<f64>, profile: &Profile) -> f64 {
        profile.fp * relative.map_or(-1.0, scaled_sigmoid)
    }
}

/// The score of one file's detections.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FileScore {
    pub raw: f64,
    pub true_positives: usize,
    pub false_positives: usize,
    pub misses: usize,
}

/// Scores the detections (row indexes, any order) of one file.
pub fn score_file(file: &Labelled, detections: &[usize], profile: &Profile) -> FileScore {
    let mut earliest: Vec<Option<f64>> = vec![None; file.windows.len()];
    let mut score = FileScore::default();
    for &row in detections {
        match file.classify(row) {
            Placement::Unscored => {}
            Placement::Window { index, relative } => {
                let slot = &mut earliest[index];
                *slot = Some(slot.map_or(relative, |r: f64| r.min(relative)));
            }
            Placement::False { relative } => {
                score.false_positives += 1;
                score.raw += Placement::false_cost(relative, profile);
            }
        }
    }
    for slot in earliest {
        match slot {
            Some(relative) => {
                score.true_positives += 1;
                score.raw += true_reward(relative, profile);
            }
            None => {
                score.misses += 1;
                score.raw -= profile.fn_;
            }
        }
    }
    score
}

/// 100 × (raw − null) / (perfect − null), with null = −fn × windows (no
/// detections at all) and perfect = tp × windows.
pub fn normalise(raw: f64, windows: usize, profile: &Profile) -> f64 {
    let null = -profile.fn_ * windows as f64;
    let perfect = profile.tp * windows as f64;
    if perfect == null {
        return 0.0;
    }
    100.0 * (raw - null) / (perfect - null)
}

/// The corpus score of one set of detections per file.
pub fn score_corpus(files: &[(Labelled, Vec<usize>)], profile: &Profile) -> CorpusScore {
    let mut total = CorpusScore::default();
    for (file, detections) in files {
        let s = score_file(file, detections, profile);
        total.raw += s.raw;
        total.windows += file.windows.len();
        total.true_positives += s.true_positives;
        total.false_positives += s.false_positives;
        total.misses += s.misses;
    }
    total.score = normalise(total.raw, total.windows, profile);
    total
}

/// A whole corpus' score.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CorpusScore {
    /// Normalised: 0 for no detections, 100 for perfect.
    pub score: f64,
    pub raw: f64,
    pub windows: usize,
    pub true_positives: usize,
    pub false_positives: usize,
    pub misses: usize,
    /// For a swept threshold: the one that scored best.
    pub threshold: f64,
}

/// The best single threshold over the corpus for continuous scores (one per
/// row, `None` for no score): every row at or above it is a detection. Every
/// distinct score is tried, in one pass from the highest down.
pub fn best_threshold(files: &[(Labelled, Vec<Option<f64>>)], profile: &Profile) -> CorpusScore {
    // (score, file, row), highest first.
    let mut rows: Vec<(f64, usize, usize)> = files
        .iter()
        .enumerate()
        .flat_map(|(f, (_, scores))| {
            scores
                .iter()
                .enumerate()
                .filter_map(move |(row, s)| s.filter(|s| !s.is_nan()).map(|s| (s, f, row)))
        })
        .collect();
    rows.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    let windows: usize = files.iter().map(|(l, _)| l.windows.len()).sum();
    let mut earliest: Vec<Vec<Option<f64>>> = files
        .iter()
        .map(|(l, _)| vec![None; l.windows.len()])
        .collect();
    let mut state = CorpusScore {
        raw: -profile.fn_ * windows as f64,
        windows,
        misses: windows,
        threshold: f64::INFINITY,
        ..CorpusScore::default()
    };
    let mut best = state;
    let mut i = 0;
    while i < rows.len() {
        let threshold = rows[i].0;
        while i < rows.len() && rows[i].0 == threshold {
            let (_, f, row) = rows[i];
            add_detection(&mut state, &files[f].0, &mut earliest[f], row, profile);
            i += 1;
        }
        if state.raw > best.raw {
            best = state;
            best.threshold = threshold;
        }
    }
    best.score = normalise(best.raw, windows, profile);
    best
}

fn add_detection(
    state: &mut CorpusScore,
    file: &Labelled,
    earliest: &mut [Option<f64>],
    row: usize,
    profile: &Profile,
) {
    match file.classify(row) {
        Placement::Unscored => {}
        Placement::Window { index, relative } => match earliest[index] {
            None => {
                earliest[index] = Some(relative);
                state.raw += profile.fn_ + true_reward(relative, profile);
                state.true_positives += 1;
                state.misses -= 1;
            }
            Some(old) if relative < old => {
                earliest[index] = Some(relative);
                state.raw += true_reward(relative, profile) - true_reward(old, profile);
            }
            Some(_) => {}
        },
        Placement::False { relative } => {
            state.false_positives += 1;
            state.raw += Placement::false_cost(relative, profile);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STANDARD: Profile = PROFILES[0];

    /// 1000 rows: rows 0..150 are probationary; one window, rows 400..=499.
    fn file() -> Labelled {
        Labelled::new(1000, vec![(400, 499)])
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-4
    }

    #[test]
    fn probation_is_fifteen_percent_up_to_750() {
        assert_eq!(probation(1000), 150);
        assert_eq!(probation(4032), 604);
        assert_eq!(probation(22695), 750);
    }

    #[test]
    fn a_detection_at_the_start_of_a_window_earns_the_full_reward() {
        // Relative −1: the sigmoid 2 / (1 + e^−5) − 1 = 0.98661, divided by
        // itself as NAB's sweeper does: 1. Later detections add nothing.
        let s = score_file(&file(), &[400, 450, 499], &STANDARD);
        assert!(close(s.raw, 1.0), "{}", s.raw);
        assert_eq!((s.true_positives, s.false_positives, s.misses), (1, 0, 0));
        assert!(close(normalise(s.raw, 1, &STANDARD), 100.0));
    }

    #[test]
    fn a_late_detection_earns_less() {
        // Row 489: relative −11/100, 2 / (1 + e^−0.55) − 1 = 0.26827,
        // / 0.98661 = 0.27191.
        let s = score_file(&file(), &[489], &STANDARD);
        assert!(close(s.raw, 0.27191), "{}", s.raw);
    }

    #[test]
    fn a_detection_outside_costs_by_its_distance_after_the_window() {
        // Row 549: 50 rows after a window of 100 rows, relative 50/99
        // (NAB divides by the length less one):
        // 0.11 × (2 / (1 + e^2.5253) − 1) = 0.11 × −0.85178 = −0.09370,
        // plus the missed window, −1.
        let s = score_file(&file(), &[549], &STANDARD);
        assert!(close(s.raw, -1.09370), "{}", s.raw);
        // Before any window, and far after one: the full −0.11.
        let s = score_file(&file(), &[200, 900], &PROFILES[1]);
        assert!(close(s.raw, -1.0 - 2.0 * 0.22), "{}", s.raw);
        assert_eq!(s.false_positives, 2);
        // In the probationary period: not scored at all.
        assert_eq!(score_file(&file(), &[100], &STANDARD).false_positives, 0);
    }

    #[test]
    fn null_scores_zero_and_a_miss_costs_more_for_low_fn_profile() {
        let s = score_file(&file(), &[], &PROFILES[2]);
        assert_eq!(s.raw, -2.0);
        assert_eq!(normalise(s.raw, 1, &PROFILES[2]), 0.0);
    }

    #[test]
    fn windows_in_probation_are_dropped_and_overlaps_merged() {
        let l = Labelled::new(1000, vec![(100, 200), (300, 400), (350, 450)]);
        assert_eq!(l.windows, [(300, 450)]);
    }

    #[test]
    fn the_sweep_agrees_with_scoring_each_threshold() {
        let l = file();
        let mut rng = fastrand::Rng::with_seed(3);
        let scores: Vec<Option<f64>> = (0..1000)
            .map(|i| (i >= 20).then(|| rng.f64() + if (420..430).contains(&i) { 0.5 } else { 0.0 }))
            .collect();
        let files = vec![(l.clone(), scores.clone())];
        let best = best_threshold(&files, &STANDARD);
        let at = |t: f64| {
            let rows: Vec<usize> = (0..1000)
                .filter(|&i| scores[i].is_some_and(|s| s >= t))
                .collect();
            score_corpus(&[(l.clone(), rows)], &STANDARD).raw
        };
        assert!(close(at(best.threshold), best.raw));
        for t in [0.5, 0.9, 1.2, 1.4, 1.45] {
            assert!(at(t) <= best.raw + 1e-9, "threshold {t} beats the sweep");
        }
    }
}
