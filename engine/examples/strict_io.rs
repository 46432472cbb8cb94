//! Diagnostic driver for the WAL write path: N strict commits on one
//! thread, then N raw append+fdatasync of 150-byte records (about a
//! commit's record), in `rewinddb-strict-io/` under the directory given as
//! the first argument (created, and removed after). Run under
//! `perf stat -e block:block_rq_issue` to count I/Os per fdatasync
//! (issue 3: preallocated segments need about one, appends two). Build:
//! `cargo build --release -p rewinddb-engine --example strict_io`.
// A diagnostic driver: any failure is fatal, so it unwraps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::time::Instant;

use rewinddb_engine::{
    CheckpointPolicy, Durability, Engine, EngineConfig, Isolation, Key, Namespace, RunId, Scope,
    TypeTag, Value,
};

fn main() {
    let mut args = std::env::args().skip(1);
    let base = args.next().expect("usage: strict_io DIR [N] [raw|strict]");
    let dir = std::path::PathBuf::from(base).join("rewinddb-strict-io");
    let n: u64 = args.next().map_or(2000, |s| s.parse().unwrap());
    let what = args.next().unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    if what != "raw" {
        let config = EngineConfig::default()
            .dir(&dir)
            .durability(Durability::Strict)
            .checkpoint(CheckpointPolicy::MANUAL);
        let engine = Engine::open(config).unwrap();
        let ns = Namespace::new("bench/durable").unwrap();
        let start = Instant::now();
        for i in 0..n {
            let mut txn = engine.begin(RunId::NIL, Isolation::Snapshot);
            let key = Key::new(ns.clone(), Scope::Shared, TypeTag::Kv, format!("key:{i}"));
            txn.put(key, Value::from("v".repeat(100))).unwrap();
            txn.commit().unwrap();
        }
        let secs = start.elapsed().as_secs_f64();
        println!("strict 1 thread: {:.0} commits/s", n as f64 / secs);
        drop(engine);
        let _ = std::fs::remove_dir_all(&dir);
    }
    if what != "strict" {
        std::fs::create_dir_all(&dir).unwrap();
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(dir.join("raw.log"))
            .unwrap();
        let record = vec![0x5au8; 150];
        let start = Instant::now();
        for _ in 0..n {
            (&file).write_all(&record).unwrap();
            file.sync_data().unwrap();
        }
        let secs = start.elapsed().as_secs_f64();
        println!("raw append+fdatasync: {:.0} /s", n as f64 / secs);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
