//! Peer comparison harness (issue 6): rewinddb beside redb, fjall and
//! surrealkv, with `scc::HashIndex` and a `RwLock<HashMap>` as
//! non-transactional ceilings, measured in one run on one machine. Writes
//! BENCHMARKS.md and a throughput chart (SVG).
//!
//! Full run (1M keys, about 15 minutes on 2 cores):
//! `cargo bench --bench peers`
//! CI smoke (20K keys, seconds): `cargo bench --bench peers -- --quick --out /tmp/b.md`
//!
//! Every engine sits behind [`engines::Contender`]. Keys, values and access
//! indices are generated before timing. Engines are interleaved
//! (A B C .. A B C ..) over the repetitions, so drift hits all of them alike;
//! medians are reported, and ratios come from the same run.

mod alloc;
mod durable;
mod engines;
mod report;
mod workloads;

use std::path::PathBuf;

/// A 16-byte key.
pub type Key16 = [u8; 16];
/// Errors of any engine, boxed.
pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

/// Command-line options.
#[derive(Clone, Debug)]
pub struct Opts {
    /// CI size: few keys, short measurements.
    pub quick: bool,
    /// Keys loaded in each engine.
    pub keys: usize,
    /// Repetitions (interleaved).
    pub reps: usize,
    /// Seconds per timed measurement.
    pub secs: f64,
    /// Bytes of data written for the recovery workload (W9).
    pub recovery_bytes: u64,
    /// Where BENCHMARKS.md goes.
    pub out: PathBuf,
    /// Where the chart goes.
    pub svg: PathBuf,
    /// Scratch directory for on-disk engines (must be a real disk for W8).
    pub dir: PathBuf,
    /// Workloads to run (all if empty), e.g. `W2,W4`.
    pub only: Vec<String>,
}

impl Opts {
    fn parse() -> Res<Opts> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
        // binary without it: then run a tiny smoke into a temp dir instead of
        // a full run over BENCHMARKS.md.
        let test_mode = !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--test");
        let mut it = args.iter();
        let mut quick = test_mode;
        let mut out = None;
        let mut svg = None;
        let mut keys = None;
        let mut reps = None;
        let mut secs = None;
        let mut dir = None;
        let mut only = Vec::new();
        let mut recovery_mb = None;
        while let Some(a) = it.next() {
            let mut val = || it.next().ok_or_else(|| format!("{a} needs a value"));
            match a.as_str() {
                "--quick" => quick = true,
                "--out" => out = Some(PathBuf::from(val()?)),
                "--svg" => svg = Some(PathBuf::from(val()?)),
                "--keys" => keys = Some(val()?.parse()?),
                "--reps" => reps = Some(val()?.parse()?),
                "--secs" => secs = Some(val()?.parse()?),
                "--dir" => dir = Some(PathBuf::from(val()?)),
                "--recovery-mb" => recovery_mb = Some(val()?.parse::<u64>()?),
                "--only" => only = val()?.split(',').map(str::to_uppercase).collect(),
                "--bench" | "--test" => {}
                // Test-name filters and libtest flags from `cargo test`.
                _ if test_mode => {}
                other => return Err(format!("unknown argument {other}").into()),
            }
        }
        let scratch = std::env::temp_dir().join(format!("rewinddb-peers-{}", std::process::id()));
        if test_mode && out.is_none() {
            out = Some(scratch.join("BENCHMARKS.md"));
        }
        let out = out.unwrap_or_else(|| PathBuf::from("BENCHMARKS.md"));
        let svg = svg.unwrap_or_else(|| out.with_file_name("benchmarks.svg"));
        let (def_keys, def_secs, def_mb, def_reps) = match (test_mode, quick) {
            (true, _) => (2_000, 0.02, 1, 1),
            (false, true) => (20_000, 0.1, 8, 3),
            (false, false) => (1_000_000, 0.6, 1024, 3),
        };
        Ok(Opts {
            quick,
            keys: keys.unwrap_or(def_keys),
            reps: reps.unwrap_or(def_reps),
            secs: secs.unwrap_or(def_secs),
            recovery_bytes: recovery_mb.unwrap_or(def_mb) << 20,
            out,
            svg,
            dir: dir.unwrap_or_else(|| scratch.join("data")),
            only,
        })
    }

    /// True if workload `w` was selected.
    pub fn runs(&self, w: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == w)
    }
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(durable::REOPEN_CHILD) {
        return durable::reopen_child(&args[1..]);
    }
    let opts = Opts::parse()?;
    std::fs::create_dir_all(&opts.dir)?;
    if let Some(parent) = opts.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let started = std::time::Instant::now();
    let mut results = report::Results::default();
    // W10 first: its RSS figure needs a process that has not yet freed memory.
    if opts.runs("W10") {
        workloads::heap_per_key(&opts, &mut results)?;
    }
    workloads::run_in_memory_suite(&opts, &mut results)?;
    if opts.runs("W8") {
        durable::durable_commits(&opts, &mut results)?;
    }
    if opts.runs("W9") {
        durable::recovery(&opts, &mut results)?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    report::write(&opts, &results, elapsed)?;
    if let Err(e) = std::fs::remove_dir_all(&opts.dir) {
        eprintln!("cleanup {}: {e}", opts.dir.display());
    }
    eprintln!(
        "wrote {} and {} in {elapsed:.0} s",
        opts.out.display(),
        opts.svg.display()
    );
    Ok(())
}
