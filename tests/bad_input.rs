//! Bad input: unknown and ended runs, empty or oversized names and
//! payloads, an undefined state machine, a span whose parent is in another
//! run — each a clear error, and nothing changed. Also: the facade's own
//! transactions and queries inside the engine's locked closure are refused
//! instead of deadlocking.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rewinddb::{Database, Error, RunId, RunSpec, RunStatus, SpanId, SpanSpec, Value};

const NS: &str = "acme/bot";

/// Runs `attempt`, asserts it failed in a way `check` accepts with a
/// message naming `needle`, and that the engine installed nothing.
fn refused<T: std::fmt::Debug>(
    db: &Database,
    attempt: impl FnOnce() -> rewinddb::Result<T>,
    check: impl FnOnce(&Error) -> bool,
    needle: &str,
) {
    let before = db.engine().visible_version();
    let err = attempt().unwrap_err();
    assert!(check(&err), "unexpected error: {err:?}");
    assert!(err.to_string().contains(needle), "{err} lacks {needle:?}");
    assert_eq!(
        db.engine().visible_version(),
        before,
        "something was committed"
    );
}

fn setup() -> (Database, RunId) {
    let db = Database::in_memory().unwrap();
    let run = db.begin_run(RunSpec::new("bad-input")).unwrap();
    (db, run)
}

#[test]
fn writes_for_unknown_or_ended_runs_are_refused() {
    let (db, run) = setup();
    let ghost = RunId::new();
    let unknown = |e: &Error| matches!(e, Error::UnknownRun(r) if *r == ghost);
    refused(&db, || db.kv(NS).put(ghost, "k", 1), unknown, "unknown run");
    refused(
        &db,
        || db.events(NS, ghost).append("t", 1),
        unknown,
        "begin_run",
    );
    refused(
        &db,
        || db.traces(NS, ghost).record(SpanSpec::custom("s", 1)),
        unknown,
        "unknown run",
    );
    refused(
        &db,
        || db.state(NS).define(ghost, "m", 0, None),
        unknown,
        "unknown run",
    );
    refused(
        &db,
        || db.begin(ghost, Default::default()),
        unknown,
        "unknown run",
    );
    assert!(matches!(
        db.runs().get_run(ghost),
        Err(Error::UnknownRun(_))
    ));

    db.end_run(run, RunStatus::Cancelled).unwrap();
    let ended = |e: &Error| matches!(e, Error::RunEnded { .. });
    refused(&db, || db.kv(NS).put(run, "k", 1), ended, "cancelled");
    refused(
        &db,
        || db.events(NS, run).append("t", 1),
        ended,
        "accepts no more writes",
    );
    refused(
        &db,
        || db.traces(NS, run).record(SpanSpec::custom("s", 1)),
        ended,
        "has ended",
    );
    assert_eq!(db.events(NS, run).len().unwrap(), 0);
}

#[test]
fn empty_and_oversized_names_are_refused() {
    let (db, run) = setup();
    let long = "x".repeat(rewinddb::primitives::NAME_SIZE_BYTES_MAX + 1);
    let bad_name = |e: &Error| matches!(e, Error::InvalidName { .. });
    refused(&db, || db.kv(NS).put(run, "", 1), bad_name, "empty");
    refused(
        &db,
        || db.events(NS, run).append("", 1),
        bad_name,
        "event type",
    );
    refused(
        &db,
        || db.events(NS, run).append(&long, 1),
        bad_name,
        "NAME_SIZE_BYTES_MAX",
    );
    refused(
        &db,
        || db.state(NS).define(run, "", 0, None),
        bad_name,
        "state machine name",
    );
    refused(
        &db,
        || db.traces(NS, run).record(SpanSpec::tool_call("", 1)),
        bad_name,
        "tool name",
    );
    refused(
        &db,
        || {
            db.traces(NS, run)
                .record(SpanSpec::custom("s", 1).attr(&long, 1))
        },
        bad_name,
        "span attribute",
    );
    refused(&db, || db.begin_run(RunSpec::new("")), bad_name, "run name");
    refused(
        &db,
        || db.begin_run(RunSpec::new("r").tag(&long)),
        bad_name,
        "run tag",
    );
    // Namespaces are checked by the engine.
    let bad_ns = |e: &Error| {
        matches!(
            e,
            Error::Engine(rewinddb::engine::Error::InvalidNamespace { .. })
        )
    };
    refused(&db, || db.kv("").put(run, "k", 1), bad_ns, "empty");
    refused(
        &db,
        || db.events(&"n".repeat(300), run).append("t", 1),
        bad_ns,
        "256",
    );
    assert!(db.kv("a\0b").get("k").is_err());
    assert!(matches!(
        db.kv(NS).list_from("", None, 0),
        Err(Error::InvalidArgument(_))
    ));
    // Keys over the engine's key limit.
    let huge_key = "k".repeat(2000);
    let too_long = |e: &Error| {
        matches!(
            e,
            Error::Engine(rewinddb::engine::Error::KeyTooLarge { .. })
        )
    };
    refused(
        &db,
        || db.kv(NS).put(run, &huge_key, 1),
        too_long,
        "key_size_bytes_max",
    );
    refused(
        &db,
        || db.state(NS).define(run, &"m".repeat(2000), 0, None),
        bad_name,
        "NAME_SIZE_BYTES_MAX",
    );
}

#[test]
fn oversized_payloads_are_refused() {
    let (db, run) = setup();
    let huge = Value::from(vec![7u8; (1 << 20) + 1]);
    let too_big = |e: &Error| {
        matches!(
            e,
            Error::Engine(rewinddb::engine::Error::ValueTooLarge { .. })
        )
    };
    refused(
        &db,
        || db.kv(NS).put(run, "k", huge.clone()),
        too_big,
        "value_size_bytes_max",
    );
    refused(
        &db,
        || db.events(NS, run).append("t", huge.clone()),
        too_big,
        "value_size_bytes_max",
    );
    refused(
        &db,
        || {
            db.traces(NS, run)
                .record(SpanSpec::custom("s", huge.clone()))
        },
        too_big,
        "value_size_bytes_max",
    );
    refused(
        &db,
        || db.state(NS).define(run, "m", huge.clone(), None),
        too_big,
        "value_size_bytes_max",
    );
    let mut deep = Value::Null;
    for _ in 0..100 {
        deep = Value::from(vec![deep]);
    }
    refused(
        &db,
        || db.events(NS, run).append("t", deep.clone()),
        |e| matches!(e, Error::Engine(_)),
        "value_depth_max",
    );
    assert_eq!(db.events(NS, run).len().unwrap(), 0);
    assert_eq!(db.traces(NS, run).len().unwrap(), 0);
}

#[test]
fn undefined_state_machines_are_reported() {
    let (db, run) = setup();
    let undefined = |e: &Error| matches!(e, Error::StateNotDefined { name, .. } if name == "ghost");
    let sm = db.state(NS);
    assert!(undefined(&sm.read_state("ghost").unwrap_err()));
    assert!(undefined(
        &db.snapshot().state(NS).read_state("ghost").unwrap_err()
    ));
    refused(
        &db,
        || sm.cas(run, "ghost", 1, "x"),
        undefined,
        "not defined",
    );
    refused(
        &db,
        || sm.transition(run, "ghost", |_| "x"),
        undefined,
        "not defined",
    );
    sm.define(run, "m", "a", Some(vec![("a".into(), "b".into())]))
        .unwrap();
    refused(
        &db,
        || sm.define(run, "m", "a", None),
        |e| matches!(e, Error::StateAlreadyDefined { .. }),
        "already defined",
    );
    refused(
        &db,
        || sm.cas(run, "m", 1, "c"),
        |e| matches!(e, Error::TransitionNotAllowed { .. }),
        "\"a\"",
    );
    refused(
        &db,
        || sm.cas(run, "m", 7, "b"),
        |e| {
            matches!(
                e,
                Error::StateVersionMismatch {
                    current_version: 1,
                    ..
                }
            )
        },
        "version 1",
    );
    assert_eq!(sm.read_state("m").unwrap().version, 1);
}

#[test]
fn a_span_parent_must_be_a_span_of_the_same_run() {
    let (db, run) = setup();
    let other = db.begin_run(RunSpec::new("other")).unwrap();
    let foreign = db
        .traces(NS, other)
        .record(SpanSpec::custom("s", 0))
        .unwrap();
    let traces = db.traces(NS, run);
    refused(
        &db,
        || traces.record(SpanSpec::custom("child", 0).parent(foreign)),
        |e| matches!(e, Error::ParentInOtherRun { parent_run, .. } if *parent_run == other),
        "belongs to run",
    );
    let missing = SpanId { run, seq: 5 };
    refused(
        &db,
        || traces.record(SpanSpec::custom("child", 0).parent(missing)),
        |e| matches!(e, Error::UnknownSpan { seq: 5, .. }),
        "unknown span",
    );
    refused(
        &db,
        || traces.end(foreign, None),
        |e| matches!(e, Error::UnknownSpan { .. }),
        "unknown span",
    );
    let decision = traces
        .record(SpanSpec::decision(vec![], "x", "why"))
        .unwrap();
    refused(
        &db,
        || traces.end(decision, Some(Ok(1.into()))),
        |e| matches!(e, Error::InvalidArgument(_)),
        "only tool calls",
    );
    assert_eq!(traces.len().unwrap(), 1);
    assert!(traces.children(foreign).is_err());
}

/// With a value limit below the size at which autocommit appends leave the
/// commit lock (16 KiB), an oversized payload is refused on the locked
/// path too, and the log is unchanged; a fitting one then appends at 1.
#[test]
fn an_append_over_a_lowered_value_limit_is_refused_under_the_commit_lock() {
    let limits = rewinddb::engine::Limits {
        value_size_bytes_max: 1024,
        ..Default::default()
    };
    let db = Database::open(rewinddb::Config::in_memory().limits(limits)).unwrap();
    let run = db.begin_run(RunSpec::new("small-values")).unwrap();
    db.events(NS, run).append("t", "fits").unwrap();
    let too_big = |e: &Error| {
        matches!(
            e,
            Error::Engine(rewinddb::engine::Error::ValueTooLarge { .. })
        )
    };
    refused(
        &db,
        || db.events(NS, run).append("t", "y".repeat(2048)),
        too_big,
        "value_size_bytes_max",
    );
    assert_eq!(db.events(NS, run).append("t", "fits too").unwrap(), 1);
    db.events(NS, run).verify().unwrap();
}

/// The locked append path checks the event's record (type, payload, time
/// and hash around the payload), not the payload alone, from figures it
/// measured once: an object payload that fits the size limit by itself
/// but not inside its record is refused, one byte less fits; a payload at
/// the depth limit is refused (its record is one level deeper), one level
/// less fits. The log holds only what fitted.
#[test]
fn the_locked_append_checks_the_whole_record_against_the_limits() {
    let limits = rewinddb::engine::Limits {
        value_size_bytes_max: 1024,
        value_depth_max: 4,
        ..Default::default()
    };
    let db = Database::open(rewinddb::Config::in_memory().limits(limits)).unwrap();
    let run = db.begin_run(RunSpec::new("record-limits")).unwrap();
    let object = |text_len: usize| {
        let mut o = std::collections::BTreeMap::new();
        o.insert("k".to_string(), Value::from("x".repeat(text_len)));
        Value::from(o)
    };
    // Record: 8 (array) + 9 (type "t") + payload + 8 (time) + 8 (hash).
    let record_size = |payload: &Value| 33 + payload.size_bytes();
    let over = object(1024 - 33 - 17 + 1);
    assert!(over.size_bytes() <= 1024 && record_size(&over) == 1025);
    let engine_err = |e: &Error| matches!(e, Error::Engine(_));
    let events = db.events(NS, run);
    refused(
        &db,
        || events.append("t", over.clone()),
        engine_err,
        "1025 bytes",
    );
    assert_eq!(events.append("t", object(1024 - 33 - 17)).unwrap(), 0);
    let nested = |depth: usize| (1..depth).fold(Value::Int(1), |v, _| Value::from(vec![v]));
    assert_eq!(nested(4).depth(), 4);
    refused(
        &db,
        || events.append("t", nested(4)),
        engine_err,
        "nested 5 deep",
    );
    assert_eq!(events.append("t", nested(3)).unwrap(), 1);
    assert_eq!(events.len().unwrap(), 2);
    events.verify().unwrap();
}

/// Inside a closure of `Engine::transaction_locked` (reached through
/// `db.engine()`), the facade's transactions, autocommit writes (locked
/// appends too) and time queries need the commit lock that closure holds:
/// each answers `ReentrantCommitLock` at once instead of waiting for
/// itself, and nothing is committed. They work again afterwards.
#[test]
fn facade_calls_inside_a_locked_engine_closure_are_refused() {
    let (db, run) = setup();
    let before = db.engine().visible_version();
    let calls = move |db: &Database| -> Vec<rewinddb::Result<()>> {
        vec![
            db.transaction(run, |t| t.kv(NS).put("k", 1)).map(drop),
            db.kv(NS).put(run, "k", 1).map(drop),
            db.events(NS, run).append("t", 1).map(drop),
            db.events(NS, run).append("t", vec![0u8; 20_000]).map(drop),
            db.version_at_time(0).map(drop),
            db.runs().end_run(run, RunStatus::Completed).map(drop),
        ]
    };
    let inside = db.clone();
    let (answers, _) = within(20, move || {
        inside
            .engine()
            .transaction_locked(run, |_| Ok::<_, rewinddb::engine::Error>(calls(&inside)))
            .unwrap()
    });
    assert_eq!(answers.len(), 6);
    for answer in answers {
        let err = answer.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Engine(rewinddb::engine::Error::ReentrantCommitLock(_))
            ),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("after the closure returns"),
            "{err}"
        );
    }
    assert_eq!(db.engine().visible_version(), before);
    assert_eq!(db.events(NS, run).len().unwrap(), 0);
    assert!(calls(&db).iter().all(|a| a.is_ok()));
    assert_eq!(db.events(NS, run).len().unwrap(), 2);
}

/// `f` on another thread, given `secs` seconds: a deadlock fails the test
/// instead of hanging it.
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(f()).unwrap());
    rx.recv_timeout(std::time::Duration::from_secs(secs))
        .expect("deadlocked: the call did not return")
}
