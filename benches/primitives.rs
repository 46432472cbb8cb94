//! Primitive and facade micro-benchmarks (issue 4, "Performance"): event
//! append, span record, state cas, a KV `list` of 100 keys out of 1M, and
//! the cost the facade adds over the raw engine for a single-key put.
//!
//! Run: `cargo bench --bench primitives` (add `-- append` etc. to filter).
//! Sample counts and sizes are fixed per benchmark: every version is kept
//! (the default retention), so memory grows with iterations; do not raise
//! them from the command line.
//! Targets (in memory, 2 shared cores): event append >= 1M/s single
//! thread; facade single-key put within 1.2x of the raw engine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use divan::Bencher;
use divan::counter::ItemsCount;
use rewinddb::engine::{Key, Scope, Transaction};
use rewinddb::{Database, Isolation, Namespace, RunId, RunSpec, SpanSpec, TypeTag, Value};

fn main() {
    divan::main();
    // `cargo test --all-targets` runs this binary without `--bench`: then
    // load a small KV and skip the interleaved tables, to keep tests fast.
    // The tables come last: the versions they keep, freed at their end,
    // would leave the allocator's free lists fragmented for the benches
    // above.
    if bench_mode() {
        facade_ratio_report();
        append_split_report();
    }
}

fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Shared KV keys of the list benchmark: 1M when benchmarking.
fn list_keys() -> usize {
    if bench_mode() { 1_000_000 } else { 10_000 }
}

/// Puts per timed round, and rounds, of the interleaved ratio table.
const RATIO_PUTS: usize = 2_000;
const RATIO_ROUNDS: usize = 200;
/// Appends per timed round, and rounds, of the interleaved append table.
const SPLIT_APPENDS: usize = 1_000;
const SPLIT_ROUNDS: usize = 100;

/// One timed series of an interleaved table: a name and one operation
/// (given its index within the round).
type Series<'a> = (&'static str, Box<dyn FnMut(u64) + 'a>);

/// Time `per_round` calls of each series, series after series, `rounds`
/// times over, so that load from other processes hits all alike; returns
/// each series' ns per call by round, sorted.
fn interleaved(rounds: usize, per_round: usize, series: &mut [Series<'_>]) -> Vec<Vec<f64>> {
    let mut times = vec![Vec::with_capacity(rounds); series.len()];
    for _ in 0..rounds {
        for ((_, op), t) in series.iter_mut().zip(&mut times) {
            let start = std::time::Instant::now();
            for i in 0..per_round as u64 {
                op(i);
            }
            t.push(start.elapsed().as_nanos() as f64 / per_round as f64);
        }
    }
    for t in &mut times {
        t.sort_by(f64::total_cmp);
    }
    times
}

/// Print min and median per series, then `a/b` ratios for `ratios`.
fn print_table(series: &[Series<'_>], times: &[Vec<f64>], ratios: &[(usize, usize)]) {
    let median = |t: &[f64]| t[t.len() / 2];
    for ((name, _), t) in series.iter().zip(times) {
        println!("  {name:<20} min {:.0}  median {:.0}", t[0], median(t));
    }
    for &(a, b) in ratios {
        let name = format!("{}/{}", series[a].0, series[b].0);
        println!(
            "  {name:<20} min {:.2}x  median {:.2}x",
            times[a][0] / times[b][0],
            median(&times[a]) / median(&times[b])
        );
    }
}

/// Facade vs raw engine single-key put, interleaved. The target compares
/// against a raw put of a key built once; a third series (`raw+key`)
/// builds the raw key from its text on every put, as the facade must, to
/// show what remains besides that allocation.
fn facade_ratio_report() {
    let (db, run) = db_and_run();
    let engine = db.engine().clone();
    let ns = Namespace::new(NS).unwrap();
    let key = Key::new(ns.clone(), Scope::Shared, TypeTag::Kv, "raw");
    let kv = db.kv(NS);
    let raw_put = |key: Key, i: u64| {
        engine
            .transaction(run, Isolation::Snapshot, |t| t.put(key.clone(), i as i64))
            .unwrap();
    };
    let mut series: [Series<'_>; 3] = [
        ("raw", Box::new(|i| raw_put(key.clone(), i))),
        (
            "raw+key",
            Box::new(|i| raw_put(Key::new(ns.clone(), Scope::Shared, TypeTag::Kv, "built"), i)),
        ),
        (
            "facade",
            Box::new(|i| {
                kv.put(run, "facade", i as i64).unwrap();
            }),
        ),
    ];
    let times = interleaved(RATIO_ROUNDS, RATIO_PUTS, &mut series);
    println!("single-key put, ns/put over {RATIO_ROUNDS} interleaved rounds of {RATIO_PUTS}:");
    print_table(&series, &times, &[(2, 0), (2, 1)]);
}

/// Event append through the facade (one per transaction) vs the engine
/// work it cannot avoid, interleaved: in an optimistic transaction
/// (`event_append_engine_floor`) and under the commit lock
/// (`event_append_engine_floor_locked`, the path an autocommit append
/// takes): what the engine costs and what the primitive and facade add.
fn append_split_report() {
    let (db, run) = db_and_run();
    let log = db.events(NS, run);
    let p = payload();
    // Their own runs: the floors' head records are not event heads.
    let floor_run = db.begin_run(RunSpec::new("floor")).unwrap();
    let mut floor = engine_floor(&db, floor_run, false);
    let locked_run = db.begin_run(RunSpec::new("floor-locked")).unwrap();
    let mut locked = engine_floor(&db, locked_run, true);
    let mut series: [Series<'_>; 3] = [
        ("engine floor", Box::new(|_| floor())),
        ("locked floor", Box::new(|_| locked())),
        (
            "append",
            Box::new(|_| {
                log.append("tool.returned", p.clone()).unwrap();
            }),
        ),
    ];
    let times = interleaved(SPLIT_ROUNDS, SPLIT_APPENDS, &mut series);
    println!(
        "event append, one per transaction, ns/append over {SPLIT_ROUNDS} interleaved rounds of \
         {SPLIT_APPENDS}:"
    );
    print_table(&series, &times, &[(2, 0), (2, 1)]);
}

const NS: &str = "bench/ns";
/// Events per transaction in the batched append benchmark.
const BATCH: usize = 1000;

fn db_and_run() -> (Database, RunId) {
    let db = Database::in_memory().unwrap();
    let run = db.begin_run(RunSpec::new("bench")).unwrap();
    (db, run)
}

fn payload() -> Value {
    Value::from("tool returned 42 results")
}

/// One append per transaction (autocommit through the facade).
#[divan::bench(sample_count = 100, sample_size = 1000)]
fn event_append_autocommit(bencher: Bencher) {
    let (db, run) = db_and_run();
    let log = db.events(NS, run);
    let p = payload();
    bencher
        .counter(ItemsCount::new(1usize))
        .bench_local(|| log.append("tool.returned", p.clone()).unwrap());
}

/// The engine work an append cannot avoid, without the primitive: per
/// transaction, read a head key, write one new key and rewrite the head.
#[divan::bench(sample_count = 100, sample_size = 1000)]
fn event_append_engine_floor(bencher: Bencher) {
    let (db, run) = db_and_run();
    let mut floor = engine_floor(&db, run, false);
    bencher
        .counter(ItemsCount::new(1usize))
        .bench_local(&mut floor);
}

/// One call of the returned closure is one transaction of the engine work
/// of an append (see `event_append_engine_floor`): optimistic, or under the
/// commit lock when `locked` (`Engine::transaction_locked`, the path an
/// autocommit append takes).
fn engine_floor(db: &Database, run: RunId, locked: bool) -> impl FnMut() + use<> {
    let engine = db.engine().clone();
    let ns = Namespace::new(NS).unwrap();
    let head = Key::new(ns.clone(), Scope::Run(run), TypeTag::Event, "h");
    let record = Value::from(vec![payload(), Value::Int(0), Value::Int(0), Value::Int(0)]);
    let mut seq = 0u64;
    move || {
        seq += 1;
        let mut user = [b'e'; 9];
        user[1..].copy_from_slice(&seq.to_be_bytes());
        let key = Key::new(ns.clone(), Scope::Run(run), TypeTag::Event, user);
        let work = |t: &mut Transaction| {
            black_box(t.get(&head)?);
            t.put(key.clone(), record.clone())?;
            t.put(head.clone(), Value::from(&seq.to_le_bytes()[..]))
        };
        if locked {
            engine.transaction_locked(run, work).unwrap();
        } else {
            engine.transaction(run, Isolation::Snapshot, work).unwrap();
        }
    }
}

/// `event_append_engine_floor` under the commit lock
/// (`Engine::transaction_locked`), as an autocommit append runs.
#[divan::bench(sample_count = 100, sample_size = 1000)]
fn event_append_engine_floor_locked(bencher: Bencher) {
    let (db, run) = db_and_run();
    let mut floor = engine_floor(&db, run, true);
    bencher
        .counter(ItemsCount::new(1usize))
        .bench_local(&mut floor);
}

/// `BATCH` appends in one transaction: the throughput an agent gets when it
/// groups a step's events.
#[divan::bench(sample_count = 30, sample_size = 1)]
fn event_append_batched(bencher: Bencher) {
    let (db, run) = db_and_run();
    let p = payload();
    bencher.counter(ItemsCount::new(BATCH)).bench_local(|| {
        db.transaction(run, |txn| {
            let log = txn.events(NS);
            for _ in 0..BATCH {
                log.append("tool.returned", p.clone())?;
            }
            Ok(())
        })
        .unwrap()
    });
}

/// The engine work of `event_append_batched` without the primitive: in
/// one transaction, per event, read the head key, write one new key and
/// rewrite the head.
#[divan::bench(sample_count = 30, sample_size = 1)]
fn event_append_batched_engine_floor(bencher: Bencher) {
    let (db, run) = db_and_run();
    let engine = db.engine().clone();
    let ns = Namespace::new(NS).unwrap();
    let head = Key::new(ns.clone(), Scope::Run(run), TypeTag::Event, "h");
    let record = Value::from(vec![payload(), Value::Int(0), Value::Int(0), Value::Int(0)]);
    let mut seq = 0u64;
    bencher.counter(ItemsCount::new(BATCH)).bench_local(|| {
        engine
            .transaction(run, Isolation::Snapshot, |t| {
                for _ in 0..BATCH {
                    seq += 1;
                    let mut user = [b'e'; 9];
                    user[1..].copy_from_slice(&seq.to_be_bytes());
                    let key = Key::new(ns.clone(), Scope::Run(run), TypeTag::Event, user);
                    black_box(t.get(&head)?);
                    t.put(key, record.clone())?;
                    t.put(head.clone(), Value::from(&seq.to_le_bytes()[..]))?;
                }
                Ok(())
            })
            .unwrap()
    });
}

/// One tool-call span (with a parent and an attribute) per transaction.
#[divan::bench(sample_count = 100, sample_size = 1000)]
fn span_record(bencher: Bencher) {
    let (db, run) = db_and_run();
    let traces = db.traces(NS, run);
    let root = traces.record(SpanSpec::custom("step", 0)).unwrap();
    let spec = SpanSpec::tool_call("search", "weather in paris")
        .parent(root)
        .attr("attempt", 1);
    bencher
        .counter(ItemsCount::new(1usize))
        .bench_local(|| traces.record(spec.clone()).unwrap());
}

/// Sequential `cas` moves of one state machine, each its own transaction.
#[divan::bench(sample_count = 100, sample_size = 1000)]
fn state_cas(bencher: Bencher) {
    let (db, run) = db_and_run();
    let sm = db.state(NS);
    sm.define(run, "m", 0, None).unwrap();
    let mut version = 1;
    bencher.counter(ItemsCount::new(1usize)).bench_local(|| {
        version = sm.cas(run, "m", version, version as i64).unwrap();
    });
}

/// `list(prefix)` of 100 keys out of 1M shared KV keys.
#[divan::bench(sample_count = 200, sample_size = 10)]
fn kv_list_100_of_1m(bencher: Bencher) {
    let db = Database::in_memory().unwrap();
    let keys = list_keys();
    for chunk in 0..keys / 10_000 {
        db.transaction(RunId::NIL, |txn| {
            let kv = txn.kv(NS);
            for i in chunk * 10_000..(chunk + 1) * 10_000 {
                kv.put(&format!("k{i:07}"), i as i64)?;
            }
            Ok(())
        })
        .unwrap();
    }
    let kv = db.kv(NS);
    let mut prefix = 0usize;
    bencher.counter(ItemsCount::new(100usize)).bench_local(|| {
        // A different 100-key prefix each time: "k" + 5 digits covers the
        // 100 keys k{prefix}00 ..= k{prefix}99.
        prefix = (prefix + 7919) % (keys / 100);
        let page = kv.list_from(&format!("k{prefix:05}"), None, 100).unwrap();
        assert_eq!(page.entries.len(), 100);
        black_box(page)
    });
}

/// Baseline: a single-key put transaction on the raw engine, for a run.
#[divan::bench(sample_count = 100, sample_size = 1000)]
fn put_raw_engine(bencher: Bencher) {
    let (db, run) = db_and_run();
    let engine = db.engine().clone();
    let key = Key::new(Namespace::new(NS).unwrap(), Scope::Shared, TypeTag::Kv, "k");
    let mut i = 0i64;
    bencher.bench_local(|| {
        i += 1;
        engine
            .transaction(run, Isolation::Snapshot, |t| t.put(key.clone(), i))
            .unwrap()
    });
}

/// The same put through the facade: `db.kv(ns).put(run, key, value)`,
/// which also checks that the run is still running.
#[divan::bench(sample_count = 100, sample_size = 1000)]
fn put_facade(bencher: Bencher) {
    let (db, run) = db_and_run();
    let kv = db.kv(NS);
    let mut i = 0i64;
    bencher.bench_local(|| {
        i += 1;
        kv.put(run, "k", i).unwrap()
    });
}

/// The same put through the facade for `RunId::NIL` (no run check).
#[divan::bench(sample_count = 100, sample_size = 1000)]
fn put_facade_nil_run(bencher: Bencher) {
    let (db, _) = db_and_run();
    let kv = db.kv(NS);
    let mut i = 0i64;
    bencher.bench_local(|| {
        i += 1;
        kv.put(RunId::NIL, "k", i).unwrap()
    });
}

/// What the facade adds to every write of a run: reading its status.
#[divan::bench(sample_count = 100, sample_size = 1000)]
fn run_status_check(bencher: Bencher) {
    let (db, run) = db_and_run();
    let index = rewinddb::primitives::RunIndex::new().unwrap();
    let snap = db.engine().snapshot();
    bencher.bench_local(|| index.check_writable(&mut &snap, black_box(run)).unwrap());
}

/// A bare engine transaction that only begins and commits (no writes).
#[divan::bench]
fn empty_engine_transaction(bencher: Bencher) {
    let (db, run) = db_and_run();
    let engine = db.engine().clone();
    bencher.bench_local(|| engine.begin(run, Isolation::Snapshot).commit().unwrap());
}
