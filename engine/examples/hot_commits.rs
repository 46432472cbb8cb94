//! Diagnostic driver for W6 (read-modify-write of one hot key, 2 threads):
//! shows that its two modes come from where the machine puts the two
//! threads, and measures the engine in each. Every round prints:
//!
//! - the round trip of one cache line between two threads pinned to CPUs
//!   0 and 1 (each waits for the other's increment, then increments): the
//!   cost of every line both committers write;
//! - commits/s and abort rate of two threads pinned to CPUs 0 and 1, each
//!   running the peer harness's W6 transaction (read the key, write it back
//!   with its counter + 1, commit, count a conflict as an abort);
//! - the same with both threads pinned to CPU 0 (time-sliced: no line
//!   moves between cores, almost no conflicts).
//!
//! Run: `cargo run --release -p rewinddb-engine --example hot_commits [rounds] [secs]`
//! (defaults 5 rounds of 0.5 s). Linux only (thread pinning); elsewhere
//! the threads are not pinned.
#![allow(clippy::unwrap_used)]
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rewinddb_engine::{
    Engine, EngineConfig, Isolation, Key, Namespace, RunId, Scope, TypeTag, ValueRef,
};

const ROUND_TRIPS: u64 = 1_000_000;

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map_or(5, |s| s.parse().unwrap());
    let secs: f64 = args.next().map_or(0.5, |s| s.parse().unwrap());
    println!(
        "line round trip | 2 CPUs: commits/s, aborts, slower thread's share | 1 CPU: the same"
    );
    for _ in 0..rounds {
        let trip = line_round_trip_ns();
        let (two, two_aborts, two_share) = hot_commits([0, 1], secs);
        let (one, one_aborts, one_share) = hot_commits([0, 0], secs);
        println!(
            "{trip:6.1} ns | {:5.2}M, {two_aborts:4.1}%, {two_share:4.1}% | {:5.2}M, {one_aborts:4.1}%, {one_share:4.1}%",
            two / 1e6,
            one / 1e6
        );
    }
}

/// Pin the calling thread to `cpu` (Linux; a no-op elsewhere).
fn pin_to(cpu: usize) {
    #[cfg(target_os = "linux")]
    // SAFETY: `set` is a plain bit set initialised by `CPU_ZERO`; the call
    // reads it and changes only the calling thread's affinity.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cpu;
}

/// Mean round trip of one cache line between threads on CPUs 0 and 1.
fn line_round_trip_ns() -> f64 {
    let turn = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let players: Vec<_> = (0..2u64)
        .map(|me| {
            let turn = Arc::clone(&turn);
            std::thread::spawn(move || {
                pin_to(me as usize);
                for _ in 0..ROUND_TRIPS {
                    while turn.load(Ordering::Acquire) % 2 != me {
                        std::hint::spin_loop();
                    }
                    turn.fetch_add(1, Ordering::AcqRel);
                }
            })
        })
        .collect();
    for p in players {
        p.join().unwrap();
    }
    start.elapsed().as_nanos() as f64 / ROUND_TRIPS as f64
}

/// Commits/s, abort % and the slower thread's % of the commits, of two
/// threads on `cpus` read-modify-writing one key for `secs`.
fn hot_commits(cpus: [usize; 2], secs: f64) -> (f64, f64, f64) {
    let engine = Engine::open_in_memory(EngineConfig::default()).unwrap();
    let family = engine.family(Namespace::new("bench").unwrap(), Scope::Shared, TypeTag::Kv);
    let key = family.key([1u8; 16]);
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let workers: Vec<_> = cpus
        .into_iter()
        .map(|cpu| {
            let (engine, key, stop) = (engine.clone(), key.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                pin_to(cpu);
                let (mut commits, mut aborts) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    match read_modify_write(&engine, &key) {
                        true => commits += 1,
                        false => aborts += 1,
                    }
                }
                (commits, aborts)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let (mut commits, mut aborts, mut fewest) = (0, 0, u64::MAX);
    for w in workers {
        let (c, a) = w.join().unwrap();
        commits += c;
        aborts += a;
        fewest = fewest.min(c);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let abort_pct = 100.0 * aborts as f64 / (commits + aborts).max(1) as f64;
    let share_pct = 100.0 * fewest as f64 / commits.max(1) as f64;
    (commits as f64 / elapsed, abort_pct, share_pct)
}

/// The peer harness's W6 transaction: true if it committed, false on a
/// conflict.
fn read_modify_write(engine: &Engine, key: &Key) -> bool {
    let mut txn = engine.begin(RunId::NIL, Isolation::Snapshot);
    let old = txn.get(key).unwrap();
    let mut next = [0u8; 100];
    if let Some(bytes) = old.as_ref().and_then(|v| v.as_bytes()) {
        next.copy_from_slice(&bytes[..100]);
    }
    let stamp = u64::from_le_bytes(next[..8].try_into().unwrap()) + 1;
    next[..8].copy_from_slice(&stamp.to_le_bytes());
    txn.put_ref(key, ValueRef::Bytes(&next)).unwrap();
    match txn.commit() {
        Ok(_) => true,
        Err(e) if e.is_conflict() => false,
        Err(e) => panic!("{e}"),
    }
}
