//! Guards bad input: every rejected namespace, key, value, transaction, version or config is a clear error variant and leaves the store unchanged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use rewinddb_engine::{
    Engine, EngineConfig, Error, Isolation, Key, Limits, NAMESPACE_SIZE_BYTES_MAX, Namespace,
    Retention, RetryPolicy, RunId, Scope, TypeTag, Value, Version,
};

const KEY_MAX: usize = 16;
const VALUE_MAX: usize = 256;
const DEPTH_MAX: usize = 4;
const WRITES_MAX: usize = 3;

fn limits() -> Limits {
    Limits {
        key_size_bytes_max: KEY_MAX,
        value_size_bytes_max: VALUE_MAX,
        value_depth_max: DEPTH_MAX,
        txn_writes_count_max: WRITES_MAX,
    }
}

fn key(user: impl AsRef<[u8]>) -> Key {
    Key::new(
        Namespace::new("bad").unwrap(),
        Scope::Shared,
        TypeTag::Kv,
        user,
    )
}

/// An engine with small limits holding two keys (versions 1 and 2).
fn engine_with(retention: Retention) -> Engine {
    let engine = Engine::open_in_memory(
        EngineConfig::default()
            .limits(limits())
            .retention(retention),
    )
    .unwrap();
    for (k, v) in [("a", 1), ("b", 2)] {
        let mut t = engine.begin(RunId::NIL, Isolation::Snapshot);
        t.put(key(k), v).unwrap();
        t.commit().unwrap();
    }
    engine
}

/// Commit a = `value` in a transaction of its own (dropped at once, so it pins nothing).
fn put_a(engine: &Engine, value: i64) {
    let mut t = engine.begin(RunId::NIL, Isolation::Snapshot);
    t.put(key("a"), value).unwrap();
    t.commit().unwrap();
}

fn engine() -> Engine {
    engine_with(Retention::KeepAll)
}

/// Everything a caller can observe about the store: visible version, linked versions, keys,
/// and the contents of the namespace with each key's version.
#[derive(Debug, PartialEq)]
struct State {
    visible: Version,
    versions: u64,
    keys: usize,
    live_snapshots: usize,
    contents: Vec<(Key, Value, Version)>,
}

fn state(engine: &Engine) -> State {
    let stats = engine.stats();
    let snap = engine.snapshot();
    let contents = snap
        .scan(&key(""), None, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(k, v)| {
            let version = snap.get_versioned(&k).unwrap().1;
            (k, v, version)
        })
        .collect();
    State {
        visible: stats.visible,
        versions: stats.versions,
        keys: stats.keys,
        live_snapshots: stats.live_snapshots,
        contents,
    }
}

/// Run `f` and check the store is the same before and after.
fn unchanged<T>(engine: &Engine, f: impl FnOnce() -> T) -> T {
    let before = state(engine);
    let out = f();
    assert_eq!(
        state(engine),
        before,
        "a rejected operation changed the store"
    );
    out
}

/// Deepest value nesting: `depth` levels of arrays around an integer.
fn nested(depth: usize) -> Value {
    let mut v = Value::Int(0);
    for _ in 1..depth {
        v = Value::from(vec![v]);
    }
    v
}

#[test]
fn namespaces_empty_oversized_or_with_nul_are_refused() {
    let cases: [(String, &str); 3] = [
        (String::new(), "empty"),
        ("n".repeat(NAMESPACE_SIZE_BYTES_MAX + 1), "longer"),
        ("acme\0bot".to_string(), "NUL"),
    ];
    for (raw, reason_part) in cases {
        match Namespace::new(&raw) {
            Err(Error::InvalidNamespace { reason, .. }) => {
                assert!(reason.contains(reason_part), "{reason}")
            }
            other => panic!("{raw:?}: expected InvalidNamespace, got {other:?}"),
        }
    }
    assert!(
        Namespace::new(&"n".repeat(NAMESPACE_SIZE_BYTES_MAX)).is_ok(),
        "exactly the limit is fine"
    );
    assert!(Namespace::new("acme/support-bot").is_ok());
}

#[test]
fn namespaces_are_validated_when_deserialized() {
    assert!(serde_json::from_str::<Namespace>("\"\"").is_err());
    assert!(serde_json::from_str::<Namespace>("\"a\\u0000b\"").is_err());
    assert_eq!(
        serde_json::from_str::<Namespace>("\"ok\"")
            .unwrap()
            .as_str(),
        "ok"
    );
}

#[test]
fn keys_over_the_limit_are_refused_everywhere() {
    let engine = engine();
    let big = key(vec![b'k'; KEY_MAX + 1]);
    let is_too_large = |r: Result<(), Error>| match r {
        Err(Error::KeyTooLarge { size, max }) => assert_eq!((size, max), (KEY_MAX + 1, KEY_MAX)),
        other => panic!("expected KeyTooLarge, got {other:?}"),
    };
    unchanged(&engine, || {
        let mut t = engine.begin(RunId::NIL, Isolation::Serializable);
        is_too_large(t.put(big.clone(), 1));
        is_too_large(t.delete(big.clone()));
        is_too_large(t.cas(big.clone(), 0, Some(Value::Int(1))));
        is_too_large(t.get(&big).map(drop));
        is_too_large(t.scan(&big, None, 10).map(drop));
        is_too_large(engine.snapshot().get(&big).map(drop));
        is_too_large(engine.snapshot().scan(&big, None, 10).map(drop));
        assert_eq!(t.write_count(), 0);
        assert_eq!(
            t.commit().unwrap(),
            2,
            "nothing was buffered: a read-only commit"
        );
    });
    // Exactly the limit is accepted.
    let mut t = engine.begin(RunId::NIL, Isolation::Snapshot);
    t.put(key(vec![b'k'; KEY_MAX]), 1).unwrap();
    assert_eq!(t.commit().unwrap(), 3);
}

#[test]
fn values_over_the_size_limit_are_refused() {
    let engine = engine();
    let big = Value::from("x".repeat(VALUE_MAX)); // 8 + VALUE_MAX bytes
    unchanged(&engine, || {
        let mut t = engine.begin(RunId::NIL, Isolation::Snapshot);
        for r in [
            t.put(key("a"), big.clone()),
            t.cas(key("c"), 0, Some(big.clone())),
        ] {
            match r {
                Err(Error::ValueTooLarge { size, max }) => {
                    assert_eq!((size, max), (VALUE_MAX + 8, VALUE_MAX))
                }
                other => panic!("expected ValueTooLarge, got {other:?}"),
            }
        }
        // A value made large by many small elements counts as large too.
        let many: Vec<Value> = (0..VALUE_MAX as i64).map(Value::from).collect();
        assert!(matches!(
            t.put(key("a"), many),
            Err(Error::ValueTooLarge { .. })
        ));
        assert_eq!(t.write_count(), 0);
        assert_eq!(
            t.get(&key("a")).unwrap(),
            Some(Value::Int(1)),
            "the old value is still read"
        );
        t.commit().unwrap();
    });
    let mut t = engine.begin(RunId::NIL, Isolation::Snapshot);
    t.put(key("a"), "x".repeat(VALUE_MAX - 8)).unwrap();
    t.commit().unwrap();
}

#[test]
fn values_nested_too_deep_are_refused() {
    let engine = engine();
    unchanged(&engine, || {
        let mut t = engine.begin(RunId::NIL, Isolation::Snapshot);
        match t.put(key("a"), nested(DEPTH_MAX + 1)) {
            Err(Error::ValueTooDeep { depth, max }) => {
                assert_eq!((depth, max), (DEPTH_MAX + 1, DEPTH_MAX))
            }
            other => panic!("expected ValueTooDeep, got {other:?}"),
        }
        assert_eq!(t.write_count(), 0);
        t.commit().unwrap();
    });
    let mut t = engine.begin(RunId::NIL, Isolation::Snapshot);
    t.put(key("a"), nested(DEPTH_MAX)).unwrap();
    t.commit().unwrap();
    assert_eq!(
        engine.snapshot().get(&key("a")).unwrap().unwrap().depth(),
        DEPTH_MAX
    );
}

#[test]
fn too_many_writes_in_one_transaction_are_refused() {
    let engine = engine();
    let mut t = engine.begin(RunId::NIL, Isolation::Snapshot);
    for i in 0..WRITES_MAX {
        t.put(key(format!("w{i}")), 1).unwrap();
    }
    unchanged(&engine, || {
        match t.put(key("one-too-many"), 1) {
            Err(Error::TooManyWrites { count, max }) => {
                assert_eq!((count, max), (WRITES_MAX + 1, WRITES_MAX))
            }
            other => panic!("expected TooManyWrites, got {other:?}"),
        }
        assert!(matches!(
            t.delete(key("one-too-many")),
            Err(Error::TooManyWrites { .. })
        ));
        // Rewriting a key already in the write set does not add a write.
        t.put(key("w0"), 2).unwrap();
        t.delete(key("w1")).unwrap();
        assert_eq!(t.write_count(), WRITES_MAX);
        assert_eq!(t.get(&key("one-too-many")).unwrap(), None);
    });
    // The transaction stays usable and commits what it buffered.
    let v = t.commit().unwrap();
    let snap = engine.snapshot();
    assert_eq!(
        snap.get_versioned(&key("w0")).unwrap(),
        (Some(Value::Int(2)), v)
    );
    assert_eq!(snap.get_versioned(&key("w1")).unwrap(), (None, v));
    assert_eq!(snap.get_versioned(&key("one-too-many")).unwrap(), (None, 0));
}

#[test]
fn snapshot_at_a_future_version_is_refused() {
    let engine = engine();
    unchanged(&engine, || {
        for requested in [3, 4, Version::MAX] {
            match engine.snapshot_at(requested) {
                Err(Error::VersionInFuture {
                    requested: r,
                    visible,
                }) => assert_eq!((r, visible), (requested, 2)),
                other => panic!("expected VersionInFuture, got {other:?}"),
            }
        }
    });
    assert_eq!(engine.snapshot_at(2).unwrap().version(), 2);
    assert_eq!(
        engine.snapshot_at(0).unwrap().get(&key("a")).unwrap(),
        None,
        "version 0 is the empty database"
    );
}

#[test]
fn snapshot_at_behind_a_retention_window_is_refused() {
    let window = Duration::from_millis(5);
    let engine = engine_with(Retention::Window(window));
    std::thread::sleep(window * 4);
    put_a(&engine, 3);
    std::thread::sleep(window * 4);
    let floor = engine.gc().unwrap().floor;
    assert_eq!(floor, 3);
    unchanged(&engine, || {
        for requested in [0, 1, 2] {
            match engine.snapshot_at(requested) {
                Err(Error::VersionOutsideRetention {
                    requested: r,
                    horizon,
                }) => assert_eq!((r, horizon), (requested, 3)),
                other => panic!("expected VersionOutsideRetention, got {other:?}"),
            }
        }
    });
    assert_eq!(
        engine.snapshot_at(3).unwrap().get(&key("a")).unwrap(),
        Some(Value::Int(3))
    );
}

// Under `Retention::Versions` history is cut per key, so there is no single floor:
// `snapshot_at` accepts the version and each read of a key whose history was cut fails with
// `HistoryPruned` (never a wrong value), while keys with their history intact still read.
#[test]
fn reads_behind_versions_retention_report_pruned_history() {
    let engine = engine_with(Retention::Versions(1));
    put_a(&engine, 3);
    assert_eq!(engine.gc().unwrap().unlinked, 1);
    let past = engine.snapshot_at(1).unwrap();
    unchanged(&engine, || {
        match past.get(&key("a")) {
            Err(Error::HistoryPruned { requested, key: k }) => {
                assert_eq!(requested, 1);
                assert!(k.contains("bad/shared/Kv/a"), "{k}");
            }
            other => panic!("expected HistoryPruned, got {other:?}"),
        }
        assert_eq!(
            past.get(&key("b")).unwrap(),
            None,
            "b was written at 2 and nothing of it was cut"
        );
    });
}

#[test]
fn finished_transactions_refuse_every_operation() {
    let engine = engine();
    let mut committed = engine.begin(RunId::NIL, Isolation::Snapshot);
    committed.put(key("c"), 3).unwrap();
    committed.commit().unwrap();
    let mut rolled_back = engine.begin(RunId::NIL, Isolation::Snapshot);
    rolled_back.put(key("d"), 4).unwrap();
    rolled_back.rollback().unwrap();
    let mut read_only = engine.begin(RunId::NIL, Isolation::Serializable);
    read_only.get(&key("a")).unwrap();
    read_only.commit().unwrap();
    unchanged(&engine, || {
        for (t, how) in [
            (&mut committed, "committed"),
            (&mut rolled_back, "rolled back"),
            (&mut read_only, "committed"),
        ] {
            assert!(t.is_finished());
            let results = [
                t.commit().map(drop),
                t.rollback(),
                t.put(key("e"), 5),
                t.delete(key("a")),
                t.cas(key("a"), 1, None),
                t.get(&key("a")).map(drop),
                t.scan(&key(""), None, 10).map(drop),
            ];
            for r in results {
                match r {
                    Err(Error::TransactionFinished(h)) => assert_eq!(h, how),
                    other => panic!("expected TransactionFinished({how}), got {other:?}"),
                }
            }
        }
    });
    assert_eq!(engine.snapshot().get(&key("d")).unwrap(), None);
}

#[test]
fn a_transaction_that_lost_a_conflict_is_finished() {
    let engine = engine();
    let mut loser = engine.begin(RunId::NIL, Isolation::Snapshot);
    loser.put(key("a"), 10).unwrap();
    loser.put(key("z"), 26).unwrap();
    let mut winner = engine.begin(RunId::NIL, Isolation::Snapshot);
    winner.put(key("a"), 11).unwrap();
    winner.commit().unwrap();
    let before = state(&engine);
    assert!(loser.commit().unwrap_err().is_conflict());
    let after = state(&engine);
    // Only the loser's registration is gone (a finished transaction pins nothing).
    assert_eq!(after.live_snapshots + 1, before.live_snapshots);
    assert_eq!(
        State {
            live_snapshots: before.live_snapshots,
            ..after
        },
        before
    );
    unchanged(&engine, || {
        assert!(loser.is_finished());
        assert!(matches!(
            loser.commit(),
            Err(Error::TransactionFinished("aborted"))
        ));
        assert!(matches!(
            loser.put(key("a"), 12),
            Err(Error::TransactionFinished("aborted"))
        ));
    });
    assert_eq!(
        engine.snapshot().get(&key("z")).unwrap(),
        None,
        "nothing of the loser was installed"
    );
}

#[test]
fn configs_that_cannot_work_are_refused() {
    match Engine::open_in_memory(EngineConfig::default().retention(Retention::Versions(0))) {
        Err(Error::InvalidArgument(msg)) => assert!(msg.contains("Versions"), "{msg}"),
        other => panic!("expected InvalidArgument, got {:?}", other.map(|_| ())),
    }
    let retry = RetryPolicy {
        attempts: 0,
        ..RetryPolicy::default()
    };
    match Engine::open_in_memory(EngineConfig::default().retry(retry)) {
        Err(Error::InvalidArgument(msg)) => assert!(msg.contains("attempts"), "{msg}"),
        other => panic!("expected InvalidArgument, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn run_ids_that_do_not_parse_are_refused() {
    for bad in [
        "",
        "not-a-run-id",
        "0190f5a0-0000-7000-8000-00000000000",
        "0190f5a0-0000-7000-8000-0000000000000",
        "0190f5a0-0000-7000-8000-00000000000g",
        "0190f5a000007000800000000000000000",
    ] {
        assert!(
            matches!(bad.parse::<RunId>(), Err(Error::InvalidArgument(_))),
            "{bad:?} parsed"
        );
    }
}

#[test]
fn retry_helper_gives_up_after_its_attempts() {
    let retry = RetryPolicy {
        attempts: 3,
        backoff_min: Duration::from_micros(1),
        backoff_max: Duration::from_micros(10),
    };
    let engine = Engine::open_in_memory(EngineConfig::default().retry(retry)).unwrap();
    let mut attempts = 0;
    let result = engine.transaction(RunId::NIL, Isolation::Snapshot, |t| {
        attempts += 1;
        t.put(key("a"), 1)?;
        // Another writer commits the same key first, every time.
        let mut other = engine.begin(RunId::NIL, Isolation::Snapshot);
        other.put(key("a"), 0)?;
        other.commit()?;
        Ok(())
    });
    match result {
        Err(Error::RetriesExhausted { attempts: 3, last }) => assert!(last.is_conflict(), "{last}"),
        other => panic!("expected RetriesExhausted after 3 attempts, got {other:?}"),
    }
    assert_eq!(attempts, 3);
    assert_eq!(
        engine.visible_version(),
        3,
        "only the three interfering commits landed"
    );
    assert_eq!(
        engine.snapshot().get(&key("a")).unwrap(),
        Some(Value::Int(0))
    );
}

#[test]
fn retry_helper_propagates_failures_without_retrying() {
    let engine = engine();
    let mut attempts = 0;
    let result = unchanged(&engine, || {
        engine.transaction(RunId::NIL, Isolation::Snapshot, |t| {
            attempts += 1;
            t.put(key("a"), 10)?;
            t.put(key(vec![b'k'; KEY_MAX + 1]), 1)
        })
    });
    assert!(
        matches!(result, Err(Error::KeyTooLarge { .. })),
        "{result:?}"
    );
    assert_eq!(attempts, 1);
}
