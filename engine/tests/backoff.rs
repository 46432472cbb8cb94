//! Guards the contention backoff (`RetryPolicy`, `engine/src/backoff.rs`):
//! a commit that loses a conflict returns at once, and the same thread's
//! next `begin` waits until the backoff has passed; other threads and later
//! begins do not wait; `backoff_min: 0` turns it off. And the priority: a
//! thread that lost 3 commits in a row gets a turn while other begins wait,
//! a turn kept too long delays them only by the bound, any end of the turn
//! releases it, and two threads on one key both finish, losing nothing.
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

/// A transaction of this thread writes `key` and loses to one committed by
/// another thread meanwhile (so this thread's only commit is the lost one).
/// Returns how long the losing commit took.
fn lose_a_conflict(engine: &Engine) -> Duration {
    let mut loser = engine.begin(RunId::NIL, Isolation::Snapshot);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut winner = engine.begin(RunId::NIL, Isolation::Snapshot);
            winner.put(key(), 1).unwrap();
            winner.commit().unwrap();
        });
    });
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

/// An engine whose waits for the priority end after `bound`.
fn engine_with_bound(bound: Duration) -> Engine {
    let config = EngineConfig {
        retry: RetryPolicy {
            attempts: 4,
            backoff_min: Duration::from_micros(1),
            backoff_max: bound,
        },
        ..EngineConfig::default()
    };
    Engine::open_in_memory(config).unwrap()
}

/// Lose three conflicts in a row on this thread, then begin: that
/// transaction holds the engine's priority.
fn begin_with_priority(engine: &Engine) -> rewinddb_engine::Transaction {
    for _ in 0..3 {
        lose_a_conflict(engine);
    }
    engine.begin(RunId::NIL, Isolation::Snapshot)
}

#[test]
fn a_thread_that_keeps_losing_gets_a_turn_while_other_begins_wait() {
    let engine = engine_with_bound(Duration::from_secs(30));
    let hold = Duration::from_millis(300);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut turn = begin_with_priority(&engine);
            tx.send(()).unwrap();
            std::thread::sleep(hold);
            turn.put(key(), 7).unwrap();
            turn.commit().unwrap();
        });
        rx.recv().unwrap();
        // This thread lost nothing: it waits for the other's turn to end.
        let waited = time_a_begin(&engine);
        assert!(waited >= hold / 2, "{waited:?}");
        assert!(waited < Duration::from_secs(20), "{waited:?}");
    });
    // The turn is over: no one waits any more.
    assert!(time_a_begin(&engine) < hold / 2);
    // The turn's own thread is not held up by its priority either:
    // `begin_with_priority` above ran its nested begins under it.
}

#[test]
fn a_priority_kept_too_long_delays_a_begin_by_the_bound_once() {
    let bound = Duration::from_millis(200);
    let engine = &engine_with_bound(bound);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        // Inside the scope: a failed assertion drops the sender, which ends
        // the holder's wait instead of leaving the scope waiting for it.
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        s.spawn(move || {
            let turn = begin_with_priority(engine);
            tx.send(()).unwrap();
            // Kept open until the other thread is done.
            let _ = done_rx.recv();
            drop(turn);
        });
        rx.recv().unwrap();
        let first = time_a_begin(engine);
        assert!(first >= bound - Duration::from_millis(1), "{first:?}");
        // The waiter cleared the stale priority: later begins do not wait.
        let second = time_a_begin(engine);
        assert!(second < bound / 2, "{second:?}");
        done_tx.send(()).unwrap();
    });
}

#[test]
fn a_turn_that_ends_in_any_way_releases_the_priority() {
    let engine = &engine_with_bound(Duration::from_secs(30));
    for end in ["rollback", "commit", "drop"] {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
            s.spawn(move || {
                let mut turn = begin_with_priority(engine);
                match end {
                    "rollback" => turn.rollback().unwrap(),
                    "commit" => {
                        turn.commit().unwrap();
                    }
                    _ => drop(turn),
                }
                tx.send(()).unwrap();
                // The finished transaction itself lives on meanwhile.
                let _ = done_rx.recv();
            });
            rx.recv().unwrap();
            let begin = time_a_begin(engine);
            assert!(begin < Duration::from_secs(10), "{end}: {begin:?}");
            done_tx.send(()).unwrap();
        });
    }
}

/// Liveness: two threads incrementing one counter through
/// `Engine::transaction` both finish every increment and none is lost.
/// The default backoff, but many attempts: the priority's turn is bounded
/// by `backoff_max` (1 ms), and on a loaded machine (CI runs this file's
/// tests in parallel, instrumented, on 2 cores) a descheduled holder can
/// lose its turn, so the default 32 attempts can run out (it did once in
/// CI). Giving up is `RetriesExhausted`, a documented outcome; losing an
/// increment or never finishing is what this test is about.
#[test]
fn two_threads_on_one_key_both_finish_every_increment() {
    const PER_THREAD: i64 = 20_000;
    let config = EngineConfig {
        retry: RetryPolicy {
            attempts: 10_000,
            ..RetryPolicy::default()
        },
        ..EngineConfig::default()
    };
    let engine = Engine::open_in_memory(config).unwrap();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..PER_THREAD {
                    engine
                        .transaction(RunId::NIL, Isolation::Snapshot, |t| {
                            let n = t.get(&key())?.and_then(|v| v.as_i64()).unwrap_or(0);
                            t.put(key(), n + 1)
                        })
                        .unwrap();
                }
            });
        }
    });
    let total = engine
        .snapshot()
        .get(&key())
        .unwrap()
        .and_then(|v| v.as_i64());
    assert_eq!(total, Some(2 * PER_THREAD));
}
