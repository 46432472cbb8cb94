//! Point-in-time reads: `snapshot_at(v)` returns, for every primitive,
//! exactly what was committed at `v` — checked at every version of a
//! history that touches all five primitives.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rewinddb::{
    Database, RunId, RunInfo, RunQuery, RunSpec, RunStatus, Snapshot, SpanSpec, Value, Version,
};

const NS: &str = "acme/bot";

/// Everything readable, as seen through one snapshot.
#[derive(Debug, PartialEq)]
struct Seen {
    kv: Vec<(String, Value)>,
    run_kv: Option<Value>,
    events: Vec<(u64, String, Value)>,
    head_hash: u64,
    state: Option<(Value, u64)>,
    spans: Vec<(u64, Option<u64>, Option<u64>)>,
    runs: Vec<(RunId, RunStatus)>,
}

fn seen(snap: &Snapshot, run: RunId) -> Seen {
    let state = snap
        .state(NS)
        .read_state("phase")
        .ok()
        .map(|s| (s.value, s.version));
    Seen {
        kv: snap.kv(NS).list("").unwrap().entries,
        run_kv: snap.kv_run(NS, run).get("scratch").unwrap(),
        events: snap
            .events(NS, run)
            .read(..)
            .unwrap()
            .into_iter()
            .map(|e| (e.seq, e.event_type.to_string(), e.payload))
            .collect(),
        head_hash: snap.events(NS, run).head().unwrap().last_hash,
        state,
        spans: snap
            .traces(NS, run)
            .spans()
            .unwrap()
            .into_iter()
            .map(|s| (s.id.seq, s.parent.map(|p| p.seq), s.end_ms))
            .collect(),
        runs: snap
            .runs()
            .query_runs(&RunQuery::all())
            .unwrap()
            .iter()
            .map(|r: &RunInfo| (r.id, r.status))
            .collect(),
    }
}

#[test]
fn every_primitive_reads_exactly_its_state_at_every_past_version() {
    let db = Database::in_memory().unwrap();
    let run = db.begin_run(RunSpec::new("pit")).unwrap();
    let mut history: Vec<(Version, Seen)> = Vec::new();
    let mut record = |db: &Database| {
        let snap = db.snapshot();
        history.push((snap.version(), seen(&snap, run)));
    };
    record(&db);
    let kv = db.kv(NS);
    kv.put(run, "a", 1).unwrap();
    record(&db);
    db.events(NS, run).append("start", "go").unwrap();
    record(&db);
    db.state(NS).define(run, "phase", "idle", None).unwrap();
    record(&db);
    let root = db
        .traces(NS, run)
        .record(SpanSpec::custom("step", 0))
        .unwrap();
    record(&db);
    db.transaction(run, |txn| {
        txn.kv(NS).put("b", 2)?;
        txn.kv(NS).delete("a")?;
        txn.kv_run(NS).put("scratch", "x")?;
        txn.events(NS).append("middle", 2)?;
        txn.state(NS).cas("phase", 1, "busy")?;
        txn.traces(NS)
            .record(SpanSpec::tool_call("search", "q").parent(root))?;
        Ok(())
    })
    .unwrap();
    record(&db);
    db.traces(NS, run).end(root, None).unwrap();
    record(&db);
    kv.put(run, "a", 3).unwrap();
    record(&db);
    db.state(NS).transition(run, "phase", |_| "done").unwrap();
    record(&db);
    db.end_run(run, RunStatus::Completed).unwrap();
    record(&db);

    // Each step above is one commit and versions are dense, so this checks
    // every version since the first record.
    let newest = db.engine().visible_version();
    for v in history[0].0..=newest {
        let expected = &history.iter().find(|(hv, _)| *hv == v).unwrap().1;
        let snap = db.snapshot_at(v).unwrap();
        assert_eq!(&seen(&snap, run), expected, "at version {v}");
    }
    // Sanity: the history really changed along the way.
    assert_ne!(history[0].1, history.last().unwrap().1);
    assert!(db.snapshot_at(newest + 1).is_err());
}

#[test]
fn a_snapshot_keeps_reading_its_version_while_writes_go_on() {
    let db = Database::in_memory().unwrap();
    let run = db.begin_run(RunSpec::new("pit")).unwrap();
    db.events(NS, run).append("one", 1).unwrap();
    let snap = db.snapshot();
    let frozen = seen(&snap, run);
    for i in 0..10 {
        db.events(NS, run).append("more", i).unwrap();
        db.kv(NS).put(run, &format!("k{i}"), i).unwrap();
    }
    assert_eq!(seen(&snap, run), frozen);
    assert_eq!(snap.events(NS, run).len().unwrap(), 1);
    snap.events(NS, run).verify().unwrap();
    // get_run on a snapshot reports the commit span up to that version.
    let info = snap.runs().get_run(run).unwrap();
    assert_eq!(info.first_version, info.last_version);
    assert!(info.last_version.unwrap() <= snap.version());
}
