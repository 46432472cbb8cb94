//! Group commit: strict committers share one fdatasync, and each sleeping
//! committer is woken exactly once, when its own version is durable (or to
//! lead the next sync).
//!
//! Protocol (all under `state`'s lock except the flush itself):
//! - a committer whose version is not yet durable either leads (no leader
//!   is running: it sets `leading`, flushes and syncs everything buffered,
//!   which includes its own record) or registers as a waiter and parks;
//! - after each sync the leader wakes every waiter whose version is now
//!   durable; if others are still waiting it syncs again (up to
//!   `LEAD_ROUNDS_MAX` syncs in a row), else it clears `leading` and wakes
//!   the oldest remaining waiter, if any, to lead the next sync; after a
//!   failed flush it wakes every waiter (each then meets the failure
//!   itself).
//!
//! Invariants (the loom model `group_commit_*` checks them):
//! - a waiter is only ever registered while `leading` is set, and a leader
//!   clears it only in the same critical section that wakes a next leader
//!   (if anyone waits), and a woken next leader that finds its version
//!   already durable (a flush outside the group: checkpointer, batched or
//!   async flusher) passes the lead on before returning: no waiter is left
//!   asleep with nobody to wake it (model
//!   `group_commit_survives_a_flush_outside_the_group`; without the
//!   hand-on, 6-12 committers hung in 4 of 17 runs of the durability
//!   bench);
//! - a committer returns only once `durable >= version`.
//!
//! Why not a condition variable: `notify_all` wakes all 63 waiters of a
//! 64-committer group after every sync, although only those in the synced
//! group can return; the rest go back to sleep. On 2 cores those context
//! switches held a group to about 12 commits per sync. (`parking_lot`'s
//! `notify_all` is worse still: it requeues the waiters onto the mutex,
//! which then wakes them one at a time.)

#[cfg(loom)]
use loom::{sync::Mutex, thread};
#[cfg(not(loom))]
use std::{sync::Mutex, thread};

use std::ops::DerefMut;
use std::sync::PoisonError;

use crate::error::Result;
use crate::sync::{AtomicU64, Ordering};
use crate::types::Version;

/// Syncs one leader runs in a row while committers keep waiting.
const LEAD_ROUNDS_MAX: u32 = 16;

/// Group commit state of one WAL.
pub(crate) struct GroupCommit {
    /// Newest version whose WAL record is synced.
    durable: AtomicU64,
    state: Mutex<GroupState>,
    /// Syncs one leader runs in a row ([`LEAD_ROUNDS_MAX`]; the loom models
    /// lower it so that they reach the hand-over to a next leader).
    pub(crate) lead_rounds_max: u32,
    /// Loom only: a planted bug (the leader does not wake a next leader),
    /// which the model must catch as a deadlock.
    #[cfg(loom)]
    pub(crate) planted_no_next_leader: bool,
}

#[derive(Default)]
struct GroupState {
    /// A leader is flushing and syncing.
    leading: bool,
    /// Parked committers (at most one per committing thread).
    waiters: Vec<Waiter>,
}

struct Waiter {
    /// The committer's own version: unique, so it names the waiter.
    version: Version,
    thread: thread::Thread,
}

impl GroupCommit {
    /// Group commit over a WAL synced through `durable`.
    pub(crate) fn new(durable: Version) -> GroupCommit {
        GroupCommit {
            durable: AtomicU64::new(durable),
            state: Mutex::new(GroupState::default()),
            lead_rounds_max: LEAD_ROUNDS_MAX,
            #[cfg(loom)]
            planted_no_next_leader: false,
        }
    }

    /// Newest version whose record is synced.
    pub(crate) fn durable(&self) -> Version {
        self.durable.load(Ordering::Acquire)
    }

    /// Record that every version up to `version` is synced. Called by the
    /// flush (which holds the WAL writer, so calls are ordered).
    pub(crate) fn advance(&self, version: Version) {
        self.durable.store(version, Ordering::Release);
    }

    /// Return once `version` (already buffered) is durable. `flush` writes
    /// and syncs everything buffered so far and calls [`GroupCommit::advance`];
    /// it runs on whichever committer leads.
    pub(crate) fn sync_through(
        &self,
        version: Version,
        flush: impl Fn() -> Result<()>,
    ) -> Result<()> {
        if self.durable() >= version {
            return Ok(());
        }
        loop {
            let mut state = self.lock();
            if self.durable() >= version {
                // A flush outside the group (checkpointer, batched or
                // async flusher) may have covered this version. If this
                // thread was woken to lead, others may still wait: pass
                // the lead on rather than leave them with no leader.
                let next = if state.leading {
                    None
                } else {
                    take_next_leader(&mut state)
                };
                drop(state);
                if let Some(thread) = next {
                    thread.unpark();
                }
                return Ok(());
            }
            if state.leading {
                state.waiters.push(Waiter {
                    version,
                    thread: thread::current(),
                });
                drop(state);
                self.park_until_woken(version);
                continue;
            }
            state.leading = true;
            drop(state);
            return self.lead(flush);
        }
    }

    /// Lead syncs, at most [`LEAD_ROUNDS_MAX`] in a row: after each, wake
    /// the waiters it made durable, and sync again at once if others are
    /// waiting. The leader is already on a CPU when its sync returns; handing
    /// the next sync to a parked waiter would first wait for that thread to
    /// be scheduled behind the ones just woken (on 2 cores with 64
    /// committers, that wait was longer than the sync itself). The bound
    /// keeps one committer from leading, and waiting, forever.
    fn lead(&self, flush: impl Fn() -> Result<()>) -> Result<()> {
        for round in 1.. {
            let result = flush();
            let again = result.is_ok() && round < self.lead_rounds_max;
            if !self.finish_round(result.is_err(), again) {
                return result;
            }
        }
        Ok(())
    }

    /// Park until a leader has removed this waiter (`version`) from the
    /// list. `park` may return spuriously, or for an unrelated unpark
    /// token, so the list is the only evidence of a wake.
    fn park_until_woken(&self, version: Version) {
        loop {
            thread::park();
            if !self.lock().waiters.iter().any(|w| w.version == version) {
                return;
            }
        }
    }

    /// The end of one sync: wake the waiters that can return (all after a
    /// failure). If `again` and some are still waiting, keep leading and
    /// return true; otherwise clear `leading`, wake the oldest remaining
    /// waiter (first, so it is scheduled first) to lead the next sync, and
    /// return false.
    fn finish_round(&self, failed: bool, again: bool) -> bool {
        let mut state = self.lock();
        let durable = self.durable();
        let mut woken = Vec::new();
        let mut i = 0;
        while i < state.waiters.len() {
            if failed || state.waiters[i].version <= durable {
                woken.push(state.waiters.swap_remove(i).thread);
            } else {
                i += 1;
            }
        }
        let keep_leading = again && !state.waiters.is_empty();
        if !keep_leading {
            state.leading = false;
            #[cfg(loom)]
            let planted = self.planted_no_next_leader;
            #[cfg(not(loom))]
            let planted = false;
            if let Some(thread) = take_next_leader(&mut state).filter(|_| !planted) {
                woken.insert(0, thread);
            }
        }
        drop(state);
        for thread in woken {
            thread.unpark();
        }
        keep_leading
    }

    fn lock(&self) -> impl DerefMut<Target = GroupState> + '_ {
        // Nothing under this lock can panic half-way; a poisoned lock
        // holds a consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Take the oldest waiter off the list, to lead the next sync.
fn take_next_leader(state: &mut GroupState) -> Option<thread::Thread> {
    let i = (0..state.waiters.len()).min_by_key(|&i| state.waiters[i].version)?;
    Some(state.waiters.swap_remove(i).thread)
}
