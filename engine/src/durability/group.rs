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
//!   itself);
//! - before each sync, the leader gathers: it offers the lead and parks
//!   for at most a quarter of the last sync's duration (1 ms at most),
//!   until as many committers wait as that sync left waiting plus woke;
//!   the committer that completes that group (or any, once the allowance
//!   is over) takes the offered lead and syncs at once (it is on a CPU;
//!   the parked leader would first have to be scheduled). On timeout the
//!   leader takes its offer back if nobody took it. A leader
//!   whose offer was taken waits (or returns) like any committer;
//! - "wake" is: take the waiter off `waiters`, then unpark it. The leader
//!   unparks only the first (the next leader, if any) and leaves the rest
//!   in `to_wake`, in the same critical section; every committer that sees
//!   itself off `waiters` unparks up to `RELAY_FANOUT` of `to_wake` (a
//!   wake-up tree), so the next sync does not wait for one futex call per
//!   waiter on the leader's thread.
//!
//! Why gather: with one sync in flight at a time, a committer woken by
//! sync k commits again while sync k+1 (already started for the others)
//! runs, so it waits for k+2. Without gathering, closed-loop committers
//! split into two halves that alternate, and N of them reach at most N/2
//! commits per sync (measured: 32-34 per sync with 64 committers whenever
//! the sync is slow enough for them all to come back during it). With
//! it, the durability bench measured 42-50 per sync on the same runs. It
//! costs idle disk time, so it pays only when the committers come back
//! well within a sync: on a fast flush and few cores it is about even.
//!
//! How far any group commit can go, with one sync in flight at a time
//! (a device flush covers everything written before it, and flushes are
//! serialised): N committers in a closed loop, each sync taking at least
//! `S`, and a woken committer needing at least `w` of CPU (a wake-up and a
//! context switch) on one of `c` cores before its next record is buffered.
//! Call a commit "quick" if its committer was in the previous sync and
//! came back in the gap before the next one starts. Over K syncs with A
//! quick commits, each committer moves on by one sync per quick commit
//! and by at least two otherwise, so the commits number at most
//! (N·K + A)/2, while the time is at least K·S + A·w/c (the gaps must
//! hold the quick committers' CPU). With x = A/K the rate is at most
//! ((N + x)/2) / (S + x·w/c), which is largest at x = 0 or x = N:
//! `max(N/(2S), N/(S + N·w/c))`. Against the 1-thread rate 1/S that is
//! `max(N/2, N·S/(S + N·w/c))`. On this project's 2-core VM, S is about
//! 170-220 us and w about 3.5 us, which caps 64 committers at about
//! 38-43x the 1-thread rate, below the 50x target of issue 3; the
//! durability bench prints this ceiling from the same run. A 50x ratio
//! needs S >= 114·w (about 0.4 ms at w = 3.5 us) and gathering. The
//! bound is generous: it takes `S` to be the same for one record and for a
//! group, while on this disk a 5 KB sync (a 33-commit group) takes about
//! 1.7x a 150-byte one (BENCHMARKS.md, W8 notes).
//!
//! Invariants (the loom models `group_commit_*` check them):
//! - a waiter is only ever registered while `leading` is set, and a leader
//!   clears it only in the same critical section that wakes a next leader
//!   (if anyone waits), and a woken next leader that finds its version
//!   already durable (a flush outside the group: checkpointer, batched or
//!   async flusher) passes the lead on before returning: no waiter is left
//!   asleep with nobody to wake it (model
//!   `group_commit_survives_a_flush_outside_the_group`; without the
//!   hand-on, 6-12 committers hung in 4 of 17 runs of the durability
//!   bench);
//! - `leading` stays set while the lead is on offer, and exactly one
//!   thread leaves the offer: the taker (who then leads) or the parked
//!   leader on its timeout (who then syncs): someone always syncs for the
//!   waiters (model `group_commit_hands_the_lead_to_the_committer_completing_a_gather`);
//! - `to_wake` is only added to together with unparking one thread taken
//!   off `waiters` in that critical section, and that thread relays once
//!   it sees itself off the list: every relay takes up to two entries and
//!   each entry taken belongs to a commit that relays (or already did), so
//!   `to_wake` always drains;
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
use std::time::Duration;

use crate::error::Result;
use crate::sync::{AtomicU64, Ordering};
use crate::types::Version;

/// Syncs one leader runs in a row while committers keep waiting.
const LEAD_ROUNDS_MAX: u32 = 16;

/// Committers each woken committer unparks in turn (a wake-up tree).
const RELAY_FANOUT: usize = 2;

/// A leader gathers committers for at most 1/`GATHER_SHARE` of its last
/// sync's duration before the next sync ([`GroupCommit::gather`]), and
/// never longer than `GATHER_MAX` (a sync stalled for seconds says nothing
/// about how soon committers come back).
const GATHER_SHARE: u32 = 4;
const GATHER_MAX: Duration = Duration::from_millis(1);

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
    /// What the last sync tells the next leader to gather, if anything.
    gather: Option<Gather>,
    /// The lead, on offer while its leader gathers: the committer that
    /// completes the group takes it and syncs at once.
    offer: Option<Offer>,
    /// Names offers, so a leader knows whether its own was taken.
    offers_made: u64,
    /// Committers already taken off `waiters` (free to return) but not yet
    /// unparked: each committer that finds itself off the list unparks up
    /// to [`RELAY_FANOUT`] of them, so a leader wakes one thread and goes
    /// on to its next sync instead of making one futex call per waiter.
    to_wake: Vec<thread::Thread>,
}

/// The lead on offer ([`GroupCommit::gather`]).
struct Offer {
    /// Which offer ([`GroupState::offers_made`]).
    id: u64,
    /// The gather it was made for: the committer that completes it takes
    /// the lead, as does any committer once its allowance is over, so that
    /// the sync need not wait for the parked leader to be scheduled.
    gather: Gather,
    /// The gathering leader, to be told that its lead was taken.
    holder: thread::Thread,
}

impl Offer {
    /// The committer arriving now takes the lead.
    fn taken_by_next(&self, waiting: usize) -> bool {
        self.gather.done(waiting + 1)
    }
}

/// Left by the end of a sync for the next one ([`GroupCommit::gather`]).
#[derive(Clone, Copy)]
struct Gather {
    /// Waiters to wait for: those the sync left waiting plus those it woke.
    /// (When the lead passes on, the old leader's next commit replaces the
    /// new leader among the expected, so the count is the same.)
    until: usize,
    /// Longest wait: 1/[`GATHER_SHARE`] of that sync's duration.
    allowance: Duration,
    /// When that sync ended: a hint older than its allowance is stale.
    ended: Stopwatch,
}

impl Gather {
    /// What is left of the allowance (`polls`: see [`Stopwatch::left`]).
    fn left(&self, polls: u32) -> Duration {
        self.ended.left(self.allowance, polls)
    }

    /// Complete with `waiting` waiters, or over.
    fn done(&self, waiting: usize) -> bool {
        waiting >= self.until || self.left(0).is_zero()
    }
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
                if state
                    .offer
                    .as_ref()
                    .is_some_and(|o| o.taken_by_next(state.waiters.len()))
                {
                    // This commit completes the group the leader is
                    // gathering (or comes after its allowance): take the
                    // lead and sync now, rather than wait for the parked
                    // leader to be scheduled.
                    let holder = state.offer.take().map(|o| o.holder);
                    drop(state);
                    if let Some(holder) = holder {
                        holder.unpark();
                    }
                    match self.lead(&flush, false) {
                        Some(result) => return result,
                        None => continue,
                    }
                }
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
            match self.lead(&flush, true) {
                Some(result) => return result,
                // The lead was taken while gathering: wait for the sync
                // like any committer (or return, if it already covered us).
                None => continue,
            }
        }
    }

    /// Lead syncs, at most [`LEAD_ROUNDS_MAX`] in a row: after each, wake
    /// the waiters it made durable, and sync again if others are waiting.
    /// The leader is already on a CPU when its sync returns; handing the
    /// next sync to a parked waiter would first wait for that thread to be
    /// scheduled behind the ones just woken (on 2 cores with 64 committers,
    /// that wait was longer than the sync itself). The bound keeps one
    /// committer from leading, and waiting, forever.
    ///
    /// Before each sync the leader briefly gathers (see
    /// [`GroupCommit::gather`]): without it, committers woken by one sync
    /// come back while the next is already running, so two halves of the
    /// committers alternate and a sync covers at most half of them.
    /// `gather_first`: gather before the first sync too (not when this
    /// thread just took an offered lead: its group is complete). Returns
    /// `None` when another committer took the lead while this one gathered.
    fn lead(&self, flush: &impl Fn() -> Result<()>, gather_first: bool) -> Option<Result<()>> {
        for round in 1.. {
            if (round > 1 || gather_first) && !self.gather() {
                return None;
            }
            let started = Stopwatch::start();
            let result = flush();
            let took = started.elapsed();
            let again = result.is_ok() && round < self.lead_rounds_max;
            if !self.finish_round(result.is_err(), again, took) {
                return Some(result);
            }
        }
        Some(Ok(()))
    }

    /// Before a sync: offer the lead and park (at most the allowance)
    /// until as many committers wait as the last sync expects back: those
    /// it left waiting plus those it woke, who in a busy system commit
    /// again at once. The committer that completes that group takes the
    /// lead and syncs at once: it is on a CPU, while a parked leader would
    /// first wait to be scheduled behind the committers just woken. On
    /// timeout the leader takes its offer back and syncs whatever came.
    /// The disk idles meanwhile, so the allowance is a fraction
    /// ([`GATHER_SHARE`]) of the last sync: a group that doubles pays it
    /// back many times; committers that do not come back cost the waiting
    /// ones at most that fraction of a sync in latency.
    ///
    /// Returns false if the lead was taken (this thread no longer leads).
    fn gather(&self) -> bool {
        let mut state = self.lock();
        let Some(hint) = state.gather.take() else {
            return true;
        };
        if hint.done(state.waiters.len()) {
            return true;
        }
        state.offers_made += 1;
        let id = state.offers_made;
        state.offer = Some(Offer {
            id,
            gather: hint,
            holder: thread::current(),
        });
        let mut polls = 0u32;
        loop {
            let left = hint.left(polls);
            drop(state);
            park_timeout(left);
            polls += 1;
            state = self.lock();
            if state.offer.as_ref().is_none_or(|o| o.id != id) {
                return false;
            }
            if hint.left(polls).is_zero() {
                state.offer = None;
                return true;
            }
        }
    }

    /// Park until a leader has removed this waiter (`version`) from the
    /// list. `park` may return spuriously, or for an unrelated unpark
    /// token, so the list is the only evidence of a wake.
    fn park_until_woken(&self, version: Version) {
        loop {
            thread::park();
            let mut state = self.lock();
            if !state.waiters.iter().any(|w| w.version == version) {
                // Seen off the list in the same lock hold as the relay
                // entries pushed with that removal: pass the wake on.
                let from = state.to_wake.len().saturating_sub(RELAY_FANOUT);
                let relay: Vec<_> = state.to_wake.drain(from..).collect();
                drop(state);
                for thread in relay {
                    thread.unpark();
                }
                return;
            }
        }
    }

    /// The end of one sync (which took `took`): wake the waiters that can
    /// return (all after a failure) and leave the next sync a gather hint.
    /// If `again` and some are still waiting, keep leading and return true;
    /// otherwise clear `leading`, wake the oldest remaining waiter (first,
    /// so it is scheduled first) to lead the next sync, and return false.
    fn finish_round(&self, failed: bool, again: bool, took: Duration) -> bool {
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
        state.gather = (!failed).then(|| Gather {
            until: state.waiters.len() + woken.len(),
            allowance: (took / GATHER_SHARE).min(GATHER_MAX),
            ended: Stopwatch::start(),
        });
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
        // Unpark the first (the next leader, if any) here; the rest are
        // unparked by the committers woken before them.
        let mut woken = woken.into_iter();
        let first = woken.next();
        state.to_wake.extend(woken);
        drop(state);
        if let Some(thread) = first {
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

/// Times syncs and gathers. Under loom, time does not exist: a sync takes
/// no time and a gather polls at most twice, which is enough for the
/// models to interleave committers with it.
#[derive(Clone, Copy)]
struct Stopwatch {
    #[cfg(not(loom))]
    started: std::time::Instant,
}

impl Stopwatch {
    fn start() -> Stopwatch {
        Stopwatch {
            #[cfg(not(loom))]
            started: std::time::Instant::now(),
        }
    }

    fn elapsed(&self) -> Duration {
        #[cfg(not(loom))]
        return self.started.elapsed();
        #[cfg(loom)]
        Duration::ZERO
    }

    /// What is left of `allowance` after `polls` polls (zero: over).
    fn left(&self, allowance: Duration, polls: u32) -> Duration {
        #[cfg(not(loom))]
        {
            let _ = polls;
            allowance.saturating_sub(self.started.elapsed())
        }
        #[cfg(loom)]
        {
            let _ = allowance;
            if polls < 2 {
                Duration::from_nanos(1)
            } else {
                Duration::ZERO
            }
        }
    }
}

/// Park for at most `timeout`. Loom has no timed park: a yield stands in,
/// and the gather loop bounds the polls instead.
fn park_timeout(timeout: Duration) {
    #[cfg(not(loom))]
    thread::park_timeout(timeout);
    #[cfg(loom)]
    {
        let _ = timeout;
        thread::yield_now();
    }
}
