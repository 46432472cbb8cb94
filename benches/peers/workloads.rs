//! W1-W7 (on every engine, async mode) and W10 (heap bytes per key).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::engines::{self, Contender, Mode, Scratch, with_stamp};
use crate::report::Results;
use crate::{Key16, Opts, Res, alloc};

/// Bytes of every value.
pub const VALUE_BYTES: usize = 100;
/// Most keys W10 loads.
pub const W10_KEYS_MAX: usize = 250_000;
/// Access indices per thread and distribution (a power of two).
const ACCESSES: usize = 1 << 20;
/// Writes per bulk-load transaction.
const LOAD_BATCH: usize = 10_000;
/// Reads between two refreshes of a reader's snapshot.
const READS_PER_SNAPSHOT: usize = 1024;

/// `n` distinct pseudo-random 16-byte keys (fixed seed).
pub fn make_keys(n: usize) -> Arc<[Key16]> {
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let k: Key16 = rng.u128(..).to_le_bytes();
        if seen.insert(k) {
            out.push(k);
        }
    }
    out.into()
}

/// The value every load writes: stamp 0, then filler.
pub fn base_value() -> Vec<u8> {
    with_stamp(&[0xab; VALUE_BYTES], 0)
}

/// Pre-generated access indices of one thread.
pub struct Access {
    uniform: Vec<usize>,
    zipf: Vec<usize>,
    coins: Vec<u8>,
}

impl Access {
    fn new(n: usize, zipf: &Zipf, seed: u64) -> Access {
        let mut rng = fastrand::Rng::with_seed(seed);
        Access {
            uniform: (0..ACCESSES).map(|_| rng.usize(..n)).collect(),
            zipf: (0..ACCESSES).map(|_| zipf.sample(rng.f64())).collect(),
            coins: (0..ACCESSES).map(|_| rng.u8(0..100)).collect(),
        }
    }
}

/// Zipf(0.99) over `0..n` by inverse CDF; rank 0 is the hottest key
/// (keys are random bytes, so hot ranks scatter over the hash space).
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, theta: f64) -> Zipf {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|r| {
                acc += 1.0 / (r as f64).powf(theta);
                acc
            })
            .collect();
        for c in &mut cdf {
            *c /= acc;
        }
        Zipf { cdf }
    }

    fn sample(&self, u: f64) -> usize {
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

/// What one worker thread did.
#[derive(Default, Clone, Copy, Debug)]
pub struct Counts {
    /// Operations completed (commits, reads).
    pub ops: u64,
    /// Transactions aborted by a conflict.
    pub aborts: u64,
    /// Reads that contradicted their snapshot.
    pub torn: u64,
}

impl std::ops::Add for Counts {
    type Output = Counts;
    fn add(self, o: Counts) -> Counts {
        Counts {
            ops: self.ops + o.ops,
            aborts: self.aborts + o.aborts,
            torn: self.torn + o.torn,
        }
    }
}

/// Run `work(thread, stop)` on `threads` threads for `secs`; per-thread
/// counts and the elapsed seconds.
pub fn measure<F>(threads: usize, secs: f64, work: F) -> Res<(Vec<Counts>, f64)>
where
    F: Fn(usize, &AtomicBool) -> Res<Counts> + Sync,
{
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (stop, barrier, work) = (&stop, &barrier, &work);
                s.spawn(move || {
                    barrier.wait();
                    work(t, stop)
                })
            })
            .collect();
        barrier.wait();
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Ordering::Relaxed);
        let mut counts = Vec::new();
        for h in handles {
            counts.push(h.join().map_err(|_| "worker panicked")??);
        }
        Ok((counts, t0.elapsed().as_secs_f64()))
    })
}

fn total(counts: &[Counts]) -> Counts {
    counts.iter().copied().fold(Counts::default(), |a, b| a + b)
}

/// One engine of the in-memory suite, with the directory it lives in.
struct Instance {
    c: Box<dyn Contender>,
    _dir: Option<Scratch>,
}

type Factory = Box<dyn Fn() -> Res<Instance>>;

fn factories(opts: &Opts, keys: &Arc<[Key16]>) -> Vec<Factory> {
    let data_bytes = (opts.keys * (16 + VALUE_BYTES)) as u64;
    let cache = data_bytes * 2;
    let mut out: Vec<Factory> = Vec::new();
    let k = Arc::clone(keys);
    out.push(Box::new(move || {
        Ok(Instance {
            c: Box::new(engines::Rewind::in_memory(&k, Default::default())?),
            _dir: None,
        })
    }));
    let k = Arc::clone(keys);
    out.push(Box::new(move || {
        Ok(Instance {
            c: Box::new(engines::Redb::in_memory(Arc::clone(&k))?),
            _dir: None,
        })
    }));
    let (k, base) = (Arc::clone(keys), opts.dir.clone());
    out.push(Box::new(move || {
        let dir = Scratch::new(&base, "redb")?;
        let c = engines::Redb::file(Arc::clone(&k), &dir.0, Mode::Async, cache as usize)?;
        Ok(Instance {
            c: Box::new(c),
            _dir: Some(dir),
        })
    }));
    for sized in [true, false] {
        let (k, base) = (Arc::clone(keys), opts.dir.clone());
        out.push(Box::new(move || {
            let dir = Scratch::new(&base, "fjall")?;
            let cache = sized.then_some(cache);
            let c = engines::Fjall::open(Arc::clone(&k), &dir.0, Mode::Async, cache)?;
            Ok(Instance {
                c: Box::new(c),
                _dir: Some(dir),
            })
        }));
    }
    let (k, base) = (Arc::clone(keys), opts.dir.clone());
    out.push(Box::new(move || {
        let dir = Scratch::new(&base, "surrealkv")?;
        let c = engines::SurrealKv::open(Arc::clone(&k), &dir.0, Mode::Async, cache)?;
        Ok(Instance {
            c: Box::new(c),
            _dir: Some(dir),
        })
    }));
    let k = Arc::clone(keys);
    out.push(Box::new(move || {
        Ok(Instance {
            c: Box::new(engines::Scc::new(Arc::clone(&k))),
            _dir: None,
        })
    }));
    let k = Arc::clone(keys);
    out.push(Box::new(move || {
        Ok(Instance {
            c: Box::new(engines::LockedMap::new(Arc::clone(&k))),
            _dir: None,
        })
    }));
    out
}

/// Bulk load every key; keys per second.
pub fn bulk_load(c: &dyn Contender, n: usize) -> Res<f64> {
    let value = base_value();
    let t0 = Instant::now();
    let mut at = 0;
    while at < n {
        let end = (at + LOAD_BATCH).min(n);
        c.load(at..end, &value)?;
        at = end;
    }
    Ok(n as f64 / t0.elapsed().as_secs_f64())
}

/// W1-W7 on every engine, engines interleaved over the repetitions.
pub fn run_in_memory_suite(opts: &Opts, results: &mut Results) -> Res<()> {
    if !["W1", "W2", "W3", "W4", "W5", "W6", "W7"]
        .iter()
        .any(|w| opts.runs(w))
    {
        return Ok(());
    }
    let keys = make_keys(opts.keys);
    let zipf = Zipf::new(opts.keys, 0.99);
    let access: Vec<Access> = (0..2)
        .map(|t| Access::new(opts.keys, &zipf, 0xacce55 + t as u64))
        .collect();
    drop(zipf);
    let factories = factories(opts, &keys);
    for rep in 0..opts.reps {
        for make in &factories {
            let inst = make()?;
            let c = &*inst.c;
            let name = c.name();
            eprintln!("[rep {}] {name}", rep + 1);
            let rate = bulk_load(c, opts.keys)?;
            if opts.runs("W1") {
                results.record("W1", "bulk load, async", "keys/s", &name, rate);
            }
            let run = Run {
                c,
                name: &name,
                opts,
                access: &access,
            };
            run.point_gets(results)?;
            run.ycsb(results)?;
            run.put_txns(results)?;
            run.snapshot_beside_writer(results)?;
            run.hot_rmw(results)?;
            run.read4_write2(results)?;
        }
    }
    Ok(())
}

/// One engine's pass through W2-W7.
struct Run<'a> {
    c: &'a dyn Contender,
    name: &'a str,
    opts: &'a Opts,
    access: &'a [Access],
}

/// Walks one thread's pre-generated indices.
struct Walk<'a> {
    a: &'a Access,
    at: usize,
}

impl Walk<'_> {
    fn step(&mut self) -> usize {
        self.at = (self.at + 1) & (ACCESSES - 1);
        self.at
    }
    fn uniform(&mut self) -> usize {
        let i = self.step();
        self.a.uniform[i]
    }
    fn zipf(&mut self) -> (usize, u8) {
        let i = self.step();
        (self.a.zipf[i], self.a.coins[i])
    }
}

impl Run<'_> {
    fn walk(&self, t: usize) -> Walk<'_> {
        Walk {
            a: &self.access[t],
            at: 0,
        }
    }

    /// W2: point gets on a snapshot refreshed every 1024 reads. Every
    /// engine first reads for a quarter of a measurement untimed: the
    /// first reads after the bulk load pay one-time costs (first touch of
    /// pages, an engine's work after its large write) that belong to no
    /// read rate, and landed in whichever case ran first.
    fn point_gets(&self, results: &mut Results) -> Res<()> {
        if !self.opts.runs("W2") {
            return Ok(());
        }
        self.gets(1, false, self.opts.secs / 4.0)?;
        for threads in [1, 2] {
            for zipf in [false, true] {
                let (counts, secs) = self.gets(threads, zipf, self.opts.secs)?;
                let dist = if zipf { "zipf 0.99" } else { "uniform" };
                let case = format!("{threads} thread(s), {dist}");
                let rate = total(&counts).ops as f64 / secs;
                results.record("W2", &case, "gets/s", self.name, rate);
            }
        }
        Ok(())
    }

    /// Point gets on `threads` threads for `secs`, a snapshot per 1024.
    fn gets(&self, threads: usize, zipf: bool, secs: f64) -> Res<(Vec<Counts>, f64)> {
        measure(threads, secs, |t, stop| {
            let mut w = self.walk(t);
            let mut ops = 0;
            while !stop.load(Ordering::Relaxed) {
                let reader = self.c.reader()?;
                for _ in 0..READS_PER_SNAPSHOT {
                    let i = if zipf { w.zipf().0 } else { w.uniform() };
                    std::hint::black_box(reader.get(i)?);
                }
                ops += READS_PER_SNAPSHOT as u64;
            }
            Ok(Counts {
                ops,
                ..Counts::default()
            })
        })
    }

    /// W3: YCSB A/B/C, 2 threads, zipf keys, one single-key transaction
    /// per operation.
    fn ycsb(&self, results: &mut Results) -> Res<()> {
        if !self.opts.runs("W3") {
            return Ok(());
        }
        let value = base_value();
        for (label, read_pct) in [("A (50/50)", 50), ("B (95/5)", 95), ("C (100/0)", 100)] {
            let (counts, secs) = measure(2, self.opts.secs, |t, stop| {
                let mut w = self.walk(t);
                let mut c = Counts::default();
                while !stop.load(Ordering::Relaxed) {
                    let (i, coin) = w.zipf();
                    if coin < read_pct {
                        std::hint::black_box(self.c.get_txn(i)?);
                        c.ops += 1;
                    } else if self.c.txn(&[], &[i], &value)? {
                        c.ops += 1;
                    } else {
                        c.aborts += 1;
                    }
                }
                Ok(c)
            })?;
            let rate = total(&counts).ops as f64 / secs;
            results.record("W3", &format!("YCSB {label}"), "ops/s", self.name, rate);
        }
        Ok(())
    }

    /// W4: single-key put transactions, 1 thread, uniform keys.
    fn put_txns(&self, results: &mut Results) -> Res<()> {
        if !self.opts.runs("W4") {
            return Ok(());
        }
        let value = base_value();
        let (counts, secs) = measure(1, self.opts.secs, |t, stop| {
            let mut w = self.walk(t);
            let mut c = Counts::default();
            while !stop.load(Ordering::Relaxed) {
                self.c.txn(&[], &[w.uniform()], &value)?;
                c.ops += 1;
            }
            Ok(c)
        })?;
        let rate = total(&counts).ops as f64 / secs;
        results.record(
            "W4",
            "single-key put txn, 1 thread",
            "txn/s",
            self.name,
            rate,
        );
        Ok(())
    }

    /// W5: a snapshot reader beside a writer. The writer commits pairs of
    /// keys `(2j, 2j+1)` with one fresh stamp; the reader reads both keys of
    /// a pair in one snapshot and counts pairs whose stamps differ (a torn
    /// view). The reader's solo rate is measured first.
    fn snapshot_beside_writer(&self, results: &mut Results) -> Res<()> {
        if !self.opts.runs("W5") || !self.c.transactional() {
            return Ok(());
        }
        let pairs = self.opts.keys / 2;
        let seq = AtomicU64::new(1);
        let value = base_value();
        let read_pairs = |w: &mut Walk<'_>, stop: &AtomicBool| -> Res<Counts> {
            let mut c = Counts::default();
            while !stop.load(Ordering::Relaxed) {
                let reader = self.c.reader()?;
                for _ in 0..READS_PER_SNAPSHOT / 2 {
                    let a = (w.uniform() % pairs) * 2;
                    if reader.get(a)? != reader.get(a + 1)? {
                        c.torn += 1;
                    }
                }
                c.ops += READS_PER_SNAPSHOT as u64;
            }
            Ok(c)
        };
        let (solo, solo_secs) = measure(1, self.opts.secs, |t, stop| {
            read_pairs(&mut self.walk(t), stop)
        })?;
        let (counts, secs) = measure(2, self.opts.secs, |t, stop| {
            let mut w = self.walk(t);
            if t == 0 {
                return read_pairs(&mut w, stop);
            }
            let mut c = Counts::default();
            while !stop.load(Ordering::Relaxed) {
                let a = (w.uniform() % pairs) * 2;
                let v = with_stamp(&value, seq.fetch_add(1, Ordering::Relaxed));
                if self.c.txn(&[], &[a, a + 1], &v)? {
                    c.ops += 1;
                } else {
                    c.aborts += 1;
                }
            }
            Ok(c)
        })?;
        let solo_rate = total(&solo).ops as f64 / solo_secs;
        let reader_rate = counts[0].ops as f64 / secs;
        let writer_rate = counts[1].ops as f64 / secs;
        let torn = (counts[0].torn + solo[0].torn) as f64;
        let name = self.name;
        results.record("W5", "reader alone", "reads/s", name, solo_rate);
        results.record("W5", "reader beside writer", "reads/s", name, reader_rate);
        results.record("W5", "writer beside reader", "txn/s", name, writer_rate);
        results.record(
            "W5",
            "reader kept (beside/alone)",
            "x",
            name,
            reader_rate / solo_rate,
        );
        results.record("W5", "torn pairs seen", "count", name, torn);
        Ok(())
    }

    /// W6: read-modify-write of 1 or 16 hot keys, 2 threads, retried on
    /// conflict; commits/s, the abort rate and the slower thread's share
    /// of the commits.
    fn hot_rmw(&self, results: &mut Results) -> Res<()> {
        if !self.opts.runs("W6") {
            return Ok(());
        }
        for hot in [1, 16] {
            let (counts, secs) = measure(2, self.opts.secs, |t, stop| {
                let mut w = self.walk(t);
                let mut c = Counts::default();
                while !stop.load(Ordering::Relaxed) {
                    if self.c.rmw(w.uniform() % hot)? {
                        c.ops += 1;
                    } else {
                        c.aborts += 1;
                    }
                }
                Ok(c)
            })?;
            let all = total(&counts);
            let case = format!("{hot} hot key(s), 2 threads");
            let abort_pct = 100.0 * all.aborts as f64 / (all.ops + all.aborts).max(1) as f64;
            results.record("W6", &case, "commits/s", self.name, all.ops as f64 / secs);
            results.record("W6", &format!("{case}: aborts"), "%", self.name, abort_pct);
            // Fairness beside throughput: an engine that lets one thread
            // commit streaks while the other waits (rewinddb's backoff
            // after a conflict) shows it here; 50% is an even split.
            let slower = counts.iter().map(|c| c.ops).min().unwrap_or(0);
            let share = 100.0 * slower as f64 / all.ops.max(1) as f64;
            // Each thread's commits and aborts, for the uneven repetitions
            // BENCHMARKS.md's notes mention (did the slower thread lose, or
            // wait?).
            let threads: Vec<String> = counts
                .iter()
                .map(|c| format!("{} commits, {} aborts", c.ops, c.aborts))
                .collect();
            eprintln!(
                "  W6 {hot} hot key(s), {}: {share:.1}% share; {}",
                self.name,
                threads.join(" | ")
            );
            results.record(
                "W6",
                &format!("{case}: slower thread's share"),
                "%",
                self.name,
                share,
            );
        }
        Ok(())
    }

    /// W7: transactions reading 4 keys and writing 2, 2 threads, uniform.
    fn read4_write2(&self, results: &mut Results) -> Res<()> {
        if !self.opts.runs("W7") {
            return Ok(());
        }
        let value = base_value();
        let (counts, secs) = measure(2, self.opts.secs, |t, stop| {
            let mut w = self.walk(t);
            let mut c = Counts::default();
            while !stop.load(Ordering::Relaxed) {
                let reads = [w.uniform(), w.uniform(), w.uniform(), w.uniform()];
                let writes = [w.uniform(), w.uniform()];
                if self.c.txn(&reads, &writes, &value)? {
                    c.ops += 1;
                } else {
                    c.aborts += 1;
                }
            }
            Ok(c)
        })?;
        let all = total(&counts);
        let name = self.name;
        results.record(
            "W7",
            "read 4, write 2, 2 threads",
            "commits/s",
            name,
            all.ops as f64 / secs,
        );
        Ok(())
    }
}

/// W10: heap bytes per key (counting allocator) with one version per key,
/// and after 10 overwrites per key once GC has run; RSS growth beside it.
/// Every engine of the in-memory suite, each built (with its scratch
/// directory) before counting starts. For fjall and surrealkv the heap is
/// what they keep in memory (memtables, caches, indexes), not their data,
/// most of which is in their files.
pub fn heap_per_key(opts: &Opts, results: &mut Results) -> Res<()> {
    // Bytes per key hardly depend on the count; 11 writes per key at 1M keys
    // would make W10 the longest part of the run.
    let n_keys = opts.keys.min(W10_KEYS_MAX);
    let keys = make_keys(n_keys);
    let n = n_keys as f64;
    let peers = factories(opts, &keys);
    for rep in 0..opts.reps {
        // The first factory is rewinddb's with its defaults; W10 builds
        // its own, keeping one version per key so GC may reclaim
        // overwrites, and building every key afresh: the harness's key
        // table is not the engine's memory.
        for factory in [None].into_iter().chain(peers.iter().skip(1).map(Some)) {
            let instance = match factory {
                Some(make) => make()?,
                None => {
                    let config = rewinddb_engine::EngineConfig::default()
                        .retention(rewinddb_engine::Retention::Versions(1));
                    Instance {
                        c: Box::new(engines::Rewind::fresh_keys(Arc::clone(&keys), config)?),
                        _dir: None,
                    }
                }
            };
            let kind = instance.c.name();
            eprintln!("[W10 rep {}] {kind}", rep + 1);
            let c = &*instance.c;
            let rss0 = alloc::rss_bytes();
            alloc::enable();
            let heap0 = alloc::live();
            bulk_load(c, n_keys)?;
            let one = (alloc::live() - heap0) as f64 / n;
            let rss_one = alloc::rss_bytes().saturating_sub(rss0) as f64 / n;
            overwrite(c, n_keys, 10)?;
            collect_garbage(c)?;
            let after = (alloc::live() - heap0) as f64 / n;
            alloc::disable();
            drop(instance);
            results.record("W10", "heap bytes/key, 1 version", "B", &kind, one);
            results.record(
                "W10",
                "heap bytes/key, 10 overwrites + GC",
                "B",
                &kind,
                after,
            );
            // RSS only grows for the first structure of a process (later
            // ones reuse freed pages), so only rewinddb's is reported, and
            // rewinddb goes first.
            if rep == 0 && kind == "rewinddb" {
                results.record(
                    "W10",
                    "RSS growth/key, 1 version (first in process)",
                    "B",
                    &kind,
                    rss_one,
                );
            }
        }
    }
    Ok(())
}

fn overwrite(c: &dyn Contender, n: usize, times: u64) -> Res<()> {
    for t in 1..=times {
        let value = with_stamp(&base_value(), t);
        let mut at = 0;
        while at < n {
            let end = (at + LOAD_BATCH).min(n);
            c.load(at..end, &value)?;
            at = end;
        }
    }
    Ok(())
}

/// Run rewinddb's GC and let epoch reclamation free what it unlinked.
fn collect_garbage(c: &dyn Contender) -> Res<()> {
    let Some(rw) = c.as_rewind() else {
        return Ok(());
    };
    rw.engine().gc()?;
    for _ in 0..4096 {
        crossbeam_epoch::pin().flush();
    }
    Ok(())
}
