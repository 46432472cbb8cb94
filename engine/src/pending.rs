//! [`PendingKeys`]: keys created but not yet in the ordered index, by
//! family (see the module docs of `store.rs` and ARCHITECTURE.md, "Ordered
//! index").
//!
//! A merge never holds the lock while it inserts: it copies a chunk of a
//! family's list under the lock, inserts the chunk into the skip list
//! without it, then takes the lock again to remove from the list the
//! entries it inserted itself. So a key leaves the list only after it is in
//! the skip list, and a committer creating a key waits at most for a chunk
//! copy, however many keys a checkpoint or the first scan of a family has
//! to merge.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crossbeam_skiplist::SkipMap;
use parking_lot::Mutex;

use crate::chain::VersionChain;
use crate::types::{Key, Namespace, Scope, TypeTag};

type Hasher = foldhash::fast::RandomState;

/// One namespace + scope + tag: the keys a scan's prefix can range over.
pub(crate) type Family = (Namespace, Scope, TypeTag);

/// The ordered index the pending keys are merged into: the chains, ordered
/// by the key each one keeps (no second copy of the key).
pub(crate) type Ordered = SkipMap<ByKey, ()>;

/// A chain in an index (the ordered one, and the point one in `store.rs`),
/// compared and hashed by its key; borrowed as a [`Key`], so lookups and
/// ranges are given as keys, and the key is kept once, in the chain.
#[derive(Clone)]
pub(crate) struct ByKey(pub(crate) Arc<VersionChain>);

impl std::hash::Hash for ByKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl ByKey {
    pub(crate) fn key(&self) -> &Key {
        self.0.key()
    }
}

impl PartialEq for ByKey {
    fn eq(&self, other: &ByKey) -> bool {
        self.key() == other.key()
    }
}

impl Eq for ByKey {}

impl PartialOrd for ByKey {
    fn partial_cmp(&self, other: &ByKey) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ByKey {
    fn cmp(&self, other: &ByKey) -> std::cmp::Ordering {
        self.key().cmp(other.key())
    }
}

impl std::borrow::Borrow<Key> for ByKey {
    fn borrow(&self) -> &Key {
        self.key()
    }
}

/// Keys a merge copies and inserts per lock hold.
const MERGE_CHUNK: usize = 1024;

/// A pending key: its push number and chain (which keeps the key).
#[derive(Clone)]
struct Fresh {
    /// Store-wide push number: increasing along each list, never reused.
    seq: u64,
    chain: Arc<VersionChain>,
}

#[derive(Default)]
struct Lists {
    next_seq: u64,
    /// Each list in push order; a family with an empty list is removed.
    by_family: HashMap<Family, VecDeque<Fresh>, Hasher>,
}

/// Keys waiting for the ordered index. Lock order: after the commit lock;
/// nothing holding this lock takes another one.
#[derive(Default)]
pub(crate) struct PendingKeys {
    lists: Mutex<Lists>,
}

impl PendingKeys {
    /// Add a key just created (its chain is in the point index).
    pub(crate) fn push(&self, key: &Key, chain: Arc<VersionChain>) {
        let mut lists = self.lists.lock();
        let seq = lists.next_seq;
        lists.next_seq += 1;
        let fresh = Fresh { seq, chain };
        let family = (key.ns.clone(), key.scope, key.tag);
        lists.by_family.entry(family).or_default().push_back(fresh);
    }

    /// Make every key of `family` pushed before this call reachable in
    /// `ordered`, inserting itself whatever is still listed (another merge
    /// may be inserting the same keys: inserts are idempotent).
    pub(crate) fn merge_family(&self, family: &Family, ordered: &Ordered) {
        // Newest push this call must cover, and newest it inserted.
        let mut end = None;
        let mut done = None;
        loop {
            let chunk = {
                let lists = self.lists.lock();
                let Some(list) = lists.by_family.get(family) else {
                    return;
                };
                let end = *end.get_or_insert(list.back().map_or(0, |f: &Fresh| f.seq));
                let from = done.map_or(0, |d| list.partition_point(|f| f.seq <= d));
                let chunk: Vec<Fresh> = list
                    .range(from..)
                    .take_while(|f| f.seq <= end)
                    .take(MERGE_CHUNK)
                    .cloned()
                    .collect();
                chunk
            };
            let (Some(first), Some(last)) = (chunk.first(), chunk.last()) else {
                return;
            };
            let (first, last) = (first.seq, last.seq);
            insert_sorted(chunk, ordered);
            self.remove_inserted(family, first, last);
            done = Some(last);
        }
    }

    /// [`PendingKeys::merge_family`] for every family.
    pub(crate) fn merge_all(&self, ordered: &Ordered) {
        let families: Vec<Family> = self.lists.lock().by_family.keys().cloned().collect();
        for family in &families {
            self.merge_family(family, ordered);
        }
    }

    /// After a merge inserted the pushes `first..=last` of `family`: take
    /// them off the list if they are at its front. Entries before them
    /// (another merge still inserting) stay, and so do these then; a later
    /// merge inserts them again, harmlessly.
    fn remove_inserted(&self, family: &Family, first: u64, last: u64) {
        let mut lists = self.lists.lock();
        let Some(list) = lists.by_family.get_mut(family) else {
            return;
        };
        while list
            .front()
            .is_some_and(|f| (first..=last).contains(&f.seq))
        {
            list.pop_front();
        }
        if list.is_empty() {
            lists.by_family.remove(family);
        }
    }
}

/// Insert `chunk` (keys of one family) in key order: a skip-list insert
/// in key order finds its search path in cache. Never a replacing insert:
/// that unlinks the old entry before linking the new one, and a concurrent
/// scan could miss the key in between.
fn insert_sorted(mut chunk: Vec<Fresh>, ordered: &Ordered) {
    chunk.sort_unstable_by(|a, b| a.chain.key().cmp(b.chain.key()));
    for fresh in chunk {
        ordered.get_or_insert(ByKey(fresh.chain), ());
    }
}
