//! [`RunningCache`]: runs known to be running, so the write paths skip
//! re-reading the run index on every transaction.
//!
//! Derived data: it only ever holds runs whose record said `Running` at
//! some version, and it starts empty. The hard part is never keeping a run
//! that has ended. `end_run` commits the new status at version `v`, then
//! raises `last_end` to `v`, then removes the run. A writer that read
//! `Running` at version `r` inserts the run, then reloads `last_end`: if it
//! is past `r` the read may predate an end, and the writer removes its own
//! insert. Whichever of the two removals runs last, a stale entry cannot
//! survive. Between the end's commit and its removal a writer may still be
//! admitted — the same window a snapshot-isolated transaction that read the
//! run record just before the end already has.
//!
//! ## The per-thread memo
//! Probing the shared set costs about as much as the rest of the facade's
//! work on a put, so each thread remembers the last run it found there,
//! with the cache's `removals` count read *before* that probe. Every
//! removal from the set bumps `removals` *after* removing. The memo is
//! used only while `removals` still reads the remembered count. It cannot
//! outlive a removal: if a removal's bump came before the count was read
//! (the count read sees the bump), the removal happened before the probe
//! and the probe did not find the run, so nothing was remembered; otherwise
//! the bump comes after the count was read and the next check sees a new
//! count. So the memo answers `true` only where the shared set would have.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use rewinddb_engine::{RunId, Version};

/// Runs known to be running.
pub(crate) struct RunningCache {
    // foldhash, as the engine's key index: this probe is on every write.
    running: scc::HashIndex<RunId, (), foldhash::fast::RandomState>,
    /// Highest commit version of an `end_run`.
    last_end: AtomicU64,
    /// Removals from `running` so far (see the module docs).
    removals: AtomicU64,
    /// Tells this cache's memos from another database's in the same thread.
    id: u64,
}

/// What a thread last found in a cache: `(cache id, run, removals)`.
type Memo = Option<(u64, RunId, u64)>;

thread_local! {
    static MEMO: Cell<Memo> = const { Cell::new(None) };
}

impl Default for RunningCache {
    fn default() -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        RunningCache {
            running: scc::HashIndex::default(),
            last_end: AtomicU64::new(0),
            removals: AtomicU64::new(0),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }
}

impl RunningCache {
    /// True if `run` is known to be running.
    pub(crate) fn contains(&self, run: RunId) -> bool {
        let removals = self.removals.load(Ordering::SeqCst);
        let memo = Some((self.id, run, removals));
        if MEMO.get() == memo {
            return true;
        }
        if !self.running.contains(&run) {
            return false;
        }
        MEMO.set(memo);
        true
    }

    /// Remember `run` as running, as read at version `read_at`.
    pub(crate) fn admit(&self, run: RunId, read_at: Version) {
        if self.running.contains(&run) {
            return;
        }
        let _ = self.running.insert_sync(run, ());
        if self.last_end.load(Ordering::SeqCst) > read_at {
            self.remove(run);
        }
    }

    /// `run` ended in the commit at `version`.
    pub(crate) fn ended(&self, run: RunId, version: Version) {
        self.last_end.fetch_max(version, Ordering::SeqCst);
        self.remove(run);
    }

    /// Remove `run`, then invalidate every thread's memo.
    fn remove(&self, run: RunId) {
        self.running.remove_sync(&run);
        self.removals.fetch_add(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memo_dies_with_its_run_and_stays_with_its_cache() {
        let (a, b) = (RunningCache::default(), RunningCache::default());
        let run = RunId::new();
        a.admit(run, 1);
        assert!(a.contains(run));
        // The memo now names `run` in `a`: `b` must not answer from it.
        assert!(!b.contains(run));
        assert!(a.contains(run));
        a.ended(run, 2);
        assert!(!a.contains(run));
    }

    #[test]
    fn an_admission_racing_an_end_is_undone_and_forgotten() {
        let cache = RunningCache::default();
        let run = RunId::new();
        cache.admit(run, 1);
        assert!(cache.contains(run));
        cache.ended(run, 5);
        // A writer that read `Running` at version 3, before the end at 5.
        cache.admit(run, 3);
        assert!(!cache.contains(run));
    }
}
