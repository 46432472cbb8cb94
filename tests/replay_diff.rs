//! diff_runs through the facade: two runs of one task that differ in a KV
//! value, one extra event and one decision span report exactly those
//! three differences, once each, and nothing else; the report prints and
//! round-trips through JSON.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rewinddb::{Change, Database, RunDiff, RunId, RunSpec, RunStatus, SpanSpec, Value};

const NS: &str = "acme/agent";

/// One run of the task; `alt` makes the three planted differences.
fn task(db: &Database, alt: bool) -> RunId {
    let run = db.begin_run(RunSpec::new("task")).unwrap();
    db.kv_run(NS, run)
        .put(run, "goal", "weather in Paris")
        .unwrap();
    db.kv_run(NS, run)
        .put(run, "answer", if alt { "rain" } else { "sun" })
        .unwrap();
    db.state_run(NS, run)
        .define(run, "plan", "start", None)
        .unwrap();
    db.state_run(NS, run)
        .transition(run, "plan", |_| "done")
        .unwrap();
    let events = db.events(NS, run);
    events.append("task.started", "Paris").unwrap();
    events.append("tool.called", "forecast").unwrap();
    if alt {
        events.append("tool.retried", "forecast").unwrap();
    }
    let traces = db.traces(NS, run);
    let root = traces.record(SpanSpec::custom("task", "Paris")).unwrap();
    let call = traces
        .record(SpanSpec::tool_call("forecast", "Paris").parent(root))
        .unwrap();
    traces
        .end(call, Some(Ok(Value::from(if alt { 2 } else { 1 }))))
        .unwrap();
    let choice = if alt { "ask_user" } else { "answer" };
    let options = vec!["answer".into(), "ask_user".into()];
    traces
        .record(SpanSpec::decision(options, choice, "coin").parent(root))
        .unwrap();
    traces
        .record(SpanSpec::tool_call("reply", "done").parent(root))
        .unwrap();
    db.end_run(run, RunStatus::Completed).unwrap();
    run
}

fn two_runs() -> (Database, RunDiff) {
    let db = Database::in_memory().unwrap();
    let (a, b) = (task(&db, false), task(&db, true));
    let diff = db.diff_runs(a, b).unwrap();
    (db, diff)
}

#[test]
fn each_planted_difference_is_reported_exactly_once_and_nothing_else() {
    let (_db, diff) = two_runs();
    assert_eq!(diff.len(), 3, "{diff}");
    match &diff.kv[..] {
        [Change::Changed { a, b }] => {
            assert_eq!(a.key, "answer");
            assert_eq!(
                (a.value.clone(), b.value.clone()),
                ("sun".into(), "rain".into())
            );
        }
        other => panic!("kv: {other:?}"),
    }
    assert_eq!(diff.events.len(), 1, "{diff}");
    let e = &diff.events[0];
    assert_eq!((e.seq, e.len_a, e.len_b), (2, 2, 3));
    assert_eq!(e.a, None);
    assert_eq!(e.b.as_ref().unwrap().event_type, "tool.retried");
    assert_eq!(diff.traces.len(), 1, "{diff}");
    let t = &diff.traces[0];
    // Pre-order: task, forecast (result differs: not compared), decision.
    assert_eq!(t.position, 2);
    let (sa, sb) = (t.a.as_ref().unwrap(), t.b.as_ref().unwrap());
    assert_eq!(
        (sa.kind.as_str(), sb.kind.as_str()),
        ("decision", "decision")
    );
    assert_eq!(sa.arguments.get("choice"), Some(&Value::from("answer")));
    assert_eq!(sb.arguments.get("choice"), Some(&Value::from("ask_user")));
    assert!(
        diff.state_machines.is_empty() && diff.other.is_empty(),
        "{diff}"
    );
}

#[test]
fn the_same_task_twice_has_no_differences() {
    let db = Database::in_memory().unwrap();
    let (a, b) = (task(&db, true), task(&db, true));
    let diff = db.diff_runs(a, b).unwrap();
    assert!(diff.is_empty(), "{diff}");
    assert_eq!(diff.digest_a, diff.digest_b);
}

#[test]
fn the_report_names_each_difference_and_round_trips_through_json() {
    let (_db, diff) = two_runs();
    let report = diff.to_string();
    for needle in [
        "kv changed  acme/agent/run/answer: \"sun\" -> \"rain\"",
        "events acme/agent: diverge at seq 2 (a has 2, b has 3 events)",
        "b: #2 tool.retried \"forecast\"",
        "trace acme/agent: diverges at span #2",
        "a: decision decision",
    ] {
        assert!(report.contains(needle), "missing {needle:?} in\n{report}");
    }
    let back: RunDiff = serde_json::from_str(&serde_json::to_string(&diff).unwrap()).unwrap();
    assert_eq!(back, diff);
}
