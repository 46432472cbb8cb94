//! Every kind of `Value` (each scalar, bytes, empty and nested arrays and
//! objects, floats by their bits) comes back bit for bit after recovery
//! from the WAL alone and from a checkpoint, history included; and the WAL
//! decoder refuses, rather than misreads, a value variant it does not know
//! and a value nested deeper than `VALUE_DECODE_DEPTH_MAX`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use rewinddb_engine::durability::MemStorage;
use rewinddb_engine::durability::codec::{VALUE_DECODE_DEPTH_MAX, decode_commit_record};
use rewinddb_engine::{
    CheckpointPolicy, CommitRecord, Engine, EngineConfig, Isolation, Key, Namespace, RunId, Scope,
    TypeTag, Value,
};

fn key(i: usize) -> Key {
    Key::new(
        Namespace::new("d/values").unwrap(),
        Scope::Shared,
        TypeTag::Kv,
        format!("k{i:02}"),
    )
}

fn values() -> Vec<Value> {
    let object: BTreeMap<String, Value> = [
        ("".to_string(), Value::Null),
        (
            "nested".to_string(),
            Value::from(vec![Value::Bool(false), Value::Float(-0.0)]),
        ),
        ("ünïcode".to_string(), Value::from("✓")),
    ]
    .into_iter()
    .collect();
    vec![
        Value::Null,
        Value::Bool(true),
        Value::Int(i64::MIN),
        Value::Int(i64::MAX),
        Value::Float(f64::from_bits(0x7ff8_0000_0000_0001)), // a NaN with payload
        Value::Float(-0.0),
        Value::from(""),
        Value::from((0..=255u8).collect::<Vec<u8>>()),
        Value::from(Vec::<Value>::new()),
        Value::from(BTreeMap::new()),
        Value::from(object.clone()),
        Value::from(vec![Value::from(object), Value::from(vec![Value::Int(1)])]),
    ]
}

/// Equal as stored: floats compared by their bits (NaN != NaN otherwise).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|((kx, x), (ky, y))| kx == ky && same(x, y))
        }
        _ => a == b,
    }
}

fn open(storage: &MemStorage) -> Engine {
    let config = EngineConfig::default().checkpoint(CheckpointPolicy::MANUAL);
    Engine::open_with_storage(config, Arc::new(storage.clone())).unwrap()
}

/// Writes every value twice (an older and a newer version per key), and a
/// delete; returns the version of the first round.
fn write_all(engine: &Engine) -> u64 {
    let mut first = 0;
    for round in 0..2 {
        let mut txn = engine.begin(RunId::NIL, Isolation::Snapshot);
        for (i, v) in values().into_iter().enumerate() {
            let v = if round == 0 { Value::Int(i as i64) } else { v };
            txn.put(key(i), v).unwrap();
        }
        txn.delete(key(99)).unwrap();
        let v = txn.commit().unwrap();
        if round == 0 {
            first = v;
        }
    }
    first
}

fn check(engine: &Engine, first: u64, how: &str) {
    let snap = engine.snapshot();
    let past = engine.snapshot_at(first).unwrap();
    for (i, want) in values().iter().enumerate() {
        let got = snap.get(&key(i)).unwrap().unwrap();
        assert!(same(&got, want), "{how}: key {i}: {got:?} != {want:?}");
        assert_eq!(
            past.get(&key(i)).unwrap(),
            Some(Value::Int(i as i64)),
            "{how}"
        );
    }
    assert_eq!(snap.get(&key(99)).unwrap(), None, "{how}");
}

#[test]
fn every_kind_of_value_survives_wal_recovery_and_checkpoint_recovery() {
    let storage = MemStorage::new();
    let engine = open(&storage);
    let first = write_all(&engine);
    engine.close().unwrap();

    let engine = open(&storage);
    check(&engine, first, "from the WAL");
    engine.checkpoint().unwrap();
    engine.close().unwrap();

    let engine = open(&storage);
    check(&engine, first, "from the checkpoint");
}

fn encoded_record(value: Value) -> Vec<u8> {
    let record = CommitRecord {
        version: 1,
        run: RunId::NIL,
        wall_ms: 0,
        writes: vec![(key(0), Some(value))],
    };
    postcard::to_stdvec(&record).unwrap()
}

#[test]
fn the_wal_decoder_reads_what_serde_wrote_and_refuses_unknown_variants() {
    for v in values() {
        let decoded = decode_commit_record(&encoded_record(v.clone())).unwrap();
        assert!(same(decoded.writes[0].1.as_ref().unwrap(), &v), "{v:?}");
    }
    // Int(5) ends the record as [Some = 1][variant 2][zigzag 5 = 10].
    let mut bytes = encoded_record(Value::Int(5));
    let n = bytes.len();
    assert_eq!(bytes[n - 3..], [1, 2, 10]);
    bytes[n - 2] = 8; // one past Object (7)
    assert!(decode_commit_record(&bytes).is_err());
    // Trailing bytes after a valid record are refused too.
    let mut bytes = encoded_record(Value::Int(5));
    bytes.push(0);
    assert!(decode_commit_record(&bytes).is_err());
}

#[test]
fn the_wal_decoder_refuses_values_nested_past_its_depth_limit() {
    let nest = |depth: usize| (1..depth).fold(Value::Null, |inner, _| Value::from(vec![inner]));
    let ok = nest(VALUE_DECODE_DEPTH_MAX);
    assert!(decode_commit_record(&encoded_record(ok)).is_ok());
    let deep = nest(VALUE_DECODE_DEPTH_MAX + 1);
    assert!(decode_commit_record(&encoded_record(deep)).is_err());
}
