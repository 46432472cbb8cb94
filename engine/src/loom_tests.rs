//! Loom models of the lock-free core: every interleaving (up to
//! `LOOM_MAX_PREEMPTIONS` preemptions) of the real `VersionChain`, the real
//! commit `publish` step, the real snapshot registration, the real
//! `PointIndex` (a reader beside a growing insert), the real `Store`'s
//! creation count (a creator beside a write that found its key absent)
//! and the real
//! group-commit wait/wake protocol (`durability::group`), with
//! crossbeam-epoch's own loom build doing the pinning and reclamation.
//!
//! Each `VersionNode` carries a loom cell under `cfg(loom)` that is written
//! when the node is created and when it is destroyed and read whenever the
//! chain hands the node out, so loom itself reports a node reached before
//! it was safely published or after it was freed.
//!
//! Run (CI step "loom"):
//! `RUSTFLAGS="--cfg loom --cfg crossbeam_loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p rewinddb-engine --release --lib loom_tests`

// The models are test helpers, not #[test] fns: a failed join is a failed model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::panic::{AssertUnwindSafe, catch_unwind};

use crossbeam_epoch::{Collector, Guard};
use loom::sync::Arc;
use loom::thread;

use crate::chain::ChainRef;
use crate::chain::{ReadAt, VersionChain, VersionNode};
use crate::durability::group::GroupCommit;
use crate::engine::publish;
use crate::point_index::{Planted, PointIndex};
use crate::snapshot::{Planted as PlantedRegistration, SnapshotTracker};
use crate::store::Store;
use crate::sync::{AtomicU64, Ordering};
use crate::types::{Key, Namespace, RunId, Scope, TypeTag, Version};
use crate::value::Value;

const RUN: RunId = RunId::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0042);

/// The value every model writes at `commit`, so a reader can tell which
/// version it got and that the node was whole (short text: held inline in
/// the node, so the check reads the node's own payload).
fn value_at(commit: Version) -> Option<Value> {
    Some(Value::String(format!("v{commit}").into()))
}

/// The node is whole: the run and value written with its commit.
fn assert_whole(node: &VersionNode) {
    node.check_alive();
    assert_eq!(node.run, RUN, "node {} has a torn run", node.commit);
    assert_eq!(
        node.value_owned(),
        value_at(node.commit),
        "node {} has a torn value",
        node.commit
    );
}

/// The key of the chains these models build (which key does not matter).
fn chain_key() -> Key {
    let ns = Namespace::new("loom").unwrap_or_else(|e| panic!("{e}"));
    Key::new(ns, Scope::Shared, TypeTag::Kv, "k")
}

/// A chain holding versions `1..=n`, pushed by the calling thread.
fn chain_with(n: Version, collector: &Collector) -> Arc<VersionChain> {
    let chain = Arc::new(VersionChain::new(chain_key()));
    let handle = collector.register();
    let guard = handle.pin();
    for v in 1..=n {
        chain.push(v, RUN, value_at(v), &guard);
    }
    chain
}

/// Commit versions along the chain, newest first.
fn commits(chain: &VersionChain, guard: &Guard) -> Vec<Version> {
    chain.iter(guard).map(|n| n.commit).collect()
}

/// Let `collector` run every deferred destruction it can: each `flush`
/// tries to advance the epoch once, and garbage is freed two epochs on.
fn reclaim(collector: &Collector) {
    let handle = collector.register();
    for _ in 0..3 {
        handle.pin().flush();
    }
}

/// Runs `model` under loom, which must report a failure; returns its
/// message so a test can check it failed for the planted reason.
fn loom_failure(model: impl Fn() + Sync + Send + 'static) -> String {
    let Err(payload) = catch_unwind(AssertUnwindSafe(|| loom::model(model))) else {
        panic!("loom explored every interleaving and found nothing");
    };
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Asserts that `failure` names `expected`.
fn assert_failed_with(failure: &str, expected: &str) {
    assert!(
        failure.contains(expected),
        "expected a failure naming {expected:?}, got {failure:?}"
    );
}

// --- 1. push vs a concurrent reader --------------------------------------

const PUSHED: Version = 3;

/// A reader pinned while a writer pushes `1..=PUSHED` in commit order.
fn push_vs_reader() {
    let collector = Collector::new();
    let chain = Arc::new(VersionChain::new(chain_key()));
    let writer = {
        let (chain, collector) = (Arc::clone(&chain), collector.clone());
        thread::spawn(move || {
            let handle = collector.register();
            for v in 1..=PUSHED {
                chain.push(v, RUN, value_at(v), &handle.pin());
            }
        })
    };
    let handle = collector.register();
    let guard = handle.pin();
    let head = chain.head_commit(&guard);
    check_reads_during_push(&chain, head, &guard);
    // Whatever the writer did meanwhile, the chain is dense and ordered.
    let seen = commits(&chain, &guard);
    let top = seen.first().copied().unwrap_or(0);
    assert!(top >= head, "head went back from {head} to {top}");
    assert_eq!(
        seen,
        (1..=top).rev().collect::<Vec<_>>(),
        "chain out of order"
    );
    chain.iter(&guard).for_each(assert_whole);
    drop(guard);
    writer.join().unwrap();
    assert_eq!(commits(&chain, &handle.pin()), vec![3, 2, 1]);
}

/// Reads at every version while the writer may still be pushing. `head`
/// was the newest commit when the reader started: versions up to it are
/// all installed, so a read at or below it has exactly one answer.
fn check_reads_during_push(chain: &VersionChain, head: Version, guard: &Guard) {
    assert!(matches!(chain.read_at(0, guard), ReadAt::Absent));
    for at in 1..=PUSHED + 1 {
        match chain.read_at(at, guard) {
            ReadAt::Found(node) => {
                assert_whole(node);
                assert!(node.commit <= at, "read at {at} got later {}", node.commit);
                assert!(
                    node.commit >= at.min(head),
                    "read at {at} got {} though {} was installed",
                    node.commit,
                    at.min(head)
                );
            }
            ReadAt::Absent => assert_eq!(head, 0, "read at {at} missed installed versions"),
            ReadAt::Pruned => panic!("read at {at} reported pruned with no GC"),
        }
    }
}

#[test]
fn push_vs_concurrent_reader() {
    loom::model(push_vs_reader);
}

// --- 2. GC unlink vs a pinned reader -------------------------------------

type Truncate = fn(&VersionChain, Version, &Guard) -> usize;

/// GC keeps only the newest of versions 1..=3 (the cut `Engine::gc`
/// makes, by commit version) and reclaims the rest while a pinned reader
/// walks the chain.
fn gc_vs_pinned_reader(truncate: Truncate) {
    let collector = Collector::new();
    let chain = chain_with(3, &collector);
    let oldest_value = chain
        .iter(&collector.register().pin())
        .last()
        .and_then(|n| n.value_owned());
    let gc = {
        let (chain, collector) = (Arc::clone(&chain), collector.clone());
        thread::spawn(move || {
            let unlinked = truncate(&chain, 3, &collector.register().pin());
            reclaim(&collector);
            unlinked
        })
    };
    let handle = collector.register();
    let guard = handle.pin();
    check_reads_during_gc(&chain, &guard);
    drop(guard);
    assert_eq!(gc.join().unwrap(), 2, "GC unlinks versions 1 and 2");
    let guard = handle.pin();
    assert_eq!(commits(&chain, &guard), vec![3]);
    assert!(matches!(chain.read_at(2, &guard), ReadAt::Pruned));
    drop(guard);
    // Memory comes back: once no reader is pinned, the unlinked nodes are
    // destroyed and drop their values (ours is then the only reference).
    reclaim(&collector);
    assert!(
        matches!(&oldest_value, Some(Value::String(s)) if std::sync::Arc::strong_count(s) == 1)
    );
}

/// Each read is exact, or `Pruned` for a version GC unlinked (1 and 2);
/// never `Absent` (every version existed) and never a freed node.
fn check_reads_during_gc(chain: &VersionChain, guard: &Guard) {
    let mut found = Vec::new();
    for at in (1..=3).rev() {
        match chain.read_at(at, guard) {
            ReadAt::Found(node) => {
                assert_eq!(node.commit, at);
                found.push(node);
            }
            ReadAt::Pruned => assert!(at < 3, "version 3 is kept, read at 3 got Pruned"),
            ReadAt::Absent => panic!("read at {at} got Absent for a version that existed"),
        }
    }
    // Use the nodes again after GC may have unlinked and reclaimed them:
    // the pin must keep them alive.
    found.into_iter().for_each(assert_whole);
}

#[test]
fn gc_unlink_vs_pinned_reader() {
    loom::model(|| gc_vs_pinned_reader(VersionChain::truncate_older_than));
}

#[test]
fn planted_free_at_unlink_is_caught() {
    let failure =
        loom_failure(|| gc_vs_pinned_reader(VersionChain::truncate_older_than_freeing_at_once));
    assert_failed_with(&failure, "Causality violation");
}

/// GC cuts a chain of 1..=3 below version 2 (a reader at 2 is pinned)
/// while a committer pushes 4: whichever lands first, 2 stays.
fn gc_cut_vs_push(cut: fn(&VersionChain, &Guard) -> usize) {
    let collector = Collector::new();
    let chain = chain_with(3, &collector);
    let writer = {
        let (chain, collector) = (Arc::clone(&chain), collector.clone());
        thread::spawn(move || chain.push(4, RUN, value_at(4), &collector.register().pin()))
    };
    let unlinked = cut(&chain, &collector.register().pin());
    writer.join().unwrap();
    assert_eq!(unlinked, 1, "only version 1 is behind the reader at 2");
    assert_eq!(commits(&chain, &collector.register().pin()), vec![4, 3, 2]);
}

#[test]
fn gc_cut_by_version_vs_concurrent_push() {
    loom::model(|| gc_cut_vs_push(|chain, guard| chain.truncate_older_than(2, guard)));
}

/// Cutting by position ("keep the two newest", meant as 3 and 2) instead
/// loses version 2 when the push lands first: why GC names the cut by
/// commit version.
#[test]
fn gc_cut_by_position_is_caught() {
    let failure = loom_failure(|| gc_cut_vs_push(|chain, guard| chain.truncate_after(2, guard)));
    assert_failed_with(&failure, "only version 1 is behind the reader at 2");
}

// --- 3. commit publication vs a snapshot ---------------------------------

type Publish = fn(&AtomicU64, Version);

/// A committer installs version 2 of two keys and publishes it; a reader
/// takes a snapshot (the real registration) and reads both keys at it.
fn publication_vs_snapshot(publish: Publish) {
    let collector = Collector::new();
    let (a, b) = (chain_with(1, &collector), chain_with(1, &collector));
    let visible = Arc::new(AtomicU64::new(1));
    let committer = {
        let (a, b, visible) = (Arc::clone(&a), Arc::clone(&b), Arc::clone(&visible));
        let collector = collector.clone();
        thread::spawn(move || {
            let handle = collector.register();
            let guard = handle.pin();
            // The commit protocol: install every write, then publish.
            a.push(2, RUN, value_at(2), &guard);
            b.push(2, RUN, value_at(2), &guard);
            publish(&visible, 2);
        })
    };
    let tracker = SnapshotTracker::default();
    let (at, registration) = tracker.register_visible(&visible);
    let handle = collector.register();
    let guard = handle.pin();
    for chain in [&a, &b] {
        match chain.read_at(at, &guard) {
            ReadAt::Found(node) => {
                assert_whole(node);
                assert_eq!(node.commit, at, "snapshot at {at} saw a torn commit");
            }
            other => panic!("snapshot at {at} read {other:?}"),
        }
    }
    drop(guard);
    tracker.release(at, registration);
    committer.join().unwrap();
}

fn publish_relaxed(visible: &AtomicU64, version: Version) {
    visible.store(version, Ordering::Relaxed);
}

#[test]
fn commit_publication_vs_snapshot() {
    loom::model(|| publication_vs_snapshot(publish));
}

#[test]
fn planted_relaxed_publish_is_caught() {
    let failure = loom_failure(|| publication_vs_snapshot(publish_relaxed));
    assert_failed_with(&failure, "saw a torn commit");
}

// --- 3b. slot registration vs GC's horizon -------------------------------

/// Two readers register at the visible version (the first takes the one
/// slot of loom's one group; the second, finding it taken, registers under
/// the lock, unless the first already gave it back) while a committer
/// publishes version 2 and GC computes its horizon. GC's oldest reader
/// must be at or below every version still registered when it scanned:
/// the readers hold theirs until both threads are joined.
fn slot_registration_vs_horizon(planted: PlantedRegistration) {
    let mut tracker = SnapshotTracker::default();
    tracker.planted = planted;
    let tracker = Arc::new(tracker);
    let visible = Arc::new(AtomicU64::new(1));
    let gc = {
        let (tracker, visible) = (Arc::clone(&tracker), Arc::clone(&visible));
        thread::spawn(move || {
            publish(&visible, 2);
            tracker.horizons(&visible, Version::MAX).0
        })
    };
    let other = {
        let (tracker, visible) = (Arc::clone(&tracker), Arc::clone(&visible));
        thread::spawn(move || tracker.register_visible(&visible))
    };
    let (at, registration) = tracker.register_visible(&visible);
    let oldest = gc.join().unwrap();
    let (other_at, other_registration) = other.join().unwrap();
    for v in [at, other_at] {
        assert!(
            oldest <= v,
            "GC's horizon {oldest} passed a reader registered at {v}"
        );
    }
    assert_eq!(tracker.count(), 2);
    tracker.release(at, registration);
    tracker.release(other_at, other_registration);
    assert_eq!(tracker.count(), 0);
}

#[test]
fn slot_registration_vs_gc_horizon() {
    loom::model(|| slot_registration_vs_horizon(PlantedRegistration::None));
}

#[test]
fn planted_slot_without_mark_check_is_caught() {
    let failure = loom_failure(|| slot_registration_vs_horizon(PlantedRegistration::NoMarkCheck));
    assert_failed_with(&failure, "passed a reader registered at");
}

#[test]
fn planted_slot_without_fence_is_caught() {
    let failure = loom_failure(|| slot_registration_vs_horizon(PlantedRegistration::NoFence));
    assert_failed_with(&failure, "passed a reader registered at");
}

// --- 4. two pushers: the CAS is what keeps both versions -----------------

type Push = fn(&VersionChain, Version, RunId, Option<Value>, &Guard);

/// Two threads push versions 2 and 3 onto version 1 at once. The engine
/// serialises committers, but the chain's push must not lose a version
/// even so.
fn two_pushers(push: Push) {
    let collector = Collector::new();
    let chain = chain_with(1, &collector);
    let pushers: Vec<_> = [2, 3]
        .into_iter()
        .map(|v| {
            let (chain, collector) = (Arc::clone(&chain), collector.clone());
            thread::spawn(move || push(&chain, v, RUN, value_at(v), &collector.register().pin()))
        })
        .collect();
    for pusher in pushers {
        pusher.join().unwrap();
    }
    let mut seen = commits(&chain, &collector.register().pin());
    seen.sort_unstable();
    assert_eq!(seen, vec![1, 2, 3], "a pushed version was lost");
}

// Two unserialised pushers may install 3 before 2, which `push`'s
// debug_assert on commit order rightly rejects; this model checks only
// the CAS, so it runs in release builds (as CI runs it).
#[cfg(not(debug_assertions))]
#[test]
fn two_concurrent_pushers_lose_nothing() {
    loom::model(|| two_pushers(VersionChain::push));
}

#[test]
fn planted_push_without_cas_is_caught() {
    let failure = loom_failure(|| two_pushers(VersionChain::push_without_cas));
    assert_failed_with(&failure, "a pushed version was lost");
}

// --- 5. the point index: a reader beside an insert that grows it -------

/// Keys of the index models, with the digests they are filed under: `a`
/// and `b` share a digest (so `b` is found by probing past `a`), and the
/// fourth key grows the 4-slot table loom builds.
fn index_keys() -> [(Key, u64); 4] {
    let ns = Namespace::new("loom").unwrap_or_else(|e| panic!("{e}"));
    let key = |user: &str| Key::new(ns.clone(), Scope::Shared, TypeTag::Kv, user);
    [(key("a"), 1), (key("b"), 1), (key("c"), 2), (key("d"), 3)]
}

/// Three keys are inserted; a writer inserts the fourth, which grows the
/// table (copy, publish, retire the old one), while a pinned reader looks
/// all four up. The first three must be found, each by its own key, and
/// the fourth, if found, must be its own; after the writer, all four.
fn index_reader_vs_growth(planted: Planted) {
    let collector = Collector::new();
    let mut index = PointIndex::with_capacity(0);
    index.planted = planted;
    let index = Arc::new(index);
    let keys = index_keys();
    let make = |key| ChainRef::new(VersionChain::new(key));
    {
        let guard = collector.register().pin();
        for (key, digest) in &keys[..3] {
            index.find_or_insert(*digest, key.clone(), make, &guard);
        }
    }
    let writer = {
        let (index, collector, (key, digest)) =
            (Arc::clone(&index), collector.clone(), keys[3].clone());
        thread::spawn(move || {
            let guard = collector.register().pin();
            let (_, made) = index.find_or_insert(digest, key, make, &guard);
            assert!(made);
        })
    };
    {
        let handle = collector.register();
        let guard = handle.pin();
        for (key, digest) in &keys[..3] {
            let found = index
                .find(*digest, key, &guard)
                .expect("an earlier key was lost");
            assert_eq!(found.key(), key);
        }
        let (key, digest) = &keys[3];
        if let Some(found) = index.find(*digest, key, &guard) {
            assert_eq!(found.key(), key);
        }
    }
    writer.join().unwrap();
    reclaim(&collector);
    let guard = collector.register().pin();
    for (key, digest) in &keys {
        assert!(index.find(*digest, key, &guard).is_some(), "{key} lost");
    }
    assert_eq!(index.len(), 4);
}

#[test]
fn index_reader_vs_growing_insert() {
    loom::model(|| index_reader_vs_growth(Planted::None));
}

#[test]
fn planted_digest_before_chain_is_caught() {
    let failure = loom_failure(|| index_reader_vs_growth(Planted::DigestFirst));
    assert_failed_with(&failure, "a slot's digest was seen before its chain");
}

#[test]
fn planted_table_freed_at_once_is_caught() {
    let failure = loom_failure(|| index_reader_vs_growth(Planted::FreeAtOnce));
    assert_failed_with(&failure, "Causality violation");
}

// --- 6. new keys: a creator beside a transaction that found the key absent

/// A creator commits a new key (`Store::insert_made`: the chain into the
/// index, then the creation count) while a transaction buffers its first
/// write of the same key: it reads the count, then probes the key
/// (`txn.rs`, `chain_to_write`). After the creator (the transaction's
/// commit takes the commit lock the creator held), the commit skips its
/// second look only if the count is unchanged (`find_made_chains`); the
/// key must then really be absent, or the transaction would install a
/// chain of its own beside the creator's and validate against neither.
fn creator_vs_absent_probe(count_first: bool) {
    let mut store = Store::with_capacity(0);
    store.planted_count_first = count_first;
    let store = Arc::new(store);
    let key = chain_key();
    let creator = {
        let (store, key) = (Arc::clone(&store), key.clone());
        thread::spawn(move || {
            let guard = crossbeam_epoch::pin();
            let Err(digest) = store.chain_or_digest(&key, &guard) else {
                panic!("the key existed before its creator");
            };
            let made = store.make_chain(key);
            store.insert_made(made, digest, &guard);
        })
    };
    let since = store.chains_created();
    let found = store.chain(&key).is_some();
    creator.join().unwrap();
    let skips_second_look = !found && store.chains_created() == since;
    let missed = skips_second_look && store.chain(&key).is_some();
    assert!(
        !missed,
        "a commit skipped its second look at a key another created"
    );
}

#[test]
fn creator_vs_transaction_that_found_the_key_absent() {
    loom::model(|| creator_vs_absent_probe(false));
}

/// The store's epoch handles (the default collector's) abort the process
/// when a failed model unwinds them, so this runs only in a child process,
/// started by the test below.
#[test]
#[ignore = "run in a child process by planted_count_before_insert_is_caught"]
fn planted_count_before_insert_model() {
    loom::model(|| creator_vs_absent_probe(true));
}

#[test]
fn planted_count_before_insert_is_caught() {
    let failure = failure_in_child("planted_count_before_insert_model");
    assert_failed_with(&failure, "a commit skipped its second look");
}

// ------------------------------------------------------------ group commit

/// Strict committers, one thread per entry of `commits` making that many
/// commits in a row: each takes the next version under a stand-in commit
/// lock (which also "buffers" its record), then waits in the real
/// `GroupCommit`. A flush syncs everything buffered, under a stand-in WAL
/// writer lock (so `advance` only moves forward, as in `flush_locked`).
/// With `external_flush`, one more thread also flushes once without the
/// group, as the checkpointer and the batched/async flusher do. Every
/// committer must return (loom reports a thread parked forever as a
/// deadlock) and only once its own version is durable.
fn strict_committers(group: GroupCommit, commits: &[u64], external_flush: bool) {
    let group = Arc::new(group);
    let buffered = Arc::new(loom::sync::Mutex::new(0));
    let writer = Arc::new(loom::sync::Mutex::new(()));
    let flush = {
        let (group, buffered, writer) = (group.clone(), buffered.clone(), writer.clone());
        move || {
            let _writer = writer.lock().unwrap();
            let through = *buffered.lock().unwrap();
            group.advance(through);
            Ok(())
        }
    };
    let commit = {
        let (group, buffered, flush) = (group.clone(), buffered.clone(), flush.clone());
        move |n: u64| {
            for _ in 0..n {
                let version = {
                    let mut last = buffered.lock().unwrap();
                    *last += 1;
                    *last
                };
                group.sync_through(version, &flush).unwrap();
                assert!(group.durable() >= version, "returned before durable");
            }
        }
    };
    let mut others: Vec<_> = commits[1..]
        .iter()
        .map(|&n| {
            let commit = commit.clone();
            thread::spawn(move || commit(n))
        })
        .collect();
    if external_flush {
        others.push(thread::spawn(move || flush().unwrap()));
    }
    commit(commits[0]);
    for t in others {
        t.join().unwrap();
    }
    assert_eq!(group.durable(), commits.iter().sum::<u64>());
}

fn three_strict_committers(group: GroupCommit, external_flush: bool) {
    strict_committers(group, &[1, 1, 1], external_flush);
}

/// A group whose leader runs at most `rounds` syncs in a row.
fn group_leading(rounds: u32) -> GroupCommit {
    let mut group = GroupCommit::new(0);
    group.lead_rounds_max = rounds;
    group
}

#[test]
fn group_commit_wakes_every_committer_once_durable() {
    // One round: every sync hands over to a next leader. Two: a leader
    // also syncs again for those still waiting.
    loom::model(|| three_strict_committers(group_leading(1), false));
    loom::model(|| three_strict_committers(group_leading(2), false));
}

#[test]
fn group_commit_hands_the_lead_to_the_committer_completing_a_gather() {
    // The leader's first sync can cover the middle committer's record but
    // not the last one's; it then gathers for two waiters and offers the
    // lead; the middle committer, committing again, completes the group
    // and takes the lead (or the leader takes its offer back).
    loom::model(|| strict_committers(group_leading(2), &[1, 2, 1], false));
}

#[test]
fn group_commit_survives_a_flush_outside_the_group() {
    // A sync by someone else can make a woken next leader's own version
    // durable: it must then pass the lead on, not just return.
    loom::model(|| three_strict_committers(group_leading(1), true));
}

/// The planted model. Loom reports the deadlock by a panic and then aborts
/// the whole process while unwinding its parked threads, so this runs only
/// in a child process, started by the test below.
#[test]
#[ignore = "run in a child process by planted_missing_next_leader_is_caught"]
fn planted_missing_next_leader_model() {
    loom::model(|| {
        let mut group = group_leading(1);
        group.planted_no_next_leader = true;
        three_strict_committers(group, false);
    });
}

#[test]
fn planted_missing_next_leader_is_caught() {
    let failure = failure_in_child("planted_missing_next_leader_model");
    assert_failed_with(&failure, "deadlock");
}

/// Runs the ignored model test `name` of this module in a child process,
/// which must fail; returns what it printed. For planted models whose
/// failure aborts the process as it unwinds, which `loom_failure` cannot
/// catch.
fn failure_in_child(name: &str) -> String {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", &format!("loom_tests::{name}")])
        .args(["--ignored", "--nocapture", "--test-threads=1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "the planted model passed: {stderr}");
    stderr
}
