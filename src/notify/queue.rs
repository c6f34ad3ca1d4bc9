//! What is still to deliver to one receiver: at most one pending
//! notification per series, the newest state replacing an older undelivered
//! one, ordered by when it is due. Memory is bounded by the number of series.

use std::collections::{BTreeSet, HashMap};

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::delivery::Ledger;
use crate::engine::lock;

/// A notification waiting for its time.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending<T> {
    pub item: T,
    pub due: Instant,
    /// A new state the receiver has not had yet, as opposed to a resend of
    /// one it has. Only fresh ones count as queued and are worth draining.
    pub fresh: bool,
}

/// The pending notifications of one receiver, by series id.
pub struct Queue<T> {
    entries: HashMap<u64, Entry<T>, foldhash::fast::RandomState>,
    /// `(due, series)` of every pending notification not in flight.
    by_due: BTreeSet<(Instant, u64)>,
    /// Series whose newest state is not delivered yet.
    undelivered: usize,
}

struct Entry<T> {
    pending: Option<Pending<T>>,
    /// `Some(fresh)` while a delivery for this series is under way; another
    /// one waits until it ends, so a receiver sees a series' states in order.
    in_flight: Option<bool>,
}

impl<T> Entry<T> {
    fn undelivered(&self) -> usize {
        let pending = self.pending.as_ref().is_some_and(|p| p.fresh);
        usize::from(pending || self.in_flight == Some(true))
    }
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Queue {
            entries: HashMap::default(),
            by_due: BTreeSet::new(),
            undelivered: 0,
        }
    }
}

impl<T> Queue<T> {
    /// Series with a state still to deliver.
    pub fn len(&self) -> usize {
        self.undelivered
    }

    pub fn is_empty(&self) -> bool {
        self.undelivered == 0
    }

    /// When the earliest pending notification is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.by_due.first().map(|(due, _)| *due)
    }

    /// Whether a fresh notification is due by `deadline`: the work a
    /// shutdown still waits for.
    pub fn fresh_due_by(&self, deadline: Instant) -> bool {
        let fresh = |key: &u64| {
            self.entries
                .get(key)
                .and_then(|e| e.pending.as_ref())
                .is_some_and(|p| p.fresh)
        };
        let in_flight = self.entries.values().any(|e| e.in_flight.is_some());
        in_flight
            || self
                .by_due
                .iter()
                .take_while(|(due, _)| *due <= deadline)
                .any(|(_, k)| fresh(k))
    }

    /// Sets the pending notification of `key`, returning the one it replaced.
    pub fn put(&mut self, key: u64, pending: Pending<T>) -> Option<Pending<T>> {
        self.update(key, |queue, entry| {
            let old = entry.pending.take();
            if let Some(old) = &old
                && entry.in_flight.is_none()
            {
                queue.remove(&(old.due, key));
            }
            if entry.in_flight.is_none() {
                queue.insert((pending.due, key));
            }
            entry.pending = Some(pending);
            old
        })
    }

    /// Takes away the pending notification of `key`, unless it is in flight.
    pub fn cancel(&mut self, key: u64) -> Option<Pending<T>> {
        self.update(key, |queue, entry| {
            let old = entry.pending.take()?;
            if entry.in_flight.is_none() {
                queue.remove(&(old.due, key));
            }
            Some(old)
        })
    }

    /// Takes the earliest notification due by `now` and marks its series in
    /// flight.
    pub fn pop_due(&mut self, now: Instant) -> Option<(u64, Pending<T>)> {
        let &(due, key) = self.by_due.first()?;
        if due > now {
            return None;
        }
        self.by_due.remove(&(due, key));
        let pending = self.update(key, |_, entry| {
            let pending = entry.pending.take()?;
            entry.in_flight = Some(pending.fresh);
            Some(pending)
        })?;
        Some((key, pending))
    }

    /// Ends the delivery under way for `key`. `again` is queued unless a
    /// newer state arrived meanwhile, in which case `again` is handed back.
    pub fn finish(&mut self, key: u64, again: Option<Pending<T>>) -> Option<Pending<T>> {
        self.update(key, |queue, entry| {
            entry.in_flight = None;
            match (&entry.pending, again) {
                (Some(newer), again) => {
                    queue.insert((newer.due, key));
                    again
                }
                (None, Some(again)) => {
                    queue.insert((again.due, key));
                    entry.pending = Some(again);
                    None
                }
                (None, None) => None,
            }
        })
    }

    /// Runs `change` on the entry of `key`, keeping the count of undelivered
    /// series and dropping entries left with nothing to do.
    fn update<R>(
        &mut self,
        key: u64,
        change: impl FnOnce(&mut BTreeSet<(Instant, u64)>, &mut Entry<T>) -> R,
    ) -> R {
        let entry = self.entries.entry(key).or_insert(Entry {
            pending: None,
            in_flight: None,
        });
        let before = entry.undelivered();
        let result = change(&mut self.by_due, entry);
        let after = entry.undelivered();
        self.undelivered = self.undelivered + after - before;
        if entry.pending.is_none() && entry.in_flight.is_none() {
            self.entries.remove(&key);
        }
        result
    }
}

/// A receiver as the notifier and its delivery task share it: the queue,
/// the ledger, the wake-up and the stop signal.
pub struct Outbox<T> {
    pub ledger: Ledger,
    pub queue: std::sync::Mutex<Queue<T>>,
    /// Woken on every new notification; a wake-up with no task waiting is
    /// kept for the next wait, so none is lost.
    pub wake: Notify,
    /// `Some(deadline)` once the task is to drain and end.
    pub stop: watch::Sender<Option<Instant>>,
}

impl<T> Outbox<T> {
    pub fn new(receiver: String) -> Outbox<T> {
        Outbox {
            ledger: Ledger::new(receiver),
            queue: std::sync::Mutex::new(Queue::default()),
            wake: Notify::new(),
            stop: watch::Sender::new(None),
        }
    }

    /// Queues a fresh notification for `key`, due now, counting the
    /// undelivered one it replaces as dropped.
    pub fn offer(&self, key: u64, item: T) {
        let pending = Pending {
            item,
            due: Instant::now(),
            fresh: true,
        };
        let replaced = lock(&self.queue).put(key, pending);
        if replaced.is_some_and(|old| old.fresh) {
            self.ledger.dropped(1);
        }
        self.wake.notify_one();
    }

    /// Takes back the undelivered notification of `key`, if any.
    pub fn withdraw(&self, key: u64) {
        let withdrawn = lock(&self.queue).cancel(key);
        if withdrawn.is_some_and(|old| old.fresh) {
            self.ledger.dropped(1);
        }
    }

    pub fn queue_length(&self) -> usize {
        lock(&self.queue).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn fresh(item: &'static str, due: Instant) -> Pending<&'static str> {
        Pending {
            item,
            due,
            fresh: true,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn newest_state_replaces_an_undelivered_one() {
        let now = Instant::now();
        let mut queue = Queue::default();
        assert_eq!(queue.put(1, fresh("degraded", now)), None);
        assert_eq!(
            queue.put(1, fresh("recovered", now)).map(|p| p.item),
            Some("degraded")
        );
        assert_eq!(queue.len(), 1);
        assert_eq!(
            queue.pop_due(now).map(|(k, p)| (k, p.item)),
            Some((1, "recovered"))
        );
        assert_eq!(queue.pop_due(now), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_state_arriving_during_delivery_waits_and_wins_over_a_retry() {
        let now = Instant::now();
        let mut queue = Queue::default();
        queue.put(7, fresh("degraded", now));
        let (key, first) = queue.pop_due(now).unwrap();
        assert_eq!(queue.len(), 1, "in flight still counts as undelivered");

        queue.put(7, fresh("recovered", now));
        assert_eq!(
            queue.pop_due(now),
            None,
            "one delivery per series at a time"
        );
        let retry = fresh(first.item, now + Duration::from_secs(1));
        assert_eq!(
            queue.finish(key, Some(retry)).map(|p| p.item),
            Some("degraded")
        );
        assert_eq!(queue.pop_due(now).map(|(_, p)| p.item), Some("recovered"));
        assert_eq!(queue.finish(7, None), None);
        assert!(queue.is_empty());
        assert_eq!(queue.next_due(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn due_order_and_resends_are_not_counted_as_queued() {
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        let mut queue = Queue::default();
        queue.put(
            1,
            Pending {
                item: "resend",
                due: later,
                fresh: false,
            },
        );
        queue.put(2, fresh("new", now));
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.next_due(), Some(now));
        assert!(queue.fresh_due_by(now));
        assert_eq!(queue.pop_due(now).map(|(k, _)| k), Some(2));
        queue.finish(2, None);
        assert!(!queue.fresh_due_by(later));
        assert_eq!(queue.pop_due(now), None);
        assert_eq!(queue.pop_due(later).map(|(k, _)| k), Some(1));
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_leaves_a_delivery_in_flight_alone() {
        let now = Instant::now();
        let mut queue = Queue::default();
        queue.put(3, fresh("degraded", now));
        assert!(queue.cancel(3).is_some());
        assert!(queue.is_empty());
        queue.put(3, fresh("degraded", now));
        queue.pop_due(now);
        assert_eq!(queue.cancel(3), None);
        assert_eq!(queue.len(), 1);
    }
}
