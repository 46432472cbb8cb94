//! Every count limit of the primitives (transitions of a state machine,
//! tags of a run, attributes and depth of a span) accepts exactly its
//! maximum, refuses one more with an error naming the limit, and a refused
//! write leaves nothing behind; names with a NUL are refused too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rewinddb_engine::{Engine, EngineConfig, Isolation, Namespace, RunId, Value};
use rewinddb_primitives::{
    Error, RUN_TAGS_COUNT_MAX, RunIndex, RunQuery, RunSpec, SPAN_ATTRIBUTES_COUNT_MAX,
    SPAN_DEPTH_MAX, SpanSpec, StateMachines, TRANSITIONS_COUNT_MAX, TraceStore, Transitions,
    autocommit,
};

fn engine() -> Engine {
    Engine::open_in_memory(EngineConfig::default()).unwrap()
}

fn ns() -> Namespace {
    Namespace::new("limits/ns").unwrap()
}

fn transitions(n: usize) -> Transitions {
    (0..n)
        .map(|i| (Value::Int(i as i64), Value::Int(i as i64 + 1)))
        .collect()
}

/// Asserts `err` is an `InvalidArgument` that names `limit`.
fn assert_names_limit(err: Error, limit: &str) {
    match err {
        Error::InvalidArgument(msg) => assert!(msg.contains(limit), "{msg}"),
        other => panic!("expected InvalidArgument naming {limit}, got {other:?}"),
    }
}

#[test]
fn a_state_machine_takes_at_most_transitions_count_max_pairs() {
    let e = engine();
    let sm = StateMachines::shared(ns());
    let err = autocommit(&e, RunId::NIL, Isolation::Snapshot, |t| {
        sm.define(t, "big", 0, Some(transitions(TRANSITIONS_COUNT_MAX + 1)))
    })
    .unwrap_err();
    assert_names_limit(err, "TRANSITIONS_COUNT_MAX");
    assert!(matches!(
        sm.read_state(&mut e.snapshot(), "big"),
        Err(Error::StateNotDefined { .. })
    ));
    assert_eq!(e.visible_version(), 0, "nothing was committed");

    autocommit(&e, RunId::NIL, Isolation::Snapshot, |t| {
        sm.define(t, "big", 0, Some(transitions(TRANSITIONS_COUNT_MAX)))
    })
    .unwrap();
    let allowed = sm.allowed(&mut e.snapshot(), "big").unwrap().unwrap();
    assert_eq!(allowed, transitions(TRANSITIONS_COUNT_MAX));
}

#[test]
fn a_state_machine_without_a_transition_list_allows_any_move() {
    let e = engine();
    let sm = StateMachines::shared(ns());
    autocommit(&e, RunId::NIL, Isolation::Snapshot, |t| {
        sm.define(t, "free", "a", None)
    })
    .unwrap();
    assert_eq!(sm.allowed(&mut e.snapshot(), "free").unwrap(), None);
    let (v, _) = autocommit(&e, RunId::NIL, Isolation::Snapshot, |t| {
        sm.cas(t, "free", 1, "anything")
    })
    .unwrap();
    assert_eq!(v, 2);
    assert!(matches!(
        sm.allowed(&mut e.snapshot(), "never"),
        Err(Error::StateNotDefined { .. })
    ));
}

#[test]
fn a_run_takes_at_most_run_tags_count_max_tags() {
    let e = engine();
    let index = RunIndex::new().unwrap();
    let spec = (0..=RUN_TAGS_COUNT_MAX).fold(RunSpec::new("tagged"), |s, i| s.tag(format!("t{i}")));
    let err = autocommit(&e, RunId::NIL, Isolation::Snapshot, |t| {
        index.begin_run(t, &spec)
    })
    .unwrap_err();
    assert_names_limit(err, "RUN_TAGS_COUNT_MAX");
    let runs = index
        .query_runs(&mut e.snapshot(), &RunQuery::all())
        .unwrap();
    assert!(runs.is_empty(), "{runs:?}");

    let spec = (0..RUN_TAGS_COUNT_MAX).fold(RunSpec::new("tagged"), |s, i| s.tag(format!("t{i}")));
    let (run, _) = autocommit(&e, RunId::NIL, Isolation::Snapshot, |t| {
        index.begin_run(t, &spec)
    })
    .unwrap();
    let info = index.get_run(&mut e.snapshot(), run).unwrap();
    assert_eq!(info.tags.len(), RUN_TAGS_COUNT_MAX);
}

#[test]
fn a_span_takes_at_most_span_attributes_count_max_attributes() {
    let e = engine();
    let run = RunId::new();
    let traces = TraceStore::new(ns(), run);
    let spec = (0..=SPAN_ATTRIBUTES_COUNT_MAX).fold(SpanSpec::custom("step", 1), |s, i| {
        s.attr(format!("a{i}"), i as i64)
    });
    let err = autocommit(&e, run, Isolation::Snapshot, |t| {
        traces.record(t, spec.clone())
    })
    .unwrap_err();
    assert_names_limit(err, "SPAN_ATTRIBUTES_COUNT_MAX");
    assert_eq!(traces.len(&mut e.snapshot()).unwrap(), 0);

    let spec = (0..SPAN_ATTRIBUTES_COUNT_MAX).fold(SpanSpec::custom("step", 1), |s, i| {
        s.attr(format!("a{i}"), i as i64)
    });
    let (id, _) = autocommit(&e, run, Isolation::Snapshot, |t| {
        traces.record(t, spec.clone())
    })
    .unwrap();
    let span = traces.get(&mut e.snapshot(), id.seq).unwrap().unwrap();
    assert_eq!(span.attributes.len(), SPAN_ATTRIBUTES_COUNT_MAX);
}

#[test]
fn spans_nest_at_most_span_depth_max_deep() {
    let e = engine();
    let run = RunId::new();
    let traces = TraceStore::new(ns(), run);
    // A root (depth 0) and SPAN_DEPTH_MAX descendants, one per level.
    let (deepest, _) = autocommit(&e, run, Isolation::Snapshot, |t| {
        let mut parent = traces.record(t, SpanSpec::custom("level", 0))?;
        for depth in 1..=SPAN_DEPTH_MAX {
            parent = traces.record(t, SpanSpec::custom("level", depth as i64).parent(parent))?;
        }
        Ok(parent)
    })
    .unwrap();
    let mut snap = e.snapshot();
    assert_eq!(
        traces.get(&mut snap, deepest.seq).unwrap().unwrap().depth,
        SPAN_DEPTH_MAX
    );
    let err = autocommit(&e, run, Isolation::Snapshot, |t| {
        traces.record(t, SpanSpec::custom("level", -1).parent(deepest))
    })
    .unwrap_err();
    assert_names_limit(err, "SPAN_DEPTH_MAX");
    assert_eq!(traces.len(&mut e.snapshot()).unwrap(), SPAN_DEPTH_MAX + 1);
    assert_eq!(e.visible_version(), snap.version(), "nothing was committed");
}

#[test]
fn names_with_a_nul_are_refused() {
    let e = engine();
    let run = RunId::new();
    let sm = StateMachines::shared(ns());
    let traces = TraceStore::new(ns(), run);
    let index = RunIndex::new().unwrap();
    let errors = [
        autocommit(&e, run, Isolation::Snapshot, |t| {
            sm.define(t, "a\0b", 0, None)
        })
        .unwrap_err(),
        autocommit(&e, run, Isolation::Snapshot, |t| {
            traces.record(t, SpanSpec::tool_call("to\0ol", 1)).map(drop)
        })
        .unwrap_err(),
        autocommit(&e, run, Isolation::Snapshot, |t| {
            index
                .begin_run(t, &RunSpec::new("run").tag("t\0g"))
                .map(drop)
        })
        .unwrap_err(),
    ];
    for err in errors {
        match err {
            Error::InvalidName { reason, .. } => assert_eq!(reason, "contains NUL"),
            other => panic!("expected InvalidName, got {other:?}"),
        }
    }
    assert_eq!(e.visible_version(), 0, "nothing was committed");
}
