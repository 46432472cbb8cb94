//! Writes of keys that do not exist yet. A transaction makes a chain for
//! such a key when it buffers the write, and the commit inserts it (or
//! finds that another commit created the key since, see `txn.rs`): these
//! interleavings check that two transactions creating the same key still
//! conflict (first committer wins), whichever order their puts, reads and
//! commits take and whatever other keys are created meanwhile; and that a
//! key whose transaction did not commit leaves nothing behind; and, with
//! real threads, that racing creators never both commit concurrently.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Barrier};

use rewinddb_engine::{
    Engine, EngineConfig, Isolation, Key, Namespace, RunId, Scope, TypeTag, Value, Version,
};

fn key(user: &str) -> Key {
    Key::new(
        Namespace::new("t/new").unwrap(),
        Scope::Shared,
        TypeTag::Kv,
        user,
    )
}

fn engine() -> Engine {
    Engine::open_in_memory(EngineConfig::default()).unwrap()
}

fn assert_conflict(result: rewinddb_engine::Result<Version>) {
    match result {
        Err(e) => assert!(e.is_conflict(), "expected a conflict, got {e}"),
        Ok(v) => panic!("expected a conflict, but the commit succeeded at version {v}"),
    }
}

fn value(engine: &Engine, k: &Key) -> Option<Value> {
    engine.snapshot().get(k).unwrap()
}

/// Both put the new key before either commits: the second commit fails.
#[test]
fn two_creators_both_buffered_before_either_commits() {
    let e = engine();
    let mut t1 = e.begin(RunId::NIL, Isolation::Snapshot);
    let mut t2 = e.begin(RunId::NIL, Isolation::Snapshot);
    t1.put(key("k"), 1).unwrap();
    t2.put(key("k"), 2).unwrap();
    t1.commit().unwrap();
    assert_conflict(t2.commit());
    assert_eq!(value(&e, &key("k")), Some(Value::Int(1)));
}

/// The second puts the key after the first committed it (but began
/// before): its put finds the chain, and its commit fails.
#[test]
fn a_creator_that_puts_after_the_other_committed() {
    let e = engine();
    let mut t1 = e.begin(RunId::NIL, Isolation::Snapshot);
    let mut t2 = e.begin(RunId::NIL, Isolation::Snapshot);
    t1.put(key("k"), 1).unwrap();
    t1.commit().unwrap();
    t2.put(key("k"), 2).unwrap();
    assert_conflict(t2.commit());
    assert_eq!(value(&e, &key("k")), Some(Value::Int(1)));
}

/// Other keys created between a put and its commit do not hide the
/// conflict on the shared key, and do not make a commit of keys nobody
/// else created fail.
#[test]
fn other_keys_created_in_between() {
    let e = engine();
    let mut t1 = e.begin(RunId::NIL, Isolation::Snapshot);
    let mut t2 = e.begin(RunId::NIL, Isolation::Snapshot);
    let mut t3 = e.begin(RunId::NIL, Isolation::Snapshot);
    t1.put(key("shared"), 1).unwrap();
    t2.put(key("a"), 2).unwrap();
    t2.put(key("shared"), 2).unwrap();
    t3.put(key("b"), 3).unwrap();
    // Keys created by others: `other` (before t1 commits) and `shared`.
    let mut other = e.begin(RunId::NIL, Isolation::Snapshot);
    other.put(key("other"), 0).unwrap();
    other.commit().unwrap();
    t1.commit().unwrap();
    assert_conflict(t2.commit());
    t3.commit().unwrap();
    assert_eq!(value(&e, &key("shared")), Some(Value::Int(1)));
    assert_eq!(value(&e, &key("a")), None, "t2 wrote nothing");
    assert_eq!(value(&e, &key("b")), Some(Value::Int(3)));
}

/// The same key written twice in one transaction, and deleted before it
/// existed: one version, and a delete of a key nobody created is a
/// tombstone that reads as absent.
#[test]
fn rewrites_and_deletes_of_a_new_key_in_one_transaction() {
    let e = engine();
    let mut t = e.begin(RunId::NIL, Isolation::Snapshot);
    t.put(key("k"), 1).unwrap();
    t.put(key("k"), 2).unwrap();
    assert_eq!(t.get(&key("k")).unwrap(), Some(Value::Int(2)));
    t.delete(key("gone")).unwrap();
    let at = t.commit().unwrap();
    assert_eq!(value(&e, &key("k")), Some(Value::Int(2)));
    assert_eq!(value(&e, &key("gone")), None);
    assert_eq!(e.snapshot_at(at - 1).unwrap().get(&key("k")).unwrap(), None);
}

/// A new key written by a transaction rolled back, dropped or refused
/// leaves no key: the store counts none, and a scan finds none.
#[test]
fn a_new_key_of_a_transaction_that_did_not_commit_leaves_nothing() {
    let e = engine();
    let mut rolled_back = e.begin(RunId::NIL, Isolation::Snapshot);
    rolled_back.put(key("r"), 1).unwrap();
    rolled_back.rollback().unwrap();
    let mut dropped = e.begin(RunId::NIL, Isolation::Snapshot);
    dropped.put(key("d"), 1).unwrap();
    drop(dropped);
    let mut loser = e.begin(RunId::NIL, Isolation::Snapshot);
    loser.put(key("x"), 1).unwrap();
    loser.put(key("l"), 1).unwrap();
    let mut winner = e.begin(RunId::NIL, Isolation::Snapshot);
    winner.put(key("x"), 2).unwrap();
    winner.commit().unwrap();
    assert_conflict(loser.commit());
    assert_eq!(e.stats().keys, 1, "only x exists");
    let all = e.snapshot().scan(&key(""), None, usize::MAX).unwrap();
    assert_eq!(all.len(), 1);
}

/// Inside `transaction_locked` a new key's chain is inserted at commit
/// without looking again (nothing else commits meanwhile).
#[test]
fn locked_transactions_create_keys() {
    let e = engine();
    let ((), v) = e
        .transaction_locked(RunId::NIL, |t| {
            t.put(key("locked"), 1)?;
            t.put(key("locked"), 2)?;
            t.put(key("also"), 3)
        })
        .map_err(|e: rewinddb_engine::Error| e)
        .unwrap();
    assert!(v > 0);
    assert_eq!(value(&e, &key("locked")), Some(Value::Int(2)));
    assert_eq!(value(&e, &key("also")), Some(Value::Int(3)));
    assert_eq!(e.stats().keys, 2);
}

/// A committed write of a key: the writer's start and commit versions and
/// the (unique) value it wrote.
type Committed = (Version, Version, i64);

/// One thread's part of `racing_creators_never_both_commit_concurrently`:
/// each round, after the other thread is ready too, write some of the
/// round's three new keys and commit; returns the committed writes by key.
fn race(e: &Engine, thread: u64, rounds: usize, start: &Barrier) -> Vec<(Key, Committed)> {
    let mut rng = fastrand::Rng::with_seed(thread);
    let mut committed = Vec::new();
    for round in 0..rounds {
        start.wait();
        let mut txn = e.begin(RunId::NIL, Isolation::Snapshot);
        let from = txn.start_version();
        let value = (round as i64) * 2 + thread as i64;
        let written: Vec<Key> = (0..3)
            .filter(|_| rng.u8(..4) != 0)
            .map(|i| key(&format!("r{round}/{i}")))
            .collect();
        for k in &written {
            txn.put(k.clone(), value).unwrap();
        }
        if rng.bool() {
            std::thread::yield_now();
        }
        match txn.commit() {
            Ok(at) => committed.extend(written.into_iter().map(|k| (k, (from, at, value)))),
            Err(e) => assert!(e.is_conflict(), "{e}"),
        }
    }
    committed
}

/// Two threads create the same new keys at once, round after round. For
/// every key, its committed writers in commit order never overlap (each
/// began after the one before it committed: first committer wins), and
/// the key holds the last one's value.
#[test]
fn racing_creators_never_both_commit_concurrently() {
    let e = Arc::new(engine());
    let rounds = 3_000;
    let start = Arc::new(Barrier::new(2));
    let threads: Vec<_> = (0..2)
        .map(|thread| {
            let (e, start) = (Arc::clone(&e), Arc::clone(&start));
            std::thread::spawn(move || race(&e, thread, rounds, &start))
        })
        .collect();
    let mut by_key: std::collections::BTreeMap<Key, Vec<Committed>> = Default::default();
    for t in threads {
        for (k, w) in t.join().unwrap() {
            by_key.entry(k).or_default().push(w);
        }
    }
    let mut raced = 0;
    for (k, mut writers) in by_key {
        writers.sort_by_key(|&(_, at, _)| at);
        raced += usize::from(writers.len() > 1);
        for pair in writers.windows(2) {
            let ((_, first_at, _), (second_from, second_at, _)) = (pair[0], pair[1]);
            assert!(
                second_from >= first_at,
                "{k}: the writer committed at {second_at} began at {second_from}, \
                 before the one committed at {first_at}"
            );
        }
        let last = writers.last().unwrap().2;
        assert_eq!(value(&e, &k), Some(Value::Int(last)), "{k}");
    }
    assert!(raced > 0, "no key was written by both threads");
}
