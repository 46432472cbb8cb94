//! Guards that GC gives memory back: allocated bytes (counted by a `#[global_allocator]`) and `stats().versions` drop after GC and epoch reclamation.
//!
//! Its own test binary, with a single test, so no other test's allocations blur the count.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use rewinddb_engine::{
    Engine, EngineConfig, Isolation, Key, Namespace, Retention, RunId, Scope, TypeTag,
};

/// The system allocator, counting the bytes currently allocated.
struct Counting;

static ALLOCATED: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so `System`'s
// guarantees hold; the counter has no effect on the memory returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            ALLOCATED.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is; `ptr` came from `alloc` with this `layout`.
        unsafe { System.dealloc(ptr, layout) };
        ALLOCATED.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `realloc`'s contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            ALLOCATED.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocated() -> isize {
    ALLOCATED.load(Ordering::Relaxed)
}

const KEYS: usize = 200;
const VERSIONS: usize = 20;
const VALUE_BYTES: usize = 1024;

/// Let crossbeam-epoch run the destructors GC deferred: the global epoch must advance twice
/// past the unlinking, which needs every participant to pin again; a flush pushes this
/// thread's deferred bag to the global queue and collects.
fn reclaim() {
    for _ in 0..256 {
        crossbeam_epoch::pin().flush();
    }
}

#[test]
fn gc_gives_memory_back() {
    let engine =
        Engine::open_in_memory(EngineConfig::default().retention(Retention::Versions(1))).unwrap();
    let ns = Namespace::new("mem").unwrap();
    let keys: Vec<Key> = (0..KEYS)
        .map(|i| Key::new(ns.clone(), Scope::Shared, TypeTag::Kv, format!("k{i}")))
        .collect();
    reclaim();
    let empty = allocated();
    for round in 0..VERSIONS {
        let mut txn = engine.begin(RunId::NIL, Isolation::Snapshot);
        for k in &keys {
            // A fresh string each time: nothing is shared between versions.
            txn.put(k.clone(), format!("{round:0>width$}", width = VALUE_BYTES))
                .unwrap();
        }
        txn.commit().unwrap();
    }
    reclaim();
    let full = allocated();
    let payload = (KEYS * VERSIONS * VALUE_BYTES) as isize;
    assert!(
        full - empty >= payload,
        "the store should hold at least its payload: {} < {payload}",
        full - empty
    );
    assert_eq!(engine.stats().versions, (KEYS * VERSIONS) as u64);

    let stats = engine.gc().unwrap();
    assert_eq!(stats.unlinked, KEYS * (VERSIONS - 1));
    assert_eq!(engine.stats().versions, KEYS as u64);
    reclaim();
    let after = allocated();
    let freed = full - after;
    let unlinked_payload = (KEYS * (VERSIONS - 1) * VALUE_BYTES) as isize;
    eprintln!(
        "allocated: empty {empty} B, full {full} B, after gc {after} B; freed {freed} B for {unlinked_payload} B of unlinked values"
    );
    assert!(
        freed >= unlinked_payload,
        "only {freed} B came back after unlinking {unlinked_payload} B of values"
    );
    // What is left is the newest version of each key plus the indexes: well under a tenth.
    assert!(
        after - empty < (full - empty) / 10,
        "empty {empty}, full {full}, after {after}"
    );

    // The newest versions are still there and right.
    let snap = engine.snapshot();
    let newest = format!("{:0>width$}", VERSIONS - 1, width = VALUE_BYTES);
    assert_eq!(
        snap.get(&keys[7]).unwrap().unwrap().as_str(),
        Some(newest.as_str())
    );
}
