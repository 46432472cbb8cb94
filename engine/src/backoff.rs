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

use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::config::RetryPolicy;

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
pub(crate) fn wait_before_begin() {
    let until = BACKOFF
        .try_with(|cell| {
            let state = cell.get();
            // Most begins follow no conflict: only read.
            if state.until.is_some() {
                cell.set(ThreadBackoff {
                    until: None,
                    ..state
                });
            }
            state.until
        })
        .ok()
        .flatten();
    if let Some(until) = until {
        wait_until(until);
    }
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
