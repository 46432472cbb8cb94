//! The fuzz seed corpora in fuzz/seeds/ (valid WAL segments and checkpoints
//! written by this engine: random bytes rarely pass a CRC, so the fuzzers
//! start from valid records) are current: each decodes completely.
//! `REWINDDB_WRITE_FUZZ_SEEDS=1 cargo test -p rewinddb-engine --test
//! fuzz_seeds` regenerates them after a format change.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use rewinddb_engine::durability::checkpoint::decode_checkpoint;
use rewinddb_engine::durability::wal::{self, SEGMENT_HEADER_SIZE, Stop};
use rewinddb_engine::durability::{MemStorage, codec::VALUE_DECODE_DEPTH_MAX};
use rewinddb_engine::{
    CheckpointPolicy, Engine, EngineConfig, Isolation, Key, Namespace, RunId, Scope, TypeTag, Value,
};

fn seeds_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target)
}

/// Files a small engine leaves: its WAL segments and a checkpoint.
fn engine_files(txns: usize) -> Vec<(String, Vec<u8>)> {
    let storage = MemStorage::new();
    let config = EngineConfig::default()
        .checkpoint(CheckpointPolicy::MANUAL)
        .background_threads(false);
    let engine = Engine::open_with_storage(config, Arc::new(storage.clone())).unwrap();
    let ns = Namespace::new("seed/ns").unwrap();
    let run = RunId::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);
    let mut nested = Value::Null;
    for _ in 0..5 {
        nested = Value::from(vec![nested, Value::Float(0.5)]);
    }
    const { assert!(5 < VALUE_DECODE_DEPTH_MAX) };
    for i in 0..txns {
        let mut txn = engine.begin(
            if i % 2 == 0 { run } else { RunId::NIL },
            Isolation::Snapshot,
        );
        let scope = if i % 3 == 0 {
            Scope::Run(run)
        } else {
            Scope::Shared
        };
        txn.put(
            Key::new(ns.clone(), scope, TypeTag::Kv, format!("k{i}")),
            i as i64,
        )
        .unwrap();
        if i % 4 == 1 {
            txn.put(
                Key::new(ns.clone(), Scope::Shared, TypeTag::Event, [i as u8]),
                nested.clone(),
            )
            .unwrap();
        }
        if i % 5 == 2 {
            txn.delete(Key::new(ns.clone(), Scope::Shared, TypeTag::Kv, "k0"))
                .unwrap();
        }
        txn.commit().unwrap();
        if i == txns / 2 {
            engine.checkpoint().unwrap();
        }
    }
    drop(engine);
    // Segments are preallocated: keep a short zero tail (a clean end the
    // fuzzer can damage), not megabytes of zeros.
    storage
        .files()
        .into_iter()
        .map(|(name, mut bytes)| {
            if name.starts_with("wal-") {
                bytes.truncate(wal::len_without_zero_tail(&bytes) + 16);
            }
            (name, bytes)
        })
        .collect()
}

fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    for txns in [1, 4, 12] {
        for (name, bytes) in engine_files(txns) {
            let target = if name.starts_with("wal-") {
                "wal_decode"
            } else if name.ends_with(".ckpt") {
                "checkpoint_decode"
            } else {
                continue;
            };
            out.push((target, format!("{txns}-{name}"), bytes));
        }
    }
    // wal_mutate reads its records from the input bytes: a few fixed ones.
    for (i, n) in [3u8, 9, 23].into_iter().enumerate() {
        let bytes: Vec<u8> = (0..64u8)
            .map(|b| b.wrapping_mul(n).wrapping_add(i as u8))
            .collect();
        out.push(("wal_mutate", format!("seed-{i}"), [vec![n], bytes].concat()));
    }
    out
}

#[test]
fn seed_corpora_are_current_and_decode_completely() {
    let seeds = seeds();
    if std::env::var_os("REWINDDB_WRITE_FUZZ_SEEDS").is_some() {
        for (target, name, bytes) in &seeds {
            std::fs::create_dir_all(seeds_dir(target)).unwrap();
            std::fs::write(seeds_dir(target).join(name), bytes).unwrap();
        }
    }
    for (target, name, bytes) in &seeds {
        match *target {
            "wal_decode" => {
                assert!(wal::parse_segment_header(bytes).is_ok());
                let d = wal::decode_records(bytes, SEGMENT_HEADER_SIZE, 0, |_, _| {});
                // Segments after the first start past version 1: only the
                // header and framing matter here.
                assert!(d.valid_end == bytes.len() || !matches!(d.stop, Stop::Torn { .. }));
            }
            "checkpoint_decode" => {
                decode_checkpoint(bytes).unwrap();
            }
            _ => {}
        }
        let checked_in = std::fs::read(seeds_dir(target).join(name))
            .unwrap_or_else(|e| panic!("fuzz/seeds/{target}/{name}: {e} (regenerate, see //!)"));
        // Wall-clock times differ between runs: compare everything for the
        // input-derived seeds, and the decodability for engine-written ones.
        if *target == "wal_mutate" {
            assert_eq!(&checked_in, bytes);
        } else if *target == "checkpoint_decode" {
            decode_checkpoint(&checked_in).unwrap();
        } else {
            assert!(wal::parse_segment_header(&checked_in).is_ok());
        }
    }
}
