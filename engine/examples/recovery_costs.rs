//! Diagnostic driver for W9-like recovery (small entries: distinct 16-byte
//! keys, 100-byte values, 10,000 writes per commit, WAL only), so that
//! reopening can be timed or run under callgrind on its own:
//! `recovery_costs DIR write N [checkpoint]` writes N entries into `DIR`
//! (replacing it; with `checkpoint`, a checkpoint after the first half,
//! as the peer harness's W9 does, so a reopen loads both),
//! `recovery_costs DIR open [TIMES]` reopens it TIMES times (1 by
//! default) and prints each reopen's time. Build:
//! `cargo build --release -p rewinddb-engine --example recovery_costs`.
// A diagnostic driver: any failure is fatal, so it unwraps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use rewinddb_engine::{
    CheckpointPolicy, Durability, Engine, EngineConfig, Isolation, Key, Namespace, RunId, Scope,
    TypeTag, Value,
};

fn config(dir: &str) -> EngineConfig {
    EngineConfig::default()
        .dir(dir)
        .durability(Durability::Async)
        .checkpoint(CheckpointPolicy::MANUAL)
}

fn key(ns: &Namespace, i: u64) -> Key {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
    k[8..].copy_from_slice(&i.to_be_bytes());
    Key::new(ns.clone(), Scope::Shared, TypeTag::Kv, k)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .expect("usage: recovery_costs DIR (write N [checkpoint] | open [TIMES])");
    match args.next().as_deref() {
        Some("write") => {
            let n: u64 = args.next().expect("N").parse().unwrap();
            let checkpoint_at = match args.next().as_deref() {
                Some("checkpoint") => n / 2,
                _ => u64::MAX,
            };
            let _ = std::fs::remove_dir_all(&dir);
            let engine = Engine::open(config(&dir)).unwrap();
            let ns = Namespace::new("bench/small").unwrap();
            let value = Value::from(vec![7u8; 100]);
            for start in (0..n).step_by(10_000) {
                let mut txn = engine.begin(RunId::NIL, Isolation::Snapshot);
                for i in start..(start + 10_000).min(n) {
                    txn.put(key(&ns, i), value.clone()).unwrap();
                }
                txn.commit().unwrap();
                if (start..start + 10_000).contains(&checkpoint_at) {
                    engine.checkpoint().unwrap();
                }
            }
            engine.close().unwrap();
        }
        Some("open") => {
            let times: usize = args.next().map_or(1, |t| t.parse().unwrap());
            for _ in 0..times {
                let faults = minor_faults();
                let start = Instant::now();
                let engine = Engine::open(config(&dir)).unwrap();
                let secs = start.elapsed().as_secs_f64();
                println!(
                    "reopen: {secs:.3} s, {} keys, {} page faults",
                    engine.stats().keys,
                    minor_faults() - faults
                );
                drop(engine);
            }
        }
        _ => panic!("usage: recovery_costs DIR (write N [checkpoint] | open [TIMES])"),
    }
}

/// This process's minor page faults so far: a reopen's first touches of
/// fresh heap cost it up to a second (ARCHITECTURE.md, "Recovery time").
fn minor_faults() -> i64 {
    // SAFETY: `getrusage` fills the zeroed struct it is handed.
    unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage.ru_minflt
    }
}
