//! Records under a primitive's type tag that the primitive did not write
//! (a bug elsewhere, or bytes damaged on disk) are reported as
//! `Error::Malformed` or `Error::ChainBroken` naming what is wrong: never
//! a panic and never a plausible wrong answer. Each record is planted with
//! raw engine writes behind the primitive's back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rewinddb_engine::{
    Engine, EngineConfig, Isolation, Key, Namespace, RunId, Scope, TypeTag, Value,
};
use rewinddb_primitives::{
    Error, EventLog, RUNS_NAMESPACE, RunIndex, RunSpec, SpanSpec, StateMachines, TraceStore,
    autocommit,
};

fn engine() -> Engine {
    Engine::open_in_memory(EngineConfig::default()).unwrap()
}

fn ns() -> Namespace {
    Namespace::new("damaged/ns").unwrap()
}

/// Writes `value` (None = delete) at `key`, bypassing every primitive.
fn plant(e: &Engine, key: Key, value: Option<Value>) {
    let mut txn = e.begin(RunId::NIL, Isolation::Snapshot);
    match value {
        Some(v) => txn.put(key, v).unwrap(),
        None => txn.delete(key).unwrap(),
    }
    txn.commit().unwrap();
}

fn event_key(run: RunId, seq: u64) -> Key {
    let mut user = vec![b'e'];
    user.extend_from_slice(&seq.to_be_bytes());
    Key::new(ns(), Scope::Run(run), TypeTag::Event, user)
}

fn log_of_three(e: &Engine) -> (RunId, EventLog) {
    let run = RunId::new();
    let log = EventLog::new(ns(), run);
    autocommit(e, run, Isolation::Snapshot, |t| {
        (0..3).try_for_each(|i| log.append(t, "step", i).map(drop))
    })
    .unwrap();
    (run, log)
}

fn assert_malformed(err: Error, what: &str) {
    match err {
        Error::Malformed { what: w, .. } => assert_eq!(w, what),
        other => panic!("expected Malformed {what}, got {other:?}"),
    }
}

#[test]
fn an_event_record_of_the_wrong_shape_is_malformed_and_breaks_the_chain_there() {
    let e = engine();
    let (run, log) = log_of_three(&e);
    plant(&e, event_key(run, 1), Some(Value::from("not an event")));
    let mut snap = e.snapshot();
    assert_eq!(
        log.get(&mut snap, 0).unwrap().unwrap().payload,
        Value::Int(0)
    );
    assert_malformed(log.get(&mut snap, 1).unwrap_err(), "event");
    assert_malformed(log.read(&mut snap, 0..3).unwrap_err(), "event");
    let err = log.verify(&mut snap).unwrap_err();
    assert!(matches!(err, Error::ChainBroken { seq: 1, .. }), "{err}");
}

#[test]
fn an_event_missing_below_the_head_is_malformed_and_breaks_the_chain_there() {
    let e = engine();
    let (run, log) = log_of_three(&e);
    plant(&e, event_key(run, 1), None);
    let mut snap = e.snapshot();
    assert_eq!(log.len(&mut snap).unwrap(), 3);
    assert_malformed(log.read(&mut snap, ..).unwrap_err(), "event");
    // A range that stops before the hole still reads.
    assert_eq!(log.read(&mut snap, ..=0).unwrap().len(), 1);
    let err = log.verify(&mut snap).unwrap_err();
    assert!(matches!(err, Error::ChainBroken { seq: 1, .. }), "{err}");
}

#[test]
fn a_head_whose_last_hash_disagrees_breaks_the_chain_at_the_last_event() {
    let e = engine();
    let (run, log) = log_of_three(&e);
    let mut head = [0u8; 16];
    head[..8].copy_from_slice(&3u64.to_le_bytes());
    head[8..].copy_from_slice(&0xdead_beefu64.to_le_bytes());
    let head_key = Key::new(ns(), Scope::Run(run), TypeTag::Event, b"h");
    plant(&e, head_key, Some(Value::from(&head[..])));
    let mut snap = e.snapshot();
    assert_eq!(
        log.read(&mut snap, 1..).unwrap().len(),
        2,
        "events themselves are intact"
    );
    let err = log.verify(&mut snap).unwrap_err();
    assert!(matches!(err, Error::ChainBroken { seq: 2, .. }), "{err}");
}

#[test]
fn a_head_that_is_not_16_bytes_is_malformed() {
    let e = engine();
    let (run, log) = log_of_three(&e);
    let head_key = Key::new(ns(), Scope::Run(run), TypeTag::Event, b"h");
    plant(&e, head_key, Some(Value::from(&[1u8, 2, 3][..])));
    assert_malformed(log.len(&mut e.snapshot()).unwrap_err(), "event head");
    // Appending on top of it is refused too, rather than restarting at 0.
    let err = autocommit(&e, run, Isolation::Snapshot, |t| log.append(t, "x", 1)).unwrap_err();
    assert_malformed(err, "event head");
}

#[test]
fn a_span_record_of_the_wrong_shape_is_malformed() {
    let e = engine();
    let run = RunId::new();
    let traces = TraceStore::new(ns(), run);
    autocommit(&e, run, Isolation::Snapshot, |t| {
        traces.record(t, SpanSpec::custom("step", 1))
    })
    .unwrap();
    let mut user = vec![b's'];
    user.extend_from_slice(&0u64.to_be_bytes());
    let key = Key::new(ns(), Scope::Run(run), TypeTag::Trace, user);
    plant(&e, key, Some(Value::from(vec![Value::Int(1)])));
    let mut snap = e.snapshot();
    assert_malformed(traces.get(&mut snap, 0).unwrap_err(), "span");
    assert_malformed(traces.tree(&mut snap).unwrap_err(), "span");
}

#[test]
fn a_state_record_of_the_wrong_shape_is_malformed() {
    let e = engine();
    let sm = StateMachines::shared(ns());
    let key = Key::new(ns(), Scope::Shared, TypeTag::State, b"plan");
    // An array, but of two fields instead of [state, version, allowed].
    plant(
        &e,
        key,
        Some(Value::from(vec![Value::from("idle"), Value::Int(1)])),
    );
    assert_malformed(
        sm.read_state(&mut e.snapshot(), "plan").unwrap_err(),
        "state",
    );
    let err = autocommit(&e, RunId::NIL, Isolation::Snapshot, |t| {
        sm.cas(t, "plan", 1, "busy")
    })
    .unwrap_err();
    assert_malformed(err, "state");
}

#[test]
fn a_run_record_with_an_unknown_status_is_malformed() {
    let e = engine();
    let index = RunIndex::new().unwrap();
    let (run, _) = autocommit(&e, RunId::NIL, Isolation::Snapshot, |t| {
        index.begin_run(t, &RunSpec::new("job"))
    })
    .unwrap();
    let mut user = vec![b'r'];
    user.extend_from_slice(&run.as_u128().to_be_bytes());
    let key = Key::new(
        Namespace::new(RUNS_NAMESPACE).unwrap(),
        Scope::Shared,
        TypeTag::Run,
        user,
    );
    let mut record = e.snapshot().get(&key).unwrap().unwrap().to_json();
    record["status"] = "paused".into();
    plant(&e, key, Some(Value::from(record)));
    let err = index.get_run(&mut e.snapshot(), run).unwrap_err();
    assert!(matches!(err, Error::Malformed { .. }), "{err:?}");
}
