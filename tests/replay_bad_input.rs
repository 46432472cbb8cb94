//! Replay through the facade on bad or unusual input: an unknown run, a
//! step past the end, a run behind the retention window, a run still in
//! progress (replays and says so), a run with no commits, and a run whose
//! history no longer matches the digest recorded at end_run
//! (`ReplayDiverged`, never a silent pass); a run part of whose history
//! GC removed, across a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use rewinddb::engine::Key;
use rewinddb::{
    Config, Database, Isolation, Namespace, ReplayError, Retention, RunId, RunSpec, RunStatus,
    Scope, TypeTag, Verification,
};

const NS: &str = "acme/agent";

#[test]
fn unknown_run_is_a_clear_error_for_replay_diff_and_steps() {
    let db = Database::in_memory().unwrap();
    let known = db.begin_run(RunSpec::new("known")).unwrap();
    db.kv(NS).put(known, "a", 1).unwrap();
    let unknown = RunId::new();
    for err in [
        db.replay_run(unknown).unwrap_err(),
        db.diff_runs(known, unknown).unwrap_err(),
        db.version_at_step(unknown, 0).unwrap_err(),
    ] {
        assert!(
            matches!(err, ReplayError::UnknownRun(r) if r == unknown),
            "{err}"
        );
        assert!(err.to_string().contains(&unknown.to_string()), "{err}");
    }
}

#[test]
fn step_past_the_end_is_a_clear_error() {
    let db = Database::in_memory().unwrap();
    let run = db.begin_run(RunSpec::new("r")).unwrap();
    db.kv(NS).put(run, "a", 1).unwrap();
    let replay = db.replay_run(run).unwrap();
    assert!(replay.at_step(0).is_ok());
    for err in [
        replay.at_step(1).unwrap_err(),
        db.version_at_step(run, 1).unwrap_err(),
    ] {
        assert!(
            matches!(
                err,
                ReplayError::StepOutOfRange {
                    step: 1,
                    steps: 1,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("past the end"), "{err}");
    }
}

#[test]
fn run_outside_retention_is_a_clear_error() {
    let config = Config::in_memory().retention(Retention::Window(Duration::from_millis(1)));
    let db = Database::open(config).unwrap();
    let old = db.begin_run(RunSpec::new("old")).unwrap();
    db.kv(NS).put(old, "a", 1).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    db.kv(NS).put(RunId::NIL, "b", 2).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    db.engine().gc().unwrap();
    let err = db.replay_run(old).unwrap_err();
    assert!(
        matches!(err, ReplayError::RunOutsideRetention { run, .. } if run == old),
        "{err}"
    );
    assert!(err.to_string().contains("outside retention"), "{err}");
    let err = db.snapshot_at(1).unwrap_err();
    assert!(err.to_string().contains("outside retention"), "{err}");
}

#[test]
fn a_run_in_progress_replays_and_says_so() {
    let db = Database::in_memory().unwrap();
    let run = db.begin_run(RunSpec::new("r")).unwrap();
    let empty = db.replay_run(run).unwrap();
    assert!(empty.is_in_progress() && empty.steps().is_empty());
    db.kv(NS).put(run, "a", 1).unwrap();
    let replay = db.replay_run(run).unwrap();
    assert!(replay.is_in_progress());
    assert_eq!(replay.verify().unwrap(), Verification::InProgress);
    assert_eq!(replay.steps().len(), 1);
    let info = db.end_run(run, RunStatus::Completed).unwrap();
    let ended = db.replay_run(run).unwrap();
    assert!(!ended.is_in_progress());
    assert_eq!(info.digest, Some(ended.digest().0));
    assert_eq!(
        ended.verify().unwrap(),
        Verification::Matched(ended.digest())
    );
}

#[test]
fn a_run_ended_without_commits_verifies() {
    let db = Database::in_memory().unwrap();
    let run = db.begin_run(RunSpec::new("idle")).unwrap();
    db.end_run(run, RunStatus::Cancelled).unwrap();
    let replay = db.replay_run(run).unwrap();
    assert!(replay.steps().is_empty());
    assert!(matches!(replay.verify().unwrap(), Verification::Matched(_)));
}

#[test]
fn history_changed_after_end_run_is_reported_as_diverged() {
    let db = Database::in_memory().unwrap();
    let run = db.begin_run(RunSpec::new("r")).unwrap();
    db.kv(NS).put(run, "a", 1).unwrap();
    let recorded = db
        .end_run(run, RunStatus::Completed)
        .unwrap()
        .digest
        .unwrap();
    // The facade refuses writes of an ended run; the engine underneath
    // does not know runs, so use it to slip one in.
    let key = Key::new(Namespace::new(NS).unwrap(), Scope::Shared, TypeTag::Kv, "a");
    let mut txn = db.engine().begin(run, Isolation::Snapshot);
    txn.put(key, 2).unwrap();
    txn.commit().unwrap();
    let err = db.replay_run(run).unwrap().verify().unwrap_err();
    match err {
        ReplayError::ReplayDiverged {
            expected, actual, ..
        } => {
            assert_eq!(expected.0, recorded);
            assert_ne!(actual, expected);
        }
        other => panic!("{other}"),
    }
}

#[test]
fn a_run_whose_history_gc_removed_is_an_error_after_a_restart() {
    let dir = std::env::temp_dir().join(format!("rewinddb-replay-gc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = Config::new(&dir).retention(Retention::Versions(1));
    let run = {
        let db = Database::open(config.clone()).unwrap();
        let run = db.begin_run(RunSpec::new("r")).unwrap();
        db.kv(NS).put(run, "a", 1).unwrap(); // pruned below
        db.kv(NS).put(run, "a", 2).unwrap();
        db.kv(NS).put(run, "b", 3).unwrap();
        db.end_run(run, RunStatus::Completed).unwrap();
        db.engine().gc().unwrap();
        let err = db.replay_run(run).unwrap_err();
        assert!(matches!(err, ReplayError::HistoryPruned { .. }), "{err}");
        db.engine().checkpoint().unwrap();
        run
    };
    let db = Database::open(config).unwrap();
    let err = db.replay_run(run).unwrap_err();
    assert!(
        matches!(
            err,
            ReplayError::HistoryPruned { .. } | ReplayError::CommitsMissing { .. }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("garbage collected"), "{err}");
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}
