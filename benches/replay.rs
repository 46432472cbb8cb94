//! Replay is O(run size) (issue 5): `replay_run` of a 1,000-write run in a
//! database holding nothing else vs one holding 1M other versions written
//! by other runs interleaved with it (10,000 runs x 100 writes, and 1,000
//! runs x 1,000 writes). Target: ratio <= 1.2.
//!
//! Run: `cargo bench --bench replay`. The three databases are built once
//! (a few seconds each, about 1 GB together). The issue's own size, 10,000
//! other runs of 1,000 writes each (10M other versions, then the second
//! configuration is 100,000 runs x 100 writes):
//! `REPLAY_OTHER_VERSIONS=10000000 cargo bench --bench replay` (minutes to
//! build, several GB). Before divan's per-config
//! table, the binary prints an interleaved comparison: rounds in which each
//! configuration is replayed once, in rotating order, so load from other
//! processes hits all of them alike; the ratios come from that table. The
//! same rounds also time each configuration warm (replayed again at once)
//! and cold (after the caches are evicted), to tell work from memory
//! latency.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Instant;

use divan::Bencher;
use divan::counter::ItemsCount;
use rewinddb::engine::{Key, Scope};
use rewinddb::{Database, Isolation, Namespace, RunId, RunSpec, TypeTag};

fn main() {
    // `cargo test --all-targets` runs this binary without `--bench`: then
    // build small databases and skip the comparison, to keep tests fast.
    if bench_mode() {
        ratio_report();
    }
    divan::main();
}

fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Versions written by other runs: 1M when benchmarking, 10,000 in tests.
fn other_versions() -> usize {
    if !bench_mode() {
        return 10_000;
    }
    std::env::var("REPLAY_OTHER_VERSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(OTHER_VERSIONS)
}

/// The configurations: writes of each other run (0: no other runs).
const PER_RUN: [usize; 3] = [0, 100, 1000];
/// Rounds of the interleaved comparison.
const ROUNDS: usize = 300;

/// The databases of the three configurations, built once.
fn databases() -> &'static [(Database, RunId)] {
    static DBS: OnceLock<Vec<(Database, RunId)>> = OnceLock::new();
    DBS.get_or_init(|| {
        PER_RUN
            .iter()
            .map(|&per_run| {
                let others = other_versions().checked_div(per_run).unwrap_or(0);
                let (db, run) = setup(others, per_run);
                let versions = db.engine().stats().versions;
                eprintln!("setup: {others} other runs x {per_run} writes: {versions} versions");
                (db, run)
            })
            .collect()
    })
}

/// Replay every configuration once per round, rotating the order, and
/// print min and median per configuration and their ratio to "0 others".
/// Then, in rounds of their own (so the first table's conditions stay as
/// they were), a replay repeated at once (warm: its run's memory is in
/// cache) and one after streaming through `EVICT_BYTES` (cold: chain
/// nodes, keys and page-table entries come from DRAM). The code path is
/// the same in all of them; where the ratio is met warm and not cold, the
/// difference is memory latency, not work.
fn ratio_report() {
    let dbs = databases();
    let replay = |i: usize| {
        let (db, run) = &dbs[i];
        let t = Instant::now();
        black_box(db.replay_run(*run).unwrap());
        t.elapsed()
    };
    let mut interleaved = vec![Vec::with_capacity(ROUNDS); dbs.len()];
    for round in 0..ROUNDS {
        for k in 0..dbs.len() {
            let i = (round + k) % dbs.len();
            interleaved[i].push(replay(i));
        }
    }
    let mut evict_buf = vec![1u64; EVICT_BYTES / 8];
    let (mut warm, mut cold) = (interleaved.clone(), interleaved.clone());
    warm.iter_mut().chain(&mut cold).for_each(Vec::clear);
    for round in 0..ROUNDS {
        for k in 0..dbs.len() {
            let i = (round + k) % dbs.len();
            evict_caches(&mut evict_buf);
            cold[i].push(replay(i));
            warm[i].push(replay(i));
        }
    }
    eprintln!("{ROUNDS} rounds in rotating order: replay_run of a {RUN_WRITES}-write run");
    for (kind, mut times) in [
        ("interleaved", interleaved),
        ("warm (repeated at once)", warm),
        ("cold (caches evicted first)", cold),
    ] {
        eprintln!(" {kind}");
        times.iter_mut().for_each(|t| t.sort());
        let (min0, med0) = (times[0][0], times[0][ROUNDS / 2]);
        for (t, per_run) in times.iter().zip(PER_RUN) {
            let (min, med) = (t[0], t[ROUNDS / 2]);
            eprintln!(
                "  other runs x {per_run:>4} writes: min {min:>10.1?} median {med:>10.1?}  \
                 ratio min {:.2} median {:.2}",
                min.as_secs_f64() / min0.as_secs_f64(),
                med.as_secs_f64() / med0.as_secs_f64()
            );
        }
    }
}

/// Bytes streamed through to push a replay's memory out of the caches:
/// twice the 32 MiB L3 of the machine the figures were taken on.
const EVICT_BYTES: usize = 64 << 20;

/// Write one word per cache line of `buf`, so the lines it held before
/// (and the TLB entries of their pages) are gone.
fn evict_caches(buf: &mut [u64]) {
    for line in buf.chunks_mut(8) {
        line[0] = line[0].wrapping_add(1);
    }
    black_box(&buf);
}

/// Writes of the replayed run.
const RUN_WRITES: usize = 1_000;
/// Writes per commit, for every run.
const COMMIT_WRITES: usize = 10;
/// Versions written by other runs, when there are any.
const OTHER_VERSIONS: usize = 1_000_000;

/// One commit of `run`: `COMMIT_WRITES` keys, one in five shared and the
/// rest in the run's own scope, numbered from `first`.
fn commit(db: &Database, ns: &Namespace, run: RunId, first: usize) {
    let mut txn = db.engine().begin(run, Isolation::Snapshot);
    for i in first..first + COMMIT_WRITES {
        let scope = if i % 5 == 0 {
            Scope::Shared
        } else {
            Scope::Run(run)
        };
        let user = format!("{}:{i}", run.as_u128() as u64);
        txn.put(Key::new(ns.clone(), scope, TypeTag::Kv, user), i as i64)
            .unwrap();
    }
    txn.commit().unwrap();
}

/// A database with the replayed run and `others` runs of `per_run` writes
/// each, their commits spread evenly between the replayed run's commits.
fn setup(others: usize, per_run: usize) -> (Database, RunId) {
    let db = Database::in_memory().unwrap();
    let ns = Namespace::new("bench/agent").unwrap();
    let run = db.begin_run(RunSpec::new("replayed")).unwrap();
    let other_ids: Vec<RunId> = (0..others).map(|_| RunId::new()).collect();
    let other_commits = others * per_run / COMMIT_WRITES;
    let run_commits = RUN_WRITES / COMMIT_WRITES;
    let mut next_other = 0;
    for c in 0..run_commits {
        commit(&db, &ns, run, c * COMMIT_WRITES);
        let until = other_commits * (c + 1) / run_commits;
        while next_other < until {
            // Round-robin over the other runs, so all of them interleave.
            let id = other_ids[next_other % others];
            commit(&db, &ns, id, (next_other / others) * COMMIT_WRITES);
            next_other += 1;
        }
    }
    assert_eq!(db.replay_run(run).unwrap().write_count(), RUN_WRITES);
    (db, run)
}

/// Index into [`PER_RUN`]: 0 = no other runs, 1 = 10,000 x 100, 2 = 1,000 x 1,000.
#[divan::bench(args = [0, 1, 2], sample_count = 200)]
fn replay_run_of_1000_writes(bencher: Bencher, config: usize) {
    let (db, run) = &databases()[config];
    bencher
        .counter(ItemsCount::new(RUN_WRITES))
        .bench_local(|| black_box(db.replay_run(*run).unwrap()));
}
