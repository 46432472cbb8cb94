//! [`PointIndex`]: the hash index point reads go through, from a key's
//! digest to its [`VersionChain`]. An open-addressing table of 16-byte
//! slots `{digest, chain pointer}` with linear probing, grown (doubled)
//! by copying into a new table. Reads are lock-free; inserts and growth
//! are serialized by the index's own writer lock. A table's slots start as
//! zero bytes (empty) in a [`ZeroedArray`], on huge pages from 4 MB on, so
//! that a probe rarely misses the TLB as well as the cache.
//!
//! ## Why not `scc::HashIndex`
//! A read through `scc` loads the bucket's metadata, then the entry in its
//! data block, then the chain: two misses before the chain. Here the probe
//! lands on the slot, whose digest says at once whether the chain is
//! worth loading: one miss before the chain (measured in
//! `examples/w2_split` and W2 of the peer harness; ARCHITECTURE.md, "Point
//! index"). The table also never relocates a slot while readers may read
//! it: a grown table is a new allocation, and the old one stays whole
//! until the readers that may hold it have unpinned.
//!
//! ## Invariants (ARCHITECTURE.md, "Point index"; loom: `loom_tests`)
//! 1. **One writer at a time.** Slots are written and tables are replaced
//!    only under `writer`. Readers never write.
//! 2. **A slot is published whole.** Its chain pointer is stored before its
//!    digest, the digest with `Release`; a reader loads the digest with
//!    `Acquire` and only then the pointer. A nonzero digest is never
//!    changed and never cleared: keys are never removed.
//! 3. **A table, once readers can see it, only gains slots.** Growth fills
//!    a new table, publishes it with `Release`, and retires the old one
//!    through the epoch: a reader that loaded the old table reads it whole
//!    (every key it held) until it unpins.
//! 4. **Chains live as long as the index.** The index holds one count of
//!    every chain it was given, moved from table to table on growth and
//!    released only when the index is dropped; so a chain found through
//!    any table, old or new, outlives the guard that found it.
//! 5. **Some slot is always empty** (growth at 3/4 full), so a probe for
//!    an absent key ends.

use std::sync::PoisonError;

use crossbeam_epoch::{Atomic, Guard, Owned, Shared};
use triomphe::ArcBorrow;

use crate::chain::{ChainRef, VersionChain};
use crate::sync::{AtomicPtr, AtomicU64, AtomicUsize, Mutex, Ordering, prefetch_read};
use crate::types::Key;
#[cfg(not(loom))]
use crate::zeroed_array::{ZeroIsValid, ZeroedArray};

/// Slots of a new, empty index (few under loom, so a model grows it).
#[cfg(not(loom))]
const MIN_SLOTS: usize = 64;
#[cfg(loom)]
const MIN_SLOTS: usize = 4;

/// The hash index from key digests to chains (see the module docs).
pub(crate) struct PointIndex {
    table: Atomic<Table>,
    /// Number of chains held.
    len: AtomicUsize,
    /// Serializes inserts and growth (invariant 1).
    writer: Mutex<()>,
    /// Tables retired by growth since [`PointIndex::take_retired`] last
    /// looked: each waits in the epoch collector to be freed.
    retired: AtomicUsize,
    /// Loom tests only: a bug planted for the models to catch.
    #[cfg(all(test, loom))]
    pub(crate) planted: Planted,
}

/// Loom tests only: the bugs the models must catch.
#[cfg(all(test, loom))]
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Planted {
    None,
    /// Store a slot's digest before its chain pointer (breaks invariant 2).
    DigestFirst,
    /// Free a grown-out table at once (breaks invariant 3).
    FreeAtOnce,
}

/// One table: a power-of-two number of slots.
struct Table {
    slots: Slots,
    /// Loom's stand-in for the table's memory, as `VersionNode`'s shadow:
    /// written when the table is made and when it is dropped, read on
    /// every probe.
    #[cfg(loom)]
    shadow: Shadow,
}

struct Slot {
    /// The chain's key digest (never 0), or 0: empty.
    digest: AtomicU64,
    /// The chain, from `ChainRef::into_raw`; null while empty.
    chain: AtomicPtr<VersionChain>,
}

/// A table's slots: zeroed memory, on huge pages when large
/// (`zeroed_array.rs`: a probe then rarely misses the TLB too).
#[cfg(not(loom))]
type Slots = ZeroedArray<Slot>;
/// Under loom the atomics are loom's, which zero bytes do not make.
#[cfg(loom)]
type Slots = Box<[Slot]>;

/// `n` empty slots.
#[cfg(not(loom))]
fn empty_slots(n: usize) -> Slots {
    ZeroedArray::new(n)
}

#[cfg(loom)]
fn empty_slots(n: usize) -> Slots {
    (0..n)
        .map(|_| Slot {
            digest: AtomicU64::new(0),
            chain: AtomicPtr::new(std::ptr::null_mut()),
        })
        .collect()
}

// SAFETY: all-zero bytes are an empty slot: `AtomicU64` and `AtomicPtr`
// have the representations of `u64` (digest 0: empty) and a raw pointer
// (null), and neither needs drop (the index releases the chains itself,
// `PointIndex::drop`).
#[cfg(not(loom))]
unsafe impl ZeroIsValid for Slot {}

/// A chain found in the index, borrowed for as long as the index lives
/// (invariant 4).
pub(crate) type Found<'i> = ArcBorrow<'i, VersionChain>;

impl PointIndex {
    /// An empty index with room for `keys` keys before it grows.
    pub(crate) fn with_capacity(keys: usize) -> PointIndex {
        PointIndex {
            table: Atomic::new(Table::with_slots(slots_for(keys))),
            len: AtomicUsize::new(0),
            writer: Mutex::new(()),
            retired: AtomicUsize::new(0),
            #[cfg(all(test, loom))]
            planted: Planted::None,
        }
    }

    /// True if growth retired a table since the last call: the caller
    /// should help the epoch collector free it once it is unpinned
    /// ([`Store::free_retired`](crate::store::Store::free_retired)).
    pub(crate) fn take_retired(&self) -> bool {
        // A load first: every commit asks, and a swap is a locked
        // instruction where a load that finds 0 is not.
        self.retired.load(Ordering::Relaxed) > 0 && self.retired.swap(0, Ordering::Relaxed) > 0
    }

    /// Number of chains held.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// The chain whose key has `digest` and equals `key`, if any.
    /// Lock-free. `digest` must be [`digest_for_index`]'s.
    pub(crate) fn find<'i>(&'i self, digest: u64, key: &Key, guard: &Guard) -> Option<Found<'i>> {
        let table = self.table.load(Ordering::Acquire, guard);
        // SAFETY: the table pointer is never null (every index is made with
        // a table and growth swaps in another), and a table replaced after
        // this load is only freed once `guard` unpins (invariant 3).
        let table = unsafe { table.deref() }.touched();
        let mask = table.slots.len() - 1;
        let mut at = digest as usize & mask;
        loop {
            let slot = &table.slots[at];
            match slot.digest.load(Ordering::Acquire) {
                0 => return None,
                d if d == digest => {
                    let found = slot.found();
                    if found.key() == key {
                        return Some(found);
                    }
                }
                _ => {}
            }
            at = (at + 1) & mask;
        }
    }

    /// Ask the CPU to start loading the slot a probe for `digest` begins
    /// at, so that a probe issued a little later finds it in cache. For
    /// bulk inserts (recovery), whose probes otherwise each wait for a
    /// cache miss (43% of an install in a reopen of 9.2M keys). A hint
    /// only: no effect on what any probe returns.
    pub(crate) fn prefetch(&self, digest: u64, guard: &Guard) {
        // SAFETY: as in `find`.
        let table = unsafe { self.table.load(Ordering::Acquire, guard).deref() };
        let mask = table.slots.len() - 1;
        let at = digest as usize & mask;
        prefetch_read(&table.slots[at]);
        // A probe for a new key walks on to the first empty slot: about 3
        // slots at 5/8 full, 7 at 3/4 (linear probing), often into the
        // next line (4 slots each).
        prefetch_read(&table.slots[(at + 4) & mask]);
    }

    /// The chain of `key` (whose digest is `digest`), and whether this call
    /// made it, with `make(key)`, and inserted it. Safe to call from any thread:
    /// a found key costs a lock-free probe; inserting takes the writer lock.
    pub(crate) fn find_or_insert<'i>(
        &'i self,
        digest: u64,
        key: Key,
        make: impl FnOnce(Key) -> ChainRef,
        guard: &Guard,
    ) -> (Found<'i>, bool) {
        if let Some(found) = self.find(digest, &key, guard) {
            return (found, false);
        }
        self.insert_if_absent(digest, key, make, guard)
    }

    /// [`PointIndex::find_or_insert`] for a key the caller just found
    /// absent: skips the lock-free probe and looks again only under the
    /// writer lock.
    pub(crate) fn insert_if_absent<'i>(
        &'i self,
        digest: u64,
        key: Key,
        make: impl FnOnce(Key) -> ChainRef,
        guard: &Guard,
    ) -> (Found<'i>, bool) {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        // Another writer may have inserted it since the probe above.
        if let Some(found) = self.find(digest, &key, guard) {
            return (found, false);
        }
        let len = self.len.load(Ordering::Relaxed) + 1;
        let mut table = self.table.load(Ordering::Acquire, guard);
        // SAFETY: as in `find`; only the writer (this thread) replaces it.
        if len > unsafe { table.deref() }.slots.len() / 4 * 3 {
            table = self.grow(table, guard);
        }
        let chain = ChainRef::into_raw(make(key)).cast_mut();
        // SAFETY: as above.
        let slot = unsafe { table.deref() }.place(digest, chain, self.digest_first());
        self.len.store(len, Ordering::Relaxed);
        (slot.found(), true)
    }

    /// Visit every chain: each one held before the call at least once (a
    /// walk that meets a grown table starts over on it, so some twice),
    /// and maybe some inserted during it. Pins the epoch for a bounded
    /// number of slots at a time, never while `f` runs.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&VersionChain)) {
        const CHUNK: usize = 1024;
        let mut chains: Vec<*const VersionChain> = Vec::with_capacity(CHUNK);
        let (mut slots, mut next) = (0, 0);
        loop {
            {
                let guard = crossbeam_epoch::pin();
                // SAFETY: as in `find`.
                let table = unsafe { self.table.load(Ordering::Acquire, &guard).deref() };
                if table.slots.len() != slots {
                    // Tables only grow, so a new length is a new table:
                    // start over on it (it holds every chain).
                    (slots, next) = (table.slots.len(), 0);
                }
                let end = (next + CHUNK).min(slots);
                for slot in &table.slots[next..end] {
                    if slot.digest.load(Ordering::Acquire) != 0 {
                        chains.push(slot.chain.load(Ordering::Relaxed));
                    }
                }
                next = end;
            }
            for chain in chains.drain(..) {
                // SAFETY: a chain of the index lives as long as the index
                // (invariant 4), which `&self` borrows.
                f(unsafe { &*chain });
            }
            if next == slots {
                return;
            }
        }
    }

    /// Under the writer lock: copy every slot of `old` into a table twice
    /// its size, publish it, retire `old`. Returns the new table.
    fn grow<'g>(&self, old: Shared<'g, Table>, guard: &'g Guard) -> Shared<'g, Table> {
        // SAFETY: as in `find`; only the writer (this thread) replaces it.
        let from = unsafe { old.deref() };
        let to = Table::with_slots(from.slots.len() * 2);
        for slot in from.slots.iter() {
            let digest = slot.digest.load(Ordering::Relaxed);
            if digest != 0 {
                to.place(digest, slot.chain.load(Ordering::Relaxed), false);
            }
        }
        let to = Owned::new(to).into_shared(guard);
        self.table.store(to, Ordering::Release);
        #[cfg(all(test, loom))]
        if self.planted == Planted::FreeAtOnce {
            // SAFETY: none; the planted bug.
            drop(unsafe { old.into_owned() });
            return to;
        }
        // SAFETY: `old` is unreachable from now on: readers that loaded it
        // are pinned, and it is freed after they unpin. Its chain pointers
        // are now the new table's (dropping a table drops no chain).
        unsafe { guard.defer_destroy(old) };
        self.retired.fetch_add(1, Ordering::Relaxed);
        // Hand the old table to the collector now, not when this thread's
        // bag of deferred frees fills (64 of them): a growing index would
        // otherwise keep every table it outgrew, as much again as the
        // live one (W10 measured +33 B per key at 250K keys).
        guard.flush();
        to
    }

    #[cfg(all(test, loom))]
    fn digest_first(&self) -> bool {
        self.planted == Planted::DigestFirst
    }

    #[cfg(not(all(test, loom)))]
    fn digest_first(&self) -> bool {
        false
    }
}

impl Drop for PointIndex {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no reader or writer is left; the table was
        // made by `Owned::new` and is dropped once, here.
        let table = unsafe {
            self.table
                .load(Ordering::Relaxed, crossbeam_epoch::unprotected())
                .into_owned()
        };
        for slot in table.slots.iter() {
            let chain = slot.chain.load(Ordering::Relaxed);
            if !chain.is_null() {
                // SAFETY: the count `find_or_insert` took from
                // `ChainRef::into_raw`, released once (invariant 4).
                drop(unsafe { ChainRef::from_raw(chain) });
            }
        }
    }
}

impl Table {
    fn with_slots(slots: usize) -> Table {
        Table {
            slots: empty_slots(slots),
            #[cfg(loom)]
            shadow: Shadow::new(),
        }
    }

    /// Under the writer lock: put `chain` in the first empty slot of
    /// `digest`'s probe sequence (there is one: invariant 5).
    fn place(&self, digest: u64, chain: *mut VersionChain, digest_first: bool) -> &Slot {
        let mask = self.slots.len() - 1;
        let mut at = digest as usize & mask;
        while self.slots[at].digest.load(Ordering::Relaxed) != 0 {
            at = (at + 1) & mask;
        }
        let slot = &self.slots[at];
        if digest_first {
            slot.digest.store(digest, Ordering::Release);
            slot.chain.store(chain, Ordering::Relaxed);
        } else {
            // Invariant 2: the pointer first, then the digest that
            // publishes it.
            slot.chain.store(chain, Ordering::Relaxed);
            slot.digest.store(digest, Ordering::Release);
        }
        slot
    }

    /// Record a read of this table for loom (a no-op otherwise).
    #[inline(always)]
    fn touched(&self) -> &Table {
        #[cfg(loom)]
        self.shadow.check_alive();
        self
    }
}

impl Slot {
    /// The chain of a slot whose digest was loaded nonzero.
    #[inline]
    fn found<'i>(&self) -> Found<'i> {
        let chain = self.chain.load(Ordering::Relaxed);
        #[cfg(loom)]
        assert!(
            !chain.is_null(),
            "a slot's digest was seen before its chain"
        );
        // SAFETY: the pointer was stored before the digest this thread
        // loaded with `Acquire` (invariant 2) and came from
        // `ChainRef::into_raw`; the index keeps that count for its
        // lifetime (invariant 4), which bounds `'i` at the callers.
        unsafe { ArcBorrow::from_ptr(chain) }
    }
}

/// A key digest as the index stores it: nonzero (0 marks an empty slot).
#[inline]
pub(crate) fn digest_for_index(digest: u64) -> u64 {
    digest.max(1)
}

/// Slots for `keys` keys below the 3/4 growth point.
fn slots_for(keys: usize) -> usize {
    (keys.saturating_mul(4) / 3 + 1)
        .max(MIN_SLOTS)
        .checked_next_power_of_two()
        .unwrap_or(1 << (usize::BITS - 2))
}

/// The loom cell behind `Table::shadow`.
#[cfg(loom)]
struct Shadow(loom::cell::UnsafeCell<bool>);

// SAFETY: every access goes through loom's `with`/`with_mut`, which report
// any access not ordered with a write.
#[cfg(loom)]
unsafe impl Sync for Shadow {}

#[cfg(loom)]
impl Shadow {
    fn new() -> Shadow {
        Shadow(loom::cell::UnsafeCell::new(true))
    }

    fn check_alive(&self) {
        // SAFETY: written only through `with_mut` in `drop`; loom checks
        // that this read is ordered with that write.
        let alive = self.0.with(|p| unsafe { *p });
        assert!(alive, "read a freed index table");
    }
}

#[cfg(loom)]
impl Drop for Shadow {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            // SAFETY: loom checks that no access is concurrent with this.
            self.0.with_mut(|p| unsafe { *p = false });
        }
    }
}

#[cfg(all(test, not(loom)))]
mod test {
    use super::{PointIndex, digest_for_index, slots_for};
    use crate::chain::{ChainRef, VersionChain};
    use crate::types::{Key, Namespace, Scope, TypeTag};

    fn key(i: u32) -> Key {
        let ns = Namespace::new("t").unwrap_or_else(|e| panic!("{e}"));
        Key::new(ns, Scope::Shared, TypeTag::Kv, i.to_be_bytes())
    }

    fn insert(index: &PointIndex, digest: u64, k: Key) -> (ChainRef, bool) {
        let guard = crossbeam_epoch::pin();
        let (found, made) =
            index.find_or_insert(digest, k, |k| ChainRef::new(VersionChain::new(k)), &guard);
        (found.clone_arc(), made)
    }

    /// Keys sharing one digest (forced here; 1 in 2^64 for real digests)
    /// are told apart by their keys, through growths that copy them into
    /// new tables; a key never inserted is not found, and its probe ends.
    #[test]
    fn equal_digests_are_told_apart_by_key_through_growth() {
        let index = PointIndex::with_capacity(0);
        for i in 0..200 {
            let (chain, made) = insert(&index, 7, key(i));
            assert!(made);
            assert_eq!(chain.key(), &key(i));
        }
        let guard = crossbeam_epoch::pin();
        for i in 0..200 {
            assert_eq!(index.find(7, &key(i), &guard).unwrap().key(), &key(i));
            assert!(
                index.find(8, &key(i), &guard).is_none(),
                "found by another digest"
            );
        }
        assert!(index.find(7, &key(200), &guard).is_none());
        assert_eq!(index.len(), 200);
    }

    /// Growth says it retired a table, once, so that the store can help
    /// the epoch collector free it (`Store::free_retired`); inserts that
    /// fit say nothing.
    #[test]
    fn growth_reports_each_retired_table_once() {
        let index = PointIndex::with_capacity(0);
        assert!(!index.take_retired());
        let slots = slots_for(0);
        for i in 0..=(slots / 4 * 3) as u32 {
            insert(&index, digest_for_index(u64::from(i) + 1), key(i));
        }
        assert!(index.take_retired(), "the first growth retired a table");
        assert!(!index.take_retired());
        insert(&index, digest_for_index(1 << 40), key(1 << 30));
        assert!(!index.take_retired(), "an insert that fits retires none");
    }

    /// Inserting a key the index holds hands back its chain and makes
    /// nothing.
    #[test]
    fn a_held_key_is_not_made_again() {
        let index = PointIndex::with_capacity(0);
        let (first, made) = insert(&index, 3, key(1));
        assert!(made);
        let guard = crossbeam_epoch::pin();
        let (again, made) = index.find_or_insert(3, key(1), |_| panic!("made twice"), &guard);
        assert!(!made);
        assert!(ChainRef::ptr_eq(&first, &again.clone_arc()));
        assert_eq!(index.len(), 1);
    }

    /// The index holds one count of each chain and releases it when dropped:
    /// no chain leaks and none is freed early.
    #[test]
    fn dropping_the_index_releases_each_chain_once() {
        let index = PointIndex::with_capacity(0);
        let kept: Vec<ChainRef> = (0..100)
            .map(|i| insert(&index, digest_for_index(u64::from(i)), key(i)).0)
            .collect();
        assert!(kept.iter().all(|c| ChainRef::count(c) == 2));
        drop(index);
        assert!(kept.iter().all(|c| ChainRef::count(c) == 1));
    }

    /// Readers probing while a writer inserts (and the table grows many
    /// times under them) find every key inserted before their probe, each
    /// by its own chain. Fails if growth loses a slot or frees a table a
    /// reader holds (the latter under Miri or a sanitizer).
    #[test]
    fn readers_during_growth_find_every_earlier_key() {
        use std::sync::atomic::{AtomicU32, Ordering};
        const KEYS: u32 = 40_000;
        let index = PointIndex::with_capacity(0);
        let hasher = foldhash::fast::RandomState::default();
        let digest = |k: &Key| digest_for_index(std::hash::BuildHasher::hash_one(&hasher, k));
        let inserted = AtomicU32::new(0);
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..KEYS {
                    insert(&index, digest(&key(i)), key(i));
                    inserted.store(i + 1, Ordering::Release);
                }
            });
            s.spawn(|| {
                let mut rng = fastrand::Rng::with_seed(1);
                while inserted.load(Ordering::Acquire) < KEYS {
                    let before = inserted.load(Ordering::Acquire);
                    if before == 0 {
                        continue;
                    }
                    let i = rng.u32(..before);
                    let guard = crossbeam_epoch::pin();
                    let found = index.find(digest(&key(i)), &key(i), &guard);
                    assert_eq!(
                        found.map(|c| c.key().clone()),
                        Some(key(i)),
                        "key {i} missing"
                    );
                }
            });
        });
        let mut walked = 0;
        index.for_each(|_| walked += 1);
        assert_eq!((walked, index.len()), (KEYS as usize, KEYS as usize));
    }

    /// Growth into tables large enough for huge pages (`zeroed_array.rs`:
    /// zeroed after the advice, so every slot starts empty) keeps every
    /// key, and each chain is still released once on drop.
    #[test]
    fn keys_survive_growth_into_huge_page_tables() {
        const KEYS: u32 = 120_000;
        let slots = slots_for(KEYS as usize);
        assert!(slots * size_of::<super::Slot>() >= crate::zeroed_array::HUGE_MIN_BYTES);
        let index = PointIndex::with_capacity(0);
        let digest = |i: u32| digest_for_index(u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut first = None;
        for i in 0..KEYS {
            let (chain, made) = insert(&index, digest(i), key(i));
            assert!(made);
            first.get_or_insert(chain);
        }
        let guard = crossbeam_epoch::pin();
        for i in 0..KEYS {
            assert_eq!(
                index.find(digest(i), &key(i), &guard).unwrap().key(),
                &key(i)
            );
        }
        assert!(index.find(digest(KEYS), &key(KEYS), &guard).is_none());
        drop(guard);
        let first = first.unwrap();
        assert_eq!(ChainRef::count(&first), 2, "the index's count and ours");
        drop(index);
        assert_eq!(ChainRef::count(&first), 1);
    }

    /// A table is sized so the given number of keys fits below 3/4 full.
    #[test]
    fn tables_are_sized_below_three_quarters() {
        for keys in [0, 1, 47, 48, 49, 1000, 786_432, 786_433, 1 << 20] {
            let slots = slots_for(keys);
            assert!(slots.is_power_of_two() && slots >= 64);
            assert!(keys <= slots / 4 * 3, "{keys} keys in {slots} slots");
        }
    }
}
