//! What goes into a primitive comes back out unchanged: spans with
//! explicit times and failed tool calls, the last event, run statuses by
//! name; a transaction lists its own uncommitted KV writes; a retry loop
//! gives up after exactly `RetryPolicy::attempts` conflicts; the event
//! hash chain follows its documented byte encoding for every kind of value;
//! and event types come back as appended, however many and in whatever
//! order, repeats sharing one string.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use rewinddb_engine::{
    Engine, EngineConfig, Isolation, Key, Namespace, RetryPolicy, RunId, Scope, TypeTag, Value,
};
use rewinddb_primitives::event::chain_hash;
use rewinddb_primitives::{
    Error, EventLog, Kv, RunStatus, SpanKind, SpanSpec, TraceStore, autocommit, retry_on_conflict,
};

fn engine() -> Engine {
    Engine::open_in_memory(EngineConfig::default()).unwrap()
}

fn ns() -> Namespace {
    Namespace::new("round/trip").unwrap()
}

#[test]
fn spans_keep_explicit_times_and_a_failed_tool_calls_error() {
    let e = engine();
    let run = RunId::new();
    let traces = TraceStore::new(ns(), run);
    let (call, _) = autocommit(&e, run, Isolation::Snapshot, |t| {
        traces.record(
            t,
            SpanSpec::tool_call("fetch", "url")
                .start_ms(1_000)
                .end_ms(1_500),
        )
    })
    .unwrap();
    let mut snap = e.snapshot();
    let span = traces.get(&mut snap, call.seq).unwrap().unwrap();
    assert_eq!((span.start_ms, span.end_ms), (1_000, Some(1_500)));

    let failed = Err("timeout after 30 s".to_string());
    autocommit(&e, run, Isolation::Snapshot, |t| {
        traces.end(t, call.seq, Some(2_000), Some(failed.clone()))
    })
    .unwrap();
    let span = traces.get(&mut e.snapshot(), call.seq).unwrap().unwrap();
    assert_eq!(span.end_ms, Some(2_000));
    match span.kind {
        SpanKind::ToolCall { tool, outcome, .. } => {
            assert_eq!(tool, "fetch");
            assert_eq!(outcome, Some(failed));
        }
        other => panic!("expected a tool call, got {other:?}"),
    }
}

#[test]
fn only_tool_calls_take_an_outcome() {
    let e = engine();
    let run = RunId::new();
    let traces = TraceStore::new(ns(), run);
    let (q, v) = autocommit(&e, run, Isolation::Snapshot, |t| {
        traces.record(t, SpanSpec::query("paris", vec![Value::from("doc-1")]))
    })
    .unwrap();
    let err = autocommit(&e, run, Isolation::Snapshot, |t| {
        traces.end(t, q.seq, None, Some(Ok(Value::Null)))
    })
    .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("query")),
        "{err}"
    );
    assert_eq!(e.visible_version(), v, "nothing was committed");
    assert_eq!(
        traces
            .get(&mut e.snapshot(), q.seq)
            .unwrap()
            .unwrap()
            .end_ms,
        None
    );
}

#[test]
fn last_is_the_newest_event_or_none() {
    let e = engine();
    let run = RunId::new();
    let log = EventLog::new(ns(), run);
    assert_eq!(log.last(&mut e.snapshot()).unwrap(), None);
    autocommit(&e, run, Isolation::Snapshot, |t| {
        log.append(t, "a", 1)?;
        log.append(t, "b", 2)
    })
    .unwrap();
    let last = log.last(&mut e.snapshot()).unwrap().unwrap();
    assert_eq!(
        (last.seq, &*last.event_type, last.payload.clone()),
        (1, "b", Value::Int(2))
    );
}

#[test]
fn run_statuses_round_trip_by_name_and_only_running_is_not_final() {
    let all = [
        RunStatus::Running,
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];
    for s in all {
        assert_eq!(RunStatus::parse(s.as_str()), Some(s));
        assert_eq!(s.is_final(), s != RunStatus::Running);
    }
    assert_eq!(RunStatus::parse("paused"), None);
    assert_eq!(RunStatus::parse("Running"), None, "names are lower case");
}

#[test]
fn a_transaction_lists_its_own_uncommitted_writes() {
    let e = engine();
    let run = RunId::new();
    let kv = Kv::run(ns(), run);
    assert_eq!(kv.scope(), Scope::Run(run));
    assert_eq!(Kv::shared(ns()).scope(), Scope::Shared);
    autocommit(&e, run, Isolation::Snapshot, |t| kv.put(t, "a", 1)).unwrap();
    let mut txn = e.begin(run, Isolation::Snapshot);
    kv.put(&mut txn, "b", 2).unwrap();
    kv.delete(&mut txn, "a").unwrap();
    let page = kv.list(&mut txn, "", None, 10).unwrap();
    assert_eq!(page.entries, vec![("b".to_string(), Value::Int(2))]);
    // Nobody else sees them before the commit.
    let outside = kv.list(&mut e.snapshot(), "", None, 10).unwrap();
    assert_eq!(outside.entries, vec![("a".to_string(), Value::Int(1))]);
}

/// A conflict, made for real: two transactions write one key.
fn conflict(e: &Engine) -> Error {
    let key = Key::new(ns(), Scope::Shared, TypeTag::Kv, b"hot");
    let mut first = e.begin(RunId::NIL, Isolation::Snapshot);
    let mut second = e.begin(RunId::NIL, Isolation::Snapshot);
    first.put(key.clone(), 1).unwrap();
    second.put(key, 2).unwrap();
    first.commit().unwrap();
    second.commit().unwrap_err().into()
}

#[test]
fn retrying_gives_up_after_exactly_the_policys_attempts() {
    let e = engine();
    let policy = RetryPolicy {
        attempts: 3,
        ..RetryPolicy::default()
    };
    let mut tries = 0;
    let err = retry_on_conflict(&policy, || -> rewinddb_primitives::Result<()> {
        tries += 1;
        Err(conflict(&e))
    })
    .unwrap_err();
    assert_eq!(tries, 3);
    match err {
        Error::RetriesExhausted { attempts, last } => {
            assert_eq!(attempts, 3);
            assert!(last.is_conflict(), "{last}");
        }
        other => panic!("expected RetriesExhausted, got {other:?}"),
    }
    // Any other error ends the loop at once.
    let mut tries = 0;
    let err = retry_on_conflict(&policy, || -> rewinddb_primitives::Result<()> {
        tries += 1;
        Err(Error::InvalidArgument("no".into()))
    })
    .unwrap_err();
    assert_eq!(tries, 1);
    assert!(matches!(err, Error::InvalidArgument(_)));
}

/// The canonical encoding of `hash_value`, written out again from its
/// documentation.
fn encode(v: &Value, out: &mut Vec<u8>) {
    let len = |out: &mut Vec<u8>, n: usize| out.extend_from_slice(&(n as u64).to_le_bytes());
    match v {
        Value::Null => out.push(0x00),
        Value::Bool(b) => out.extend_from_slice(&[0x01, u8::from(*b)]),
        Value::Int(i) => {
            out.push(0x02);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::Float(f) => {
            out.push(0x03);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Value::String(s) => {
            out.push(0x04);
            len(out, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bytes(b) => {
            out.push(0x05);
            len(out, b.len());
            out.extend_from_slice(b);
        }
        Value::Array(a) => {
            out.push(0x06);
            len(out, a.len());
            a.iter().for_each(|x| encode(x, out));
        }
        Value::Object(o) => {
            out.push(0x07);
            len(out, o.len());
            for (k, x) in o.iter() {
                len(out, k.len());
                out.extend_from_slice(k.as_bytes());
                encode(x, out);
            }
        }
    }
}

#[test]
fn the_chain_hash_follows_the_documented_encoding_for_every_kind_of_value() {
    let object: BTreeMap<String, Value> = [
        ("zeta".to_string(), Value::Bool(false)),
        (
            "alpha".to_string(),
            Value::from(vec![Value::Float(-0.5), Value::Null]),
        ),
        ("mid".to_string(), Value::from(&b"\x00\xff"[..])),
    ]
    .into_iter()
    .collect();
    let payloads = [
        Value::Null,
        Value::Bool(true),
        Value::Int(i64::MIN),
        Value::Float(1.5),
        Value::from("text"),
        Value::from(&b"raw"[..]),
        Value::from(object.clone()),
        Value::from(vec![
            Value::from(object),
            Value::from(vec![Value::Bool(true)]),
        ]),
        // Encodings longer than the hasher's stack buffer: one long string,
        // and many short elements that cross it part-way through one.
        Value::from("x".repeat(5000)),
        Value::from(
            (0..100)
                .map(|i| Value::from(format!("e{i}")))
                .collect::<Vec<_>>(),
        ),
    ];
    for (seq, payload) in payloads.iter().enumerate() {
        let prev = 0x0123_4567_89ab_cdef_u64.wrapping_mul(seq as u64 + 1);
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&prev.to_le_bytes());
        bytes.extend_from_slice(&(seq as u64).to_le_bytes());
        bytes.extend_from_slice(&4u64.to_le_bytes());
        bytes.extend_from_slice(b"kind");
        encode(payload, &mut bytes);
        assert_eq!(
            chain_hash(prev, seq as u64, "kind", payload),
            xxhash_rust::xxh3::xxh3_64(&bytes),
            "payload {payload:?}"
        );
    }
    // Equal floats with different bits (0.0 and -0.0) hash apart.
    assert_ne!(
        chain_hash(0, 0, "t", &Value::Float(0.0)),
        chain_hash(0, 0, "t", &Value::Float(-0.0))
    );
}

/// Appends cycle through more event types than an append remembers to
/// share (with repeats near and far), then every event reads back with the
/// type it was appended with, the chain verifies, and two events of one
/// type appended close together point at one string.
#[test]
fn event_types_come_back_as_appended_and_repeats_share_one_string() {
    let e = engine();
    let run = RunId::new();
    let log = EventLog::new(ns(), run);
    let types: Vec<String> = (0..20).map(|i| format!("type.{i}")).collect();
    let mut rng = fastrand::Rng::with_seed(3);
    let appended: Vec<&str> = (0..500)
        .map(|_| {
            // Skewed toward the first types, as an agent's vocabulary is.
            let among = rng.usize(1..=types.len());
            types[rng.usize(..among)].as_str()
        })
        .collect();
    for t in &appended {
        autocommit(&e, run, Isolation::Snapshot, |txn| {
            log.append(txn, t, Value::Null)
        })
        .unwrap();
    }
    let mut snap = e.snapshot();
    let events = log.read(&mut snap, ..).unwrap();
    let got: Vec<&str> = events.iter().map(|ev| &*ev.event_type).collect();
    assert_eq!(got, appended);
    log.verify(&mut snap).unwrap();
    let repeat = events
        .windows(2)
        .find(|w| w[0].event_type == w[1].event_type);
    let pair = repeat.expect("500 draws from at most 20 types repeat one in a row");
    assert!(std::sync::Arc::ptr_eq(
        &pair[0].event_type,
        &pair[1].event_type
    ));
}
