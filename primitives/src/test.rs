//! Unit tests of the primitives against a bare engine.

use rewinddb_engine::{
    Engine, EngineConfig, Isolation, Key, Namespace, RunId, Scope, TypeTag, Value,
};

use crate::{Error, EventLog, Kv, RunIndex, RunQuery, RunSpec, RunStatus, autocommit};

fn engine() -> Engine {
    Engine::open_in_memory(EngineConfig::default()).unwrap()
}

fn ns() -> Namespace {
    Namespace::new("t/ns").unwrap()
}

#[test]
fn kv_list_pages_in_key_order_and_skips_deleted_keys() {
    let e = engine();
    let kv = Kv::shared(ns());
    autocommit(&e, RunId::NIL, Isolation::Snapshot, |t| {
        for k in ["b", "a:3", "a:1", "a:2", "c"] {
            kv.put(t, k, k)?;
        }
        kv.delete(t, "a:2")
    })
    .unwrap();
    let mut snap = e.snapshot();
    let p1 = kv.list(&mut snap, "a:", None, 1).unwrap();
    assert_eq!(p1.entries, vec![("a:1".to_string(), Value::from("a:1"))]);
    assert_eq!(p1.next.as_deref(), Some("a:1"));
    let p2 = kv.list(&mut snap, "a:", p1.next.as_deref(), 5).unwrap();
    assert_eq!(p2.entries.len(), 1);
    assert_eq!(p2.entries[0].0, "a:3");
    assert_eq!(p2.next, None);
    let all = kv.list(&mut snap, "", None, 10).unwrap();
    let keys: Vec<_> = all.entries.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["a:1", "a:3", "b", "c"]);
}

#[test]
fn kv_scopes_are_apart() {
    let e = engine();
    let run = RunId::new();
    let (shared, mine) = (Kv::shared(ns()), Kv::run(ns(), run));
    autocommit(&e, run, Isolation::Snapshot, |t| mine.put(t, "k", 1)).unwrap();
    let mut snap = e.snapshot();
    assert_eq!(shared.get(&mut snap, "k").unwrap(), None);
    assert_eq!(mine.get(&mut snap, "k").unwrap(), Some(Value::Int(1)));
    assert!(matches!(
        shared.get(&mut snap, ""),
        Err(Error::InvalidName { .. })
    ));
}

#[test]
fn events_are_dense_read_by_range_and_chain() {
    let e = engine();
    let log = EventLog::new(ns(), RunId::new());
    autocommit(&e, log.run_id(), Isolation::Snapshot, |t| {
        for i in 0..5 {
            assert_eq!(log.append(t, "tick", i)?, i as u64);
        }
        Ok(())
    })
    .unwrap();
    let mut snap = e.snapshot();
    assert_eq!(log.len(&mut snap).unwrap(), 5);
    let mid = log.read(&mut snap, 1..=3).unwrap();
    assert_eq!(mid.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(mid[0].payload, Value::Int(1));
    assert_eq!(log.read(&mut snap, 3..100).unwrap().len(), 2);
    let all = log.read(&mut snap, ..).unwrap();
    assert_eq!(
        all[2].hash,
        crate::event::chain_hash(all[1].hash, 2, "tick", &Value::Int(2))
    );
    log.verify(&mut snap).unwrap();
}

#[test]
fn verify_names_the_first_tampered_event() {
    let e = engine();
    let run = RunId::new();
    let log = EventLog::new(ns(), run);
    autocommit(&e, run, Isolation::Snapshot, |t| {
        (0..4).try_for_each(|i| log.append(t, "x", i).map(drop))
    })
    .unwrap();
    // Overwrite event 2's payload behind the log's back.
    let mut user = vec![b'e'];
    user.extend_from_slice(&2u64.to_be_bytes());
    let key = Key::new(ns(), Scope::Run(run), TypeTag::Event, user);
    let mut snap = e.snapshot();
    let mut record = log.get(&mut snap, 2).unwrap().unwrap();
    record.payload = Value::Int(99);
    let forged = Value::from(vec![
        Value::from("x"),
        record.payload,
        Value::Int(0),
        Value::Int(record.hash as i64),
    ]);
    autocommit(&e, run, Isolation::Snapshot, |t| {
        Ok(t.put(key.clone(), forged.clone())?)
    })
    .unwrap();
    let err = log.verify(&mut e.snapshot()).unwrap_err();
    assert!(matches!(err, Error::ChainBroken { seq: 2, .. }), "{err}");
    // The version before the forgery still verifies.
    log.verify(&mut snap).unwrap();
}

#[test]
fn hash_of_a_value_is_pinned() {
    // The chain must never change across releases: pin one digest.
    let payload = Value::from(vec![Value::from("a"), Value::Int(-1), Value::Null]);
    assert_eq!(
        crate::event::chain_hash(0, 0, "t", &payload),
        crate::event::chain_hash(0, 0, "t", &payload.clone())
    );
    assert_ne!(
        crate::event::chain_hash(0, 0, "t", &payload),
        crate::event::chain_hash(0, 1, "t", &payload)
    );
    assert_eq!(crate::event::chain_hash(0, 0, "t", &payload), PINNED);
    // The documented byte layout, spelled out by hand.
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&0u64.to_le_bytes()); // prev hash
    bytes.extend_from_slice(&0u64.to_le_bytes()); // seq
    bytes.extend_from_slice(&1u64.to_le_bytes()); // type length
    bytes.extend_from_slice(b"t");
    bytes.push(0x06);
    bytes.extend_from_slice(&3u64.to_le_bytes());
    bytes.push(0x04);
    bytes.extend_from_slice(&1u64.to_le_bytes());
    bytes.extend_from_slice(b"a");
    bytes.push(0x02);
    bytes.extend_from_slice(&(-1i64).to_le_bytes());
    bytes.push(0x00);
    assert_eq!(xxhash_rust::xxh3::xxh3_64(&bytes), PINNED);
}

/// Digest of the payload above, computed once; a change here means the
/// encoding changed and every stored chain would fail to verify.
const PINNED: u64 = 14161195051120390439;

#[test]
fn runs_move_only_from_running_to_final() {
    let e = engine();
    let index = RunIndex::new().unwrap();
    let (run, _) = autocommit(&e, RunId::NIL, Isolation::Snapshot, |t| {
        index.begin_run(t, &RunSpec::new("a").tag("x"))
    })
    .unwrap();
    let end = |status| {
        autocommit(&e, RunId::NIL, Isolation::Snapshot, |t| {
            index.update_status(t, run, status, Default::default())
        })
    };
    assert!(matches!(
        end(RunStatus::Running),
        Err(Error::InvalidStatusTransition { .. })
    ));
    end(RunStatus::Failed).unwrap();
    assert!(matches!(
        end(RunStatus::Completed),
        Err(Error::InvalidStatusTransition { .. })
    ));
    let mut snap = e.snapshot();
    assert_eq!(
        index.get_run(&mut snap, run).unwrap().status,
        RunStatus::Failed
    );
    assert!(matches!(
        index.check_writable(&mut snap, run),
        Err(Error::RunEnded {
            status: "failed",
            ..
        })
    ));
    let other = RunId::new();
    assert!(
        matches!(index.check_writable(&mut snap, other), Err(Error::UnknownRun(r)) if r == other)
    );
    let found = index
        .query_runs(&mut snap, &RunQuery::all().tag("x"))
        .unwrap();
    assert_eq!(found.len(), 1);
}

#[test]
fn end_run_records_the_digest_with_all_64_bits() {
    let (e, index) = (engine(), RunIndex::new().unwrap());
    let run = autocommit(&e, RunId::NIL, Isolation::Snapshot, |t| {
        index.begin_run(t, &RunSpec::new("r"))
    })
    .unwrap()
    .0;
    let mut snap = e.snapshot();
    assert_eq!(index.get_run(&mut snap, run).unwrap().digest, None);
    let span = crate::CommitSpan {
        digest: Some(u64::MAX - 5),
        ..Default::default()
    };
    autocommit(&e, RunId::NIL, Isolation::Snapshot, |t| {
        index.update_status(t, run, RunStatus::Completed, span)
    })
    .unwrap();
    let mut snap = e.snapshot();
    assert_eq!(
        index.get_run(&mut snap, run).unwrap().digest,
        Some(u64::MAX - 5)
    );
}

#[test]
fn state_versions_count_changes_inside_one_transaction() {
    use crate::StateMachines;
    let e = engine();
    let sm = StateMachines::shared(ns());
    let ((), _) = autocommit(&e, RunId::NIL, Isolation::Snapshot, |t| {
        assert_eq!(sm.define(t, "m", 0, None)?, 1);
        assert_eq!(sm.cas(t, "m", 1, 1)?, 2);
        assert_eq!(
            sm.transition(t, "m", |v| v.as_i64().unwrap_or(0) + 1)?
                .version,
            3
        );
        assert!(matches!(
            sm.define(t, "m", 0, None),
            Err(Error::StateAlreadyDefined { .. })
        ));
        Ok(())
    })
    .unwrap();
    let read = sm.read_state(&mut e.snapshot(), "m").unwrap();
    assert_eq!((read.value, read.version), (Value::Int(2), 3));
}

#[test]
fn spans_link_into_a_tree_within_one_run_only() {
    use crate::{SpanId, SpanSpec, TraceStore};
    let e = engine();
    let run = RunId::new();
    let ts = TraceStore::new(ns(), run);
    let (ids, _) = autocommit(&e, run, Isolation::Snapshot, |t| {
        let root = ts.record(t, SpanSpec::custom("step", 1))?;
        let a = ts.record(t, SpanSpec::tool_call("search", "q").parent(root))?;
        let b = ts.record(t, SpanSpec::query("q", vec![]).parent(a))?;
        let c = ts.record(t, SpanSpec::custom("step", 2))?;
        Ok([root, a, b, c])
    })
    .unwrap();
    assert_eq!(ids.map(|i| i.seq), [0, 1, 2, 3]);
    let mut snap = e.snapshot();
    let tree = ts.tree(&mut snap).unwrap();
    assert_eq!(tree.len(), 2);
    assert_eq!(tree[0].children[0].children[0].span.id, ids[2]);
    assert_eq!(tree[0].children[0].children[0].span.depth, 2);
    assert_eq!(ts.children(&mut snap, 0).unwrap()[0].id, ids[1]);
    assert_eq!(ts.by_kind(&mut snap, "step").unwrap().len(), 2);
    let foreign = SpanId {
        run: RunId::new(),
        seq: 0,
    };
    let bad = autocommit(&e, run, Isolation::Snapshot, |t| {
        ts.record(t, SpanSpec::custom("x", 0).parent(foreign))
    });
    assert!(matches!(bad, Err(Error::ParentInOtherRun { .. })));
    let missing = SpanId { run, seq: 99 };
    let bad = autocommit(&e, run, Isolation::Snapshot, |t| {
        ts.record(t, SpanSpec::custom("x", 0).parent(missing))
    });
    assert!(matches!(bad, Err(Error::UnknownSpan { seq: 99, .. })));
    let reserved = autocommit(&e, run, Isolation::Snapshot, |t| {
        ts.record(t, SpanSpec::custom("query", 0))
    });
    assert!(matches!(reserved, Err(Error::InvalidName { .. })));
    assert_eq!(ts.len(&mut e.snapshot()).unwrap(), 4);
}

#[test]
fn every_span_kind_reads_back_as_recorded() {
    use crate::{SpanKind, SpanSpec, TraceStore};
    let e = engine();
    let run = RunId::new();
    let ts = TraceStore::new(ns(), run);
    let specs = vec![
        SpanSpec::tool_call("search", "q").attr("a", 1).end_ms(9),
        SpanSpec::decision(vec![Value::from("x"), Value::Null], "x", "because"),
        SpanSpec::query("what", vec![Value::Int(1)]),
        SpanSpec::custom("note", Value::from(vec![Value::Bool(true)])),
    ];
    autocommit(&e, run, Isolation::Snapshot, |t| {
        for s in &specs {
            ts.record(t, s.clone().start_ms(5))?;
        }
        ts.end(t, 0, Some(7), Some(Err("timeout".into())))?;
        Ok(())
    })
    .unwrap();
    let spans = ts.spans(&mut e.snapshot()).unwrap();
    for (span, spec) in spans.iter().zip(&specs).skip(1) {
        assert_eq!(
            (&span.kind, span.start_ms, span.end_ms),
            (&spec.kind, 5, None)
        );
    }
    let SpanKind::ToolCall { outcome, tool, .. } = &spans[0].kind else {
        panic!("{:?}", spans[0]);
    };
    assert_eq!(
        (tool.as_str(), outcome),
        ("search", &Some(Err("timeout".to_string())))
    );
    assert_eq!(
        (spans[0].end_ms, spans[0].attributes.get("a")),
        (Some(7), Some(&Value::Int(1)))
    );
}
