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

use std::sync::atomic::{AtomicU64, Ordering};

use rewinddb_engine::{RunId, Version};

/// Runs known to be running.
#[derive(Default)]
pub(crate) struct RunningCache {
    // foldhash, as the engine's key index: this probe is on every write.
    running: scc::HashIndex<RunId, (), foldhash::fast::RandomState>,
    /// Highest commit version of an `end_run`.
    last_end: AtomicU64,
}

impl RunningCache {
    /// True if `run` is known to be running.
    pub(crate) fn contains(&self, run: RunId) -> bool {
        self.running.contains(&run)
    }

    /// Remember `run` as running, as read at version `read_at`.
    pub(crate) fn admit(&self, run: RunId, read_at: Version) {
        if self.running.contains(&run) {
            return;
        }
        let _ = self.running.insert_sync(run, ());
        if self.last_end.load(Ordering::SeqCst) > read_at {
            self.running.remove_sync(&run);
        }
    }

    /// `run` ended in the commit at `version`.
    pub(crate) fn ended(&self, run: RunId, version: Version) {
        self.last_end.fetch_max(version, Ordering::SeqCst);
        self.running.remove_sync(&run);
    }
}
