//! W8 (durable commits, with raw fsync ceilings) and W9 (recovery).

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use rewinddb_engine as rw;

use crate::engines::{self, Contender, Mode, Scratch};
use crate::report::Results;
use crate::workloads::{Counts, base_value, bulk_load, make_keys, measure};
use crate::{Key16, Opts, Res};

/// Concurrent committers of the group-commit measurements.
const COMMITTERS: usize = 64;
/// Bytes per record of the raw fsync ceilings (a 16-byte key, a 100-byte
/// value and a small frame, as a WAL record of one put would be).
const RECORD_BYTES: usize = 128;
/// Fewest repetitions of W9's reopens (see `recovery`).
pub const W9_REPS_MIN: usize = 5;
/// Keys loaded before the durable-commit measurements.
const DURABLE_KEYS: usize = 10_000;

type Opener = Box<dyn Fn(&Path, Mode) -> Res<Box<dyn Contender>>>;

/// rewinddb on disk in `dir` with `durability`; checkpoints only on demand
/// (so W9 controls how much WAL there is to replay).
fn rewind_durable(
    keys: &[Key16],
    dir: &Path,
    durability: rw::Durability,
) -> Res<Box<dyn Contender>> {
    let config = rw::EngineConfig::default()
        .dir(dir.join("rewinddb"))
        .durability(durability)
        .checkpoint(rw::CheckpointPolicy::MANUAL);
    let engine = rw::Engine::open(config)?;
    Ok(Box::new(engines::Rewind::over(engine, keys, "rewinddb")?))
}

/// The durable engines: name and how to open one in a directory.
fn durable_engines(keys: &Arc<[Key16]>) -> Vec<(&'static str, Opener)> {
    let mut out: Vec<(&'static str, Opener)> = Vec::new();
    let k = Arc::clone(keys);
    out.push((
        "rewinddb",
        Box::new(move |dir, mode| {
            let durability = match mode {
                Mode::Strict => rw::Durability::Strict,
                Mode::Async => rw::Durability::Async,
            };
            rewind_durable(&k, dir, durability)
        }),
    ));
    let k = Arc::clone(keys);
    out.push((
        "redb",
        Box::new(move |dir, mode| {
            Ok(
                Box::new(engines::Redb::file(Arc::clone(&k), dir, mode, 64 << 20)?)
                    as Box<dyn Contender>,
            )
        }),
    ));
    let k = Arc::clone(keys);
    out.push((
        "fjall",
        Box::new(move |dir, mode| {
            Ok(
                Box::new(engines::Fjall::open(Arc::clone(&k), dir, mode, None)?)
                    as Box<dyn Contender>,
            )
        }),
    ));
    let k = Arc::clone(keys);
    out.push((
        "surrealkv",
        Box::new(move |dir, mode| {
            Ok(Box::new(engines::SurrealKv::open(
                Arc::clone(&k),
                dir,
                mode,
                64 << 20,
            )?) as Box<dyn Contender>)
        }),
    ));
    out
}

/// Latencies (ns) to p50 and p99 in microseconds.
fn percentiles(mut ns: Vec<u64>) -> (f64, f64) {
    if ns.is_empty() {
        return (0.0, 0.0);
    }
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    (at(0.5), at(0.99))
}

/// W8: durable commits. Strict 1 thread (rate, p50, p99), 64 concurrent
/// strict committers, batched 1 thread (see [`BATCH_INTERVAL`]), and the
/// ceilings: a raw append + fdatasync loop and a group-commit emulation
/// over the same file system.
pub fn durable_commits(opts: &Opts, results: &mut Results) -> Res<()> {
    let keys = make_keys(opts.keys);
    let engines = durable_engines(&keys);
    for rep in 0..opts.reps {
        eprintln!("[W8 rep {}]", rep + 1);
        for (name, open) in &engines {
            let dir = Scratch::new(&opts.dir, name)?;
            let c = open(&dir.0, Mode::Strict)?;
            let label = format!("{name} (strict)");
            // W1's durable side: the same bulk load, each batch fsynced.
            let rate = bulk_load(&*c, keys.len())?;
            results.record("W1", "bulk load, strict", "keys/s", &label, rate);
            strict_commits(&*c, &label, keys.len().min(DURABLE_KEYS), opts, results)?;
        }
        batched_commits(&keys, &engines, opts, results)?;
        raw_fsync_ceilings(opts, results)?;
    }
    Ok(())
}

/// W8's batched mode: rewinddb's `Durability::Batched` syncs at least
/// this often (and whenever `BATCH_BYTES` are buffered), from its flusher
/// thread; the peers have no such mode, so theirs is their async mode with
/// a second thread that makes every commit so far durable this often
/// (`Contender::sync`: redb an empty `Immediate` commit, fjall
/// `persist(SyncData)`, surrealkv `flush_wal(true)`).
const BATCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);
/// Buffered WAL bytes that make rewinddb's batched mode sync early.
const BATCH_BYTES: u64 = 1 << 20;

/// W8 batched: 1 thread of single-key commits into each engine in its
/// batched mode (rewinddb's own; the peers' emulated, see
/// [`BATCH_INTERVAL`]).
fn batched_commits(
    keys: &Arc<[Key16]>,
    engines: &[(&'static str, Opener)],
    opts: &Opts,
    results: &mut Results,
) -> Res<()> {
    let n = keys.len().min(DURABLE_KEYS);
    let dir = Scratch::new(&opts.dir, "rewinddb-batched")?;
    let durability = rw::Durability::Batched {
        interval: BATCH_INTERVAL,
        bytes: BATCH_BYTES,
    };
    let c = rewind_durable(&keys[..n], &dir.0, durability)?;
    let label = "rewinddb (batched 10 ms / 1 MiB)";
    batched_run(&*c, None, n, opts, results, label)?;
    for (name, open) in engines.iter().filter(|(name, _)| *name != "rewinddb") {
        let dir = Scratch::new(&opts.dir, &format!("{name}-batched"))?;
        let c = open(&dir.0, Mode::Async)?;
        let label = format!("{name} (async + a sync every 10 ms)");
        batched_run(&*c, Some(BATCH_INTERVAL), n, opts, results, &label)?;
    }
    Ok(())
}

/// Load `n` keys into `c`, then commit single-key puts from one thread
/// for the measurement's time, beside a second thread that calls
/// `c.sync()` every `sync_every` (if any).
fn batched_run(
    c: &dyn Contender,
    sync_every: Option<std::time::Duration>,
    n: usize,
    opts: &Opts,
    results: &mut Results,
    label: &str,
) -> Res<()> {
    bulk_load(c, n)?;
    let value = base_value();
    let (counts, secs) = measure(2, opts.secs, |t, stop| {
        let stopped = || stop.load(std::sync::atomic::Ordering::Relaxed);
        let mut c1 = Counts::default();
        if t == 1 {
            let Some(every) = sync_every else {
                return Ok(c1);
            };
            let mut next = Instant::now() + every;
            while !stopped() {
                // Short sleeps, so that a stop is seen at once and the
                // measured time is the committer's.
                if Instant::now() < next {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    continue;
                }
                c.sync()?;
                next += every;
            }
            return Ok(c1);
        }
        let mut i = 0;
        while !stopped() {
            c.txn(&[], &[i % n], &value)?;
            c1.ops += 1;
            i += 7919;
        }
        Ok(c1)
    })?;
    results.record(
        "W8",
        "batched, 1 thread",
        "commits/s",
        label,
        counts[0].ops as f64 / secs,
    );
    Ok(())
}

fn strict_commits(
    c: &dyn Contender,
    label: &str,
    n: usize,
    opts: &Opts,
    results: &mut Results,
) -> Res<()> {
    let value = base_value();
    let lat = Mutex::new(Vec::new());
    let (counts, secs) = measure(1, opts.secs, |_, stop| {
        let mut c1 = Counts::default();
        let mut mine = Vec::new();
        let mut i = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let t0 = Instant::now();
            c.txn(&[], &[i % n], &value)?;
            mine.push(t0.elapsed().as_nanos() as u64);
            c1.ops += 1;
            i += 7919;
        }
        lat.lock().map_err(|_| "poisoned")?.extend(mine);
        Ok(c1)
    })?;
    let (p50, p99) = percentiles(lat.into_inner().map_err(|_| "poisoned")?);
    let one = counts[0].ops as f64 / secs;
    results.record("W8", "strict, 1 thread", "commits/s", label, one);
    results.record("W8", "strict, 1 thread: p50", "µs", label, p50);
    results.record("W8", "strict, 1 thread: p99", "µs", label, p99);
    let (counts, secs) = measure(COMMITTERS, opts.secs, |t, stop| {
        let mut c1 = Counts::default();
        // Disjoint keys per committer: the measurement is of fsync sharing,
        // not of conflicts.
        let mut i = t;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if c.txn(&[], &[i % n], &value)? {
                c1.ops += 1;
            }
            i += COMMITTERS;
        }
        Ok(c1)
    })?;
    let many: u64 = counts.iter().map(|c| c.ops).sum();
    results.record(
        "W8",
        "strict, 64 committers",
        "commits/s",
        label,
        many as f64 / secs,
    );
    results.record(
        "W8",
        "strict, 64 committers ÷ 1 thread",
        "x",
        label,
        many as f64 / secs / one.max(1e-9),
    );
    Ok(())
}

/// The raw ceilings: `write(128 B) + fdatasync` in a loop, and 64 threads
/// sharing fdatasyncs through a leader (group commit).
fn raw_fsync_ceilings(opts: &Opts, results: &mut Results) -> Res<()> {
    let dir = Scratch::new(&opts.dir, "raw")?;
    let label = "raw append+fdatasync (ceiling)";
    let file = Mutex::new(File::create(dir.0.join("loop.log"))?);
    let lat = Mutex::new(Vec::new());
    let (counts, secs) = measure(1, opts.secs, |_, stop| {
        let mut f = file.lock().map_err(|_| "poisoned")?;
        let record = [0x5a_u8; RECORD_BYTES];
        let mut c = Counts::default();
        let mut mine = Vec::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let t0 = Instant::now();
            f.write_all(&record)?;
            f.sync_data()?;
            mine.push(t0.elapsed().as_nanos() as u64);
            c.ops += 1;
        }
        lat.lock().map_err(|_| "poisoned")?.extend(mine);
        Ok(c)
    })?;
    let (p50, p99) = percentiles(lat.into_inner().map_err(|_| "poisoned")?);
    results.record(
        "W8",
        "strict, 1 thread",
        "commits/s",
        label,
        counts[0].ops as f64 / secs,
    );
    results.record("W8", "strict, 1 thread: p50", "µs", label, p50);
    results.record("W8", "strict, 1 thread: p99", "µs", label, p99);
    let group = GroupCommit::new(File::create(dir.0.join("group.log"))?);
    let (counts, secs) = measure(COMMITTERS, opts.secs, |_, stop| {
        let mut c = Counts::default();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            group.commit(&[0x5a_u8; RECORD_BYTES])?;
            c.ops += 1;
        }
        Ok(c)
    })?;
    let ops: u64 = counts.iter().map(|c| c.ops).sum();
    let label = "group-commit emulation (ceiling)";
    results.record(
        "W8",
        "strict, 64 committers",
        "commits/s",
        label,
        ops as f64 / secs,
    );
    Ok(())
}

/// Group commit: committers append to a shared buffer; whoever finds no
/// flush running writes the whole buffer and fdatasyncs once for all.
struct GroupCommit {
    state: Mutex<GroupState>,
    flushed: Condvar,
    file: Mutex<File>,
}

#[derive(Default)]
struct GroupState {
    buf: Vec<u8>,
    submitted: u64,
    durable: u64,
    flushing: bool,
}

impl GroupCommit {
    fn new(file: File) -> GroupCommit {
        GroupCommit {
            state: Mutex::new(GroupState::default()),
            flushed: Condvar::new(),
            file: Mutex::new(file),
        }
    }

    fn commit(&self, record: &[u8]) -> Res<()> {
        let mut st = self.state.lock().map_err(|_| "poisoned")?;
        st.buf.extend_from_slice(record);
        st.submitted += 1;
        let mine = st.submitted;
        while st.durable < mine {
            if st.flushing {
                st = self.flushed.wait(st).map_err(|_| "poisoned")?;
                continue;
            }
            st.flushing = true;
            let batch = std::mem::take(&mut st.buf);
            let upto = st.submitted;
            drop(st);
            let written = self.flush(&batch);
            st = self.state.lock().map_err(|_| "poisoned")?;
            st.flushing = false;
            self.flushed.notify_all();
            written?;
            st.durable = upto;
        }
        Ok(())
    }

    fn flush(&self, batch: &[u8]) -> Res<()> {
        let mut f = self.file.lock().map_err(|_| "poisoned")?;
        f.write_all(batch)?;
        f.sync_data()?;
        Ok(())
    }
}

/// Keys `0..n` for W9: 8 mixed bytes then the index, so they are distinct
/// without a set and scattered over the key space.
fn recovery_keys(n: usize) -> Arc<[Key16]> {
    (0..n as u64)
        .map(|i| {
            let mut k = [0u8; 16];
            k[..8].copy_from_slice(&splitmix(i).to_le_bytes());
            k[8..].copy_from_slice(&i.to_be_bytes());
            k
        })
        .collect()
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Seconds to reopen rewinddb in `dir` and read `key0` (the harness's
/// key table is not built inside the timing, unlike `Contender` opens).
fn reopen_rewind(dir: &Path, key0: Key16) -> Res<f64> {
    let config = rw::EngineConfig::default()
        .dir(dir.join("rewinddb"))
        .durability(rw::Durability::Async)
        .checkpoint(rw::CheckpointPolicy::MANUAL);
    let key = rw::Key::new(
        rw::Namespace::new("bench")?,
        rw::Scope::Shared,
        rw::TypeTag::Kv,
        key0,
    );
    let t0 = Instant::now();
    let engine = rw::Engine::open(config)?;
    let first = engine.snapshot().get(&key)?;
    let secs = t0.elapsed().as_secs_f64();
    if first.is_none() {
        return Err("rewinddb: key 0 missing after reopen".into());
    }
    engine.close()?;
    Ok(secs)
}

fn bulk_load_range(c: &dyn Contender, range: std::ops::Range<usize>) -> Res<()> {
    let value = base_value();
    let mut at = range.start;
    while at < range.end {
        let end = (at + 10_000).min(range.end);
        c.load(at..end, &value)?;
        at = end;
    }
    Ok(())
}

fn checkpoint(c: &dyn Contender) -> Res<()> {
    if let Some(rw) = c.as_rewind() {
        rw.engine().checkpoint()?;
    }
    Ok(())
}

/// W9: write `recovery_bytes` of keys and values (async mode), close, then
/// time reopening until the first read answers, in seconds per GB written.
pub fn recovery(opts: &Opts, results: &mut Results) -> Res<()> {
    let n = (opts.recovery_bytes / (16 + crate::workloads::VALUE_BYTES as u64)) as usize;
    let keys = recovery_keys(n);
    let gb = (n * (16 + crate::workloads::VALUE_BYTES)) as f64 / 1e9;
    let engines = durable_engines(&keys);
    let mut dirs = Vec::new();
    for (name, open) in &engines {
        if *name == "redb" {
            continue; // The issue compares recovery with fjall and surrealkv.
        }
        let dir = Scratch::new(&opts.dir, &format!("w9-{name}"))?;
        eprintln!("[W9] writing {:.2} GB into {name}", gb);
        let c = open(&dir.0, Mode::Async)?;
        let rate = if *name == "rewinddb" {
            // Half of the data in a checkpoint, half left in the WAL.
            let t0 = Instant::now();
            let half = n / 2;
            bulk_load_range(&*c, 0..half)?;
            checkpoint(&*c)?;
            bulk_load_range(&*c, half..n)?;
            n as f64 / t0.elapsed().as_secs_f64()
        } else {
            bulk_load(&*c, n)?
        };
        drop(c);
        results.record("W9", "write before reopen", "keys/s", name, rate);
        dirs.push((*name, dir));
    }
    // Every engine's reopens start with no writeback of the data just
    // written still running beside them (the writes above leave about
    // 3 GB of dirty pages): without this, whichever reopen came first
    // shared the 2 cores with the kernel's flusher (one W9 run: rewinddb
    // 3.91 s/GB in its first repetition, 2.23 and 2.36 in the next two).
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    let exe = std::env::current_exe()?;
    // At least 5 repetitions: a reopen's time on this shared machine moved
    // by up to 2x from one repetition to the next (the same binary and
    // data: 5.72, 3.01 and 3.77 s/GB in one run), and each costs seconds.
    for rep in 0..opts.reps.max(W9_REPS_MIN) {
        for (name, dir) in &dirs {
            // Each reopen in a process of its own, as after a restart: in
            // this one, the heap that the workloads before left behind
            // made rewinddb's reopens vary by 1.35x (see `reopen_child`).
            let out = std::process::Command::new(&exe)
                .arg(REOPEN_CHILD)
                .arg(name)
                .arg(&dir.0)
                .arg(n.to_string())
                .stderr(std::process::Stdio::inherit())
                .output()?;
            let line = String::from_utf8_lossy(&out.stdout);
            if !out.status.success() {
                return Err(format!("{name}: reopen child failed ({}): {line}", out.status).into());
            }
            let (secs, used) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
            let secs: f64 = secs
                .parse()
                .map_err(|e| format!("{name}: reopen child said {line:?}: {e}"))?;
            let case = format!("reopen to first read ({gb:.2} GB of keys + values)");
            // Each repetition on stderr: the table keeps only median and
            // spread, and W9's repetitions can differ by 1.8x.
            eprintln!("[W9 rep {}] {name}: {:.3} s/GB; {used}", rep + 1, secs / gb);
            results.record("W9", &case, "s/GB", name, secs / gb);
        }
    }
    Ok(())
}

/// The argument that makes the harness a W9 reopen child:
/// `peers --w9-reopen ENGINE DIR N`.
pub const REOPEN_CHILD: &str = "--w9-reopen";

/// A W9 reopen child: reopen `ENGINE`'s data in `DIR` (written by
/// [`recovery`] with `N` keys), read key 0, and print the seconds that took
/// and what it used, on one line of stdout.
///
/// Why a process of its own: a recovery runs at process start, on a heap
/// that holds nothing yet. Reopened inside the harness instead, rewinddb
/// found whatever heap W1-W8 and the 1 GB writes had freed: one `--only W9`
/// run took 3.53, 3.41 and 2.63 s/GB with the same data, the fast one
/// touching 164K fresh pages and the slow ones 294K-299K. A fresh process
/// touches about 845K (3.3 GB: the checkpoint file's buffer and the
/// rebuilt keys). Every engine's reopen is timed this way, from inside the
/// child, from the open call to the first read's answer.
pub fn reopen_child(args: &[String]) -> Res<()> {
    let [name, dir, n] = args else {
        return Err(format!("usage: peers {REOPEN_CHILD} ENGINE DIR N").into());
    };
    let keys = recovery_keys(n.parse()?);
    let dir = Path::new(dir);
    let before = Usage::now();
    let secs = if name == "rewinddb" {
        reopen_rewind(dir, keys[0])?
    } else {
        let engines = durable_engines(&keys);
        let Some((_, open)) = engines.iter().find(|(n, _)| n == name) else {
            return Err(format!("no durable engine named {name}").into());
        };
        let t0 = Instant::now();
        let c = open(dir, Mode::Async)?;
        let first = c.get_txn(0)?;
        let secs = t0.elapsed().as_secs_f64();
        if first.is_none() {
            return Err(format!("{name}: key 0 missing after reopen").into());
        }
        secs
    };
    println!("{secs} {}", Usage::now().since(&before));
    Ok(())
}

/// What a process and the machine had used at one instant (W9's
/// diagnostics, printed per repetition).
struct Usage {
    at: Instant,
    /// This process's user + system CPU, in seconds.
    cpu: f64,
    /// This process's minor page faults.
    faults: i64,
    /// The machine's busy and total CPU, in clock ticks (`/proc/stat`),
    /// if readable.
    machine: Option<(u64, u64)>,
}

impl Usage {
    fn now() -> Usage {
        // SAFETY: `getrusage` fills the zeroed struct it is handed.
        let usage = unsafe {
            let mut u = std::mem::zeroed::<libc::rusage>();
            libc::getrusage(libc::RUSAGE_SELF, &mut u);
            u
        };
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        Usage {
            at: Instant::now(),
            cpu: secs(usage.ru_utime) + secs(usage.ru_stime),
            faults: usage.ru_minflt,
            machine: machine_ticks(),
        }
    }

    /// What was used from `before` to `self`, as one line.
    fn since(&self, before: &Usage) -> String {
        let wall = self.at.duration_since(before.at).as_secs_f64();
        let machine = match (self.machine, before.machine) {
            (Some((busy, total)), Some((busy0, total0))) if total > total0 => {
                // Busy share of all cores, as cores: 2.0 = both busy.
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                format!(
                    "{:.2} cores busy machine-wide",
                    (busy - busy0) as f64 / (total - total0) as f64 * cores as f64
                )
            }
            _ => "machine load unknown".into(),
        };
        format!(
            "wall {wall:.2} s, this process {:.2} CPU-s, {machine}, {} page faults",
            self.cpu - before.cpu,
            self.faults - before.faults
        )
    }
}

/// The machine's busy and total CPU ticks from the first line of
/// `/proc/stat` (idle and iowait count as not busy).
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3)? + ticks.get(4)?;
    Some((total - idle, total))
}
