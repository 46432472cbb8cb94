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
//!
//! The ratio table also counts commits per fdatasync, and repeats the
//! strict rows on an emulated slower device (each fdatasync followed by a
//! 1 ms sleep): with one sync in flight at a time, N closed-loop
//! committers reach N/2 commits per sync unless the leader gathers
//! (`durability/group.rs`), and how far gathering gets depends on the
//! ratio of the sync's duration to the time N committers take to come
//! back, which a fast disk on 2 cores makes small.

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
use rewinddb_engine::durability::{FsStorage, SyncHook, SyncHooked, wal};
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

fn config(dir: &BenchDir, durability: Durability) -> EngineConfig {
    EngineConfig::default()
        .dir(&dir.0)
        .durability(durability)
        .checkpoint(CheckpointPolicy::MANUAL)
}

fn open(dir: &BenchDir, durability: Durability) -> Engine {
    Engine::open(config(dir, durability)).unwrap()
}

/// A strict engine on `dir` whose every fdatasync is counted and then
/// followed by a sleep of `extra` (zero: the disk as it is), to emulate a
/// device with a slower cache flush than this one.
fn open_counted(dir: &BenchDir, extra: Duration) -> (Engine, Arc<AtomicU64>) {
    let syncs = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&syncs);
    let hook: Arc<SyncHook> = Arc::new(move |sync| {
        counted.fetch_add(1, Ordering::Relaxed);
        sync()?;
        if !extra.is_zero() {
            std::thread::sleep(extra);
        }
        Ok(())
    });
    let device = SyncHooked::new(Arc::new(FsStorage::open(&dir.0).unwrap()), hook);
    let engine =
        Engine::open_with_storage(config(dir, Durability::Strict), Arc::new(device)).unwrap();
    (engine, syncs)
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

/// A directory holding only WAL (no checkpoint) of about `bytes`: commits
/// of 64 writes of 1,000-byte values over 100,000 keys.
fn wal_only_dir(bytes: u64) -> (BenchDir, u64) {
    let big = Value::from("r".repeat(1000));
    wal_of(bytes, 64, 1100, |i| (key(i % 100_000), big.clone()))
}

/// A directory holding only WAL of about `bytes` of small entries, as the
/// peer harness's W9 writes them: distinct 16-byte keys, 100-byte values,
/// 10,000 writes per commit. Also returns the number of keys.
fn small_entries_wal(bytes: u64) -> (BenchDir, u64, u64) {
    let value = Value::from(vec![7u8; 100]);
    let ns = Namespace::new("bench/small").unwrap();
    let (dir, wal) = wal_of(bytes, 10_000, SMALL_ENTRY_BYTES, |i| {
        (small_key(&ns, i), value.clone())
    });
    let keys = bytes.div_ceil(SMALL_ENTRY_BYTES).div_ceil(10_000) * 10_000;
    (dir, wal, keys)
}

/// WAL bytes the writer of [`small_entries_wal`] plans per entry.
const SMALL_ENTRY_BYTES: u64 = 150;

fn small_key(ns: &Namespace, i: u64) -> Key {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
    k[8..].copy_from_slice(&i.to_be_bytes());
    Key::new(ns.clone(), Scope::Shared, TypeTag::Kv, k)
}

/// Write commits of `per_txn` writes `entry(0), entry(1), ...` until about
/// `bytes` are written (at `planned` bytes per entry); returns the
/// directory and the WAL's record bytes.
fn wal_of(
    bytes: u64,
    per_txn: u64,
    planned: u64,
    entry: impl Fn(u64) -> (Key, Value),
) -> (BenchDir, u64) {
    let dir = BenchDir::new("recovery");
    let engine = open(&dir, Durability::Async);
    let mut i = 0;
    while i * planned < bytes {
        let mut txn = engine.begin(RunId::new(), Isolation::Snapshot);
        for j in i..i + per_txn {
            let (k, v) = entry(j);
            txn.put(k, v).unwrap();
        }
        txn.commit().unwrap();
        i += per_txn;
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

/// Seconds to insert `n` entries of the same shape (16-byte key, a
/// 100-byte value of its own) into a `HashMap` that grows as it goes, as a
/// loader that does not know the count up front must: a floor for loading
/// them into any in-memory hash index.
fn hashmap_load_secs(n: u64) -> f64 {
    let keys: Vec<[u8; 16]> = (0..n)
        .map(|i| {
            let mut k = [0u8; 16];
            k[..8].copy_from_slice(&i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
            k[8..].copy_from_slice(&i.to_be_bytes());
            k
        })
        .collect();
    let start = Instant::now();
    let mut map = std::collections::HashMap::new();
    for k in &keys {
        map.insert(*k, vec![7u8; 100]);
    }
    let secs = start.elapsed().as_secs_f64();
    black_box(&map);
    secs
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

/// Strict commits per second on 1 and on 64 threads over a device whose
/// syncs take `extra` longer than this disk's, and the mean commits per
/// sync on 64 threads.
struct StrictRates {
    one: Vec<f64>,
    many: Vec<f64>,
    per_sync: Vec<f64>,
}

impl StrictRates {
    fn new() -> StrictRates {
        StrictRates {
            one: Vec::new(),
            many: Vec::new(),
            per_sync: Vec::new(),
        }
    }

    fn measure(&mut self, extra: Duration, dur: Duration) {
        let dir = BenchDir::new("ratio-strict");
        let (engine, _) = open_counted(&dir, extra);
        self.one.push(rate(1, dur, |i| put(&engine, i)));
        drop(engine);
        let dir = BenchDir::new("ratio-strict64");
        let (engine, syncs) = open_counted(&dir, extra);
        let before = syncs.load(Ordering::Relaxed);
        let n = AtomicU64::new(0);
        self.many.push(rate(64, dur, |i| {
            put(&engine, i);
            n.fetch_add(1, Ordering::Relaxed);
        }));
        let synced = syncs.load(Ordering::Relaxed) - before;
        self.per_sync
            .push(n.load(Ordering::Relaxed) as f64 / synced.max(1) as f64);
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Extra flush latency of the emulated slower device.
const SLOW_DEVICE_EXTRA: Duration = Duration::from_millis(1);

fn ratio_report() {
    let rounds = 3;
    let dur = Duration::from_secs(2);
    let record = vec![0x5au8; record_bytes()];
    let mut raw = Vec::new();
    let (mut disk, mut slow) = (StrictRates::new(), StrictRates::new());
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
        disk.measure(Duration::ZERO, dur);
        slow.measure(SLOW_DEVICE_EXTRA, dur);
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
    drop(dir);
    let (dir, small_wal, small_keys) = small_entries_wal(recovery_wal_bytes());
    let start = Instant::now();
    let engine = open(&dir, Durability::Async);
    let small_secs = start.elapsed().as_secs_f64();
    drop(engine);
    drop(dir);
    let floor_secs = hashmap_load_secs(small_keys);

    let raw = median(&mut raw);
    let (wo, du) = (median(&mut without), median(&mut during));
    let mbs = wal as f64 / 1e6 / secs;
    println!("durability ratios (median of {rounds} interleaved rounds of {dur:?}):");
    println!("  raw append+fdatasync     {raw:>10.0} /s");
    let s1 = median(&mut disk.one);
    println!(
        "  strict commit, 1 thread  {s1:>10.0} /s   = {:.2}x raw (target >= 1.0)",
        s1 / raw
    );
    let wake = wake_cost();
    print_group(&mut disk, wake);
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
    let gb = small_wal as f64 / 1e9;
    println!(
        "  recovery, small entries  {:>10.1} MB/s ({:.1} MB WAL, {small_keys} keys of 16 B + 100 B, {small_secs:.2} s; {:.2} s/GB, target <= 3)",
        small_wal as f64 / 1e6 / small_secs,
        small_wal as f64 / 1e6,
        small_secs / gb
    );
    println!(
        "    floor: a growing HashMap of the same entries loads in {floor_secs:.2} s = {:.2} s/GB of this WAL",
        floor_secs / gb
    );
    println!("  emulated slower device: every fdatasync followed by a {SLOW_DEVICE_EXTRA:?} sleep");
    println!(
        "  strict commit, 1 thread  {:>10.0} /s",
        median(&mut slow.one)
    );
    print_group(&mut slow, wake);
    println!(
        "  (wake-up w: one park/unpark pass between two threads on one core, {:.1} us)",
        wake.as_secs_f64() * 1e6
    );
}

/// The 64-committer rows of one device, and the ceiling any group commit
/// with one sync in flight has there (`durability/group.rs`, "How far
/// any group commit can go"): `max(N/2, N·S / (S + N·w/cores))` times the
/// 1-thread rate, with `S` the 1-thread commit time and `w` a wake-up.
fn print_group(rates: &mut StrictRates, wake: Duration) {
    let (one, many) = (median(&mut rates.one), median(&mut rates.many));
    println!(
        "  strict commit, 64 threads{many:>10.0} /s   = {:.1}x 1 thread (target >= 50); {:.1} commits per fdatasync",
        many / one,
        median(&mut rates.per_sync)
    );
    let n = 64.0;
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get()) as f64;
    let s = 1.0 / one;
    let gathered = n * s / (s + n * wake.as_secs_f64() / cores);
    println!(
        "    ceiling, one sync in flight: {:.1}x (alternating halves {:.0}x; gathering all {gathered:.1}x, with S = {:.0} us, w = {:.1} us, {cores} cores)",
        (n / 2.0).max(gathered),
        n / 2.0,
        s * 1e6,
        wake.as_secs_f64() * 1e6
    );
}

/// CPU time to wake a parked thread and switch to it: two threads pinned
/// to one core pass a turn back and forth, each unparking the other and
/// parking, so each pass is one unpark, one park and one context switch,
/// and nothing runs in parallel.
fn wake_cost() -> Duration {
    let passes: u64 = 20_000;
    let turn = AtomicU64::new(0);
    let players: std::sync::OnceLock<[std::thread::Thread; 2]> = std::sync::OnceLock::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..2u64)
            .map(|me| {
                let (turn, players) = (&turn, &players);
                s.spawn(move || {
                    pin_to_first_cpu();
                    let other = loop {
                        match players.get() {
                            Some(p) => break &p[(1 - me) as usize],
                            None => std::thread::park(),
                        }
                    };
                    loop {
                        let t = turn.load(Ordering::Acquire);
                        if t >= passes {
                            other.unpark();
                            return;
                        }
                        if t % 2 == me {
                            turn.store(t + 1, Ordering::Release);
                            other.unpark();
                        } else {
                            std::thread::park();
                        }
                    }
                })
            })
            .collect();
        let start = Instant::now();
        let _ = players.set([handles[0].thread().clone(), handles[1].thread().clone()]);
        for h in &handles {
            h.thread().unpark();
        }
        for h in handles {
            h.join().unwrap();
        }
        start.elapsed() / passes as u32
    })
}

/// Pin the calling thread to the first CPU it may run on (best effort).
fn pin_to_first_cpu() {
    #[cfg(target_os = "linux")]
    // SAFETY: `set` is a properly sized, zero-initialised cpu_set_t that
    // lives across both calls; pid 0 is the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) != 0 {
            return;
        }
        let Some(cpu) = (0..libc::CPU_SETSIZE as usize).find(|&c| libc::CPU_ISSET(c, &set)) else {
            return;
        };
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set);
    }
}
