//! Durability benchmarks (issue 3, "Performance"), on a real directory:
//! strict commit on 1 thread against a raw append + fdatasync loop, 64
//! concurrent strict committers (group commit), writer throughput during a
//! checkpoint against without one, and recovery speed (MB/s of WAL).
//!
//! Run: `cargo bench --bench durability`. In bench mode a ratio table,
//! measured in interleaved rounds within the same run, is printed first;
//! then divan's per-benchmark figures. `REWINDDB_BENCH_DIR` picks the
//! directory (default: the system temp dir, which must be a real disk for
//! fdatasync figures to mean anything).
//! Targets: strict 1-thread >= 1.0x the raw loop; 64 committers >= 50x the
//! 1-thread strict rate; writes during a checkpoint >= 0.7x without;
//! recovery <= 3 s per GB.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::OpenOptions;
use std::hint::black_box;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use divan::Bencher;
use divan::counter::{BytesCount, ItemsCount};
use rewinddb_engine::durability::wal;
use rewinddb_engine::{
    CheckpointPolicy, Durability, Engine, EngineConfig, Isolation, Key, Namespace, RunId, Scope,
    TypeTag, Value,
};

fn main() {
    if bench_mode() {
        ratio_report();
    }
    divan::main();
}

fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// A fresh directory for one benchmark, removed on drop.
struct BenchDir(PathBuf);

impl BenchDir {
    fn new(name: &str) -> BenchDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let base = std::env::var_os("REWINDDB_BENCH_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let path = base.join(format!(
            "rewinddb-bench-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        BenchDir(path)
    }
}

impl Drop for BenchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn key(i: u64) -> Key {
    Key::new(
        Namespace::new("bench/durable").unwrap(),
        Scope::Shared,
        TypeTag::Kv,
        format!("key:{i}"),
    )
}

/// A 100-byte value, about what an agent memory write holds.
fn value() -> Value {
    Value::from("v".repeat(100))
}

fn open(dir: &BenchDir, durability: Durability) -> Engine {
    let config = EngineConfig::default()
        .dir(&dir.0)
        .durability(durability)
        .checkpoint(CheckpointPolicy::MANUAL);
    Engine::open(config).unwrap()
}

fn put(engine: &Engine, i: u64) {
    let mut txn = engine.begin(RunId::NIL, Isolation::Snapshot);
    txn.put(key(i), value()).unwrap();
    black_box(txn.commit().unwrap());
}

/// Size of one WAL record of `put`, for the raw loop to write the same.
fn record_bytes() -> usize {
    let dir = BenchDir::new("size");
    let engine = open(&dir, Durability::Strict);
    put(&engine, 1);
    drop(engine);
    let seg = dir.0.join(wal::segment_name(1));
    // The segment is preallocated past its records: read the frame length.
    let bytes = std::fs::read(seg).unwrap();
    let len = u32::from_le_bytes(bytes[24..28].try_into().unwrap());
    8 + len as usize
}

// ---------------------------------------------------------------- divan

#[divan::bench(sample_count = 20, sample_size = 10)]
fn strict_commit_1_thread(bencher: Bencher) {
    let dir = BenchDir::new("strict1");
    let engine = open(&dir, Durability::Strict);
    let n = AtomicU64::new(0);
    bencher
        .counter(ItemsCount::new(1usize))
        .bench(|| put(&engine, n.fetch_add(1, Ordering::Relaxed)));
}

#[divan::bench(sample_count = 20, sample_size = 10)]
fn raw_append_fdatasync(bencher: Bencher) {
    let dir = BenchDir::new("raw");
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .open(dir.0.join("raw.log"))
        .unwrap();
    let record = vec![0x5au8; record_bytes()];
    bencher.counter(ItemsCount::new(1usize)).bench(|| {
        (&file).write_all(&record).unwrap();
        file.sync_data().unwrap();
    });
}

#[divan::bench(threads = [64], sample_count = 20, sample_size = 10)]
fn strict_commit_64_threads(bencher: Bencher) {
    let dir = BenchDir::new("strict64");
    let engine = open(&dir, Durability::Strict);
    let n = AtomicU64::new(0);
    bencher
        .counter(ItemsCount::new(1usize))
        .bench(|| put(&engine, n.fetch_add(1, Ordering::Relaxed)));
}

/// Keys preloaded before the checkpoint benchmarks.
fn preload_keys() -> u64 {
    if bench_mode() { 200_000 } else { 2_000 }
}

fn preloaded(name: &str) -> (BenchDir, Engine) {
    let dir = BenchDir::new(name);
    let engine = open(&dir, Durability::Async);
    for chunk in 0..preload_keys() / 1000 {
        let mut txn = engine.begin(RunId::NIL, Isolation::Snapshot);
        for i in chunk * 1000..(chunk + 1) * 1000 {
            txn.put(key(i), value()).unwrap();
        }
        txn.commit().unwrap();
    }
    (dir, engine)
}

/// Runs checkpoints back to back until dropped.
struct CheckpointLoop {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl CheckpointLoop {
    fn start(engine: &Engine) -> CheckpointLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (engine, stop) = (engine.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    engine.checkpoint().unwrap();
                    n += 1;
                }
                n
            })
        };
        CheckpointLoop {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().map_or(0, |t| t.join().unwrap())
    }
}

impl Drop for CheckpointLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[divan::bench(sample_count = 20, sample_size = 1000)]
fn async_writes_without_checkpoint(bencher: Bencher) {
    let (_dir, engine) = preloaded("nockpt");
    let n = AtomicU64::new(0);
    bencher
        .counter(ItemsCount::new(1usize))
        .bench(|| put(&engine, n.fetch_add(1, Ordering::Relaxed) % preload_keys()));
}

#[divan::bench(sample_count = 20, sample_size = 1000)]
fn async_writes_during_checkpoints(bencher: Bencher) {
    let (_dir, engine) = preloaded("ckpt");
    let checkpoints = CheckpointLoop::start(&engine);
    let n = AtomicU64::new(0);
    bencher
        .counter(ItemsCount::new(1usize))
        .bench(|| put(&engine, n.fetch_add(1, Ordering::Relaxed) % preload_keys()));
    drop(checkpoints);
}

/// WAL bytes written before the recovery benchmark.
fn recovery_wal_bytes() -> u64 {
    if bench_mode() { 256 << 20 } else { 1 << 20 }
}

/// A directory holding only WAL (no checkpoint) of about `bytes`.
fn wal_only_dir(bytes: u64) -> (BenchDir, u64) {
    let dir = BenchDir::new("recovery");
    let engine = open(&dir, Durability::Async);
    let mut i = 0;
    let big = Value::from("r".repeat(1000));
    let per_txn = 64;
    while i * per_txn * 1100 < bytes {
        let mut txn = engine.begin(RunId::new(), Isolation::Snapshot);
        for j in 0..per_txn {
            txn.put(key((i * per_txn + j) % 100_000), big.clone())
                .unwrap();
        }
        txn.commit().unwrap();
        i += 1;
    }
    drop(engine);
    let wal: u64 = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with("wal-"))
        // Bytes of records: not the preallocated zeros past them.
        .map(|e| wal::len_without_zero_tail(&std::fs::read(e.path()).unwrap()) as u64)
        .sum();
    (dir, wal)
}

#[divan::bench(sample_count = 5, sample_size = 1)]
fn recovery_of_wal(bencher: Bencher) {
    let (dir, wal) = wal_only_dir(recovery_wal_bytes());
    bencher
        .counter(BytesCount::new(wal))
        .bench(|| black_box(open(&dir, Durability::Async)));
}

// ---------------------------------------------------------------- ratios

/// Commits per second of `f` over `dur`, on `threads` threads.
fn rate(threads: usize, dur: Duration, f: impl Fn(u64) + Sync) -> f64 {
    let n = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while start.elapsed() < dur {
                    f(n.fetch_add(1, Ordering::Relaxed));
                }
            });
        }
    });
    n.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn ratio_report() {
    let rounds = 3;
    let dur = Duration::from_secs(2);
    let record = vec![0x5au8; record_bytes()];
    let (mut raw, mut strict1, mut strict64) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let dir = BenchDir::new("ratio-raw");
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(dir.0.join("raw.log"))
            .unwrap();
        raw.push(rate(1, dur, |_| {
            (&file).write_all(&record).unwrap();
            file.sync_data().unwrap();
        }));
        let dir = BenchDir::new("ratio-strict");
        let engine = open(&dir, Durability::Strict);
        strict1.push(rate(1, dur, |i| put(&engine, i)));
        drop(engine);
        let dir = BenchDir::new("ratio-strict64");
        let engine = open(&dir, Durability::Strict);
        strict64.push(rate(64, dur, |i| put(&engine, i)));
    }
    let (mut without, mut during, mut checkpoints) = (Vec::new(), Vec::new(), 0);
    let (_dir, engine) = preloaded("ratio-ckpt");
    for _ in 0..rounds {
        without.push(rate(1, dur, |i| put(&engine, i % preload_keys())));
        let loop_ = CheckpointLoop::start(&engine);
        during.push(rate(1, dur, |i| put(&engine, i % preload_keys())));
        checkpoints += loop_.finish();
    }
    drop(engine);
    let (dir, wal) = wal_only_dir(recovery_wal_bytes());
    let start = Instant::now();
    let engine = open(&dir, Durability::Async);
    let secs = start.elapsed().as_secs_f64();
    let versions = engine.visible_version();
    drop(engine);

    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (raw, s1, s64) = (med(&mut raw), med(&mut strict1), med(&mut strict64));
    let (wo, du) = (med(&mut without), med(&mut during));
    let mbs = wal as f64 / 1e6 / secs;
    println!("durability ratios (median of {rounds} interleaved rounds of {dur:?}):");
    println!("  raw append+fdatasync     {raw:>10.0} /s");
    println!(
        "  strict commit, 1 thread  {s1:>10.0} /s   = {:.2}x raw (target >= 1.0)",
        s1 / raw
    );
    println!(
        "  strict commit, 64 threads{s64:>10.0} /s   = {:.1}x 1 thread (target >= 50)",
        s64 / s1
    );
    println!("  async writes, no ckpt    {wo:>10.0} /s");
    println!(
        "  async writes, checkpoints{du:>10.0} /s   = {:.2}x (target >= 0.7; {checkpoints} checkpoints of {} keys)",
        du / wo,
        preload_keys()
    );
    println!(
        "  recovery                 {mbs:>10.1} MB/s ({:.1} MB WAL, {versions} commits, {secs:.2} s; {:.2} s/GB, target <= 3)",
        wal as f64 / 1e6,
        secs / (wal as f64 / 1e9)
    );
}
