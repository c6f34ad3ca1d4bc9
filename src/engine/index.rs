//! The index of a source: every spelling of a series the source has written
//! (its metric family and label text, as the target wrote them) and where
//! its samples go.
//!
//! At a million series this index is a fifth of what driftwatch keeps per
//! series beside the window, so it is laid out for size: spellings are
//! numbered, their texts and routes kept in plain vectors by number, and the
//! hash table holds only the numbers (four bytes and a control byte a
//! bucket, where a map of text to route needs twenty-five). The texts are
//! shared with the series they name, so a series whose target writes its
//! labels in canonical form keeps its text once.

use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;

/// Where the samples of a spelling go: a slot of the source's table, or
/// nowhere.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct Route(u32);

impl Route {
    pub const IGNORED: Route = Route(u32::MAX);

    pub fn to(slot: u32) -> Route {
        Route(slot)
    }

    pub fn slot(self) -> Option<u32> {
        (self != Route::IGNORED).then_some(self.0)
    }
}

/// The number of a spelling in the index.
pub(super) type SpellingId = u32;

#[derive(Default)]
pub(super) struct SeriesIndex {
    table: HashTable<SpellingId>,
    /// By spelling: its label text; `None` for a number free for reuse.
    texts: Vec<Option<Arc<str>>>,
    routes: Vec<Route>,
    families: Vec<u16>,
    free: Vec<SpellingId>,
    hasher: foldhash::fast::FixedState,
}

impl SeriesIndex {
    /// The spellings held.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn find(&self, family: u16, labels: &str) -> Option<SpellingId> {
        let hash = self.hash(family, labels);
        self.table
            .find(hash, |&id| self.is(id, family, labels))
            .copied()
    }

    /// Whether spelling `id` is `labels` of `family`.
    pub fn is(&self, id: SpellingId, family: u16, labels: &str) -> bool {
        let id = id as usize;
        self.families.get(id) == Some(&family)
            && self.texts.get(id).and_then(Option::as_deref) == Some(labels)
    }

    /// The label text of spelling `id`, if the index holds it.
    pub fn text(&self, id: SpellingId) -> Option<&str> {
        self.texts.get(id as usize)?.as_deref()
    }

    /// The family of spelling `id`, if the index holds it.
    pub fn family(&self, id: SpellingId) -> Option<u16> {
        self.families.get(id as usize).copied()
    }

    pub fn route(&self, id: SpellingId) -> Route {
        self.routes
            .get(id as usize)
            .copied()
            .unwrap_or(Route::IGNORED)
    }

    /// Adds a spelling the index does not hold yet.
    pub fn insert(&mut self, family: u16, labels: Arc<str>, route: Route) -> SpellingId {
        let hash = self.hash(family, &labels);
        let id = match self.free.pop() {
            Some(id) => {
                self.texts[id as usize] = Some(labels);
                self.routes[id as usize] = route;
                self.families[id as usize] = family;
                id
            }
            None => {
                self.texts.push(Some(labels));
                self.routes.push(route);
                self.families.push(family);
                (self.texts.len() - 1) as SpellingId
            }
        };
        let (texts, families, hasher) = (&self.texts, &self.families, &self.hasher);
        self.table.insert_unique(hash, id, |&id| {
            let text = texts[id as usize].as_deref().unwrap_or_default();
            spelling_hash(hasher, families[id as usize], text)
        });
        id
    }

    /// Makes room for `additional` more spellings. Growth is by at least an
    /// eighth rather than by doubling: the first fetch of a large target
    /// brings all its spellings at once, and doubling past them would leave
    /// up to half the vectors unused.
    pub fn reserve(&mut self, additional: usize) {
        let spare = self.free.len() + (self.texts.capacity() - self.texts.len());
        if additional <= spare {
            return;
        }
        let grow = additional.max(self.texts.len() / 8);
        self.texts.reserve_exact(grow);
        self.routes.reserve_exact(grow);
        self.families.reserve_exact(grow);
        let (texts, families, hasher) = (&self.texts, &self.families, &self.hasher);
        self.table.reserve(additional, |&id| {
            let text = texts[id as usize].as_deref().unwrap_or_default();
            spelling_hash(hasher, families[id as usize], text)
        });
    }

    /// Keeps the spellings whose route `keep` approves, freeing the others'
    /// numbers for reuse. Numbers held elsewhere are void afterwards: the
    /// index may renumber what it keeps.
    pub fn retain(&mut self, mut keep: impl FnMut(Route) -> bool) {
        let (texts, routes, free) = (&mut self.texts, &self.routes, &mut self.free);
        self.table.retain(|&mut id| {
            if keep(routes[id as usize]) {
                return true;
            }
            texts[id as usize] = None;
            free.push(id);
            false
        });
        // A source that shrank for good should not keep its peak's vectors.
        if self.free.len() > 1024 && self.free.len() > self.texts.len() / 2 {
            self.compact();
        }
    }

    /// Renumbers the spellings densely, dropping the free numbers.
    fn compact(&mut self) {
        let old_texts = std::mem::take(&mut self.texts);
        let old_routes = std::mem::take(&mut self.routes);
        let old_families = std::mem::take(&mut self.families);
        self.table.clear();
        self.free.clear();
        for ((text, route), family) in old_texts.into_iter().zip(old_routes).zip(old_families) {
            if let Some(text) = text {
                self.insert(family, text, route);
            }
        }
        self.table.shrink_to_fit(|&id| {
            let text = self.texts[id as usize].as_deref().unwrap_or_default();
            spelling_hash(&self.hasher, self.families[id as usize], text)
        });
    }

    fn hash(&self, family: u16, labels: &str) -> u64 {
        spelling_hash(&self.hasher, family, labels)
    }
}

fn spelling_hash(hasher: &foldhash::fast::FixedState, family: u16, labels: &str) -> u64 {
    hasher.hash_one((family, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_spellings_by_family_and_text_and_reuses_freed_numbers() {
        let mut index = SeriesIndex::default();
        let a = index.insert(0, Arc::from("a=\"1\""), Route::to(7));
        let b = index.insert(1, Arc::from("a=\"1\""), Route::IGNORED);
        assert_eq!(index.find(0, "a=\"1\""), Some(a));
        assert_eq!(index.find(1, "a=\"1\""), Some(b));
        assert_eq!(index.find(0, "a=\"2\""), None);
        assert_eq!(index.route(a).slot(), Some(7));
        assert_eq!(index.route(b).slot(), None);

        index.retain(|route| route.slot().is_none());
        assert_eq!(index.len(), 1);
        assert_eq!(index.find(0, "a=\"1\""), None);
        assert!(!index.is(a, 0, "a=\"1\""));
        let c = index.insert(0, Arc::from("a=\"3\""), Route::to(8));
        assert_eq!(c, a, "the freed number is reused");
        assert_eq!(index.find(0, "a=\"3\""), Some(c));
        assert_eq!(index.find(1, "a=\"1\""), Some(b));
    }

    #[test]
    fn compacting_keeps_every_spelling_findable() {
        let mut index = SeriesIndex::default();
        for i in 0..5000u32 {
            index.insert(0, Arc::from(format!("i=\"{i}\"")), Route::to(i));
        }
        index.retain(|route| route.slot().is_some_and(|s| s % 10 == 0));
        assert_eq!(index.len(), 500);
        assert!(index.texts.len() <= 500, "compacted: {}", index.texts.len());
        for i in (0..5000u32).step_by(10) {
            let id = index.find(0, &format!("i=\"{i}\"")).expect("kept");
            assert_eq!(index.route(id).slot(), Some(i));
        }
        assert_eq!(index.find(0, "i=\"1\""), None);
    }
}
