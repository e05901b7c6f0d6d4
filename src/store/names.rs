//! Interned strings: event types, client ids, grant types and methods are stored once and
//! referred to by a `u32` in log records and counter keys.
//!
//! The writer owns interning; readers get an immutable snapshot ([`Names`] behind an `Arc`)
//! that the writer replaces in each group that added names, just before its commit: a reader
//! that sees an event can always name its ids. A failed commit stops the writer, so an id
//! published but never committed is never used.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// An immutable view of every interned string.
///
/// The writer makes a new view in every group that adds names, so a copy must be cheap
/// however many names there are: the bulk lives in a frozen part shared between views,
/// and only the names added since it was last rebuilt (at most [`RECENT_MAX`]) are copied.
#[derive(Debug, Default, Clone)]
pub struct Names {
    /// Ids `0..frozen_ids.len()`.
    frozen_ids: Arc<Vec<Arc<str>>>,
    frozen_text: Arc<HashMap<Arc<str>, u32>>,
    /// The ids after those.
    recent_ids: Vec<Arc<str>>,
    recent_text: HashMap<Arc<str>, u32>,
}

/// Names a view holds outside its frozen part before the part is rebuilt with them.
const RECENT_MAX: usize = 4096;

impl Names {
    pub fn from_ordered(texts: Vec<String>) -> Names {
        let mut names = Names::default();
        for text in texts {
            names.push(text.into());
        }
        names
    }

    fn push(&mut self, text: Arc<str>) {
        let id = self.len() as u32;
        self.recent_text.insert(text.clone(), id);
        self.recent_ids.push(text);
        if self.recent_ids.len() >= RECENT_MAX {
            let ids = Arc::make_mut(&mut self.frozen_ids);
            ids.append(&mut self.recent_ids);
            let texts = Arc::make_mut(&mut self.frozen_text);
            texts.extend(self.recent_text.drain());
        }
    }

    pub fn text(&self, id: u32) -> Option<&str> {
        let id = id as usize;
        match id.checked_sub(self.frozen_ids.len()) {
            None => self.frozen_ids.get(id),
            Some(recent) => self.recent_ids.get(recent),
        }
        .map(|s| &**s)
    }

    pub fn id(&self, text: &str) -> Option<u32> {
        self.recent_text
            .get(text)
            .or_else(|| self.frozen_text.get(text))
            .copied()
    }

    pub fn len(&self) -> usize {
        self.frozen_ids.len() + self.recent_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Names beyond which free texts (user agents, routes, errors, scopes) are no longer
/// interned but stored inline: every name is held in memory (about 100 bytes each), the
/// snapshot is copied in each group that adds one, and free texts are chosen by the
/// sender. (Routes often carry ids: the 10 M benchmark set filled a cap of a million.)
pub const MAX_FREE_NAMES: usize = 100_000;

/// The shared, swappable snapshot.
pub type SharedNames = Arc<RwLock<Arc<Names>>>;

/// Takes the current snapshot (cheap: one `Arc` clone).
pub fn snapshot(shared: &SharedNames) -> Arc<Names> {
    match shared.read() {
        Ok(guard) => guard.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

/// Names interned during one write transaction, not yet published.
pub struct PendingNames {
    base: Arc<Names>,
    added: Vec<Arc<str>>,
    added_ids: HashMap<Arc<str>, u32>,
}

impl PendingNames {
    pub fn new(base: Arc<Names>) -> PendingNames {
        PendingNames {
            base,
            added: Vec::new(),
            added_ids: HashMap::new(),
        }
    }

    /// The names committed before this transaction.
    pub fn base(&self) -> &Names {
        &self.base
    }

    /// The id of `text`, if it is interned (committed or pending).
    pub fn get(&self, text: &str) -> Option<u32> {
        self.base
            .id(text)
            .or_else(|| self.added_ids.get(text).copied())
    }

    /// The id of `text`, assigning the next free one if it is new.
    pub fn intern(&mut self, text: &str) -> u32 {
        if let Some(id) = self.get(text) {
            return id;
        }
        let id = (self.base.len() + self.added.len()) as u32;
        let text: Arc<str> = text.into();
        self.added_ids.insert(text.clone(), id);
        self.added.push(text);
        id
    }

    /// The id of free text `text`, interning it only while the table is below
    /// [`MAX_FREE_NAMES`].
    pub fn intern_capped(&mut self, text: &str) -> Option<u32> {
        match self.get(text) {
            Some(id) => Some(id),
            None if self.base.len() + self.added.len() < MAX_FREE_NAMES => Some(self.intern(text)),
            None => None,
        }
    }

    /// The new (id, text) pairs, to be written in the same transaction.
    pub fn added(&self) -> impl Iterator<Item = (u32, &str)> {
        let first = self.base.len() as u32;
        self.added
            .iter()
            .enumerate()
            .map(move |(i, t)| (first + i as u32, &**t))
    }

    /// Replaces the shared snapshot with one including the new names, if there are any.
    pub fn publish(self, shared: &SharedNames) {
        if self.added.is_empty() {
            return;
        }
        let mut next = (*self.base).clone();
        for text in self.added {
            next.push(text);
        }
        let mut guard = match shared.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = Arc::new(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_stay_whole_across_rebuilds_of_their_frozen_part() {
        let shared: SharedNames = Arc::new(RwLock::new(Arc::new(Names::default())));
        let old = snapshot(&shared);
        for group in 0..7 {
            let mut pending = PendingNames::new(snapshot(&shared));
            for i in 0..1500 {
                assert_eq!(pending.intern(&format!("n{group}-{i}")), group * 1500 + i);
            }
            pending.publish(&shared);
        }
        let names = snapshot(&shared);
        assert_eq!(names.len(), 7 * 1500);
        for id in [0, 1499, 4095, 4096, 8191, 8192, 10_499] {
            let text = names.text(id).expect("named");
            assert_eq!(names.id(text), Some(id));
            assert_eq!(text, format!("n{}-{}", id / 1500, id % 1500));
        }
        assert_eq!(names.text(10_500), None);
        assert_eq!(names.id("n7-0"), None);
        assert!(old.is_empty(), "an older view is unchanged");
    }

    #[test]
    fn interning_is_stable_and_published_after_commit() {
        let shared: SharedNames =
            Arc::new(RwLock::new(Arc::new(Names::from_ordered(vec!["a".into()]))));
        let mut pending = PendingNames::new(snapshot(&shared));
        assert_eq!(pending.intern("a"), 0);
        assert_eq!(pending.intern("b"), 1);
        assert_eq!(pending.intern("b"), 1);
        assert_eq!(pending.added().collect::<Vec<_>>(), vec![(1, "b")]);
        assert_eq!(snapshot(&shared).id("b"), None);
        pending.publish(&shared);
        assert_eq!(snapshot(&shared).id("b"), Some(1));
        assert_eq!(snapshot(&shared).text(1), Some("b"));
    }
}
