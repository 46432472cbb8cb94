//! T5 at the engine level: the same workload replayed in two fresh engines
//! gives identical digests and identical replays, even when other runs
//! interleave differently (so absolute versions differ); and a durable
//! engine closed and reopened (from the WAL, or from a checkpoint) replays
//! every run exactly as before. `digest_commits` (end_run's digest) equals
//! the replay's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rewinddb_engine::{
    Durability, Engine, EngineConfig, Isolation, Key, Namespace, RunId, Scope, TypeTag, Value,
};
use rewinddb_replay::{ReplayedRun, digest_commits, replay_run};

const TAGS: [TypeTag; 4] = [TypeTag::Kv, TypeTag::Event, TypeTag::State, TypeTag::Trace];

/// One commit of the workload: writes (key index, scope own?, tag, value or delete).
type Commit = Vec<(u8, bool, TypeTag, Option<Value>)>;

fn workload(seed: u64) -> Vec<Commit> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..rng.usize(1..20))
        .map(|_| {
            (0..rng.usize(1..6))
                .map(|_| {
                    let value = match rng.u8(0..6) {
                        0 => None,
                        1 => Some(Value::from(rng.i64(..))),
                        2 => Some(Value::from(rng.f64())),
                        3 => Some(Value::from(format!("s{}", rng.u32(..)))),
                        4 => Some(Value::from(vec![Value::from(rng.bool()), Value::Null])),
                        _ => Some(Value::from(vec![rng.u8(..), rng.u8(..)])),
                    };
                    (rng.u8(0..8), rng.bool(), TAGS[rng.usize(0..4)], value)
                })
                .collect()
        })
        .collect()
}

fn key(ns: &Namespace, run: RunId, (k, own, tag): (u8, bool, TypeTag)) -> Key {
    let scope = if own { Scope::Run(run) } else { Scope::Shared };
    Key::new(ns.clone(), scope, tag, [b'k', k])
}

fn commit(engine: &Engine, run: RunId, writes: &Commit) {
    let ns = Namespace::new("acme/bot").unwrap();
    let mut txn = engine.begin(run, Isolation::Snapshot);
    for (k, own, tag, value) in writes {
        let key = key(&ns, run, (*k, *own, *tag));
        match value {
            Some(v) => txn.put(key, v.clone()).unwrap(),
            None => txn.delete(key).unwrap(),
        }
    }
    txn.commit().unwrap();
}

/// Run the workload of `seed` as one run, with noise runs (from `noise`)
/// committing between its commits.
fn run_into_fresh_engine(seed: u64, noise: u64) -> ReplayedRun {
    let engine = Engine::open_in_memory(EngineConfig::default()).unwrap();
    let run = run_workload(&engine, seed, noise);
    let replay = replay_run(&engine, run).unwrap();
    // What end_run records: the same digest, without building the state.
    let digest = digest_commits(&engine, run, &engine.run_commits(run).unwrap()).unwrap();
    assert_eq!(digest, replay.digest(), "seed {seed}");
    replay
}

/// Commit the workload of `seed` into `engine` with noise runs between
/// its commits; returns the run.
fn run_workload(engine: &Engine, seed: u64, noise: u64) -> RunId {
    let engine = engine.clone();
    let run = RunId::new();
    let mut noise_rng = fastrand::Rng::with_seed(noise);
    let noise_runs: Vec<RunId> = (0..3).map(|_| RunId::new()).collect();
    for c in workload(seed) {
        for _ in 0..noise_rng.usize(0..3) {
            let other = noise_runs[noise_rng.usize(0..3)];
            commit(&engine, other, &workload(noise_rng.u64(..))[0]);
        }
        commit(&engine, run, &c);
    }
    run
}

/// The parts of a replay that must not depend on the database: writes per
/// step (not versions or times) and the final state.
fn canonical(r: &ReplayedRun) -> (Vec<Vec<rewinddb_replay::Write>>, rewinddb_replay::RunState) {
    let writes = r.steps().iter().map(|s| s.writes.clone()).collect();
    (writes, r.state().clone())
}

#[test]
fn same_workload_gives_same_digest_and_replay_in_two_engines() {
    for seed in 0..100 {
        let a = run_into_fresh_engine(seed, seed.wrapping_mul(31));
        let b = run_into_fresh_engine(seed, seed.wrapping_mul(97) + 1);
        assert_eq!(a.digest(), b.digest(), "seed {seed}");
        assert_eq!(canonical(&a), canonical(&b), "seed {seed}");
        assert_eq!(a.steps().len(), workload(seed).len(), "seed {seed}");
    }
}

#[test]
fn replaying_twice_gives_the_same_replay() {
    let engine = Engine::open_in_memory(EngineConfig::default()).unwrap();
    let run = RunId::new();
    for c in workload(7) {
        commit(&engine, run, &c);
    }
    assert_eq!(
        replay_run(&engine, run).unwrap(),
        replay_run(&engine, run).unwrap()
    );
}

#[test]
fn different_workloads_give_different_digests() {
    let digests: std::collections::HashSet<_> = (0..100)
        .map(|seed| run_into_fresh_engine(seed, 0).digest())
        .collect();
    assert_eq!(digests.len(), 100);
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("rewinddb-t5-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn durable(dir: &TempDir) -> Engine {
    // Async: close() syncs, and reopening is what is tested, not crashes.
    let config = EngineConfig::default()
        .dir(&dir.0)
        .durability(Durability::Async);
    Engine::open(config).unwrap()
}

#[test]
fn replays_are_identical_after_close_and_reopen() {
    for seed in 0..100 {
        let dirs = [
            TempDir::new(&format!("{seed}-a")),
            TempDir::new(&format!("{seed}-b")),
        ];
        let mut before = Vec::new();
        for (i, dir) in dirs.iter().enumerate() {
            let engine = durable(dir);
            let run = run_workload(&engine, seed, seed * 2 + i as u64);
            if seed % 3 == 0 {
                engine.checkpoint().unwrap(); // recover from a checkpoint too
            }
            before.push((run, replay_run(&engine, run).unwrap()));
            engine.close().unwrap();
        }
        assert_eq!(before[0].1.digest(), before[1].1.digest(), "seed {seed}");
        for (dir, (run, replay)) in dirs.iter().zip(&before) {
            let engine = durable(dir);
            let after = replay_run(&engine, *run).unwrap();
            assert_eq!(&after, replay, "seed {seed}: replay changed across reopen");
            engine.close().unwrap();
        }
    }
}
