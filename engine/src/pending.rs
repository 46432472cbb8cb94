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

/// A chain in the ordered index, compared by its key; borrowed as a
/// [`Key`], so ranges are given as keys, and the key is kept once, in the
/// chain. (The point index has its own entry, `store::Digested`.)
#[derive(Clone)]
pub(crate) struct ByKey(pub(crate) Arc<VersionChain>);

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
    /// Each family with keys waiting and its list, in push order; a family
    /// whose list empties is removed.
    families: Vec<(Family, VecDeque<Fresh>)>,
    /// The slot of each family of `families`.
    slot_of: HashMap<Family, usize, Hasher>,
    /// The slot the last push went to, maybe stale (a removal moved or
    /// dropped it): a push whose key is of the family in this slot skips
    /// hashing the family, the common case of a run appending to one log.
    last: usize,
}

impl Lists {
    fn list(&self, family: &Family) -> Option<&VecDeque<Fresh>> {
        let slot = *self.slot_of.get(family)?;
        self.families.get(slot).map(|(_, list)| list)
    }

    fn list_mut(&mut self, family: &Family) -> Option<&mut VecDeque<Fresh>> {
        let slot = *self.slot_of.get(family)?;
        self.families.get_mut(slot).map(|(_, list)| list)
    }

    /// The slot of `key`'s family, created if it has none.
    fn slot_for(&mut self, key: &Key) -> usize {
        let is_key_family = |(f, _): &(Family, VecDeque<Fresh>)| {
            f.0 == key.ns && f.1 == key.scope && f.2 == key.tag
        };
        if self.families.get(self.last).is_some_and(is_key_family) {
            return self.last;
        }
        let family = (key.ns.clone(), key.scope, key.tag);
        let slot = match self.slot_of.get(&family) {
            Some(&slot) => slot,
            None => {
                let slot = self.families.len();
                self.families.push((family.clone(), VecDeque::new()));
                self.slot_of.insert(family, slot);
                slot
            }
        };
        self.last = slot;
        slot
    }

    /// Drop `family` and its list; the last slot moves into its place.
    fn remove(&mut self, family: &Family) {
        let Some(slot) = self.slot_of.remove(family) else {
            return;
        };
        self.families.swap_remove(slot);
        if let Some((moved, _)) = self.families.get(slot)
            && let Some(moved_slot) = self.slot_of.get_mut(moved)
        {
            *moved_slot = slot;
        }
    }
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
        let slot = lists.slot_for(key);
        if let Some((_, list)) = lists.families.get_mut(slot) {
            list.push_back(fresh);
        }
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
                let Some(list) = lists.list(family) else {
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
        let lists = self.lists.lock();
        let families: Vec<Family> = lists.families.iter().map(|(f, _)| f.clone()).collect();
        drop(lists);
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
        let Some(list) = lists.list_mut(family) else {
            return;
        };
        while list
            .front()
            .is_some_and(|f| (first..=last).contains(&f.seq))
        {
            list.pop_front();
        }
        if list.is_empty() {
            lists.remove(family);
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

#[cfg(test)]
mod test {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use super::{Family, Ordered, PendingKeys};
    use crate::chain::VersionChain;
    use crate::types::{Key, Namespace, RunId, Scope, TypeTag};

    fn family(ns: &Namespace, run: u128) -> Family {
        (
            ns.clone(),
            Scope::Run(RunId::from_u128(run)),
            TypeTag::Event,
        )
    }

    fn push(pending: &PendingKeys, (ns, scope, tag): &Family, user: u32) -> Key {
        let key = Key::new(ns.clone(), *scope, *tag, user.to_be_bytes());
        pending.push(&key, Arc::new(VersionChain::new(key.clone())));
        key
    }

    fn ordered_keys(ordered: &Ordered) -> BTreeSet<Key> {
        ordered.iter().map(|e| e.key().key().clone()).collect()
    }

    /// Pushes to families in random order, with merges of single families
    /// in between (each merge empties a family, so its slot is removed and
    /// the last slot moves into it), lose no key and put none in the wrong
    /// family: a family's merge brings exactly its keys so far, and a final
    /// merge of all brings every key.
    #[test]
    fn interleaved_pushes_and_merges_keep_every_key_in_its_family() {
        let ns = Namespace::new("t").unwrap();
        let families: Vec<Family> = (1..=4).map(|run| family(&ns, run)).collect();
        let mut rng = fastrand::Rng::with_seed(5);
        let (pending, ordered) = (PendingKeys::default(), Ordered::new());
        let mut pushed = BTreeSet::new();
        for user in 0..2_000u32 {
            let f = &families[rng.usize(..families.len())];
            pushed.insert(push(&pending, f, user));
            if rng.u8(..16) == 0 {
                let merged = &families[rng.usize(..families.len())];
                pending.merge_family(merged, &ordered);
                let of_family = |k: &&Key| (k.ns.clone(), k.scope, k.tag) == *merged;
                let want: BTreeSet<Key> = pushed.iter().filter(of_family).cloned().collect();
                let got: BTreeSet<Key> = ordered_keys(&ordered)
                    .iter()
                    .filter(of_family)
                    .cloned()
                    .collect();
                assert_eq!(got, want, "after push {user}");
            }
        }
        pending.merge_all(&ordered);
        assert_eq!(ordered_keys(&ordered), pushed);
        assert!(pending.lists.lock().families.is_empty());
        assert!(pending.lists.lock().slot_of.is_empty());
    }
}
