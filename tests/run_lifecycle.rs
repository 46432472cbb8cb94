//! Run lifecycle end to end: begin, write, inspect, end, query by status,
//! tag, name prefix and time range; invalid status transitions are
//! rejected and change nothing; an ended run accepts no writes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rewinddb::{Database, Error, RunId, RunQuery, RunSpec, RunStatus, Value};

const NS: &str = "acme/bot";

#[test]
fn a_run_from_begin_to_end() {
    let db = Database::in_memory().unwrap();
    let spec = RunSpec::new("support-bot")
        .tag("exp-7")
        .tag("eu")
        .metadata("model-a");
    let run = db.begin_run(spec).unwrap();
    let info = db.runs().get_run(run).unwrap();
    assert_eq!(info.name, "support-bot");
    assert_eq!(info.tags, ["exp-7", "eu"]);
    assert_eq!(info.metadata, Value::from("model-a"));
    assert_eq!(info.status, RunStatus::Running);
    assert_eq!((info.first_version, info.last_version), (None, None));
    assert_eq!(info.started_ms, run.timestamp_ms());

    let v1 = db.kv(NS).put(run, "a", 1).unwrap();
    db.kv(NS).put(RunId::NIL, "unrelated", 0).unwrap();
    db.events(NS, run).append("x", 1).unwrap();
    let v3 = db.engine().visible_version();
    let live = db.runs().get_run(run).unwrap();
    assert_eq!(
        (live.first_version, live.last_version),
        (Some(v1), Some(v3))
    );

    let ended = db.end_run(run, RunStatus::Completed).unwrap();
    assert_eq!(ended.status, RunStatus::Completed);
    assert_eq!(
        (ended.first_version, ended.last_version),
        (Some(v1), Some(v3))
    );
    assert!(ended.ended_ms.unwrap() >= ended.started_ms);
    assert_eq!(db.runs().get_run(run).unwrap(), ended);

    // Ended: no more writes through any path, and nothing changes.
    let before = db.engine().visible_version();
    let refused = [
        db.kv(NS).put(run, "a", 2).map(drop),
        db.events(NS, run).append("late", 0).map(drop),
        db.transaction(run, |txn| txn.kv(NS).put("a", 3)),
        db.begin(run, rewinddb::Isolation::Snapshot).map(drop),
    ];
    for r in refused {
        assert!(
            matches!(
                r,
                Err(Error::RunEnded {
                    status: "completed",
                    ..
                })
            ),
            "{r:?}"
        );
    }
    assert_eq!(db.engine().visible_version(), before);
    assert_eq!(db.kv(NS).get("a").unwrap(), Some(Value::Int(1)));
}

#[test]
fn status_moves_only_from_running_to_a_final_status() {
    let db = Database::in_memory().unwrap();
    for final_status in [
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ] {
        let run = db.begin_run(RunSpec::new("r")).unwrap();
        let stay = db.runs().update_status(run, RunStatus::Running);
        assert!(matches!(
            stay,
            Err(Error::InvalidStatusTransition {
                from: "running",
                to: "running",
                ..
            })
        ));
        db.runs().update_status(run, final_status).unwrap();
        let before = db.engine().visible_version();
        for next in [
            RunStatus::Running,
            RunStatus::Completed,
            RunStatus::Failed,
            RunStatus::Cancelled,
        ] {
            let err = db.runs().update_status(run, next).unwrap_err();
            assert!(
                matches!(err, Error::InvalidStatusTransition { .. }),
                "{err}"
            );
            assert!(err.to_string().contains(final_status.as_str()), "{err}");
        }
        assert_eq!(db.engine().visible_version(), before);
        assert_eq!(db.runs().get_run(run).unwrap().status, final_status);
    }
    let unknown = RunId::new();
    assert!(
        matches!(db.end_run(unknown, RunStatus::Completed), Err(Error::UnknownRun(r)) if r == unknown)
    );
}

#[test]
fn queries_filter_by_status_tag_name_and_time_in_start_order() {
    let db = Database::in_memory().unwrap();
    let parent = db.begin_run(RunSpec::new("planner").tag("exp-1")).unwrap();
    let mut ids = vec![parent];
    for i in 0..6 {
        let name = if i % 2 == 0 {
            "worker-even"
        } else {
            "worker-odd"
        };
        let spec = RunSpec::new(name)
            .tag(format!("exp-{}", i % 3))
            .parent(parent);
        ids.push(db.begin_run(spec).unwrap());
        // Separate start milliseconds so the time-range query can split them.
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    db.end_run(ids[1], RunStatus::Completed).unwrap();
    db.end_run(ids[2], RunStatus::Failed).unwrap();
    db.end_run(ids[3], RunStatus::Completed).unwrap();
    let q = |query: RunQuery| -> Vec<RunId> {
        db.runs()
            .query_runs(&query)
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect()
    };
    assert_eq!(q(RunQuery::all()), ids, "start order");
    assert_eq!(
        q(RunQuery::all().status(RunStatus::Completed)),
        [ids[1], ids[3]]
    );
    assert_eq!(
        q(RunQuery::all().status(RunStatus::Running)),
        [ids[0], ids[4], ids[5], ids[6]]
    );
    assert_eq!(q(RunQuery::all().tag("exp-1")), [ids[0], ids[2], ids[5]]);
    assert_eq!(
        q(RunQuery::all().name_prefix("worker-o")),
        [ids[2], ids[4], ids[6]]
    );
    assert_eq!(
        q(RunQuery::all().name_prefix("worker").limit(2)),
        [ids[1], ids[2]]
    );
    assert_eq!(
        q(RunQuery::all().tag("exp-0").status(RunStatus::Completed)),
        [ids[1]]
    );
    let started = |i: usize| db.runs().get_run(ids[i]).unwrap().started_ms;
    assert_eq!(
        q(RunQuery::all().started_between(started(2), started(5))),
        ids[2..5]
    );
    assert_eq!(
        q(RunQuery::all().started_between(started(6) + 1, u64::MAX)),
        Vec::<RunId>::new()
    );
    assert_eq!(db.runs().get_run(ids[3]).unwrap().parent, Some(parent));
    // The same queries work on a snapshot from before the runs ended.
    let early = db.snapshot_at(7).unwrap();
    assert_eq!(
        early
            .runs()
            .query_runs(&RunQuery::all().status(RunStatus::Running))
            .unwrap()
            .len(),
        7
    );
}

#[test]
fn a_parent_must_exist() {
    let db = Database::in_memory().unwrap();
    let ghost = RunId::new();
    let err = db
        .begin_run(RunSpec::new("child").parent(ghost))
        .unwrap_err();
    assert!(matches!(err, Error::UnknownRun(r) if r == ghost), "{err}");
    assert_eq!(db.runs().query_runs(&RunQuery::all()).unwrap(), vec![]);
}

#[test]
fn a_serializable_transaction_overlapping_end_run_conflicts() {
    let db = Database::in_memory().unwrap();
    let run = db.begin_run(RunSpec::new("late")).unwrap();
    let txn = db.begin(run, rewinddb::Isolation::Serializable).unwrap();
    txn.kv(NS).put("late", 1).unwrap();
    db.end_run(run, RunStatus::Completed).unwrap();
    let err = txn.commit().unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert_eq!(db.kv(NS).get("late").unwrap(), None);
    // The retried form sees the ended run and gives up with a clear error.
    let retried = db.transaction(run, |txn| txn.kv(NS).put("late", 2));
    assert!(
        matches!(retried, Err(Error::RunEnded { .. })),
        "{retried:?}"
    );
}

#[test]
fn no_write_starting_after_end_run_returns_is_accepted() {
    // The facade remembers running runs to skip re-reading the run index;
    // writers racing end_run must not leave the run remembered as running.
    for round in 0..20 {
        let db = Database::in_memory().unwrap();
        let run = db.begin_run(RunSpec::new("raced")).unwrap();
        let ended = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            for w in 0..2 {
                let (db, ended) = (&db, &ended);
                s.spawn(move || {
                    for i in 0.. {
                        let after_end = ended.load(std::sync::atomic::Ordering::SeqCst);
                        match db.kv(NS).put(run, &format!("w{w}:{i}"), i) {
                            Ok(_) => assert!(
                                !after_end,
                                "round {round}: write accepted after end_run returned"
                            ),
                            Err(Error::RunEnded { .. }) => break,
                            Err(e) => panic!("{e}"),
                        }
                    }
                });
            }
            std::thread::sleep(std::time::Duration::from_micros(200 * round));
            db.end_run(run, RunStatus::Completed).unwrap();
            ended.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        assert!(matches!(
            db.kv(NS).put(run, "late", 0),
            Err(Error::RunEnded { .. })
        ));
    }
}
