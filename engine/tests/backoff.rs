//! Guards the contention backoff (`RetryPolicy`, `engine/src/backoff.rs`):
//! a commit that loses a conflict returns at once, and the same thread's
//! next `begin` waits until the backoff has passed; other threads and later
//! begins do not wait; `backoff_min: 0` turns it off.
//!
//! The backoffs here are hundreds of milliseconds, so that a wait shows as
//! a lower bound on elapsed time (which no load can break) and its absence
//! as an upper bound with a wide margin.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use rewinddb_engine::{
    Engine, EngineConfig, Isolation, Key, Namespace, RetryPolicy, RunId, Scope, TypeTag,
};

const BACKOFF: Duration = Duration::from_millis(400);

fn engine(backoff_min: Duration) -> Engine {
    let config = EngineConfig {
        retry: RetryPolicy {
            attempts: 4,
            backoff_min,
            backoff_max: backoff_min,
        },
        ..EngineConfig::default()
    };
    Engine::open_in_memory(config).unwrap()
}

fn key() -> Key {
    Key::new(
        Namespace::new("backoff").unwrap(),
        Scope::Shared,
        TypeTag::Kv,
        "k",
    )
}

/// Two transactions of this thread write `key`; the second to commit loses.
/// Returns how long the losing commit took.
fn lose_a_conflict(engine: &Engine) -> Duration {
    let mut loser = engine.begin(RunId::NIL, Isolation::Snapshot);
    let mut winner = engine.begin(RunId::NIL, Isolation::Snapshot);
    winner.put(key(), 1).unwrap();
    winner.commit().unwrap();
    loser.put(key(), 2).unwrap();
    let t = Instant::now();
    let err = loser.commit().unwrap_err();
    assert!(err.is_conflict(), "{err}");
    t.elapsed()
}

fn time_a_begin(engine: &Engine) -> Duration {
    let t = Instant::now();
    drop(engine.begin(RunId::NIL, Isolation::Snapshot));
    t.elapsed()
}

#[test]
fn the_losers_next_begin_waits_and_only_that_one() {
    let engine = engine(BACKOFF);
    let commit = lose_a_conflict(&engine);
    assert!(
        commit < BACKOFF / 2,
        "the conflict itself returned in {commit:?}"
    );
    let first = time_a_begin(&engine);
    // Jittered in the upper half of the backoff.
    assert!(first >= BACKOFF / 2 - Duration::from_millis(1), "{first:?}");
    let second = time_a_begin(&engine);
    assert!(second < BACKOFF / 4, "the wait was used up, yet {second:?}");
}

#[test]
fn other_threads_and_late_begins_do_not_wait() {
    let engine = engine(BACKOFF);
    lose_a_conflict(&engine);
    let other = std::thread::scope(|s| s.spawn(|| time_a_begin(&engine)).join().unwrap());
    assert!(other < BACKOFF / 4, "another thread waited {other:?}");
    // This thread, once the backoff has passed anyway: no wait left.
    std::thread::sleep(BACKOFF);
    let late = time_a_begin(&engine);
    assert!(late < BACKOFF / 4, "{late:?}");
}

#[test]
fn a_zero_minimum_turns_the_backoff_off() {
    let engine = engine(Duration::ZERO);
    for _ in 0..3 {
        lose_a_conflict(&engine);
        let begin = time_a_begin(&engine);
        assert!(begin < BACKOFF / 4, "{begin:?}");
    }
}

#[test]
fn engine_transaction_backs_off_between_attempts_and_gives_up_after_them() {
    let engine = engine(Duration::from_millis(20));
    let mut attempts = 0;
    let t = Instant::now();
    let err = engine
        .transaction(RunId::NIL, Isolation::Snapshot, |txn| {
            attempts += 1;
            // Someone else commits the key after this transaction began.
            let mut other = engine.begin(RunId::NIL, Isolation::Snapshot);
            other.put(key(), attempts)?;
            other.commit()?;
            txn.put(key(), 0)
        })
        .unwrap_err();
    assert!(
        matches!(
            err,
            rewinddb_engine::Error::RetriesExhausted { attempts: 4, .. }
        ),
        "{err:?}"
    );
    assert_eq!(attempts, 4);
    // Three waits of at least half the backoff between the four attempts.
    assert!(
        t.elapsed() >= Duration::from_millis(29),
        "{:?}",
        t.elapsed()
    );
}
