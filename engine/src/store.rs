//! [`Store`]: the key index (hash, for point reads) and the ordered index
//! (skip list, for scans), both holding the same [`VersionChain`]s, each
//! found by the key it keeps (`ByKey`): the key is stored once per key.
//!
//! Point reads never walk an ordered structure: they go through
//! `scc::HashIndex`, whose reads are lock-free. The ordered index changes
//! only when a key is created, so scans pay for order and point reads do not.
//! Keys are created only by committers holding the commit lock, so a key is
//! never created twice.
//!
//! ## Deferred ordered inserts
//! A committer that creates a key puts it in the point index at once, but
//! only pushes it on its family's pending list (`Pending`), not into the
//! skip list: a skip-list insert costs more than the rest of creating a
//! key, and many families are never scanned (an event log is read by
//! sequence number, one point read per event). Whatever walks the skip list
//! first merges the pending keys it needs (`pending.rs`): a scan or
//! `newest_commit_in` the keys of its prefix's family, `for_each_chain` all
//! of them.
//!
//! Invariant (ARCHITECTURE.md, "Ordered index"): at every moment each key of
//! the point index (created by `create_chain`, or by `recover_chain` while
//! reopening) is in the skip list or on its family's pending list; a key leaves the list only after it is in the skip
//! list. A key is pushed before the commit that created it is published, so
//! a reader at any version that includes that commit, having merged its
//! family, finds the key in the skip list.

use std::ops::Bound;
use std::sync::Arc;

use crossbeam_skiplist::SkipMap;
use scc::HashIndex;

use crate::chain::{ReadAt, VersionChain};
use crate::error::{Error, Result};
use crate::pending::{ByKey, Ordered, PendingKeys};
use crate::types::{Key, Version};
use crate::value::Value;

type Hasher = foldhash::fast::RandomState;

/// What a point read at a version returns: the value (None = absent or
/// deleted) and the commit version that answered (0 = never written).
pub type Versioned = (Option<Value>, Version);

/// Both indexes over the version chains.
#[derive(Default)]
pub(crate) struct Store {
    index: HashIndex<ByKey, (), Hasher>,
    ordered: Ordered,
    /// Created keys not yet in `ordered`.
    pending: PendingKeys,
}

impl Store {
    /// Read `key` as of version `at`.
    pub(crate) fn read_at(&self, key: &Key, at: Version) -> Result<Versioned> {
        let found = self.index.peek_with(key, |entry, ()| {
            let chain = &entry.0;
            let guard = crossbeam_epoch::pin();
            resolve(chain.read_at(at, &guard), key, at)
        });
        found.unwrap_or(Ok((None, 0)))
    }

    /// [`Store::read_at`], also returning the key's chain when `keep` and
    /// the key has one (a transaction keeps the chains of the keys it read
    /// for its commit, see `Transaction::chains_of_writes`).
    pub(crate) fn read_at_keeping_chain(
        &self,
        key: &Key,
        at: Version,
        keep: bool,
    ) -> Result<(Versioned, Option<Arc<VersionChain>>)> {
        let found = self.index.peek_with(key, |entry, ()| {
            let chain = &entry.0;
            let guard = crossbeam_epoch::pin();
            let read = resolve(chain.read_at(at, &guard), key, at)?;
            Ok((read, keep.then(|| Arc::clone(chain))))
        });
        found.unwrap_or(Ok(((None, 0), None)))
    }

    /// Read `key` as of version `at` and hand the value to `f` borrowed (no
    /// clone, no reference-count traffic on the value): `f(None)` if absent
    /// or deleted.
    pub(crate) fn read_with<R>(
        &self,
        key: &Key,
        at: Version,
        f: impl FnOnce(Option<&Value>) -> R,
    ) -> Result<R> {
        let mut f = Some(f);
        let found = self.index.peek_with(key, |entry, ()| {
            let chain = &entry.0;
            let guard = crossbeam_epoch::pin();
            match chain.read_at(at, &guard) {
                ReadAt::Found(node) => Ok(f.take().map(|f| f(node.value.as_ref()))),
                ReadAt::Absent => Ok(None),
                ReadAt::Pruned => Err(Error::HistoryPruned {
                    key: key.to_string(),
                    requested: at,
                }),
            }
        });
        match (found, f) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(Some(r))), _) => Ok(r),
            (_, Some(f)) => Ok(f(None)),
            // `f` is taken only when the read found a version and returned
            // its result above.
            (_, None) => Err(Error::InvalidArgument("read_with: value consumed".into())),
        }
    }

    /// Commit version of the newest installed version of `key` (0 if none),
    /// visible or not. Used by commit validation under the commit lock.
    pub(crate) fn head_commit(&self, key: &Key) -> Version {
        self.index
            .peek_with(key, |entry, ()| entry.0.newest_commit())
            .unwrap_or(0)
    }

    /// The chain of `key`, if the key was ever written.
    pub(crate) fn chain(&self, key: &Key) -> Option<Arc<VersionChain>> {
        self.index.peek_with(key, |entry, ()| Arc::clone(&entry.0))
    }

    /// Create the chain of `key`, absent from both indexes (the caller just
    /// looked): in the point index now, on its family's pending list for
    /// the ordered index (see the module docs). Only committers holding the
    /// commit lock call this, before they publish the commit.
    pub(crate) fn create_chain(&self, key: &Key) -> Arc<VersionChain> {
        let chain = Arc::new(VersionChain::new(key.clone()));
        // The commit lock serialises creators, so the insert cannot race.
        if let Err((existing, ())) = self.index.insert_sync(ByKey(Arc::clone(&chain)), ()) {
            return existing.0;
        }
        self.pending.push(key, Arc::clone(&chain));
        chain
    }

    /// Merge the pending keys of `prefix`'s family into the ordered index.
    /// Called before walking that family in the skip list.
    fn merge_family_of(&self, prefix: &Key) {
        let family = (prefix.ns.clone(), prefix.scope, prefix.tag);
        self.pending.merge_family(&family, &self.ordered);
    }

    /// Recovery only: an empty store whose point index has room for
    /// `keys` keys without growing.
    pub(crate) fn with_capacity(keys: usize) -> Store {
        Store {
            index: HashIndex::with_capacity_and_hasher(keys, Hasher::default()),
            ordered: SkipMap::new(),
            pending: PendingKeys::default(),
        }
    }

    /// Recovery only: the chain of `key`, and whether this call created it
    /// (empty) as [`Store::create_chain`] does: in the point index, and on
    /// its family's pending list for the ordered index, which is built
    /// lazily, by the first scan of the family or the first walk of all
    /// keys (GC, checkpoint), not while the database is reopening. One
    /// probe of the point index either way. No reader sees the store
    /// before recovery is done, and recovery installs on one thread.
    pub(crate) fn recover_chain(&self, key: Key) -> (Arc<VersionChain>, bool) {
        // Built before the probe: the index holds the chain itself (which
        // keeps the key); an existing key drops it again.
        let chain = Arc::new(VersionChain::new(key));
        match self.index.entry_sync(ByKey(chain)) {
            scc::hash_index::Entry::Occupied(found) => (Arc::clone(&found.key().0), false),
            scc::hash_index::Entry::Vacant(vacant) => {
                let chain = Arc::clone(&vacant.key().0);
                self.pending.push(chain.key(), Arc::clone(&chain));
                vacant.insert_entry(());
                (chain, true)
            }
        }
    }

    /// Keys with `prefix` (same ns/scope/tag, user bytes starting with
    /// `prefix.user`), strictly after `after` if given, in key order, as of
    /// `at`; deleted keys skipped; at most `limit`.
    pub(crate) fn scan_at(
        &self,
        prefix: &Key,
        after: Option<&Key>,
        at: Version,
        limit: usize,
    ) -> Result<Vec<(Key, Value, Version)>> {
        let guard = crossbeam_epoch::pin();
        let mut out = Vec::new();
        for (key, chain) in self.range(prefix, after) {
            if out.len() >= limit {
                break;
            }
            if let (Some(v), ver) = resolve(chain.read_at(at, &guard), &key, at)? {
                out.push((key, v, ver));
            }
        }
        Ok(out)
    }

    /// Newest installed commit among keys with `prefix` (0 if none). Used by
    /// serializable validation of scanned ranges.
    pub(crate) fn newest_commit_in(&self, prefix: &Key) -> (Version, Option<Key>) {
        let mut best = (0, None);
        for (key, chain) in self.range(prefix, None) {
            let c = chain.newest_commit();
            if c > best.0 {
                best = (c, Some(key));
            }
        }
        best
    }

    fn range<'a>(
        &'a self,
        prefix: &'a Key,
        after: Option<&Key>,
    ) -> impl Iterator<Item = (Key, Arc<VersionChain>)> + 'a {
        self.merge_family_of(prefix);
        let start = match after {
            Some(a) if a >= prefix => Bound::Excluded(a.clone()),
            _ => Bound::Included(prefix.clone()),
        };
        self.ordered
            .range::<Key, _>((start, Bound::Unbounded))
            .take_while(move |e| e.key().key().has_prefix(prefix))
            .map(|e| (e.key().key().clone(), Arc::clone(&e.key().0)))
    }

    /// Visit every chain in key order: every key created before the call,
    /// and maybe some created during it.
    pub(crate) fn for_each_chain(&self, mut f: impl FnMut(&Key, &VersionChain)) {
        self.pending.merge_all(&self.ordered);
        for e in self.ordered.iter() {
            f(e.key().key(), &e.key().0);
        }
    }

    /// Number of keys ever written.
    pub(crate) fn key_count(&self) -> usize {
        self.index.len()
    }
}

fn resolve(read: ReadAt<'_>, key: &Key, at: Version) -> Result<Versioned> {
    match read {
        ReadAt::Found(node) => Ok((node.value.clone(), node.commit)),
        ReadAt::Absent => Ok((None, 0)),
        ReadAt::Pruned => Err(Error::HistoryPruned {
            key: key.to_string(),
            requested: at,
        }),
    }
}
