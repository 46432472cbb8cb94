//! `Engine::transaction_locked` (a read-modify-write under the commit lock,
//! without validation): an `Err` installs nothing; its reads are the newest
//! state, so concurrent increments through it and through optimistic
//! transactions lose nothing; an optimistic transaction that read what it
//! wrote conflicts; on a durable engine its strict commits survive a power
//! loss, with the commit time it handed the closure; anything inside the
//! closure that needs the commit lock it holds (a commit, a nested locked
//! transaction, a commit-index query, a flush, a checkpoint, a close, a GC)
//! is refused with `Error::ReentrantCommitLock` instead of deadlocking, and the
//! closure's own writes still commit or roll back as it decides.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use rewinddb_engine::durability::{DataLoss, DirLoss, MemStorage};
use rewinddb_engine::{
    Durability, Engine, EngineConfig, Error, Isolation, Key, Namespace, Retention, RetryPolicy,
    RunId, Scope, TypeTag, Value,
};

fn key(user: &str) -> Key {
    Key::new(
        Namespace::new("locked").unwrap(),
        Scope::Shared,
        TypeTag::Kv,
        user,
    )
}

fn engine() -> Engine {
    let retry = RetryPolicy {
        attempts: 100_000,
        backoff_min: Duration::from_micros(1),
        backoff_max: Duration::from_micros(100),
    };
    Engine::open_in_memory(EngineConfig::default().retry(retry)).unwrap()
}

fn read_i64(txn: &mut rewinddb_engine::Transaction, k: &Key) -> i64 {
    txn.get(k).unwrap().and_then(|v| v.as_i64()).unwrap_or(0)
}

/// Add one to `k` under the commit lock; returns the value written.
fn bump_locked(engine: &Engine, run: RunId, k: &Key) -> i64 {
    let (n, _) = engine
        .transaction_locked(run, |txn| {
            let n = read_i64(txn, k) + 1;
            txn.put(k.clone(), n)?;
            Ok::<_, Error>(n)
        })
        .unwrap();
    n
}

#[test]
fn writes_commit_once_at_the_next_version_and_reads_see_own_writes() {
    let engine = engine();
    let run = RunId::new();
    let mut t = engine.begin(run, Isolation::Snapshot);
    t.put(key("a"), 1).unwrap();
    assert_eq!(t.commit().unwrap(), 1);
    let (seen, version) = engine
        .transaction_locked(run, |txn| {
            assert_eq!(txn.start_version(), 1);
            let a = read_i64(txn, &key("a"));
            txn.put(key("a"), a + 10)?;
            txn.put(key("b"), "new")?;
            Ok::<_, Error>((a, read_i64(txn, &key("a"))))
        })
        .unwrap();
    assert_eq!((seen, version), ((1, 11), 2));
    assert_eq!(engine.visible_version(), 2);
    let snap = engine.snapshot();
    assert_eq!(snap.get(&key("a")).unwrap(), Some(Value::Int(11)));
    assert_eq!(snap.get(&key("b")).unwrap(), Some(Value::from("new")));
    drop(snap);
    let commits = engine.run_commits(run).unwrap();
    assert_eq!(commits.len(), 2);
    assert_eq!(commits[1].version, 2);
    assert_eq!(
        commits[1].keys().cloned().collect::<Vec<_>>(),
        [key("a"), key("b")]
    );
    // Nothing written: no commit, the newest version comes back.
    let ((), v) = engine
        .transaction_locked(run, |txn| {
            read_i64(txn, &key("a"));
            Ok::<_, Error>(())
        })
        .unwrap();
    assert_eq!((v, engine.visible_version()), (2, 2));
    // It holds no snapshot registration afterwards.
    assert_eq!(engine.stats().live_snapshots, 0);
}

/// A locked transaction looks up no chain before installing (only the
/// chain of a key it read is at hand): a blind write of an existing key
/// must still land on that key's chain, not on a second one.
#[test]
fn a_blind_locked_write_of_an_existing_key_extends_its_chain() {
    let engine = engine();
    let run = RunId::new();
    let mut t = engine.begin(run, Isolation::Snapshot);
    t.put(key("k"), 1).unwrap();
    t.commit().unwrap();
    let ((), v) = engine
        .transaction_locked(run, |txn| {
            txn.put(key("k"), 2)?;
            txn.put(key("other"), 3)
        })
        .unwrap();
    assert_eq!(v, 2);
    assert_eq!(engine.stats().keys, 2);
    let history: Vec<_> = engine
        .history(&key("k"), v)
        .into_iter()
        .map(|(commit, _, value)| (commit, value))
        .collect();
    assert_eq!(
        history,
        [(2, Some(Value::Int(2))), (1, Some(Value::Int(1)))]
    );
    let snap = engine.snapshot();
    assert_eq!(snap.get(&key("k")).unwrap(), Some(Value::Int(2)));
    let scanned = snap.scan(&key(""), None, 10).unwrap();
    assert_eq!(scanned.len(), 2);
}

#[test]
fn an_err_from_the_closure_or_an_inner_commit_installs_nothing() {
    let engine = engine();
    let run = RunId::new();
    bump_locked(&engine, run, &key("n"));
    let before = engine.stats();
    let err = engine
        .transaction_locked(run, |txn| {
            txn.put(key("n"), 100)?;
            txn.put(key("fresh"), 1)?;
            Err::<(), _>(Error::InvalidArgument("changed its mind".into()))
        })
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    // A commit inside the closure is refused (it would deadlock), and the
    // closure's `?` passes that on: nothing installed either.
    let err = engine
        .transaction_locked(run, |txn| {
            txn.put(key("n"), 200)?;
            txn.commit()
        })
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    assert_eq!(engine.stats(), before);
    let snap = engine.snapshot();
    assert_eq!(snap.get(&key("n")).unwrap(), Some(Value::Int(1)));
    assert_eq!(snap.get(&key("fresh")).unwrap(), None);
    assert_eq!(engine.run_commits(run).unwrap().len(), 1);
    // The lock was released: the engine still commits.
    assert_eq!(bump_locked(&engine, run, &key("n")), 2);
}

#[test]
fn an_optimistic_transaction_that_read_a_key_it_writes_conflicts() {
    let engine = engine();
    let run = RunId::new();
    let mut occ = engine.begin(run, Isolation::Snapshot);
    let n = read_i64(&mut occ, &key("n"));
    occ.put(key("n"), n + 1).unwrap();
    bump_locked(&engine, run, &key("n"));
    let err = occ.commit().unwrap_err();
    assert!(err.is_conflict(), "{err}");
    let snap = engine.snapshot();
    assert_eq!(snap.get(&key("n")).unwrap(), Some(Value::Int(1)));
}

/// Threads increment one counter, half of their increments under the
/// commit lock, half as retried optimistic transactions: no increment is
/// lost, each locked increment saw a distinct value, and versions are
/// dense. A locked transaction that read at the visible version without
/// holding the lock (or an optimistic one skipping validation) loses some.
#[test]
fn concurrent_locked_and_optimistic_increments_lose_nothing() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 400;
    let engine = engine();
    let run = RunId::new();
    let counter = key("counter");
    let seen: Vec<i64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (engine, counter) = (&engine, &counter);
                s.spawn(move || {
                    let mut seen = Vec::new();
                    for i in 0..PER_THREAD {
                        if (i + t) % 2 == 0 {
                            seen.push(bump_locked(engine, run, counter));
                        } else {
                            engine
                                .transaction(run, Isolation::Snapshot, |txn| {
                                    let n = read_i64(txn, counter);
                                    txn.put(counter.clone(), n + 1)
                                })
                                .unwrap();
                        }
                    }
                    seen
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let total = (THREADS * PER_THREAD) as i64;
    let snap = engine.snapshot();
    assert_eq!(snap.get(&counter).unwrap(), Some(Value::Int(total)));
    let mut unique = seen.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(
        unique.len(),
        seen.len(),
        "two locked increments saw one value"
    );
    assert_eq!(engine.visible_version(), total as u64);
    let versions: Vec<u64> = engine
        .run_commits(run)
        .unwrap()
        .iter()
        .map(|c| c.version)
        .collect();
    assert_eq!(versions, (1..=total as u64).collect::<Vec<_>>());
}

/// Strict locked commits are acknowledged only once synced: after a power
/// loss that drops every unsynced byte, each one is there, at its version,
/// with the commit time the closure was given.
#[test]
fn strict_locked_commits_survive_a_power_loss_with_their_time() {
    let storage = Arc::new(MemStorage::new());
    let cfg = EngineConfig::default()
        .durability(Durability::Strict)
        .background_threads(false);
    let engine = Engine::open_with_storage(cfg.clone(), storage.clone()).unwrap();
    let run = RunId::new();
    let mut times = Vec::new();
    for i in 0..20i64 {
        let (ms, v) = engine
            .transaction_locked(run, |txn| {
                let ms = txn.wall_clock_ms();
                txn.put(key(&format!("k{i}")), i)?;
                txn.put(key("last"), i)?;
                Ok::<_, Error>(ms)
            })
            .unwrap();
        assert_eq!(v, i as u64 + 1);
        assert_eq!(engine.commit_time(v).unwrap(), ms);
        times.push(ms);
    }
    assert_eq!(engine.durable_version(), 20);
    let image = storage.crash_image(DataLoss::Dropped, DirLoss::Dropped, 1);
    drop(engine);
    let reopened = Engine::open_with_storage(cfg, Arc::new(image)).unwrap();
    assert_eq!(reopened.visible_version(), 20);
    let snap = reopened.snapshot();
    for i in 0..20i64 {
        assert_eq!(
            snap.get(&key(&format!("k{i}"))).unwrap(),
            Some(Value::Int(i))
        );
        assert_eq!(
            reopened.commit_time(i as u64 + 1).unwrap(),
            times[i as usize]
        );
    }
    assert_eq!(snap.get(&key("last")).unwrap(), Some(Value::Int(19)));
    assert_eq!(reopened.run_commits(run).unwrap().len(), 20);
}

/// A closed durable engine refuses a locked transaction before its
/// closure runs, and installs nothing.
#[test]
fn a_closed_durable_engine_refuses_before_the_closure_runs() {
    let storage = Arc::new(MemStorage::new());
    let cfg = EngineConfig::default().background_threads(false);
    let engine = Engine::open_with_storage(cfg, storage).unwrap();
    let run = RunId::new();
    bump_locked(&engine, run, &key("n"));
    engine.clone().close().unwrap();
    let mut ran = false;
    let err = engine
        .transaction_locked(run, |txn| {
            ran = true;
            txn.put(key("n"), 5)
        })
        .unwrap_err();
    assert!(matches!(err, Error::Poisoned(_)), "{err}");
    assert!(!ran);
    assert_eq!(engine.visible_version(), 1);
}

/// Run `f` on a thread that is given `secs` seconds: a deadlocked call
/// fails the test instead of hanging it.
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(f()).unwrap());
    rx.recv_timeout(Duration::from_secs(secs))
        .expect("deadlocked: the call did not return")
}

/// Every call that takes the commit lock, each made inside a locked
/// closure on `engine`; returns what each answered.
fn reentrant_calls(engine: &Engine, run: RunId) -> Vec<(&'static str, Result<(), Error>)> {
    let mut occ = engine.begin(run, Isolation::Snapshot);
    occ.put(key("occ"), 1).unwrap();
    let t = engine.transaction(run, Isolation::Snapshot, |txn| txn.put(key("retried"), 1));
    let nested = engine.transaction_locked(run, |txn| txn.put(key("nested"), 1));
    vec![
        ("Transaction::commit", occ.commit().map(drop)),
        ("Transaction::commit", t.map(drop)),
        ("Engine::transaction_locked", nested.map(drop)),
        ("Engine::run_commits", engine.run_commits(run).map(drop)),
        ("Engine::run_span", engine.run_span(run, 10).map(drop)),
        ("Engine::commit_time", engine.commit_time(1).map(drop)),
        (
            "Engine::version_at_time",
            engine.version_at_time(0).map(drop),
        ),
        // Refused under every retention (this engine keeps all), though
        // only `Window` takes the commit lock.
        ("Engine::gc", engine.gc().map(drop)),
        // The planted-bug hooks (set to their defaults here) too.
        (
            "Engine::set_skip_commit_validation",
            engine.set_skip_commit_validation(false),
        ),
        (
            "Engine::set_unlock_locked_closures",
            engine.set_unlock_locked_closures(false),
        ),
    ]
}

fn assert_refused(answers: Vec<(&'static str, Result<(), Error>)>) {
    assert!(!answers.is_empty());
    for (call, answer) in answers {
        match answer {
            Err(Error::ReentrantCommitLock(named)) => assert_eq!(named, call),
            other => panic!("{call} inside a locked closure answered {other:?}"),
        }
    }
}

/// Inside a locked closure every call that takes the commit lock answers
/// `ReentrantCommitLock` at once (it used to wait for itself forever);
/// the closure then commits its own write, and nothing the refused calls
/// tried is there.
#[test]
fn calls_that_take_the_commit_lock_are_refused_inside_the_closure() {
    let engine = engine();
    let run = RunId::new();
    bump_locked(&engine, run, &key("n"));
    let e = engine.clone();
    let (answers, v) = within(20, move || {
        e.transaction_locked(run, |txn| {
            let answers = reentrant_calls(&e, run);
            txn.put(key("n"), 10)?;
            Ok::<_, Error>(answers)
        })
        .unwrap()
    });
    assert_refused(answers);
    assert_eq!(v, 2);
    let snap = engine.snapshot();
    assert_eq!(snap.get(&key("n")).unwrap(), Some(Value::Int(10)));
    for refused in ["occ", "retried", "nested"] {
        assert_eq!(snap.get(&key(refused)).unwrap(), None, "{refused}");
    }
    assert_eq!(engine.run_commits(run).unwrap().len(), 2);
    // The thread left the closure: the same calls work again.
    assert!(reentrant_calls(&engine, run).iter().all(|(_, a)| a.is_ok()));
    assert_eq!(engine.visible_version(), 5);
}

/// A closure that meets the refusal and returns it installs nothing, and
/// the engine (and this thread) go on committing afterwards.
#[test]
fn a_closure_that_returns_the_refusal_rolls_back() {
    let engine = engine();
    let run = RunId::new();
    bump_locked(&engine, run, &key("n"));
    let before = engine.stats();
    let e = engine.clone();
    let err = within(20, move || {
        e.transaction_locked(run, |txn| {
            txn.put(key("n"), 10)?;
            txn.put(key("fresh"), 1)?;
            e.run_commits(run)
        })
        .unwrap_err()
    });
    assert!(
        matches!(err, Error::ReentrantCommitLock("Engine::run_commits")),
        "{err}"
    );
    assert_eq!(engine.stats(), before);
    assert_eq!(engine.snapshot().get(&key("fresh")).unwrap(), None);
    assert_eq!(bump_locked(&engine, run, &key("n")), 2);
}

/// A panic in the closure unwinds through the lock: nothing installed,
/// and the thread is not taken for one still inside a closure (a flush,
/// which asks before it takes any lock, is not refused).
#[test]
fn a_panicking_closure_leaves_no_refusal_behind() {
    let cfg = EngineConfig::default().background_threads(false);
    let engine = Engine::open_with_storage(cfg, Arc::new(MemStorage::new())).unwrap();
    let run = RunId::new();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        engine.transaction_locked(run, |txn| {
            txn.put(key("n"), 1)?;
            panic!("closure gave up");
            #[allow(unreachable_code)]
            Ok::<_, Error>(())
        })
    }));
    assert!(caught.is_err());
    engine.flush().unwrap();
    assert_eq!(engine.visible_version(), 0);
    assert_eq!(engine.run_commits(run).unwrap().len(), 0);
    assert_eq!(bump_locked(&engine, run, &key("n")), 1);
}

/// The commits of key `n`, newest first.
fn commits_of_n(engine: &Engine) -> Vec<u64> {
    let history = engine.history(&key("n"), engine.visible_version());
    history.into_iter().map(|(commit, _, _)| commit).collect()
}

/// GC inside the closure is refused before it unlinks anything: under
/// `Window` it reads the time index under the commit lock and used to
/// wait for itself forever; under `Versions(1)` it would have unlinked
/// the old versions of `n`. The closure's write commits, and a GC after
/// it (with the whole history older than the window) keeps only that.
#[test]
fn gc_is_refused_inside_the_closure_and_unlinks_nothing() {
    let window = Duration::from_millis(10);
    for retention in [Retention::Window(window), Retention::Versions(1)] {
        let cfg = EngineConfig::default().retention(retention);
        let engine = Engine::open_in_memory(cfg).unwrap();
        let run = RunId::new();
        bump_locked(&engine, run, &key("n"));
        bump_locked(&engine, run, &key("n"));
        std::thread::sleep(window * 4);
        let e = engine.clone();
        let (answer, v) = within(20, move || {
            e.transaction_locked(run, |txn| {
                let answer = e.gc().map(drop);
                txn.put(key("n"), 10)?;
                Ok::<_, Error>(answer)
            })
            .unwrap()
        });
        assert_refused(vec![("Engine::gc", answer)]);
        assert_eq!(v, 3, "{retention:?}");
        assert_eq!(commits_of_n(&engine), [3, 2, 1], "{retention:?}");
        assert_eq!(engine.stats().versions, 3, "{retention:?}");
        assert_eq!(engine.stats().retention_floor, 0, "{retention:?}");
        assert_eq!(
            engine.snapshot().get(&key("n")).unwrap(),
            Some(Value::Int(10))
        );
        std::thread::sleep(window * 4);
        let stats = engine.gc().unwrap();
        assert_eq!(stats.unlinked, 2, "{retention:?}: {stats:?}");
        assert_eq!(commits_of_n(&engine), [3], "{retention:?}");
    }
}

/// A GC on another thread that holds GC's own lock while it waits for the
/// closure's commit lock (to read the time index under `Window`) does not
/// trap the closure's GC: that is refused before it would wait for GC's
/// lock. Both finish; the other thread's GC runs once the closure is done.
#[test]
fn a_gc_waiting_for_the_closure_does_not_trap_the_closures_gc() {
    let cfg = EngineConfig::default().retention(Retention::Window(Duration::from_millis(10)));
    let engine = Engine::open_in_memory(cfg).unwrap();
    let run = RunId::new();
    bump_locked(&engine, run, &key("n"));
    let e = engine.clone();
    let (answer, _) = within(20, move || {
        e.transaction_locked(run, |txn| {
            let other = e.clone();
            let waiter = std::thread::spawn(move || other.gc().map(drop));
            // Give it time to take GC's lock and find the commit lock taken.
            std::thread::sleep(Duration::from_millis(50));
            let answer = e.gc().map(drop);
            txn.put(key("n"), 10)?;
            Ok::<_, Error>((answer, waiter))
        })
        .unwrap()
    });
    let (answer, waiter) = answer;
    assert_refused(vec![("Engine::gc", answer)]);
    assert!(waiter.join().unwrap().is_ok());
    assert_eq!(
        engine.snapshot().get(&key("n")).unwrap(),
        Some(Value::Int(10))
    );
}

/// On a durable engine a flush, a checkpoint and a close inside the
/// closure are refused too (a flush would wait for the WAL writer, which
/// a background flusher may hold while it waits for the commit lock); the
/// engine stays open, the closure's strict commit is synced.
#[test]
fn a_flush_a_checkpoint_and_a_close_are_refused_inside_the_closure() {
    let storage = Arc::new(MemStorage::new());
    let cfg = EngineConfig::default().durability(Durability::Strict);
    let engine = Engine::open_with_storage(cfg, storage).unwrap();
    let run = RunId::new();
    bump_locked(&engine, run, &key("n"));
    let e = engine.clone();
    let (answers, v) = within(20, move || {
        e.transaction_locked(run, |txn| {
            let mut answers = reentrant_calls(&e, run);
            answers.push(("Engine::flush", e.flush()));
            answers.push(("Engine::checkpoint", e.checkpoint().map(drop)));
            answers.push(("Engine::close", e.clone().close()));
            txn.put(key("n"), 10)?;
            Ok::<_, Error>(answers)
        })
        .unwrap()
    });
    assert_refused(answers);
    assert_eq!((v, engine.durable_version()), (2, 2));
    assert_eq!(bump_locked(&engine, run, &key("n")), 11);
    engine.checkpoint().unwrap();
    engine.close().unwrap();
}

/// A locked transaction on another engine inside the closure is allowed,
/// and inside *that* closure the first engine's lock is still refused.
#[test]
fn an_inner_engine_may_lock_but_not_take_the_outer_lock_again() {
    let (outer, inner) = (engine(), engine());
    let run = RunId::new();
    let (o, i) = (outer.clone(), inner.clone());
    let (answer, _) = within(20, move || {
        o.transaction_locked(run, |txn| {
            txn.put(key("outer"), 1)?;
            let (answer, _) = i.transaction_locked(run, |inner_txn| {
                inner_txn.put(key("inner"), 1)?;
                Ok::<_, Error>(o.commit_time(0))
            })?;
            Ok::<_, Error>(answer)
        })
        .unwrap()
    });
    assert!(matches!(
        answer,
        Err(Error::ReentrantCommitLock("Engine::commit_time"))
    ));
    assert_eq!(
        outer.snapshot().get(&key("outer")).unwrap(),
        Some(Value::Int(1))
    );
    assert_eq!(
        inner.snapshot().get(&key("inner")).unwrap(),
        Some(Value::Int(1))
    );
}

/// Only the closure's own thread is refused: another thread that wants
/// the lock meanwhile waits for it and then commits.
#[test]
fn another_thread_waits_for_the_closure_and_is_not_refused() {
    let engine = engine();
    let run = RunId::new();
    let (started_tx, started) = std::sync::mpsc::channel();
    let e = engine.clone();
    let (waiter, _) = engine
        .transaction_locked(run, |txn| {
            let waiter = std::thread::spawn(move || {
                started_tx.send(()).unwrap();
                e.transaction(run, Isolation::Snapshot, |t| t.put(key("other"), 2))
            });
            started.recv().unwrap();
            // Give it time to find the lock taken.
            std::thread::sleep(Duration::from_millis(50));
            txn.put(key("mine"), 1)?;
            Ok::<_, Error>(waiter)
        })
        .unwrap();
    assert_eq!(waiter.join().unwrap().unwrap().1, 2);
    let snap = engine.snapshot();
    assert_eq!(snap.get(&key("mine")).unwrap(), Some(Value::Int(1)));
}
