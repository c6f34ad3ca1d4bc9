//! The rolling window of one series: a ring of its last samples with
//! running sums, so that adding a sample and reading the mean and standard
//! deviation are O(1) whatever the window size.
//!
//! The sums are of `x − K`, with K a reference value taken from the window:
//! on a metric with a large offset and a small spread (a counter near 1e9
//! moving by units) the deviations stay small and exact, where plain sums
//! of x and x² would cancel catastrophically. Each time the ring wraps, the
//! sums are recomputed from the samples in one pass (O(window) once per
//! window, so O(1) amortised) and K recentred on the newest sample, so
//! rounding never accumulates over long runs.

/// A ring of the last samples with running sums of their deviations from a
/// reference value.
///
/// The window size is not stored: the caller passes it to [`Window::push`],
/// so that a million windows share their watch's setting and a reload that
/// changes it reaches every window at its next sample.
#[derive(Debug, Clone, Default)]
pub struct Window {
    /// Allocated whole by the first sample: growing it as it filled left
    /// freed smaller rings behind as heap holes, which cost more resident
    /// memory at a hundred thousand series than the growth saved.
    ring: Box<[f64]>,
    /// The slot the next sample goes to; when full, the oldest sample's.
    next: u32,
    len: u32,
    /// K: a value from the window, so that `x − K` is small and exact.
    reference: f64,
    /// Σ (x − K).
    sum: f64,
    /// Σ (x − K)².
    sum_sq: f64,
}

impl Window {
    pub fn new() -> Self {
        Window::default()
    }

    /// How many samples the window holds.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Mean and population standard deviation, `None` when empty.
    pub fn stats(&self) -> Option<(f64, f64)> {
        if self.len == 0 {
            return None;
        }
        let n = f64::from(self.len);
        let mean_dev = self.sum / n;
        let var = ((self.sum_sq - self.sum * mean_dev) / n).max(0.0);
        // var is NaN only when the squares overflowed (|x| beyond 1e154).
        let stddev = if var.is_nan() {
            f64::INFINITY
        } else {
            var.sqrt()
        };
        Some((self.reference + mean_dev, stddev))
    }

    /// Adds `x`, dropping the oldest sample once `window` are held.
    pub fn push(&mut self, x: f64, window: usize) {
        let window = window.clamp(1, u32::MAX as usize);
        if self.ring.len() != window {
            self.fit(window);
        }
        if self.len == 0 {
            self.reference = x;
        }
        let slot = self.next as usize;
        let dev = x - self.reference;
        if self.len() == self.ring.len() {
            let old = self.ring[slot] - self.reference;
            self.sum += dev - old;
            self.sum_sq += dev * dev - old * old;
        } else {
            self.len += 1;
            self.sum += dev;
            self.sum_sq += dev * dev;
        }
        self.ring[slot] = x;
        // The ring only wraps once it has grown to the whole window (a
        // smaller full ring grows first, in `fit`), so this recomputes once
        // every `window` samples.
        if slot + 1 == self.ring.len() {
            self.next = 0;
            self.recompute();
        } else {
            self.next += 1;
        }
    }

    /// Where the next sample will be written, for a prefetch; the address
    /// is only computed, never read through.
    pub fn next_slot_address(&self) -> *const f64 {
        self.ring.as_ptr().wrapping_add(self.next as usize)
    }

    /// Forgets every sample; the ring keeps its allocation, since the
    /// series will fill it again.
    pub fn clear(&mut self) {
        self.next = 0;
        self.len = 0;
        self.sum = 0.0;
        self.sum_sq = 0.0;
    }

    /// The samples, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = f64> + '_ {
        let cap = self.ring.len();
        let len = self.len();
        let next = self.next as usize;
        let start = if next >= len {
            next - len
        } else {
            next + cap - len
        };
        let head_end = (start + len).min(cap);
        let wrapped = len - (head_end - start);
        self.ring[start..head_end]
            .iter()
            .chain(&self.ring[..wrapped])
            .copied()
    }

    /// Sizes the ring to `window`: at the first sample, or after a reload
    /// changed the window, keeping the newest samples.
    fn fit(&mut self, window: usize) {
        let new_cap = window;
        let keep = self.len().min(new_cap);
        let mut ring = vec![0.0; new_cap].into_boxed_slice();
        for (slot, x) in ring.iter_mut().zip(self.iter().skip(self.len() - keep)) {
            *slot = x;
        }
        self.ring = ring;
        self.len = keep as u32;
        self.next = if keep == new_cap { 0 } else { keep as u32 };
        if keep > 0 {
            self.recompute();
        }
    }

    /// The sums again from the samples themselves, recentred on the newest:
    /// a sample, so a flat window gives exact zeros, and one within the
    /// window's range, so the deviations stay of the order of its spread.
    /// One pass over a contiguous slice: the samples are always the whole
    /// ring or, while it fills, its first `len` slots, and sums do not care
    /// about their order.
    fn recompute(&mut self) {
        let newest = self.next.checked_sub(1).unwrap_or(self.len - 1) as usize;
        let Some(&reference) = self.ring.get(newest) else {
            return;
        };
        let (sum, sum_sq) = self.ring[..self.len()]
            .iter()
            .fold((0.0, 0.0), |(s, q), &x| {
                let dev = x - reference;
                (s + dev, q + dev * dev)
            });
        self.reference = reference;
        self.sum = sum;
        self.sum_sq = sum_sq;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::tests::two_pass;

    #[test]
    fn running_sums_stay_exact_over_ten_million_updates() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut w = Window::new();
        for _ in 0..10_000_000 {
            w.push(1e6 + rng.f64() * 1e-3, 100);
        }
        let xs: Vec<f64> = w.iter().collect();
        assert_eq!(xs.len(), 100);
        let (mean, stddev) = w.stats().unwrap();
        let (want_mean, want_stddev) = two_pass(&xs);
        assert!((mean - want_mean).abs() <= 1e-9, "{mean} vs {want_mean}");
        let rel = (stddev - want_stddev).abs() / want_stddev;
        assert!(rel <= 1e-6, "{stddev} vs {want_stddev}");
    }

    #[test]
    fn keeps_the_newest_samples_in_order_as_it_grows_and_shrinks() {
        let mut w = Window::new();
        for x in 0..40 {
            w.push(f64::from(x), 25);
        }
        assert_eq!(
            w.iter().collect::<Vec<_>>(),
            (15..40).map(f64::from).collect::<Vec<_>>()
        );
        // A reload to a smaller window keeps the newest.
        w.push(40.0, 10);
        assert_eq!(
            w.iter().collect::<Vec<_>>(),
            (31..41).map(f64::from).collect::<Vec<_>>()
        );
        let (mean, _) = w.stats().unwrap();
        assert_eq!(mean, 35.5);
        w.clear();
        assert!(w.is_empty());
        assert_eq!(w.stats(), None);
    }
}
