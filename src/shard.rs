//! Sharding: with `--shard.total=N`, each of N replicas running the same
//! configuration keeps only the series whose key hashes to its own index,
//! so together they watch every series exactly once, with no coordination.
//!
//! The hash is Lamping and Veach's jump consistent hash of the series id
//! (itself a stable hash of source, metric and labels): going from N to N+1
//! replicas moves only a 1/(N+1) share of the series, all onto the new one.

/// Which part of the series this replica keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub total: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Shard::ALL
    }
}

impl Shard {
    /// One replica keeping everything.
    pub const ALL: Shard = Shard { index: 0, total: 1 };

    /// A shard from the flags. Without `--shard.index`, the index is the
    /// ordinal at the end of `pod_name` (`driftwatch-2` is 2), as a
    /// StatefulSet names its pods.
    pub fn new(total: u32, index: Option<u32>, pod_name: Option<&str>) -> Result<Shard, String> {
        if total == 0 {
            return Err("--shard.total must be at least 1".to_owned());
        }
        let index = match index {
            Some(index) => index,
            None if total == 1 => 0,
            None => ordinal(pod_name).ok_or_else(|| {
                "--shard.total is set but --shard.index is not, and POD_NAME does not end in \
                 -<ordinal> as a StatefulSet's pods do"
                    .to_owned()
            })?,
        };
        if index >= total {
            return Err(format!(
                "--shard.index {index} must be below --shard.total {total}"
            ));
        }
        Ok(Shard { index, total })
    }

    /// Whether this replica keeps the series with this id.
    pub fn owns(&self, series_id: u64) -> bool {
        self.total <= 1 || jump_hash(series_id, self.total) == self.index
    }
}

fn ordinal(pod_name: Option<&str>) -> Option<u32> {
    let (_, number) = pod_name?.rsplit_once('-')?;
    number.parse().ok()
}

/// The bucket in `0..buckets` of `key` (Lamping and Veach, 2014).
fn jump_hash(mut key: u64, buckets: u32) -> u32 {
    let (mut bucket, mut next): (i64, i64) = (-1, 0);
    while next < i64::from(buckets) {
        bucket = next;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        let shifted = ((key >> 33) + 1) as f64;
        next = ((bucket + 1) as f64 * ((1u64 << 31) as f64 / shifted)) as i64;
    }
    bucket as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> impl Iterator<Item = u64> {
        (0..20_000u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i << 17))
    }

    #[test]
    fn replicas_together_own_every_series_exactly_once_and_evenly() {
        let shards: Vec<Shard> = (0..3).map(|i| Shard { index: i, total: 3 }).collect();
        let mut counts = [0usize; 3];
        for id in ids() {
            let owners: Vec<u32> = shards
                .iter()
                .filter(|s| s.owns(id))
                .map(|s| s.index)
                .collect();
            assert_eq!(owners.len(), 1, "series {id} owned by {owners:?}");
            counts[owners[0] as usize] += 1;
        }
        for count in counts {
            assert!((6_000..7_400).contains(&count), "uneven split {counts:?}");
        }
    }

    #[test]
    fn a_fourth_replica_takes_only_its_share() {
        let moved = ids()
            .filter(|&id| jump_hash(id, 3) != jump_hash(id, 4))
            .count();
        let share = moved as f64 / 20_000.0;
        assert!((0.22..0.28).contains(&share), "{share} of the series moved");
        for id in ids().filter(|&id| jump_hash(id, 3) != jump_hash(id, 4)) {
            assert_eq!(jump_hash(id, 4), 3, "a series moved between old replicas");
        }
    }

    #[test]
    fn the_index_comes_from_the_flag_or_the_pod_name() {
        assert_eq!(
            Shard::new(3, Some(1), None),
            Ok(Shard { index: 1, total: 3 })
        );
        assert_eq!(
            Shard::new(3, None, Some("driftwatch-2")),
            Ok(Shard { index: 2, total: 3 })
        );
        assert_eq!(Shard::new(1, None, None), Ok(Shard::ALL));
        assert!(Shard::new(3, None, Some("driftwatch")).is_err());
        assert!(Shard::new(3, Some(3), None).is_err());
        assert!(Shard::new(0, None, None).is_err());
    }
}
