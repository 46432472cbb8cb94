//! What replay shows a person or a tool: the diff report names every kind
//! of difference (a key or machine only in one run, a changed machine, a
//! write into another run's scope) and says so when there is none; keys
//! print as text or hex and map back to the engine keys they name;
//! `describe_write` gives one line per write of each primitive; and a
//! `StateReader` over a replay answers the primitives' list and children
//! queries as the database did right after the run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rewinddb_engine::{Engine, EngineConfig, Isolation, Key, Namespace, RunId, Scope, TypeTag};
use rewinddb_primitives::{EventLog, Kv, SpanSpec, StateMachines, TraceStore, autocommit};
use rewinddb_replay::{
    Change, Digest, RunDiff, RunKey, RunScope, StateReader, Write, describe_write, replay_run,
};

fn ns() -> Namespace {
    Namespace::new("report/ns").unwrap()
}

fn engine() -> Engine {
    Engine::open_in_memory(EngineConfig::default()).unwrap()
}

/// A run writing shared KV `only_<tag>`, run-scoped machine `m` at `state`,
/// and (if `foreign`) a KV key into `foreign`'s scope.
fn run(e: &Engine, tag: &str, state: &str, foreign: Option<RunId>) -> RunId {
    let run = RunId::new();
    let sm = StateMachines::run(ns(), run);
    autocommit(e, run, Isolation::Snapshot, |t| {
        Kv::shared(ns()).put(t, &format!("only_{tag}"), 1)?;
        sm.define(t, "m", "start", None)?;
        sm.cas(t, "m", 1, state)?;
        if let Some(other) = foreign {
            Kv::run(ns(), other).put(t, "borrowed", tag)?;
        }
        Ok(())
    })
    .unwrap();
    run
}

#[test]
fn the_report_names_keys_only_in_one_run_and_changed_machines() {
    let e = engine();
    let a = run(&e, "a", "done", None);
    let b = run(&e, "b", "failed", Some(a));
    let diff = RunDiff::between(&replay_run(&e, a).unwrap(), &replay_run(&e, b).unwrap()).unwrap();
    assert!(
        matches!(&diff.state_machines[..], [Change::Changed { a, b }] if a.version == 2 && b.version == 2)
    );
    let report = diff.to_string();
    for line in [
        "kv only a   report/ns/shared/only_a = 1".to_string(),
        "kv only b   report/ns/shared/only_b = 1".to_string(),
        format!("kv only b   report/ns/run:{a}/borrowed = \"b\""),
        "state machine changed  report/ns/run/m: \"done\" (version 2) -> \"failed\" (version 2)"
            .to_string(),
    ] {
        assert!(report.contains(&line), "missing {line:?} in\n{report}");
    }
    assert_eq!(diff.len(), 4, "{report}");
    assert!(!report.contains("no differences"));
}

#[test]
fn the_report_of_equal_runs_says_there_is_no_difference() {
    let e = engine();
    let (a, b) = (run(&e, "x", "done", None), run(&e, "x", "done", None));
    let ra = replay_run(&e, a).unwrap();
    let rb = replay_run(&e, b).unwrap();
    assert_eq!(ra.digest(), rb.digest(), "own scopes line up across runs");
    let diff = RunDiff::between(&ra, &rb).unwrap();
    assert!(diff.is_empty());
    assert!(diff.to_string().ends_with("  no differences\n"), "{diff}");
    assert_eq!(
        format!("{:?}", ra.digest()),
        format!("Digest({})", ra.digest())
    );
    assert_eq!(Digest::from(0xabc), Digest(0xabc));
    assert_eq!(Digest(0xabc).to_string(), "0000000000000abc");
}

#[test]
fn run_keys_print_as_text_or_hex_and_name_their_engine_key_again() {
    let (me, other) = (RunId::new(), RunId::new());
    let cases = [
        (Scope::Shared, RunScope::Shared, "shared".to_string()),
        (Scope::Run(me), RunScope::Own, "run".to_string()),
        (
            Scope::Run(other),
            RunScope::Run(other),
            format!("run:{other}"),
        ),
    ];
    for (scope, relative, printed) in cases {
        let key = Key::new(ns(), scope, TypeTag::Kv, b"user:1");
        let rk = RunKey::relative_to(&key, me);
        assert_eq!(rk.scope, relative);
        assert_eq!(rk.to_key(me), key);
        assert_eq!(rk.to_string(), format!("Kv report/ns/{printed}/user:1"));
        assert_eq!(format!("{rk:?}"), format!("RunKey({rk})"));
    }
    let binary = Key::new(ns(), Scope::Shared, TypeTag::Event, [b'e', 0, 0x0a, 0xff]);
    let rk = RunKey::relative_to(&binary, me);
    assert_eq!(rk.to_string(), "Event report/ns/shared/0x65000aff");
}

#[test]
fn every_write_of_a_run_is_described_in_one_line_or_skipped_as_internal() {
    let e = engine();
    let run = RunId::new();
    let (kv, log) = (Kv::run(ns(), run), EventLog::new(ns(), run));
    let (traces, sm) = (TraceStore::new(ns(), run), StateMachines::shared(ns()));
    autocommit(&e, run, Isolation::Snapshot, |t| {
        kv.put(t, "goal", "Paris")?;
        sm.define(t, "plan", "idle", None)?;
        log.append(t, "task.started", 7)?;
        let root = traces.record(t, SpanSpec::custom("task", "Paris"))?;
        traces.record(t, SpanSpec::tool_call("weather", "Paris").parent(root))?;
        Ok(())
    })
    .unwrap();
    autocommit(&e, run, Isolation::Snapshot, |t| kv.delete(t, "goal")).unwrap();
    let replay = replay_run(&e, run).unwrap();
    let lines: Vec<String> = replay
        .steps()
        .iter()
        .flat_map(|s| &s.writes)
        .filter_map(describe_write)
        .collect();
    assert_eq!(
        lines,
        [
            "kv run/goal = \"Paris\"",
            "event #0 task.started 7",
            "state plan = \"idle\" (v1)",
            "span #0 task {\"data\":\"Paris\"}",
            "span #1 tool_call {\"arguments\":\"Paris\",\"tool\":\"weather\"}",
            "Kv goal deleted",
        ]
    );
    // Heads and child links are internal: three of them, all skipped.
    let internal = replay.steps()[0].writes.len() - 5;
    assert_eq!(internal, 3);
    let run_record = Write {
        key: RunKey::relative_to(&Key::new(ns(), Scope::Shared, TypeTag::Run, b"r"), run),
        value: Some(1.into()),
    };
    assert_eq!(describe_write(&run_record).as_deref(), Some("run record"));
}

#[test]
fn a_state_reader_lists_and_walks_children_as_the_database_did_after_the_run() {
    let e = engine();
    let run = RunId::new();
    let (kv, traces) = (Kv::run(ns(), run), TraceStore::new(ns(), run));
    let (root, _) = autocommit(&e, run, Isolation::Snapshot, |t| {
        for k in ["b", "a", "c", "other:1"] {
            kv.put(t, k, k)?;
        }
        let root = traces.record(t, SpanSpec::custom("task", 0))?;
        for i in 1..=3 {
            traces.record(t, SpanSpec::custom("step", i).parent(root))?;
        }
        Ok(root)
    })
    .unwrap();
    // Another run's writes to the same namespace are not the run's.
    let stranger = RunId::new();
    autocommit(&e, stranger, Isolation::Snapshot, |t| {
        Kv::run(ns(), stranger).put(t, "a", "not mine")
    })
    .unwrap();
    let replay = replay_run(&e, run).unwrap();
    let mut reader = StateReader::new(replay.state(), run);
    let mut db = e.snapshot_at(replay.steps()[0].version).unwrap();
    for (prefix, after, limit) in [
        ("", None, 10),
        ("", Some("a"), 2),
        ("o", None, 10),
        ("z", None, 10),
    ] {
        assert_eq!(
            kv.list(&mut reader, prefix, after, limit).unwrap(),
            kv.list(&mut db, prefix, after, limit).unwrap(),
            "list({prefix:?}, {after:?}, {limit})"
        );
    }
    let children = traces.children(&mut reader, root.seq).unwrap();
    assert_eq!(children, traces.children(&mut db, root.seq).unwrap());
    assert_eq!(
        children.iter().map(|s| s.id.seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
}
