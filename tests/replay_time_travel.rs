//! Time travel: the version at step k of a run and the version at a
//! wall-clock time both open snapshots in which every primitive reads as
//! the run left it after that step, and agree with `view_at_step(k)`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rewinddb::{Database, RunId, RunSpec, RunStatus, RunView, SpanSpec, Value};

const NS: &str = "acme/agent";

/// A run whose every step touches one primitive, with another run
/// committing in between; returns (db, run).
fn stepped_run(pause: bool) -> (Database, RunId) {
    let db = Database::in_memory().unwrap();
    let run = db.begin_run(RunSpec::new("stepped")).unwrap();
    let other = db.begin_run(RunSpec::new("other")).unwrap();
    let sm = db.state_run(NS, run);
    sm.define(run, "plan", "idle", None).unwrap();
    for i in 0..4i64 {
        if pause {
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
        db.kv_run(NS, run).put(run, "count", i).unwrap();
        db.events(NS, other).append("noise", i).unwrap();
        db.events(NS, run).append("tick", i).unwrap();
        sm.transition(run, "plan", |_| format!("step{i}")).unwrap();
        let span = db
            .traces(NS, run)
            .record(SpanSpec::tool_call("t", i))
            .unwrap();
        db.traces(NS, run)
            .end(span, Some(Ok(Value::from(i))))
            .unwrap();
    }
    db.end_run(run, RunStatus::Completed).unwrap();
    (db, run)
}

/// What a run's primitives hold: its `count` KV entry, its events
/// (type, payload), its plan's state, its number of spans.
type Seen = (Option<Value>, Vec<(String, Value)>, Option<Value>, usize);

/// Every primitive of `run` read from a snapshot at `version`, in the
/// shape of a view.
fn read_back(db: &Database, run: RunId, version: u64) -> Seen {
    let snap = db.snapshot_at(version).unwrap();
    let kv = snap.kv_run(NS, run).get("count").unwrap();
    let events = snap.events(NS, run).read(..).unwrap();
    let events = events
        .into_iter()
        .map(|e| (e.event_type.to_string(), e.payload))
        .collect();
    let plan = snap
        .state_run(NS, run)
        .read_state("plan")
        .ok()
        .map(|s| s.value);
    let spans = snap.traces(NS, run).len().unwrap() as usize;
    (kv, events, plan, spans)
}

fn from_view(view: &RunView) -> Seen {
    let kv = view
        .kv
        .iter()
        .find(|i| i.key == "count")
        .map(|i| i.value.clone());
    let events = view.events.first().map_or(Vec::new(), |l| {
        l.events
            .iter()
            .map(|e| (e.event_type.clone(), e.payload.clone()))
            .collect()
    });
    let plan = view.state_machines.first().map(|m| m.state.clone());
    let spans = view.traces.first().map_or(0, |t| t.spans.len());
    (kv, events, plan, spans)
}

#[test]
fn snapshot_at_every_step_matches_the_replay_at_that_step() {
    let (db, run) = stepped_run(false);
    let replay = db.replay_run(run).unwrap();
    assert_eq!(replay.steps().len(), 1 + 4 * 5);
    for k in 0..replay.steps().len() {
        let v = db.version_at_step(run, k).unwrap();
        assert_eq!(v, replay.version_at_step(k).unwrap());
        let view = replay.view_at_step(k).unwrap();
        assert_eq!(read_back(&db, run, v), from_view(&view), "step {k}");
    }
}

#[test]
fn version_at_a_steps_wall_clock_time_reads_that_step() {
    let (db, run) = stepped_run(true);
    let replay = db.replay_run(run).unwrap();
    // The last step of each paused round is its span's end; the next
    // round starts at least 3 ms later.
    for k in [5, 10, 15, 20] {
        let step = &replay.steps()[k];
        let v = db.version_at_time(step.wall_ms).unwrap();
        assert!(v >= step.version, "step {k}: version {v} before the step");
        let view = replay.view_at_step(k).unwrap();
        assert_eq!(read_back(&db, run, v), from_view(&view), "step {k}");
    }
    assert_eq!(db.version_at_time(0).unwrap(), 0);
}
