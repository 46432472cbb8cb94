//! Diagnostic driver for what building keys with `Key::new` costs beside
//! `Family::key` (a family handle from `Engine::family`), at 1M keys, 3
//! rounds of each on a fresh in-memory engine: making the keys, loading
//! them (transactions of 10,000 puts of 100 bytes), then 1M random
//! single-key put transactions over them. Before `Key::new` reused the
//! thread's last family, each of its keys had a family allocation of its
//! own, which the load looked up in the store's family table and each
//! clone touched cold (ARCHITECTURE.md, "Key families").
//!
//! Run: `cargo run --release -p rewinddb-engine --example key_building`.
#![allow(clippy::unwrap_used)]
use rewinddb_engine::{
    Engine, EngineConfig, Isolation, Key, Namespace, RunId, Scope, TypeTag, ValueRef,
};
use std::time::Instant;
fn main() {
    let ns = Namespace::new("bench").unwrap();
    for round in 0..3 {
        for mode in ["Key::new", "family.key"] {
            let engine = Engine::open_in_memory(EngineConfig::default()).unwrap();
            let family = engine.family(ns.clone(), Scope::Shared, TypeTag::Kv);
            let t = Instant::now();
            let keys: Vec<Key> = (0..1_000_000u64)
                .map(|i| {
                    let u = i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes();
                    if mode == "Key::new" {
                        Key::new(ns.clone(), Scope::Shared, TypeTag::Kv, u)
                    } else {
                        family.key(u)
                    }
                })
                .collect();
            let make = t.elapsed();
            let t = Instant::now();
            for chunk in keys.chunks(10_000) {
                let mut tx = engine.begin(RunId::NIL, Isolation::Snapshot);
                for k in chunk {
                    tx.put_ref(k.clone(), ValueRef::Bytes(&[7u8; 100])).unwrap();
                }
                tx.commit().unwrap();
            }
            let load = t.elapsed();
            let t = Instant::now();
            let mut x = 0x2545_F491_4F6C_DD1Du64;
            for _ in 0..1_000_000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let mut tx = engine.begin(RunId::NIL, Isolation::Snapshot);
                tx.put_ref(
                    &keys[(x % 1_000_000) as usize],
                    ValueRef::Bytes(&[9u8; 100]),
                )
                .unwrap();
                tx.commit().unwrap();
            }
            let puts = t.elapsed();
            println!(
                "round {round} {mode:>10}: make {:.0} ns/key, load {:.0} ns/key, random put txn {:.0} ns",
                make.as_nanos() as f64 / 1e6,
                load.as_nanos() as f64 / 1e6,
                puts.as_nanos() as f64 / 1e6
            );
        }
    }
}
