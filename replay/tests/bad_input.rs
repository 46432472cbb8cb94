//! Bad input to replay gives clear errors: an unknown run, a run whose
//! history is outside retention or was garbage collected, a step past the
//! end, and a digest that does not match.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use rewinddb_engine::{
    Engine, EngineConfig, Isolation, Key, Namespace, Retention, RunId, Scope, TypeTag,
};
use rewinddb_replay::{
    Digest, Error, Recorded, Verification, diff_runs, replay_run, version_at_step,
};

fn key(name: &str) -> Key {
    Key::new(
        Namespace::new("bad").unwrap(),
        Scope::Shared,
        TypeTag::Kv,
        name,
    )
}

fn put(engine: &Engine, run: RunId, name: &str, value: i64) -> u64 {
    let mut txn = engine.begin(run, Isolation::Snapshot);
    txn.put(key(name), value).unwrap();
    txn.commit().unwrap()
}

#[test]
fn unknown_run_is_an_error_naming_it() {
    let engine = Engine::open_in_memory(EngineConfig::default()).unwrap();
    let known = RunId::new();
    put(&engine, known, "a", 1);
    let unknown = RunId::new();
    let err = replay_run(&engine, unknown).unwrap_err();
    assert!(matches!(err, Error::UnknownRun(r) if r == unknown), "{err}");
    assert!(err.to_string().contains(&unknown.to_string()));
    let err = diff_runs(&engine, known, unknown).unwrap_err();
    assert!(matches!(err, Error::UnknownRun(r) if r == unknown), "{err}");
    let err = version_at_step(&engine, unknown, 0).unwrap_err();
    assert!(matches!(err, Error::UnknownRun(_)), "{err}");
}

#[test]
fn step_past_the_end_is_an_error() {
    let engine = Engine::open_in_memory(EngineConfig::default()).unwrap();
    let run = RunId::new();
    let v0 = put(&engine, run, "a", 1);
    let v1 = put(&engine, run, "a", 2);
    let replay = replay_run(&engine, run).unwrap();
    assert_eq!(replay.version_at_step(0).unwrap(), v0);
    assert_eq!(version_at_step(&engine, run, 1).unwrap(), v1);
    assert_eq!(replay.at_step(1).unwrap(), *replay.state());
    for err in [
        replay.at_step(2).unwrap_err(),
        replay.version_at_step(2).unwrap_err(),
        version_at_step(&engine, run, 2).unwrap_err(),
    ] {
        assert!(
            matches!(
                err,
                Error::StepOutOfRange {
                    step: 2,
                    steps: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("step 2 is past the end"), "{err}");
    }
}

#[test]
fn run_behind_the_retention_window_is_an_error() {
    let config = EngineConfig::default().retention(Retention::Window(Duration::from_millis(1)));
    let engine = Engine::open_in_memory(config).unwrap();
    let old = RunId::new();
    put(&engine, old, "a", 1);
    std::thread::sleep(Duration::from_millis(20));
    let newer = RunId::new();
    put(&engine, newer, "b", 1);
    std::thread::sleep(Duration::from_millis(20));
    engine.gc().unwrap();
    let err = replay_run(&engine, old).unwrap_err();
    assert!(
        matches!(err, Error::RunOutsideRetention { version: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("outside retention"), "{err}");
}

#[test]
fn run_whose_versions_were_pruned_is_an_error() {
    let config = EngineConfig::default().retention(Retention::Versions(1));
    let engine = Engine::open_in_memory(config).unwrap();
    let run = RunId::new();
    put(&engine, run, "a", 1);
    put(&engine, RunId::new(), "a", 2);
    assert!(replay_run(&engine, run).is_ok(), "nothing pruned yet");
    engine.gc().unwrap();
    let err = replay_run(&engine, run).unwrap_err();
    assert!(
        matches!(err, Error::HistoryPruned { version: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("garbage collected"), "{err}");
}

#[test]
fn a_digest_mismatch_is_an_error_not_a_pass() {
    let engine = Engine::open_in_memory(EngineConfig::default()).unwrap();
    let run = RunId::new();
    put(&engine, run, "a", 1);
    let replay = replay_run(&engine, run).unwrap();
    let good = replay.digest();
    let bad = Digest(good.0 ^ 1);
    let ended = replay.clone().with_recorded(Recorded::Ended(good));
    assert_eq!(ended.verify().unwrap(), Verification::Matched(good));
    let diverged = replay.clone().with_recorded(Recorded::Ended(bad));
    let err = diverged.verify().unwrap_err();
    assert!(
        matches!(err, Error::ReplayDiverged { expected, actual, .. } if expected == bad && actual == good),
        "{err}"
    );
    let in_progress = replay.with_recorded(Recorded::InProgress);
    assert_eq!(in_progress.verify().unwrap(), Verification::InProgress);
    assert!(in_progress.is_in_progress());
}
