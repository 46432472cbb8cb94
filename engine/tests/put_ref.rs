//! `Transaction::put_ref` (a value lent for the call, copied straight into
//! its version) writes exactly what `Transaction::put` of the equal value
//! writes: read back inside the transaction, after the commit, and after
//! recovery from the WAL; and it refuses what `put` refuses, buffering
//! nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use rewinddb_engine::durability::MemStorage;
use rewinddb_engine::{
    CheckpointPolicy, Engine, EngineConfig, Error, INLINE_VALUE_BYTES_MAX, Isolation, Key, Limits,
    Namespace, RunId, Scope, TypeTag, Value, ValueRef,
};

fn key(side: &str, i: usize) -> Key {
    Key::new(
        Namespace::new("t/put_ref").unwrap(),
        Scope::Shared,
        TypeTag::Kv,
        format!("{side}{i:02}"),
    )
}

/// Values of every shape `put_ref` treats apart: inline text and bytes
/// (empty, short, at the inline limit), text and bytes past it, and values
/// that are neither.
fn values() -> Vec<Value> {
    let object: BTreeMap<String, Value> = [("a".to_string(), Value::Int(1))].into();
    vec![
        Value::from(""),
        Value::from("text"),
        Value::from("é".repeat(INLINE_VALUE_BYTES_MAX / 2)),
        Value::from("x".repeat(INLINE_VALUE_BYTES_MAX + 1)),
        Value::from(Vec::<u8>::new()),
        Value::from(vec![7u8; 100]),
        Value::from(vec![1u8; INLINE_VALUE_BYTES_MAX]),
        Value::from(vec![2u8; INLINE_VALUE_BYTES_MAX + 1]),
        Value::Null,
        Value::Int(-3),
        Value::from(vec![Value::Bool(true), Value::from("in an array")]),
        Value::from(object),
    ]
}

/// The value lent as a caller holding it would lend it: text and bytes as
/// slices, anything else as the value.
fn lent(v: &Value) -> ValueRef<'_> {
    match v {
        Value::String(s) => ValueRef::String(s),
        Value::Bytes(b) => ValueRef::Bytes(b),
        other => ValueRef::Value(other),
    }
}

/// Key `a{i}` written with `put`, key `b{i}` with `put_ref`, in one
/// transaction; both read back alike before the commit.
fn write_both_ways(engine: &Engine) {
    let mut txn = engine.begin(RunId::NIL, Isolation::Snapshot);
    for (i, v) in values().iter().enumerate() {
        txn.put(key("a", i), v.clone()).unwrap();
        txn.put_ref(key("b", i), lent(v)).unwrap();
        assert_eq!(
            txn.get(&key("b", i)).unwrap().as_ref(),
            Some(v),
            "own write {i}"
        );
        let borrowed = txn.get_with(&key("b", i), |r| r.map(ValueRef::to_value));
        assert_eq!(
            borrowed.unwrap().as_ref(),
            Some(v),
            "own write {i}, borrowed"
        );
    }
    let scanned = txn
        .scan(&key("b", 0).family().key(""), None, usize::MAX)
        .unwrap();
    let want: Vec<Value> = values();
    let b_side: Vec<&Value> = scanned
        .iter()
        .filter(|(k, _)| k.user().starts_with(b"b"))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        b_side,
        want.iter().collect::<Vec<_>>(),
        "own writes in a scan"
    );
    txn.commit().unwrap();
}

fn check(engine: &Engine, how: &str) {
    let snap = engine.snapshot();
    for (i, v) in values().iter().enumerate() {
        let (a, b) = (
            snap.get(&key("a", i)).unwrap(),
            snap.get(&key("b", i)).unwrap(),
        );
        assert_eq!(b.as_ref(), Some(v), "{how}: value {i}");
        assert_eq!(a, b, "{how}: value {i}, put and put_ref");
    }
}

#[test]
fn put_ref_writes_what_put_writes_before_and_after_commit() {
    let engine = Engine::open_in_memory(EngineConfig::default()).unwrap();
    write_both_ways(&engine);
    check(&engine, "committed");
}

#[test]
fn put_ref_survives_recovery_from_the_wal_and_from_a_checkpoint() {
    let storage = MemStorage::new();
    let open = || {
        let config = EngineConfig::default().checkpoint(CheckpointPolicy::MANUAL);
        Engine::open_with_storage(config, Arc::new(storage.clone())).unwrap()
    };
    let engine = open();
    write_both_ways(&engine);
    engine.close().unwrap();
    let engine = open();
    check(&engine, "from the WAL");
    engine.checkpoint().unwrap();
    engine.close().unwrap();
    check(&open(), "from the checkpoint");
}

#[test]
fn put_ref_refuses_what_put_refuses_and_buffers_nothing() {
    let limits = Limits {
        value_size_bytes_max: 64,
        key_size_bytes_max: 8,
        ..Limits::default()
    };
    let engine = Engine::open_in_memory(EngineConfig::default().limits(limits)).unwrap();
    let mut txn = engine.begin(RunId::NIL, Isolation::Snapshot);
    let big = vec![0u8; 64];
    let err = txn.put_ref(key("a", 0), ValueRef::Bytes(&big)).unwrap_err();
    assert!(
        matches!(err, Error::ValueTooLarge { size: 72, max: 64 }),
        "{err:?}"
    );
    let nested = Value::from(vec![Value::from("y".repeat(60))]);
    let err = txn
        .put_ref(key("a", 1), ValueRef::Value(&nested))
        .unwrap_err();
    assert!(matches!(err, Error::ValueTooLarge { .. }), "{err:?}");
    let long_key = Key::new(
        Namespace::new("t/put_ref").unwrap(),
        Scope::Shared,
        TypeTag::Kv,
        "much too long",
    );
    let err = txn.put_ref(long_key, ValueRef::Bytes(b"ok")).unwrap_err();
    assert!(matches!(err, Error::KeyTooLarge { .. }), "{err:?}");
    assert_eq!(txn.write_count(), 0, "nothing buffered");
    txn.put_ref(key("a", 2), ValueRef::Bytes(&big[..56]))
        .unwrap();
    assert_eq!(txn.write_count(), 1, "a value at the limit is taken");
    txn.commit().unwrap();
    let err = txn
        .put_ref(key("a", 3), ValueRef::Bytes(b"late"))
        .unwrap_err();
    assert!(matches!(err, Error::TransactionFinished(_)), "{err:?}");
}
