//! Contention backoff: a thread whose commit lost a conflict waits a
//! little before it begins its next transaction.
//!
//! Why: two threads read-modify-writing one hot key on two cores without
//! backoff abort each other about every other commit (W6: 37-49% aborts),
//! and every commit moves the key's lines and the commit lock's between the
//! cores. If the loser waits a few commits' time, the winner commits a
//! streak on lines its core already holds, and the loser's next attempt
//! finds it idle or aborts it in turn: measured with `examples/hot_commits`
//! (ARCHITECTURE.md, "Commits on two cores").
//!
//! The wait is the thread's, not the transaction's: `Transaction::commit`
//! records a conflict here and returns at once; the thread's next
//! [`crate::Engine::begin`] (and so every retry loop, the engine's
//! [`crate::Engine::transaction`], the primitives' and a caller's own) waits
//! until the backoff has passed since the conflict. It doubles with every
//! consecutive conflict of the thread, from `RetryPolicy::backoff_min` to
//! `backoff_max`, a uniformly drawn half to whole of it (jitter, so two
//! losers do not retry in step), and a commit that succeeds resets it. A
//! begin that comes later than the backoff does not wait at all. Waits
//! shorter than [`SPIN_MAX`] spin (a sleep of a microsecond takes tens:
//! the timer's slack), longer ones sleep.
//!
//! Backoff alone lets a loser lose for long: while it waits, the winner
//! commits on, and the loser's retry, slower on lines the winner's core
//! holds, mostly spans one of the winner's commits again (in one peer
//! harness repetition the slower of two threads made 0.14% of the
//! commits). So a thread whose last [`PRIORITY_AFTER`] commits all lost
//! takes the engine's **priority** at its next begin, if no one holds it:
//! until that transaction ends (commit, rollback or drop), every other
//! thread's begin waits, so the retry races at most the transactions
//! already in flight. A waiter gives up after `backoff_max` and clears a
//! priority still held by the same holder, so a transaction kept open
//! (or leaked) delays other begins by that much at most, once. This is
//! about progress only: validation still decides every commit.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::RetryPolicy;

/// Consecutive lost commits after which a thread's next transaction takes
/// the priority.
pub const PRIORITY_AFTER: u32 = 3;

/// Waits up to this long spin instead of sleeping.
pub const SPIN_MAX: Duration = Duration::from_micros(50);

/// Largest doubling exponent kept (2^20 x any minimum passes any sane
/// maximum; the cap keeps the shift in range).
const DOUBLINGS_MAX: u32 = 20;

#[derive(Clone, Copy, Default)]
struct ThreadBackoff {
    /// Conflicts of this thread since its last successful commit.
    conflicts: u32,
    /// Its next transaction does not begin before this.
    until: Option<Instant>,
}

thread_local! {
    static BACKOFF: Cell<ThreadBackoff> = const {
        Cell::new(ThreadBackoff { conflicts: 0, until: None })
    };
    /// This thread's priority token: nonzero, unique in the process.
    static TOKEN: u64 = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
}

static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

/// An engine's priority: 0, or the token of the thread whose transaction
/// holds it.
#[derive(Debug, Default)]
pub(crate) struct PriorityFlag(AtomicU64);

impl PriorityFlag {
    /// End the hold of the transaction that took the priority as `token`
    /// (0: it took none, nothing to do).
    #[inline]
    pub(crate) fn release(&self, token: u64) {
        if token != 0 {
            // Fails harmlessly if a waiter already cleared it (`wait_for`).
            let _ = self
                .0
                .compare_exchange(token, 0, Ordering::Release, Ordering::Relaxed);
        }
    }
}

/// Before a transaction begins on the engine whose priority is `flag`:
/// wait out this thread's backoff; then take the priority if the thread
/// keeps losing, or else wait while another thread's transaction holds
/// it (at most `policy.backoff_max`). Returns the token the transaction
/// holds the priority with, 0 if none: it must pass it to
/// [`PriorityFlag::release`] when it ends.
#[inline]
pub(crate) fn before_begin(flag: &PriorityFlag, policy: &RetryPolicy) -> u64 {
    // Most begins follow no conflict of their thread (and a wait is set
    // only with a conflict) and find no priority held: two loads.
    let conflicts = BACKOFF.try_with(|c| c.get().conflicts).unwrap_or(0);
    if conflicts == 0 && flag.0.load(Ordering::Relaxed) == 0 {
        return 0;
    }
    contended_begin(flag, policy)
}

#[cold]
#[inline(never)]
fn contended_begin(flag: &PriorityFlag, policy: &RetryPolicy) -> u64 {
    let conflicts = wait_before_begin();
    let Ok(token) = TOKEN.try_with(|t| *t) else {
        return 0;
    };
    if conflicts >= PRIORITY_AFTER
        && flag
            .0
            .compare_exchange(0, token, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    {
        return token;
    }
    wait_for(flag, token, policy.backoff_max);
    0
}

/// Wait while a thread other than `token`'s holds `flag`, at most `bound`;
/// past it, clear the flag if the same holder still has it.
fn wait_for(flag: &PriorityFlag, token: u64, bound: Duration) {
    let held = flag.0.load(Ordering::Relaxed);
    if held == 0 || held == token {
        return;
    }
    let deadline = Instant::now() + bound;
    loop {
        for _ in 0..64 {
            if flag.0.load(Ordering::Acquire) != held {
                return;
            }
            std::hint::spin_loop();
        }
        if Instant::now() >= deadline {
            let _ = flag
                .0
                .compare_exchange(held, 0, Ordering::Relaxed, Ordering::Relaxed);
            return;
        }
        // With more threads than cores the holder may be waiting for this
        // core.
        std::thread::yield_now();
    }
}

/// This thread's commit lost a conflict: set its wait before the next
/// begin.
pub(crate) fn conflicted(policy: &RetryPolicy) {
    // `try_with`: a commit during thread-local teardown simply does not
    // back off.
    let _ = BACKOFF.try_with(|cell| {
        let state = cell.get();
        let wait = jittered(backoff(policy, state.conflicts));
        cell.set(ThreadBackoff {
            conflicts: state.conflicts.saturating_add(1),
            until: Some(Instant::now() + wait),
        });
    });
}

/// This thread's commit succeeded: its next conflict backs off from the
/// minimum again.
pub(crate) fn committed() {
    let _ = BACKOFF.try_with(|cell| {
        if cell.get().conflicts != 0 {
            cell.set(ThreadBackoff::default());
        }
    });
}

/// Wait, if this thread lost a conflict less than its backoff ago.
/// Returns the thread's consecutive conflicts.
fn wait_before_begin() -> u32 {
    let (conflicts, until) = BACKOFF
        .try_with(|cell| {
            let state = cell.get();
            // Most begins follow no conflict: only read.
            if state.until.is_some() {
                cell.set(ThreadBackoff {
                    until: None,
                    ..state
                });
            }
            (state.conflicts, state.until)
        })
        .unwrap_or((0, None));
    if let Some(until) = until {
        wait_until(until);
    }
    conflicts
}

/// The backoff after `conflicts` consecutive earlier conflicts, before
/// jitter: `backoff_min` doubled that many times, at most `backoff_max`
/// (and never below `backoff_min`, even if the maximum is set below it).
fn backoff(policy: &RetryPolicy, conflicts: u32) -> Duration {
    let doubled = policy
        .backoff_min
        .saturating_mul(1 << conflicts.min(DOUBLINGS_MAX));
    doubled.min(policy.backoff_max).max(policy.backoff_min)
}

/// A duration drawn uniformly from `[full / 2, full]`.
fn jittered(full: Duration) -> Duration {
    let nanos = u64::try_from(full.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(nanos / 2..=nanos))
}

fn wait_until(until: Instant) {
    let now = Instant::now();
    let Some(left) = until.checked_duration_since(now) else {
        return;
    };
    if left > SPIN_MAX {
        std::thread::sleep(left);
        return;
    }
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(min_us: u64, max_us: u64) -> RetryPolicy {
        RetryPolicy {
            attempts: 16,
            backoff_min: Duration::from_micros(min_us),
            backoff_max: Duration::from_micros(max_us),
        }
    }

    #[test]
    fn backoff_doubles_from_the_minimum_up_to_the_maximum() {
        let p = policy(1, 10);
        let us = |c| backoff(&p, c).as_micros();
        assert_eq!([us(0), us(1), us(2), us(3), us(4)], [1, 2, 4, 8, 10]);
        assert_eq!(us(u32::MAX), 10);
        // A maximum below the minimum: the minimum.
        assert_eq!(backoff(&policy(5, 1), 3).as_micros(), 5);
        // Huge values saturate instead of overflowing.
        let huge = RetryPolicy {
            attempts: 1,
            backoff_min: Duration::MAX,
            backoff_max: Duration::MAX,
        };
        assert_eq!(backoff(&huge, 40), Duration::MAX);
    }

    #[test]
    fn jitter_stays_within_half_to_whole() {
        for _ in 0..1000 {
            let j = jittered(Duration::from_nanos(1000)).as_nanos();
            assert!((500..=1000).contains(&j), "{j}");
        }
        assert_eq!(jittered(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn a_conflict_delays_the_next_begin_once_and_a_commit_resets_the_doubling() {
        let p = policy(2_000, 1_000_000);
        conflicted(&p);
        conflicted(&p);
        // Two conflicts: the second set a wait of 2-4 ms from its time.
        let t = Instant::now();
        wait_before_begin();
        assert!(
            t.elapsed() >= Duration::from_micros(1_900),
            "{:?}",
            t.elapsed()
        );
        // The wait is used up: the next begin does not wait again.
        let state = BACKOFF.with(Cell::get);
        assert_eq!((state.conflicts, state.until), (2, None));
        committed();
        let state = BACKOFF.with(Cell::get);
        assert_eq!((state.conflicts, state.until), (0, None));
        conflicted(&p);
        let state = BACKOFF.with(Cell::get);
        assert_eq!(state.conflicts, 1);
        let left = state
            .until
            .unwrap()
            .saturating_duration_since(Instant::now());
        assert!(left <= Duration::from_millis(2), "{left:?}");
        committed();
        wait_before_begin();
    }
}
