//! The digest encoding is stable: `end_run` records digests that later
//! replays must reproduce, so a change to how the digest is computed (its
//! fields, their order, their encoding, what is masked or skipped) must
//! show here. The pinned value was computed by the original postcard
//! encoding of `digest.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use rewinddb_engine::{
    Engine, EngineConfig, Isolation, Key, Namespace, RunId, Scope, TypeTag, Value,
};
use rewinddb_replay::{Digest, replay_run};

fn key(ns: &str, scope: Scope, tag: TypeTag, user: &[u8]) -> Key {
    Key::new(Namespace::new(ns).unwrap(), scope, tag, user)
}

/// Every value kind, every scope, masked event and span records, a
/// delete, a run index write (not digested), several steps, and user keys
/// that are not UTF-8.
fn workload(engine: &Engine, run: RunId, other: RunId, wall_ms: i64) {
    let own = Scope::Run(run);
    let mut txn = engine.begin(run, Isolation::Snapshot);
    txn.put(key("agent/a", Scope::Shared, TypeTag::Kv, b"plan"), "go")
        .unwrap();
    txn.put(key("agent/a", own, TypeTag::Kv, b"n"), 42i64)
        .unwrap();
    txn.put(key("agent/a", own, TypeTag::Kv, b"f"), 2.5f64)
        .unwrap();
    txn.put(
        key("agent/b", own, TypeTag::Kv, &[0, 159, 255]),
        vec![1u8, 2, 3],
    )
    .unwrap();
    txn.commit().unwrap();

    let mut txn = engine.begin(run, Isolation::Snapshot);
    let mut event_user = vec![b'e'];
    event_user.extend(7u64.to_be_bytes());
    let event = Value::from(vec![
        Value::from("tool"),
        Value::from(vec![Value::Null, Value::from(true)]),
        Value::Int(wall_ms),
        Value::Int(-99),
    ]);
    txn.put(key("agent/a", own, TypeTag::Event, &event_user), event)
        .unwrap();
    let mut span_user = vec![b's'];
    span_user.extend(3u64.to_be_bytes());
    let span: BTreeMap<String, Value> = [
        ("kind", Value::from("tool_call")),
        ("start_ms", Value::Int(wall_ms)),
        ("end_ms", Value::Int(wall_ms + 5)),
        ("data", Value::from("lookup")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    txn.put(key("agent/a", own, TypeTag::Trace, &span_user), span)
        .unwrap();
    txn.put(
        key("agent/a", Scope::Run(other), TypeTag::State, b"m"),
        1i64,
    )
    .unwrap();
    txn.put(key("runs", Scope::Shared, TypeTag::Run, b"r"), wall_ms)
        .unwrap();
    txn.commit().unwrap();

    let mut txn = engine.begin(run, Isolation::Snapshot);
    txn.delete(key("agent/a", own, TypeTag::Kv, b"f")).unwrap();
    txn.put(key("agent/a", own, TypeTag::Kv, b"n"), i64::MIN)
        .unwrap();
    txn.put(key("agent/a", own, TypeTag::Kv, &[b'x'; 300]), Value::Null)
        .unwrap();
    txn.commit().unwrap();
}

#[test]
fn digest_of_a_fixed_workload_is_pinned() {
    // Fixed ids: the digest must not depend on the run's own id, but it
    // does encode another run's scope, so that one is pinned.
    let other = RunId::from_u128(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
    let digests: Vec<Digest> = [(RunId::new(), 1_000), (RunId::new(), 987_654_321)]
        .into_iter()
        .map(|(run, wall_ms)| {
            let engine = Engine::open_in_memory(EngineConfig::default()).unwrap();
            workload(&engine, run, other, wall_ms);
            replay_run(&engine, run).unwrap().digest()
        })
        .collect();
    assert_eq!(
        digests[0], digests[1],
        "wall times and run ids are left out"
    );
    assert_eq!(digests[0].to_string(), "923707c386d2693f");
}
