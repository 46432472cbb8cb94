//! `Engine::transaction_locked` (a read-modify-write under the commit lock,
//! without validation): an `Err` installs nothing; its reads are the newest
//! state, so concurrent increments through it and through optimistic
//! transactions lose nothing; an optimistic transaction that read what it
//! wrote conflicts; on a durable engine its strict commits survive a power
//! loss, with the commit time it handed the closure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use rewinddb_engine::durability::{DataLoss, DirLoss, MemStorage};
use rewinddb_engine::{
    Durability, Engine, EngineConfig, Error, Isolation, Key, Namespace, RetryPolicy, RunId, Scope,
    TypeTag, Value,
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
    let commits = engine.run_commits(run);
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
    assert_eq!(engine.run_commits(run).len(), 1);
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
    let versions: Vec<u64> = engine.run_commits(run).iter().map(|c| c.version).collect();
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
        assert_eq!(engine.commit_time(v), ms);
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
        assert_eq!(reopened.commit_time(i as u64 + 1), times[i as usize]);
    }
    assert_eq!(snap.get(&key("last")).unwrap(), Some(Value::Int(19)));
    assert_eq!(reopened.run_commits(run).len(), 20);
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
