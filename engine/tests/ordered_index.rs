//! Guards the ordered index (the one scans and `for_each_chain` walk): a
//! scan at version `v` returns every key with a version visible at `v`,
//! however the key was created (interleaved families, random order,
//! creations during and between scans, concurrent creators), and GC visits
//! every chain the point index holds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rewinddb_engine::{
    Engine, EngineConfig, Isolation, Key, Namespace, Retention, RunId, Scope, Snapshot, TypeTag,
};

/// Key `user` of the family named by `(ns, tag)`.
fn key(ns: &str, tag: TypeTag, user: &[u8]) -> Key {
    Key::new(Namespace::new(ns).unwrap(), Scope::Shared, tag, user)
}

/// Every live key of the family of `prefix` at `snap`, read in pages of
/// `page` through the resume cursor.
fn scan_all(snap: &Snapshot, prefix: &Key, page: usize) -> Vec<Key> {
    let mut out: Vec<Key> = Vec::new();
    loop {
        let got = snap.scan(prefix, out.last(), page).unwrap();
        let done = got.len() < page;
        out.extend(got.into_iter().map(|(k, _)| k));
        if done {
            return out;
        }
    }
}

fn put(engine: &Engine, key: Key) {
    let mut t = engine.begin(RunId::NIL, Isolation::Snapshot);
    t.put(key, 1).unwrap();
    t.commit().unwrap();
}

/// Keys of three families created in random order, one per commit (first
/// 2,500 of one family before any scan), with a scan of each family (whole, and in pages, and by a sub-prefix) after
/// every few creations: every scan returns exactly the keys created so far,
/// in order, and a snapshot taken earlier still sees exactly its own keys.
#[test]
fn scans_see_every_created_key_in_order() {
    let engine = Engine::open_in_memory(EngineConfig::default()).unwrap();
    let families = [
        ("a", TypeTag::Kv),
        ("a", TypeTag::Event),
        ("b", TypeTag::Kv),
    ];
    let mut model: Vec<BTreeSet<Key>> = vec![BTreeSet::new(); families.len()];
    let mut rng = fastrand::Rng::with_seed(5);
    let mut old: Option<(Snapshot, Vec<BTreeSet<Key>>)> = None;
    // First a family with several merge chunks (1,024 keys) of keys waiting.
    for _ in 0..2_500 {
        let k = key("a", TypeTag::Event, &rng.u32(..).to_be_bytes());
        put(&engine, k.clone());
        model[1].insert(k);
    }
    for step in 0..3_000 {
        let f = rng.usize(..families.len());
        let (ns, tag) = families[f];
        let k = key(ns, tag, &rng.u32(..).to_be_bytes());
        put(&engine, k.clone());
        model[f].insert(k);
        if step % 97 == 0 {
            let snap = engine.snapshot();
            for (f, &(ns, tag)) in families.iter().enumerate() {
                let prefix = key(ns, tag, b"");
                let want: Vec<Key> = model[f].iter().cloned().collect();
                assert_eq!(scan_all(&snap, &prefix, usize::MAX), want, "step {step}");
                assert_eq!(scan_all(&snap, &prefix, 7), want, "step {step} paged");
                let sub = key(ns, tag, &[0x80]);
                let want_sub: Vec<Key> = want
                    .iter()
                    .filter(|k| k.user().first() == Some(&0x80))
                    .cloned()
                    .collect();
                assert_eq!(scan_all(&snap, &sub, 5), want_sub, "step {step} sub-prefix");
            }
            if let Some((old_snap, old_model)) = &old {
                for (f, &(ns, tag)) in families.iter().enumerate() {
                    let want: Vec<Key> = old_model[f].iter().cloned().collect();
                    let got = scan_all(old_snap, &key(ns, tag, b""), 11);
                    assert_eq!(got, want, "step {step}: an older snapshot");
                }
            }
            old = Some((snap, model.clone()));
        }
    }
}

/// GC walks the point index (`for_each_chain_unordered`): it visits one
/// chain per key, including keys no scan ever merged into the ordered
/// index.
#[test]
fn gc_visits_every_chain() {
    let engine =
        Engine::open_in_memory(EngineConfig::default().retention(Retention::Versions(1))).unwrap();
    for i in 0u32..500 {
        put(&engine, key("g", TypeTag::Event, &i.to_be_bytes()));
        if i % 3 == 0 {
            put(&engine, key("g", TypeTag::Kv, &i.to_be_bytes()));
        }
    }
    let stats = engine.gc().unwrap();
    assert_eq!(stats.chains, engine.stats().keys);
    assert_eq!(stats.chains, 500 + 167);
    put(&engine, key("g", TypeTag::State, b"late"));
    assert_eq!(engine.gc().unwrap().chains, 500 + 167 + 1);
}

/// Scan the families of `tags` until `stop` (and at least 20 times),
/// checking each scan against point reads at the same snapshot; returns
/// the number of rounds.
fn scan_until(engine: &Engine, stop: &AtomicBool, tags: &[TypeTag], keys: u32) -> u32 {
    let mut scans = 0u32;
    while !stop.load(Ordering::Acquire) || scans < 20 {
        for &tag in tags {
            let snap = engine.snapshot();
            let got = scan_all(&snap, &key("c", tag, b""), usize::MAX);
            // Keys are created in order, so the visible ones are exactly
            // 0..n for the n point reads find.
            let n = (0..keys)
                .find(|i| {
                    snap.get(&key("c", tag, &i.to_be_bytes()))
                        .unwrap()
                        .is_none()
                })
                .unwrap_or(keys);
            let want: Vec<Key> = (0..n).map(|i| key("c", tag, &i.to_be_bytes())).collect();
            assert_eq!(got.len(), want.len(), "scan {scans} of {tag:?}");
            assert_eq!(got, want, "scan {scans} of {tag:?}");
        }
        scans += 1;
    }
    scans
}

/// Creators of two families (keys created densely, 0, 1, 2, ...) race
/// two scanners: each scan at a snapshot returns exactly the keys a point read
/// at that snapshot finds (found densely from 0), never fewer.
#[test]
fn concurrent_scans_miss_no_created_key() {
    const KEYS: u32 = 4_000;
    let engine = Engine::open_in_memory(EngineConfig::default()).unwrap();
    let tags = [TypeTag::Kv, TypeTag::Event];
    let stop = Arc::new(AtomicBool::new(false));
    std::thread::scope(|s| {
        for tag in tags {
            let engine = engine.clone();
            s.spawn(move || {
                for i in 0..KEYS {
                    put(&engine, key("c", tag, &i.to_be_bytes()));
                }
            });
        }
        // Two scanners, so one can find a family another is merging.
        let scanners: Vec<_> = (0..2)
            .map(|_| {
                let engine = engine.clone();
                let stop = Arc::clone(&stop);
                s.spawn(move || scan_until(&engine, &stop, &tags, KEYS))
            })
            .collect();
        while engine.stats().keys < 2 * KEYS as usize {
            std::thread::yield_now();
        }
        stop.store(true, Ordering::Release);
        for scanner in scanners {
            assert!(scanner.join().unwrap() >= 20);
        }
    });
}

/// Recovery puts every key it rebuilds (from a checkpoint and from the
/// WAL) on its family's pending list instead of into the ordered index: a
/// reopened database's scans, GC and next checkpoint must still see every
/// key, in order, and keys created after the reopen too.
#[test]
fn a_reopened_database_scans_and_walks_every_recovered_key() {
    use rewinddb_engine::durability::MemStorage;
    let storage = MemStorage::new();
    let open = || {
        let config = EngineConfig::default()
            .background_threads(false)
            .retention(Retention::Versions(1));
        Engine::open_with_storage(config, Arc::new(storage.clone())).unwrap()
    };
    let families = [("r", TypeTag::Kv), ("r", TypeTag::Trace)];
    let mut model: Vec<BTreeSet<Key>> = vec![BTreeSet::new(); families.len()];
    let mut rng = fastrand::Rng::with_seed(9);
    let mut create = |engine: &Engine, n: usize, model: &mut Vec<BTreeSet<Key>>| {
        for _ in 0..n {
            let f = rng.usize(..families.len());
            let (ns, tag) = families[f];
            let k = key(ns, tag, &rng.u32(..).to_be_bytes());
            put(engine, k.clone());
            model[f].insert(k);
        }
    };
    let check = |engine: &Engine, model: &[BTreeSet<Key>], what: &str| {
        let snap = engine.snapshot();
        for (f, &(ns, tag)) in families.iter().enumerate() {
            let want: Vec<Key> = model[f].iter().cloned().collect();
            assert_eq!(scan_all(&snap, &key(ns, tag, b""), 13), want, "{what}");
        }
        let keys: usize = model.iter().map(BTreeSet::len).sum();
        assert_eq!(
            engine.gc().unwrap().chains,
            keys,
            "{what}: GC walks every chain"
        );
    };
    let engine = open();
    create(&engine, 1_500, &mut model);
    engine.checkpoint().unwrap();
    create(&engine, 1_500, &mut model);
    drop(engine);

    // Keys from the checkpoint and from the WAL, never scanned yet.
    let engine = open();
    check(&engine, &model, "after reopen");
    create(&engine, 300, &mut model);
    check(&engine, &model, "after creating more");
    drop(engine);

    // A checkpoint taken right after a reopen, before any scan, holds
    // every key (its walk merges the pending keys first).
    let engine = open();
    engine.checkpoint().unwrap();
    drop(engine);
    let engine = open();
    check(&engine, &model, "after a checkpoint of a fresh reopen");
}
