//! T5 through the facade: the same agent workload (KV, events, state
//! machine, traces) run into two fresh databases, with other runs
//! interleaved differently and events/spans stamped at different
//! wall-clock times, gives identical digests, steps and views; the digest
//! recorded by `end_run` verifies; and after closing and reopening a
//! durable database every run replays exactly as before and still
//! verifies.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rewinddb::{
    Config, Database, Durability, ReplayedRun, RunId, RunSpec, RunStatus, SpanSpec, Value,
    Verification,
};

const NS: &str = "acme/agent";

/// Run the workload of `seed` as one run. Before each of its operations,
/// `noise` decides how many writes an unrelated run makes.
fn workload(db: &Database, seed: u64, noise: u64) -> RunId {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut noise_rng = fastrand::Rng::with_seed(noise);
    let other = db.begin_run(RunSpec::new("other")).unwrap();
    let run = db.begin_run(RunSpec::new("agent")).unwrap();
    db.state_run(NS, run)
        .define(run, "plan", "start", None)
        .unwrap();
    let mut parent = None;
    for i in 0..rng.i64(3..15) {
        for _ in 0..noise_rng.usize(0..3) {
            db.kv(NS).put(other, "mem:0", noise_rng.i64(..)).unwrap();
            db.events(NS, other)
                .append("noise", noise_rng.u32(..))
                .unwrap();
        }
        let k = rng.u8(0..4);
        match rng.u8(0..6) {
            0 => drop(
                db.kv(NS)
                    .put(run, &format!("mem:{k}"), rng.i64(..))
                    .unwrap(),
            ),
            1 => drop(
                db.kv_run(NS, run)
                    .put(run, &format!("scratch:{k}"), i)
                    .unwrap(),
            ),
            2 => drop(
                db.events(NS, run)
                    .append("tool.called", format!("t{k}"))
                    .unwrap(),
            ),
            3 => drop(
                db.state_run(NS, run)
                    .transition(run, "plan", |_| format!("step{k}"))
                    .unwrap(),
            ),
            4 => {
                let spec = SpanSpec::decision(vec!["a".into(), "b".into()], format!("c{k}"), "why");
                parent = Some(db.traces(NS, run).record(spec).unwrap());
            }
            _ => {
                let mut spec = SpanSpec::tool_call("search", Value::from(i64::from(k)));
                if let Some(p) = parent {
                    spec = spec.parent(p);
                }
                let call = db.traces(NS, run).record(spec).unwrap();
                db.traces(NS, run)
                    .end(call, Some(Ok(Value::from(rng.bool()))))
                    .unwrap();
            }
        }
        db.transaction(run, |txn| {
            txn.kv(NS).put("last", i64::from(k))?;
            txn.events(NS).append("step.done", i)?;
            Ok(())
        })
        .unwrap();
    }
    db.end_run(run, RunStatus::Completed).unwrap();
    db.end_run(other, RunStatus::Completed).unwrap();
    run
}

fn replay(seed: u64, noise: u64) -> ReplayedRun {
    let db = Database::in_memory().unwrap();
    let run = workload(&db, seed, noise);
    db.replay_run(run).unwrap()
}

#[test]
fn same_workload_gives_identical_digests_and_replays_in_two_databases() {
    for seed in 0..100 {
        let a = replay(seed, seed);
        let b = replay(seed, seed.wrapping_mul(7919) + 1);
        assert_eq!(a.digest(), b.digest(), "seed {seed}");
        assert_eq!(a.canonical_steps(), b.canonical_steps(), "seed {seed}");
        assert_eq!(a.view().unwrap(), b.view().unwrap(), "seed {seed}");
        assert_eq!(
            a.verify().unwrap(),
            Verification::Matched(a.digest()),
            "seed {seed}"
        );
        assert_eq!(
            b.verify().unwrap(),
            Verification::Matched(b.digest()),
            "seed {seed}"
        );
    }
}

#[test]
fn wall_clock_times_do_not_enter_the_digest_or_the_view() {
    // The second database stamps every event and span at least 3 ms later.
    let slow = Database::in_memory().unwrap();
    let fast = Database::in_memory().unwrap();
    let mut runs = Vec::new();
    for db in [&fast, &slow] {
        let run = db.begin_run(RunSpec::new("agent")).unwrap();
        for i in 0..3 {
            if std::ptr::eq(db, &slow) {
                std::thread::sleep(std::time::Duration::from_millis(3));
            }
            db.events(NS, run).append("tick", i).unwrap();
            let span = db
                .traces(NS, run)
                .record(SpanSpec::tool_call("clock", i))
                .unwrap();
            db.traces(NS, run)
                .end(span, Some(Ok(Value::from(i))))
                .unwrap();
        }
        db.end_run(run, RunStatus::Completed).unwrap();
        runs.push(db.replay_run(run).unwrap());
    }
    let raw = |r: &ReplayedRun| {
        r.steps()
            .iter()
            .map(|s| s.writes.clone())
            .collect::<Vec<_>>()
    };
    assert_ne!(
        raw(&runs[0]),
        raw(&runs[1]),
        "the raw records carry the times"
    );
    assert_eq!(runs[0].digest(), runs[1].digest());
    assert_eq!(runs[0].view().unwrap(), runs[1].view().unwrap());
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("rewinddb-t5f-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn replays_and_digests_survive_close_and_reopen() {
    // Async: closing syncs; what is tested is reopening, not crashing.
    let open =
        |dir: &TempDir| Database::open(Config::new(&dir.0).durability(Durability::Async)).unwrap();
    for seed in 0..100 {
        let dirs = [
            TempDir::new(&format!("{seed}-a")),
            TempDir::new(&format!("{seed}-b")),
        ];
        let mut before = Vec::new();
        for (i, dir) in dirs.iter().enumerate() {
            let db = open(dir);
            let run = workload(&db, seed, seed * 3 + i as u64);
            if seed % 4 == 0 {
                db.engine().checkpoint().unwrap();
            }
            before.push((run, db.replay_run(run).unwrap()));
        } // each database closes here
        assert_eq!(before[0].1.digest(), before[1].1.digest(), "seed {seed}");
        for (dir, (run, replay)) in dirs.iter().zip(&before) {
            let after = open(dir).replay_run(*run).unwrap();
            assert_eq!(&after, replay, "seed {seed}: replay changed across reopen");
            assert_eq!(
                after.verify().unwrap(),
                Verification::Matched(replay.digest())
            );
        }
    }
}
