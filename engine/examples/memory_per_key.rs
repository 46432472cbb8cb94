//! Diagnostic driver for W10 (memory per key) in a process of its own: the
//! peer harness's "RSS growth" line depends on what the harness allocated
//! and freed before it, and this does not. Loads N keys (16-byte user
//! bytes, 100-byte values, transactions of 10,000 writes, every key and
//! value built in the loop, as an application would) into an in-memory
//! engine and prints heap bytes per key (a counting allocator: bytes
//! requested, live) and resident-set growth per key (`/proc/self/statm`).
//!
//! `cargo run --release -p rewinddb-engine --example memory_per_key -- [N] [new|family]`
//!
//! `new` (the default) builds each key with `Key::new`, which allocates a
//! family per key that the store replaces with its shared one; `family`
//! makes every key from `Engine::family`. N defaults to 1,000,000.
#![allow(clippy::unwrap_used)]
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use rewinddb_engine::{
    Engine, EngineConfig, Isolation, Key, Namespace, RunId, Scope, TypeTag, Value,
};

/// Live heap bytes (requested sizes).
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: forwards every call to `System` unchanged and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const BATCH: u64 = 10_000;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(1_000_000, |a| a.parse().unwrap());
    let by_family = args.next().as_deref() == Some("family");
    let engine = Engine::open_in_memory(EngineConfig::default()).unwrap();
    let ns = Namespace::new("bench/ns").unwrap();
    let family = engine.family(ns.clone(), Scope::Shared, TypeTag::Kv);
    let (rss0, heap0) = (rss_bytes(), LIVE.load(Ordering::Relaxed));
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
    let heap = (LIVE.load(Ordering::Relaxed) - heap0) as f64 / n as f64;
    let rss = rss_bytes().saturating_sub(rss0) as f64 / n as f64;
    let mode = if by_family { "family" } else { "new" };
    println!("{n} keys ({mode}): heap {heap:.1} B/key, RSS growth {rss:.1} B/key");
}
