//! Group commit: strict committers share one fdatasync, and each sleeping
//! committer is woken exactly once, when its own version is durable (or to
//! lead the next sync).
//!
//! Protocol (all under `state`'s lock except the flush itself):
//! - a committer whose version is not yet durable either leads (no leader
//!   is running: it sets `leading`, flushes and syncs everything buffered,
//!   which includes its own record) or registers as a waiter and parks;
//! - a leader that finishes clears `leading`, then wakes every waiter whose
//!   version is now durable and, if any waiter is left, the oldest one, to
//!   lead the next sync; after a failed flush it wakes every waiter (each
//!   then meets the failure itself).
//!
//! Invariants (the loom model `group_commit_*` checks them):
//! - a waiter is only ever registered while `leading` is set, and a leader
//!   always runs the wake step after clearing it: no waiter is left asleep
//!   with nobody to wake it;
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

/// Group commit state of one WAL.
pub(crate) struct GroupCommit {
    /// Newest version whose WAL record is synced.
    durable: AtomicU64,
    state: Mutex<GroupState>,
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
        loop {
            if self.durable() >= version {
                return Ok(());
            }
            let mut state = self.lock();
            if self.durable() >= version {
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
            // No yield here for stragglers: the waiters that buffered
            // during the previous sync are all in this one, and those it
            // just released buffer during this sync and join the next.
            let result = flush();
            self.finish_leading(result.is_err());
            result?;
        }
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

    /// The leader's last step: clear `leading` and wake the waiters that
    /// can return, plus one to lead the next sync (all after a failure).
    fn finish_leading(&self, failed: bool) {
        let mut state = self.lock();
        state.leading = false;
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
        let next_leader = (0..state.waiters.len()).min_by_key(|&i| state.waiters[i].version);
        #[cfg(loom)]
        let next_leader = next_leader.filter(|_| !self.planted_no_next_leader);
        if let Some(i) = next_leader {
            woken.push(state.waiters.swap_remove(i).thread);
        }
        drop(state);
        for thread in woken {
            thread.unpark();
        }
    }

    fn lock(&self) -> impl DerefMut<Target = GroupState> + '_ {
        // Nothing under this lock can panic half-way; a poisoned lock
        // holds a consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
