//! `Snapshot::get_with` (the borrowed read) answers exactly as
//! `Snapshot::get` does: present, absent, deleted, past versions, and the
//! pruned-history error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rewinddb_engine::{
    Engine, EngineConfig, Isolation, Key, Namespace, Retention, RunId, Scope, TypeTag, Value,
    ValueRef,
};

fn key(user: &str) -> Key {
    Key::new(
        Namespace::new("t").unwrap(),
        Scope::Shared,
        TypeTag::Kv,
        user,
    )
}

fn put(engine: &Engine, k: &Key, v: Option<Value>) -> u64 {
    let mut txn = engine.begin(RunId::NIL, Isolation::Snapshot);
    match v {
        Some(v) => txn.put(k.clone(), v).unwrap(),
        None => txn.delete(k.clone()).unwrap(),
    }
    txn.commit().unwrap()
}

#[test]
fn get_with_agrees_with_get_at_every_version() {
    let engine = Engine::open_in_memory(EngineConfig::default()).unwrap();
    let (a, b) = (key("a"), key("b"));
    put(&engine, &a, Some(Value::from("one")));
    put(&engine, &a, Some(Value::from(vec![1u8, 2, 3])));
    put(&engine, &b, Some(Value::Int(7)));
    put(&engine, &a, None);
    let last = engine.visible_version();
    for v in 0..=last {
        let snap = engine.snapshot_at(v).unwrap();
        for k in [&a, &b, &key("never")] {
            let borrowed = snap.get_with(k, |v| v.map(ValueRef::to_value)).unwrap();
            assert_eq!(borrowed, snap.get(k).unwrap(), "key {k} at {v}");
        }
    }
    let snap = engine.snapshot();
    assert!(snap.get_with(&a, |v| v.is_none()).unwrap());
    assert_eq!(
        snap.get_with(&b, |v| v
            .and_then(ValueRef::as_value)
            .and_then(Value::as_i64))
            .unwrap(),
        Some(7)
    );
}

#[test]
fn get_with_reports_pruned_history_like_get() {
    let config = EngineConfig::default().retention(Retention::Versions(1));
    let engine = Engine::open_in_memory(config).unwrap();
    let (a, b) = (key("a"), key("b"));
    put(&engine, &b, Some(Value::Int(0)));
    let old = engine.snapshot();
    put(&engine, &a, Some(Value::Int(1)));
    put(&engine, &a, Some(Value::Int(2)));
    drop(old);
    engine.gc().unwrap();
    // Versions: b@1, a@2, a@3. `Versions(1)` sets no time floor, so version
    // 2 may still be asked for, but GC unlinked a@2, the version that would
    // answer: both reads must report pruned history, not "absent".
    let err_get = engine.snapshot_at(2).map(|s| s.get(&a));
    let err_with = engine
        .snapshot_at(2)
        .map(|s| s.get_with(&a, |v| v.map(ValueRef::to_value)));
    assert_eq!(
        format!("{err_get:?}"),
        format!("{err_with:?}"),
        "both refuse alike (outside retention or pruned)"
    );
    assert!(
        matches!(
            err_with,
            Ok(Err(rewinddb_engine::Error::HistoryPruned { .. }))
        ),
        "{err_with:?}"
    );
}

/// `Transaction::get_with` answers as `Transaction::get`: stored values
/// (inline text and bytes, other values, long bytes kept behind their
/// `Arc`), absent keys, and the transaction's own writes and deletes.
#[test]
fn transaction_get_with_agrees_with_get() {
    let engine = Engine::open_in_memory(EngineConfig::default()).unwrap();
    let long = vec![9u8; rewinddb_engine::INLINE_VALUE_BYTES_MAX + 1];
    let stored = [
        (key("text"), Value::from("inline")),
        (key("bytes"), Value::from(&b"\x00\x01"[..])),
        (key("long"), Value::from(long)),
        (key("int"), Value::Int(4)),
        (key("gone"), Value::Int(5)),
    ];
    for (k, v) in &stored {
        put(&engine, k, Some(v.clone()));
    }
    let mut txn = engine.begin(RunId::NIL, Isolation::Snapshot);
    txn.put(key("mine"), Value::from("own")).unwrap();
    txn.delete(key("gone")).unwrap();
    for k in ["text", "bytes", "long", "int", "gone", "mine", "never"].map(key) {
        let borrowed = txn.get_with(&k, |v| v.map(ValueRef::to_value)).unwrap();
        assert_eq!(borrowed, txn.get(&k).unwrap(), "key {k}");
    }
    assert!(txn.get_with(&key("never"), |v| v.is_none()).unwrap());
    let own = txn.get_with(&key("mine"), |v| {
        v.and_then(ValueRef::as_str).map(str::to_owned)
    });
    assert_eq!(
        own.unwrap().as_deref(),
        Some("own"),
        "own writes lent as their version holds them"
    );
}

/// A borrowed read counts as a read: under `Serializable`, a key read with
/// `get_with` and changed by another commit before this one fails the
/// commit, as a read with `get` does.
#[test]
fn a_borrowed_read_is_validated_like_a_read() {
    let engine = Engine::open_in_memory(EngineConfig::default()).unwrap();
    let (a, b) = (key("a"), key("b"));
    put(&engine, &a, Some(Value::from("v1")));
    let mut txn = engine.begin(RunId::NIL, Isolation::Serializable);
    let seen = txn.get_with(&a, |v| v.and_then(ValueRef::as_str).map(str::to_owned));
    assert_eq!(seen.unwrap().as_deref(), Some("v1"));
    put(&engine, &a, Some(Value::from("v2")));
    txn.put(b, Value::Int(1)).unwrap();
    let err = txn.commit().unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
}
