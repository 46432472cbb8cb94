//! Progress reports of the facade's long work, to the observer of
//! `Config::progress`: replaying a run (also each side of a diff, and the
//! digest `end_run` records) reports `Progress::Replay` every
//! `PROGRESS_STEP_KEYS` writes and once at the end; verifying an event log
//! reports `Progress::VerifyEvents` every as many events and at the end.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use rewinddb::{Config, Database, PROGRESS_STEP_KEYS, Progress, RunId, RunSpec, RunStatus, Value};

const NS: &str = "acme/bot";

/// An in-memory database whose observer records every report.
fn recording() -> (Database, Arc<Mutex<Vec<Progress>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    let config = Config::in_memory().progress(move |p| sink.lock().unwrap().push(p.clone()));
    (Database::open(config).unwrap(), log)
}

/// A run of `commits` commits of `keys` KV writes each.
fn run_of(db: &Database, name: &str, commits: usize, keys: usize) -> RunId {
    let run = db.begin_run(RunSpec::new(name)).unwrap();
    for c in 0..commits {
        db.transaction(run, |txn| {
            let kv = txn.kv_run(NS);
            for k in 0..keys {
                kv.put(&format!("k{k}"), (c * keys + k) as i64)?;
            }
            Ok(())
        })
        .unwrap();
    }
    run
}

/// The `(done, total)` of every replay report of `run`, in order.
fn replay_reports(log: &[Progress], run: RunId) -> Vec<(u64, u64)> {
    log.iter()
        .filter_map(|p| match p {
            Progress::Replay {
                run: r,
                writes_done,
                writes_total,
            } if *r == run => Some((*writes_done, *writes_total)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_replay_reports_every_step_of_writes_and_the_end() {
    let (db, log) = recording();
    // 40,000 writes: reports at 16,384, 32,768 and 40,000.
    let run = run_of(&db, "big", 400, 100);
    log.lock().unwrap().clear();
    let replayed = db.replay_run(run).unwrap();
    assert_eq!(replayed.write_count(), 40_000);
    let step = PROGRESS_STEP_KEYS;
    assert_eq!(
        replay_reports(&log.lock().unwrap(), run),
        vec![(step, 40_000), (2 * step, 40_000), (40_000, 40_000)]
    );
}

#[test]
fn ending_a_run_and_diffing_two_report_their_replays() {
    let (db, log) = recording();
    let a = run_of(&db, "a", 10, 3);
    let b = run_of(&db, "b", 5, 2);
    db.end_run(a, RunStatus::Completed).unwrap();
    // The digest end_run records is a replay of the run's writes.
    assert_eq!(replay_reports(&log.lock().unwrap(), a), vec![(30, 30)]);
    log.lock().unwrap().clear();
    let diff = db.diff_runs(a, b).unwrap();
    assert!(!diff.is_empty());
    let log = log.lock().unwrap();
    assert_eq!(replay_reports(&log, a), vec![(30, 30)]);
    assert_eq!(replay_reports(&log, b), vec![(10, 10)]);
}

#[test]
fn verifying_an_event_log_reports_its_events() {
    let (db, log) = recording();
    let run = db.begin_run(RunSpec::new("events")).unwrap();
    let events = PROGRESS_STEP_KEYS + 5;
    db.transaction(run, |txn| {
        let log = txn.events(NS);
        for i in 0..events {
            log.append("tick", Value::Int(i as i64))?;
        }
        Ok(())
    })
    .unwrap();
    log.lock().unwrap().clear();
    db.events(NS, run).verify().unwrap();
    let reports: Vec<Progress> = log.lock().unwrap().clone();
    let want = |events_done| Progress::VerifyEvents {
        run,
        events_done,
        events_total: events,
    };
    assert_eq!(reports, vec![want(PROGRESS_STEP_KEYS), want(events)]);
}

#[test]
fn without_an_observer_replays_and_verification_work_alike() {
    let db = Database::in_memory().unwrap();
    let run = run_of(&db, "quiet", 3, 2);
    assert_eq!(db.replay_run(run).unwrap().write_count(), 6);
    db.events(NS, run).append("e", 1).unwrap();
    db.events(NS, run).verify().unwrap();
}
