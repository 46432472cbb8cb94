//! Diff at the engine level: known differences (a changed value, a key only
//! in one run, a key only in the other) are each reported exactly once,
//! runs are lined up by their own scopes, and equal keys are not reported.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rewinddb_engine::{
    Engine, EngineConfig, Isolation, Key, Namespace, RunId, Scope, TypeTag, Value,
};
use rewinddb_replay::{RunDiff, RunScope, diff_runs};

fn put(engine: &Engine, run: RunId, scope: Scope, tag: TypeTag, user: &str, value: Value) {
    let key = Key::new(Namespace::new("d").unwrap(), scope, tag, user);
    let mut txn = engine.begin(run, Isolation::Snapshot);
    txn.put(key, value).unwrap();
    txn.commit().unwrap();
}

/// Two runs that share most writes; b changes one value, adds one event
/// and misses one trace key.
fn two_runs() -> (Engine, RunId, RunId) {
    let engine = Engine::open_in_memory(EngineConfig::default()).unwrap();
    let (a, b) = (RunId::new(), RunId::new());
    for run in [a, b] {
        let own = Scope::Run(run);
        put(&engine, run, own, TypeTag::Kv, "same", Value::from(1));
        let plan = if run == a { "search" } else { "ask" };
        put(&engine, run, own, TypeTag::Kv, "plan", Value::from(plan));
        put(&engine, run, own, TypeTag::Event, "0", Value::from("start"));
        put(
            &engine,
            run,
            Scope::Shared,
            TypeTag::State,
            "m",
            Value::from("done"),
        );
    }
    put(
        &engine,
        b,
        Scope::Run(b),
        TypeTag::Event,
        "1",
        Value::from("extra"),
    );
    put(
        &engine,
        a,
        Scope::Run(a),
        TypeTag::Trace,
        "s",
        Value::from("span"),
    );
    (engine, a, b)
}

#[test]
fn each_known_difference_is_reported_exactly_once() {
    let (engine, a, b) = two_runs();
    let diff = diff_runs(&engine, a, b).unwrap();
    let kv = diff.tag(TypeTag::Kv);
    assert_eq!(kv.len(), 1, "{diff}");
    assert_eq!(&*kv.changed[0].key.user, b"plan");
    assert_eq!(kv.changed[0].key.scope, RunScope::Own);
    assert_eq!(kv.changed[0].a, Value::from("search"));
    assert_eq!(kv.changed[0].b, Value::from("ask"));
    let events = diff.tag(TypeTag::Event);
    assert_eq!(events.len(), 1, "{diff}");
    assert_eq!(events.only_b[0].value, Value::from("extra"));
    let traces = diff.tag(TypeTag::Trace);
    assert_eq!(traces.len(), 1, "{diff}");
    assert_eq!(&*traces.only_a[0].key.user, b"s");
    assert!(diff.tag(TypeTag::State).is_empty(), "{diff}");
    assert_eq!(diff.tags.len(), 3);
}

#[test]
fn a_run_diffed_with_itself_is_empty_and_reversing_swaps_sides() {
    let (engine, a, b) = two_runs();
    assert!(diff_runs(&engine, a, a).unwrap().is_empty());
    let ab = diff_runs(&engine, a, b).unwrap();
    let ba = diff_runs(&engine, b, a).unwrap();
    assert_eq!(ab.tag(TypeTag::Event).only_b, ba.tag(TypeTag::Event).only_a);
    assert_eq!(
        ab.tag(TypeTag::Kv).changed[0].a,
        ba.tag(TypeTag::Kv).changed[0].b
    );
}

#[test]
fn diff_prints_a_report_and_round_trips_through_json() {
    let (engine, a, b) = two_runs();
    let diff = diff_runs(&engine, a, b).unwrap();
    let report = diff.to_string();
    assert!(
        report.contains("changed  Kv d/run/plan: \"search\" -> \"ask\""),
        "{report}"
    );
    assert!(
        report.contains("only b   Event d/run/1 = \"extra\""),
        "{report}"
    );
    let json = serde_json::to_string(&diff).unwrap();
    let back: RunDiff = serde_json::from_str(&json).unwrap();
    assert_eq!(back, diff);
}
