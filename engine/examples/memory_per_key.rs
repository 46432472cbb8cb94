//! Diagnostic driver for W10 (memory per key) in a process of its own: the
//! peer harness's "RSS growth" line depends on what the harness allocated
//! and freed before it, and this does not. Loads N keys (16-byte user
//! bytes, 100-byte values, transactions of 10,000 writes, every key and
//! value built in the loop, as an application would) into an in-memory
//! engine and prints heap bytes per key (the peer harness's counting
//! allocator, `benches/peers/alloc.rs`: bytes requested, live) and resident-set growth per key (`/proc/self/statm`).
//!
//! `cargo run --release -p rewinddb-engine --example memory_per_key -- [N] [new|family]`
//!
//! `new` (the default) builds each key with `Key::new`, whose family
//! (shared by consecutive keys of one family on a thread) the store
//! replaces with its own shared one; `family` makes every key from
//! `Engine::family`. N defaults to 1,000,000.
#![allow(clippy::unwrap_used)]
use rewinddb_engine::{
    Engine, EngineConfig, Isolation, Key, Namespace, RunId, Scope, TypeTag, Value,
};

/// The peer harness's counting allocator (W10's), shared, not copied.
#[path = "../../benches/peers/alloc.rs"]
mod alloc;

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

const BATCH: u64 = 10_000;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(1_000_000, |a| a.parse().unwrap());
    let by_family = args.next().as_deref() == Some("family");
    let engine = Engine::open_in_memory(EngineConfig::default()).unwrap();
    let ns = Namespace::new("bench/ns").unwrap();
    let family = engine.family(ns.clone(), Scope::Shared, TypeTag::Kv);
    alloc::enable();
    let (rss0, heap0) = (alloc::rss_bytes(), alloc::live());
    for batch in 0..n.div_ceil(BATCH) {
        let mut txn = engine.begin(RunId::NIL, Isolation::Snapshot);
        for i in batch * BATCH..((batch + 1) * BATCH).min(n) {
            let mut user = [0u8; 16];
            user[..8].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
            let key = match by_family {
                true => family.key(user),
                false => Key::new(ns.clone(), Scope::Shared, TypeTag::Kv, user),
            };
            txn.put(key, Value::from(&[7u8; 100][..])).unwrap();
        }
        txn.commit().unwrap();
    }
    let heap = (alloc::live() - heap0) as f64 / n as f64;
    let rss = alloc::rss_bytes().saturating_sub(rss0) as f64 / n as f64;
    alloc::disable();
    let mode = if by_family { "family" } else { "new" };
    println!("{n} keys ({mode}): heap {heap:.1} B/key, RSS growth {rss:.1} B/key");
}
