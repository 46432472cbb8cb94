//! Raw-key diff (`diff_states`) at the engine level: known differences (a
//! changed value, a key only in one run, a key only in the other) are each
//! reported exactly once, runs are lined up by their own scopes, and equal
//! keys are not reported.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rewinddb_engine::{
    Engine, EngineConfig, Isolation, Key, Namespace, RunId, Scope, TypeTag, Value,
};
use rewinddb_replay::{KeyDiff, RunScope, TagDiff, diff_states, replay_run};

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

fn diff(engine: &Engine, a: RunId, b: RunId) -> Vec<TagDiff> {
    diff_states(
        replay_run(engine, a).unwrap().state(),
        replay_run(engine, b).unwrap().state(),
    )
}

fn tag(diff: &[TagDiff], tag: TypeTag) -> KeyDiff {
    diff.iter()
        .find(|t| t.tag == tag)
        .map(|t| t.keys.clone())
        .unwrap_or_default()
}

#[test]
fn each_known_difference_is_reported_exactly_once() {
    let (engine, a, b) = two_runs();
    let diff = diff(&engine, a, b);
    let kv = tag(&diff, TypeTag::Kv);
    assert_eq!(kv.len(), 1, "{diff:?}");
    assert_eq!(&*kv.changed[0].key.user, b"plan");
    assert_eq!(kv.changed[0].key.scope, RunScope::Own);
    assert_eq!(kv.changed[0].a, Value::from("search"));
    assert_eq!(kv.changed[0].b, Value::from("ask"));
    let events = tag(&diff, TypeTag::Event);
    assert_eq!(events.len(), 1, "{diff:?}");
    assert_eq!(events.only_b[0].value, Value::from("extra"));
    let traces = tag(&diff, TypeTag::Trace);
    assert_eq!(traces.len(), 1, "{diff:?}");
    assert_eq!(&*traces.only_a[0].key.user, b"s");
    assert!(tag(&diff, TypeTag::State).is_empty(), "{diff:?}");
    assert_eq!(diff.len(), 3);
}

#[test]
fn a_run_diffed_with_itself_is_empty_and_reversing_swaps_sides() {
    let (engine, a, b) = two_runs();
    assert!(diff(&engine, a, a).is_empty());
    let ab = diff(&engine, a, b);
    let ba = diff(&engine, b, a);
    assert_eq!(
        tag(&ab, TypeTag::Event).only_b,
        tag(&ba, TypeTag::Event).only_a
    );
    assert_eq!(
        tag(&ab, TypeTag::Kv).changed[0].a,
        tag(&ba, TypeTag::Kv).changed[0].b
    );
}

#[test]
fn raw_diff_round_trips_through_json() {
    let (engine, a, b) = two_runs();
    let diff = diff(&engine, a, b);
    let back: Vec<TagDiff> = serde_json::from_str(&serde_json::to_string(&diff).unwrap()).unwrap();
    assert_eq!(back, diff);
}

/// A diff agrees with the digests on floats: two runs that stored the same
/// NaN do not differ (their digests match, as they hash the bits), while
/// `0.0` and `-0.0` differ in both.
#[test]
fn floats_differ_in_a_diff_exactly_when_their_digests_do() {
    let engine = Engine::open_in_memory(EngineConfig::default()).unwrap();
    let (a, b) = (RunId::new(), RunId::new());
    for run in [a, b] {
        let nan = Value::Float(f64::NAN);
        put(
            &engine,
            run,
            Scope::Run(run),
            TypeTag::Kv,
            "nan",
            nan.clone(),
        );
        let nested = Value::from(vec![Value::from(1), nan]);
        put(&engine, run, Scope::Run(run), TypeTag::Kv, "nested", nested);
    }
    let digest = |run| replay_run(&engine, run).unwrap().digest();
    assert_eq!(digest(a), digest(b));
    assert!(diff(&engine, a, b).is_empty(), "{:?}", diff(&engine, a, b));

    let zero = |run, z: f64| {
        put(
            &engine,
            run,
            Scope::Run(run),
            TypeTag::Kv,
            "zero",
            Value::Float(z),
        )
    };
    zero(a, 0.0);
    zero(b, -0.0);
    assert_ne!(digest(a), digest(b));
    let kv = tag(&diff(&engine, a, b), TypeTag::Kv);
    assert_eq!(kv.len(), 1, "{kv:?}");
    assert_eq!(&*kv.changed[0].key.user, b"zero");
}
