//! Guards GC and retention: `Versions(n)` keeps the n newest, live snapshots pin history, `Window` keeps a time window, pruned reads fail with `HistoryPruned`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rewinddb_engine::{
    Engine, EngineConfig, Error, Isolation, Key, Namespace, Retention, RunId, Scope, Snapshot,
    TypeTag, Value, Version,
};

fn key(user: &str) -> Key {
    Key::new(
        Namespace::new("gc").unwrap(),
        Scope::Shared,
        TypeTag::Kv,
        user,
    )
}

fn engine(retention: Retention) -> Engine {
    Engine::open_in_memory(EngineConfig::default().retention(retention)).unwrap()
}

fn put(engine: &Engine, user: &str, value: impl Into<Value>) -> Version {
    let mut t = engine.begin(RunId::NIL, Isolation::Snapshot);
    t.put(key(user), value).unwrap();
    t.commit().unwrap()
}

fn delete(engine: &Engine, user: &str) -> Version {
    let mut t = engine.begin(RunId::NIL, Isolation::Snapshot);
    t.delete(key(user)).unwrap();
    t.commit().unwrap()
}

/// Commit versions linked in the chain of `user`, newest first.
fn chain(engine: &Engine, user: &str) -> Vec<Version> {
    engine
        .history(&key(user), Version::MAX)
        .into_iter()
        .map(|(v, _, _)| v)
        .collect()
}

fn read_at(engine: &Engine, at: Version, user: &str) -> rewinddb_engine::Result<Option<Value>> {
    engine.snapshot_at(at)?.get(&key(user))
}

fn assert_pruned(result: rewinddb_engine::Result<Option<Value>>) {
    match result {
        Err(Error::HistoryPruned { .. }) => {}
        other => panic!("expected HistoryPruned, got {other:?}"),
    }
}

#[test]
fn keep_all_never_unlinks() {
    let engine = engine(Retention::KeepAll);
    for i in 0..5 {
        put(&engine, "k", i);
    }
    assert_eq!(engine.gc().unwrap().unlinked, 0);
    assert_eq!(chain(&engine, "k"), [5, 4, 3, 2, 1]);
    assert_eq!(read_at(&engine, 1, "k").unwrap(), Some(Value::Int(0)));
    assert_eq!(engine.stats().versions, 5);
}

#[test]
fn versions_n_keeps_the_n_newest_of_each_key() {
    let engine = engine(Retention::Versions(2));
    for i in 0..5 {
        put(&engine, "a", i); // versions 1, 3, 5, 7, 9
        put(&engine, "b", i * 10); // versions 2, 4, 6, 8, 10
    }
    put(&engine, "c", 99); // 11: a single version, below n
    assert_eq!(engine.stats().versions, 11);
    let stats = engine.gc().unwrap();
    assert_eq!((stats.chains, stats.unlinked), (3, 6));
    assert_eq!(chain(&engine, "a"), [9, 7]);
    assert_eq!(chain(&engine, "b"), [10, 8]);
    assert_eq!(chain(&engine, "c"), [11]);
    assert_eq!(engine.stats().versions, 5);
    // Reads the kept versions answer still work; older ones report pruning.
    assert_eq!(read_at(&engine, 7, "a").unwrap(), Some(Value::Int(3)));
    assert_eq!(read_at(&engine, 8, "a").unwrap(), Some(Value::Int(3)));
    assert_pruned(read_at(&engine, 6, "a"));
    assert_pruned(read_at(&engine, 1, "b"));
    assert_eq!(
        read_at(&engine, 8, "c").unwrap(),
        None,
        "c did not exist at 8 and nothing of it was pruned"
    );
    // A second pass finds nothing more to do.
    assert_eq!(engine.gc().unwrap().unlinked, 0);
}

#[test]
fn versions_n_keeps_tombstones_as_versions() {
    let engine = engine(Retention::Versions(1));
    put(&engine, "k", 1);
    put(&engine, "k", 2);
    let deleted = delete(&engine, "k");
    assert_eq!(engine.gc().unwrap().unlinked, 2);
    assert_eq!(chain(&engine, "k"), [deleted]);
    assert_eq!(engine.snapshot().get(&key("k")).unwrap(), None);
    assert_eq!(
        engine.snapshot().get_versioned(&key("k")).unwrap(),
        (None, deleted)
    );
    assert_pruned(read_at(&engine, 2, "k"));
}

#[test]
fn a_live_snapshot_pins_history_until_dropped() {
    let engine = engine(Retention::Versions(1));
    put(&engine, "k", 0);
    let pinned = engine.snapshot();
    assert_eq!(pinned.version(), 1);
    for i in 1..5 {
        put(&engine, "k", i);
    }
    let stats = engine.gc().unwrap();
    assert_eq!((stats.oldest_reader, stats.unlinked), (1, 0));
    assert_eq!(pinned.get(&key("k")).unwrap(), Some(Value::Int(0)));
    assert_eq!(engine.stats().versions, 5);
    drop(pinned);
    let stats = engine.gc().unwrap();
    assert_eq!((stats.oldest_reader, stats.unlinked), (5, 4));
    assert_eq!(chain(&engine, "k"), [5]);
    assert_eq!(engine.stats().versions, 1);
    assert_pruned(read_at(&engine, 1, "k"));
}

#[test]
fn the_oldest_of_several_snapshots_pins() {
    let engine = engine(Retention::Versions(1));
    put(&engine, "k", 0);
    put(&engine, "k", 1);
    let older = engine.snapshot(); // 2
    put(&engine, "k", 2);
    let newer = engine.snapshot(); // 3
    let newer_clone = newer.clone();
    put(&engine, "k", 3);
    assert_eq!(
        engine.gc().unwrap().unlinked,
        1,
        "only version 1 is behind every snapshot"
    );
    assert_eq!(older.get(&key("k")).unwrap(), Some(Value::Int(1)));
    drop(older);
    assert_eq!(engine.gc().unwrap().unlinked, 1);
    drop(newer);
    assert_eq!(
        newer_clone.get(&key("k")).unwrap(),
        Some(Value::Int(2)),
        "a clone pins on its own"
    );
    assert_eq!(engine.gc().unwrap().unlinked, 0);
    drop(newer_clone);
    assert_eq!(engine.gc().unwrap().unlinked, 1);
    assert_eq!(chain(&engine, "k"), [4]);
}

// A thread's snapshots at the visible version take its lock-free slots (8 per thread) and, once
// those are full, the locked multiset; clones and `snapshot_at` take the multiset. Snapshots
// of every kind, more than a thread's slots, dropped on another thread in a shuffled order:
// each one pins until dropped, and the count and GC's oldest reader follow exactly.
#[test]
fn snapshots_beyond_a_threads_slots_pin_wherever_they_are_dropped() {
    let engine = engine(Retention::Versions(1));
    let mut held = Vec::new();
    for i in 0..24 {
        put(&engine, "k", i);
        let snap = match i % 6 {
            4 => held
                .last()
                .map_or_else(|| engine.snapshot(), Snapshot::clone),
            5 => engine.snapshot_at(engine.visible_version() - 1).unwrap(),
            _ => engine.snapshot(),
        };
        held.push(snap);
    }
    assert_eq!(engine.stats().live_snapshots, held.len());
    let mut rng = fastrand::Rng::with_seed(11);
    rng.shuffle(&mut held);
    let dropper = engine.clone();
    std::thread::spawn(move || {
        while let Some(snap) = held.pop() {
            let oldest = held.iter().map(Snapshot::version).min();
            let version = snap.version();
            drop(snap);
            assert_eq!(dropper.stats().live_snapshots, held.len());
            let stats = dropper.gc().unwrap();
            assert_eq!(
                stats.oldest_reader,
                oldest.unwrap_or(dropper.visible_version()),
                "after dropping the snapshot at {version}"
            );
            // The value written at version v is v - 1.
            for other in &held {
                let value = other.get(&key("k")).unwrap().unwrap();
                assert_eq!(value, Value::Int(other.version() as i64 - 1));
            }
        }
    })
    .join()
    .unwrap();
    assert_eq!(chain(&engine, "k"), [24]);
}

#[test]
fn an_open_transaction_pins_like_a_snapshot() {
    let engine = engine(Retention::Versions(1));
    put(&engine, "k", 0);
    let mut txn = engine.begin(RunId::NIL, Isolation::Serializable);
    put(&engine, "k", 1);
    put(&engine, "k", 2);
    // The horizon is the oldest reader: everything from its version up stays.
    assert_eq!(engine.gc().unwrap().unlinked, 0);
    assert_eq!(txn.get(&key("k")).unwrap(), Some(Value::Int(0)));
    txn.rollback().unwrap();
    assert_eq!(engine.stats().live_snapshots, 0);
    assert_eq!(engine.gc().unwrap().unlinked, 2);
    drop(txn);
}

// Regression: a committed or rolled-back transaction kept its start version registered until
// it was dropped, so a finished transaction kept in scope held GC back for nothing (it can
// read nothing more). Finishing now releases it, whatever the outcome.
#[test]
fn a_finished_transaction_pins_nothing() {
    let engine = engine(Retention::Versions(1));
    put(&engine, "k", 0);
    let mut committed = engine.begin(RunId::NIL, Isolation::Snapshot);
    committed.put(key("other"), 1).unwrap();
    let mut read_only = engine.begin(RunId::NIL, Isolation::Serializable);
    read_only.get(&key("k")).unwrap();
    let mut loser = engine.begin(RunId::NIL, Isolation::Snapshot);
    loser.put(key("k"), 10).unwrap();
    put(&engine, "k", 1); // 2: makes the loser conflict
    assert_eq!(engine.stats().live_snapshots, 3);
    committed.commit().unwrap();
    read_only.commit().unwrap();
    assert!(loser.commit().unwrap_err().is_conflict());
    assert_eq!(
        engine.stats().live_snapshots,
        0,
        "finished transactions still registered"
    );
    assert_eq!(engine.gc().unwrap().unlinked, 1, "k@1 is no longer pinned");
    assert_eq!(
        committed.start_version(),
        1,
        "the start version is still reported"
    );
    drop((committed, read_only, loser));
    assert_eq!(
        engine.stats().live_snapshots,
        0,
        "dropping does not release twice"
    );
}

#[test]
fn snapshot_at_pins_a_past_version() {
    let engine = engine(Retention::Versions(1));
    for i in 0..4 {
        put(&engine, "k", i);
    }
    let past = engine.snapshot_at(2).unwrap();
    assert_eq!(engine.gc().unwrap().unlinked, 1);
    assert_eq!(past.get(&key("k")).unwrap(), Some(Value::Int(1)));
    assert_eq!(chain(&engine, "k"), [4, 3, 2]);
}

// Regression: a key created after the oldest live snapshot used to be cut to its n newest
// versions, and that snapshot then read `HistoryPruned` for a key that did not exist at its
// version (the right answer is "absent").
#[test]
fn a_key_younger_than_the_oldest_snapshot_reads_as_absent_there() {
    let engine = engine(Retention::Versions(1));
    put(&engine, "old", 0);
    let pinned = engine.snapshot();
    for i in 0..3 {
        put(&engine, "young", i);
    }
    engine.gc().unwrap();
    assert_eq!(pinned.get(&key("young")).unwrap(), None);
    assert_eq!(pinned.scan(&key(""), None, 10).unwrap().len(), 1);
    drop(pinned);
    assert_eq!(engine.gc().unwrap().unlinked, 2);
    assert_eq!(chain(&engine, "young"), [4]);
}

#[test]
fn window_keeps_the_window_and_the_version_current_at_its_start() {
    let window = Duration::from_millis(40);
    let engine = engine(Retention::Window(window));
    put(&engine, "k", 1);
    put(&engine, "k", 2);
    std::thread::sleep(window * 3);
    put(&engine, "k", 3);
    let stats = engine.gc().unwrap();
    // Version 2 was current when the window started; version 1 is behind it. (Version 3 is
    // inside the window unless this thread stalled for the whole window; either way 2 is the
    // oldest the floor can name here.)
    assert!(stats.floor >= 2, "{stats:?}");
    assert!(stats.unlinked >= 1, "{stats:?}");
    assert!(!chain(&engine, "k").contains(&1));
    assert_eq!(engine.stats().retention_floor, stats.floor);
    match engine.snapshot_at(1) {
        Err(Error::VersionOutsideRetention {
            requested: 1,
            horizon,
        }) => assert_eq!(horizon, stats.floor),
        other => panic!("expected VersionOutsideRetention, got {other:?}"),
    }
    let at_floor = engine.snapshot_at(stats.floor).unwrap();
    assert_eq!(
        at_floor.get(&key("k")).unwrap(),
        Some(Value::Int(stats.floor as i64))
    );
    assert_eq!(
        engine.snapshot().get(&key("k")).unwrap(),
        Some(Value::Int(3))
    );
}

#[test]
fn window_is_held_back_by_a_live_snapshot() {
    let window = Duration::from_millis(10);
    let engine = engine(Retention::Window(window));
    put(&engine, "k", 1);
    let pinned = engine.snapshot();
    put(&engine, "k", 2);
    std::thread::sleep(window * 4);
    put(&engine, "k", 3);
    let stats = engine.gc().unwrap();
    assert_eq!(
        (stats.oldest_reader, stats.floor, stats.unlinked),
        (1, 1, 0)
    );
    assert_eq!(pinned.get(&key("k")).unwrap(), Some(Value::Int(1)));
    assert!(engine.snapshot_at(1).is_ok());
    drop(pinned);
    std::thread::sleep(window * 4);
    let stats = engine.gc().unwrap();
    assert_eq!(stats.floor, 3, "{stats:?}");
    assert_eq!(chain(&engine, "k"), [3]);
    assert!(matches!(
        engine.snapshot_at(2),
        Err(Error::VersionOutsideRetention { .. })
    ));
}

// Scans over pruned history fail as a whole rather than skipping the pruned key.
#[test]
fn scans_over_pruned_history_report_it() {
    let engine = engine(Retention::Versions(1));
    put(&engine, "a", 1);
    put(&engine, "b", 1);
    put(&engine, "b", 2);
    engine.gc().unwrap();
    let past = engine.snapshot_at(2).unwrap();
    assert_eq!(past.get(&key("a")).unwrap(), Some(Value::Int(1)));
    assert!(matches!(
        past.scan(&key(""), None, 10),
        Err(Error::HistoryPruned { .. })
    ));
    let mut txn = engine.begin(RunId::NIL, Isolation::Snapshot);
    assert_eq!(txn.scan(&key(""), None, 10).unwrap().len(), 2);
}

// Regression: GC used to pick the last version to keep by its position in the chain, then walk
// the chain again to cut it. A commit pushed in between shifted the position by one and GC cut
// the version a pinned reader needed, which then read `HistoryPruned`. Readers here pin a
// snapshot, wait for commits and GC to run, and must always read their own version.
#[test]
fn gc_racing_commits_never_prunes_a_pinned_version() {
    let engine = engine(Retention::Versions(1));
    put(&engine, "k", 0);
    let stop = Arc::new(AtomicBool::new(false));
    let spawn_loop = |f: fn(&Engine)| {
        let (engine, stop) = (engine.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                f(&engine);
            }
        })
    };
    let writer = spawn_loop(|e| {
        let v = e.visible_version();
        put(e, "k", v as i64);
    });
    let gc = spawn_loop(|e| {
        e.gc().unwrap();
    });
    // Bounded by count and by time: on a busy machine the spinning threads slow the reader, and
    // a few thousand rounds already catch the old bug within the first second.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let mut rounds = 0;
    while rounds < 3000 && std::time::Instant::now() < deadline {
        let snap = engine.snapshot();
        std::thread::yield_now();
        let value = snap.get(&key("k")).unwrap().unwrap();
        // The value written at version v is v - 1.
        assert_eq!(value.as_i64().unwrap() + 1, snap.version() as i64);
        rounds += 1;
    }
    assert!(rounds > 0);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    gc.join().unwrap();
}

// Registration slots under contention: more reader threads than slot groups (64), so groups
// are shared and their CAS races, each reader holding up to 12 snapshots at once (more than a
// group's 8 slots, so some go to the locked multiset), while a writer commits and GC runs in a
// loop. Every snapshot must read the value of its own version: GC never cut below a
// registered reader, whichever way it registered.
#[test]
fn snapshots_on_shared_slot_groups_pin_against_a_gc_loop() {
    const READERS: usize = 70;
    let engine = engine(Retention::Versions(1));
    put(&engine, "k", 0);
    let stop = Arc::new(AtomicBool::new(false));
    let background: Vec<_> = [false, true]
        .into_iter()
        .map(|is_gc| {
            let (engine, stop) = (engine.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match is_gc {
                        true => _ = engine.gc().unwrap(),
                        false => _ = put(&engine, "k", engine.visible_version() as i64),
                    }
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..READERS)
        .map(|r| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                // Bounded by time: 70 threads share 2 cores here.
                let deadline = std::time::Instant::now() + Duration::from_millis(300);
                let mut held = std::collections::VecDeque::new();
                while std::time::Instant::now() < deadline {
                    held.push_back(engine.snapshot());
                    if held.len() > 4 + r % 9 {
                        held.pop_front();
                    }
                    // Let the writer and GC run between taking and reading.
                    std::thread::yield_now();
                    for snap in &held {
                        // The value written at version v is v - 1.
                        let value = snap.get(&key("k")).unwrap().unwrap();
                        assert_eq!(value.as_i64().unwrap() + 1, snap.version() as i64);
                    }
                }
            })
        })
        .collect();
    for r in readers {
        r.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for t in background {
        t.join().unwrap();
    }
    assert_eq!(engine.stats().live_snapshots, 0);
}

/// (version, keys) of every commit the per-run index lists for `run`.
fn run_index(engine: &Engine, run: RunId) -> Vec<(Version, Vec<String>)> {
    engine
        .run_commits(run)
        .unwrap()
        .iter()
        .map(|c| {
            (
                c.version,
                c.keys()
                    .map(|k| String::from_utf8(k.user().to_vec()).unwrap())
                    .collect(),
            )
        })
        .collect()
}

/// A durable engine over one in-memory storage, opened anew by each call of the returned
/// closure (a restart): `Retention::Versions(1)`, strict, checkpoints only when asked.
fn reopenable_versions_1() -> impl Fn() -> Engine {
    use rewinddb_engine::durability::MemStorage;
    use rewinddb_engine::{CheckpointPolicy, Durability};

    let storage = MemStorage::new();
    let config = EngineConfig::default()
        .retention(Retention::Versions(1))
        .durability(Durability::Strict)
        .checkpoint(CheckpointPolicy::MANUAL);
    move || Engine::open_with_storage(config.clone(), Arc::new(storage.clone())).unwrap()
}

// Found by the model with durable engines: the per-run index keeps the commits whose
// versions GC unlinked (replay reports `HistoryPruned` from them), but format 1 checkpoints
// carried only the retained versions and recovery rebuilt the index from those, so after a
// restart the index had lost them (and replay of such a run would look complete). Checkpoint
// format 2 carries the per-run index.
#[test]
fn run_index_survives_a_restart_after_gc() {
    let open = reopenable_versions_1();
    let engine = open();
    let run = RunId::new();
    let commit = |writes: &[(&str, i64)]| {
        let mut t = engine.begin(run, Isolation::Snapshot);
        for (k, v) in writes {
            t.put(key(k), *v).unwrap();
        }
        t.commit().unwrap()
    };
    commit(&[("a", 1), ("b", 1)]); // 1
    commit(&[("a", 2)]); // 2
    commit(&[("b", 3), ("c", 3)]); // 3
    let all = vec![
        (1, vec!["a".to_string(), "b".into()]),
        (2, vec!["a".into()]),
        (3, vec!["b".into(), "c".into()]),
    ];
    assert_eq!(run_index(&engine, run), all);
    assert_eq!(engine.gc().unwrap().unlinked, 2, "a@1 and b@1");
    assert_eq!(run_index(&engine, run), all, "GC keeps the index whole");
    engine.checkpoint().unwrap();
    engine.close().unwrap();
    let engine = open();
    assert_eq!(
        run_index(&engine, run),
        all,
        "the index changed across a restart"
    );
}

// The pruned mark (the tagged end of a cut chain, `chain.rs`) is written to a checkpoint as a
// nonzero `pruned_max` and set again on recovery, also under versions the WAL adds after the
// checkpoint: a read below the retained versions answers `HistoryPruned` before and after
// each restart, and a key that never had older versions still reads as absent.
#[test]
fn pruned_history_stays_pruned_across_restarts() {
    let open = reopenable_versions_1();
    let put_one = |engine: &Engine, user: &str, v: i64| {
        let mut t = engine.begin(RunId::NIL, Isolation::Snapshot);
        t.put(key(user), v).unwrap();
        t.commit().unwrap()
    };
    let check = |engine: &Engine, newest_a: Version| {
        assert_pruned(read_at(engine, 1, "a"));
        assert_eq!(read_at(engine, 2, "a").unwrap(), Some(Value::Int(2)));
        assert_eq!(
            read_at(engine, newest_a, "a").unwrap(),
            Some(Value::Int(newest_a as i64))
        );
        assert_eq!(
            read_at(engine, 2, "c").unwrap(),
            None,
            "c never had a version at 2"
        );
        assert_eq!(read_at(engine, 3, "c").unwrap(), Some(Value::Int(3)));
    };
    let engine = open();
    assert_eq!(put_one(&engine, "a", 1), 1);
    assert_eq!(put_one(&engine, "a", 2), 2);
    assert_eq!(put_one(&engine, "c", 3), 3);
    assert_eq!(engine.gc().unwrap().unlinked, 1, "a@1");
    check(&engine, 2);
    engine.checkpoint().unwrap();
    // In the WAL after the checkpoint: pushed onto the recovered, marked chain.
    assert_eq!(put_one(&engine, "a", 4), 4);
    engine.close().unwrap();

    let engine = open();
    check(&engine, 4);
    assert_eq!(chain(&engine, "a"), [4, 2]);
    // The second checkpoint writes the mark it recovered.
    engine.checkpoint().unwrap();
    engine.close().unwrap();

    let engine = open();
    check(&engine, 4);
    assert_eq!(chain(&engine, "a"), [4, 2]);
    assert_eq!(chain(&engine, "c"), [3]);
}
