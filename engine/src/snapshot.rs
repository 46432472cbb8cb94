//! Snapshot registration: which versions live readers still need.
//!
//! A reader at the visible version (every `begin` and `snapshot`) takes a
//! slot in a lock-free array of cache-line groups, the group picked by its
//! thread; everything else (`snapshot_at`, clones, a reader whose group is
//! full) registers under one small lock, which also holds the retention
//! floor. GC computes its horizon under that lock and meets the slots in a
//! store-load handshake (see [`SnapshotTracker::horizons`]), so the horizon
//! never passes a version a registered reader still needs, and
//! `snapshot_at(v)` can never register a version GC is about to cut.

use std::collections::VecDeque;

#[cfg(not(loom))]
use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::sync::{AtomicU64, Ordering, fence};
use crate::types::Version;

/// A multiset of versions as `(version, holders)` pairs in ascending
/// version order, with no zero counts.
///
/// Every transaction registers and releases a version, so this sits on the
/// commit-rate path. Registrations are almost always at the newest visible
/// version (the back) and releases mostly at either end, so a sorted deque
/// does both in O(1) without the node allocation and free that a `BTreeMap`
/// pays whenever it empties and refills.
#[derive(Debug, Default)]
struct VersionCounts {
    entries: VecDeque<(Version, usize)>,
}

impl VersionCounts {
    fn add(&mut self, v: Version) {
        match self.entries.back_mut() {
            Some((last, n)) if *last == v => *n += 1,
            Some((last, _)) if *last > v => match self.position(v) {
                Ok(i) => self.entries[i].1 += 1,
                Err(i) => self.entries.insert(i, (v, 1)),
            },
            _ => self.entries.push_back((v, 1)),
        }
    }

    /// Drop one holder of `v`; false if `v` was not registered.
    fn remove(&mut self, v: Version) -> bool {
        let Ok(i) = self.position(v) else {
            return false;
        };
        self.entries[i].1 -= 1;
        if self.entries[i].1 == 0 {
            // The ends directly: `VecDeque::remove` moves elements through
            // its general wrap-around copy even when there are none to move.
            if i + 1 == self.entries.len() {
                self.entries.pop_back();
            } else if i == 0 {
                self.entries.pop_front();
            } else {
                self.entries.remove(i);
            }
        }
        true
    }

    fn position(&self, v: Version) -> std::result::Result<usize, usize> {
        // The common cases first: the newest and the oldest entry.
        match (self.entries.back(), self.entries.front()) {
            (Some((last, _)), _) if *last == v => Ok(self.entries.len() - 1),
            (_, Some((first, _))) if *first == v => Ok(0),
            _ => self.entries.binary_search_by_key(&v, |(ver, _)| *ver),
        }
    }

    fn oldest(&self) -> Option<Version> {
        self.entries.front().map(|(v, _)| *v)
    }

    fn holders(&self) -> usize {
        self.entries.iter().map(|(_, n)| n).sum()
    }
}

#[derive(Debug, Default)]
struct Live {
    /// Multiset of registered versions.
    versions: VersionCounts,
    /// Reads below this version are refused (history behind it may be gone).
    floor: Version,
}

/// Under loom, loom's mutex (GC and locked registration contend for it in
/// the models), with `parking_lot`'s signature.
#[cfg(loom)]
#[derive(Debug, Default)]
struct Mutex<T>(loom::sync::Mutex<T>);

#[cfg(loom)]
impl<T> Mutex<T> {
    fn new(value: T) -> Mutex<T> {
        Mutex(loom::sync::Mutex::new(value))
    }

    fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Slots per group: one cache line of `AtomicU64`s. Under loom, one slot,
/// so that a second reader on the group takes the locked path.
#[cfg(not(loom))]
const GROUP_SLOTS: usize = 8;
#[cfg(loom)]
const GROUP_SLOTS: usize = 1;

/// Groups of slots: threads beyond this many share groups (still correct;
/// they then write common lines, as under the lock). 64 groups of 8 slots
/// are 4 KiB per engine.
#[cfg(not(loom))]
const GROUPS: usize = 64;
#[cfg(loom)]
const GROUPS: usize = 1;

/// One cache line of registration slots: 0 is free, `v + 1` holds
/// version `v` (0 is a version: the empty engine's).
#[repr(align(64))]
struct SlotGroup([AtomicU64; GROUP_SLOTS]);

/// How a snapshot registered its version, so that it can give it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Registration {
    /// Nothing to give back (released, or never registered).
    None,
    /// Slot `group * GROUP_SLOTS + index`.
    Slot(u32),
    /// One holder in the locked multiset.
    Counted,
}

/// Loom tests only: the bugs the registration model must catch.
#[cfg(all(test, loom))]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Planted {
    None,
    /// Keep a slot without checking GC's scan mark.
    NoMarkCheck,
    /// Check the scan mark without the fence between the slot's store and
    /// the mark's load.
    NoFence,
}

/// Tracks versions held by live snapshots and transactions.
pub(crate) struct SnapshotTracker {
    live: Mutex<Live>,
    slots: Box<[SlotGroup]>,
    /// The visible version when GC's latest horizon scan began (only
    /// grows: scans run under `live`'s lock, `visible` only grows). A slot
    /// registration below it may have been missed by that scan.
    scan_mark: AtomicU64,
    /// Loom tests only: a bug planted for the models to catch.
    #[cfg(all(test, loom))]
    pub(crate) planted: Planted,
}

impl Default for SnapshotTracker {
    fn default() -> SnapshotTracker {
        let group = || SlotGroup(std::array::from_fn(|_| AtomicU64::new(0)));
        SnapshotTracker {
            live: Mutex::new(Live::default()),
            slots: (0..GROUPS).map(|_| group()).collect(),
            scan_mark: AtomicU64::new(0),
            #[cfg(all(test, loom))]
            planted: Planted::None,
        }
    }
}

impl std::fmt::Debug for SnapshotTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotTracker")
            .field("live", &self.live)
            .field("scan_mark", &self.scan_mark)
            .finish_non_exhaustive()
    }
}

impl SnapshotTracker {
    /// Read the visible version and register it: in a slot of the calling
    /// thread's group if one is free and GC's scan mark allows, under the
    /// lock otherwise.
    pub(crate) fn register_visible(&self, visible: &AtomicU64) -> (Version, Registration) {
        let v = visible.load(Ordering::Acquire);
        if let Some(slot) = self.claim_slot(v) {
            if self.mark_allows(v) {
                return (v, Registration::Slot(slot));
            }
            self.slot(slot).store(0, Ordering::Release);
        }
        let mut live = self.live.lock();
        let v = visible.load(Ordering::Acquire);
        live.versions.add(v);
        (v, Registration::Counted)
    }

    /// Store `v` in a free slot of the calling thread's group.
    fn claim_slot(&self, v: Version) -> Option<u32> {
        let held = v.checked_add(1)?;
        let group = home_group();
        let slots = &self.slots[group].0;
        let index = slots.iter().position(|s| {
            s.load(Ordering::Relaxed) == 0
                && s.compare_exchange(0, held, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
        })?;
        // At most GROUPS * GROUP_SLOTS = 512.
        Some((group * GROUP_SLOTS + index) as u32)
    }

    /// After a slot was given `v`: true unless a GC scan may have missed
    /// the slot and set its horizon above `v` (the reader's half of the
    /// handshake in [`SnapshotTracker::horizons`]).
    fn mark_allows(&self, v: Version) -> bool {
        #[cfg(all(test, loom))]
        match self.planted {
            Planted::NoMarkCheck => return true,
            Planted::NoFence => return v >= self.scan_mark.load(Ordering::Acquire),
            Planted::None => {}
        }
        fence(Ordering::SeqCst);
        v >= self.scan_mark.load(Ordering::Acquire)
    }

    fn slot(&self, slot: u32) -> &AtomicU64 {
        let slot = slot as usize;
        &self.slots[slot / GROUP_SLOTS].0[slot % GROUP_SLOTS]
    }

    /// Register a past version `v`, if it is inside retention and not in the
    /// future.
    pub(crate) fn register_at(&self, v: Version, visible: &AtomicU64) -> Result<Registration> {
        let mut live = self.live.lock();
        let newest = visible.load(Ordering::Acquire);
        if v > newest {
            return Err(Error::VersionInFuture {
                requested: v,
                visible: newest,
            });
        }
        if v < live.floor {
            return Err(Error::VersionOutsideRetention {
                requested: v,
                horizon: live.floor,
            });
        }
        live.versions.add(v);
        Ok(Registration::Counted)
    }

    /// Register one more holder of an already registered version.
    pub(crate) fn register(&self, v: Version) -> Registration {
        self.live.lock().versions.add(v);
        Registration::Counted
    }

    /// Give back `registration` of `v`.
    pub(crate) fn release(&self, v: Version, registration: Registration) {
        match registration {
            Registration::None => {}
            Registration::Slot(slot) => {
                let slot = self.slot(slot);
                debug_assert_eq!(
                    slot.load(Ordering::Relaxed),
                    v + 1,
                    "released a slot not {v}'s"
                );
                slot.store(0, Ordering::Release);
            }
            Registration::Counted => {
                let released = self.live.lock().versions.remove(v);
                debug_assert!(released, "released a snapshot that was not registered");
            }
        }
    }

    /// GC's horizons, computed atomically with locked registration and in
    /// a handshake with slot registration: the oldest version a live reader
    /// holds (or `visible` if none), and the new floor `min(that,
    /// retention_floor)`, which is recorded and returned.
    ///
    /// The handshake: GC stores the scan mark (`visible` now), then a
    /// `SeqCst` fence, then reads every slot; a reader stores its slot,
    /// then a `SeqCst` fence, then reads the mark. The fences are in one
    /// total order: if the reader's comes first, this scan sees its slot;
    /// if GC's does, the reader sees the mark, and keeps the slot only if
    /// its version is at or above it. Either way the oldest reader
    /// returned here is at or below every registered version.
    pub(crate) fn horizons(
        &self,
        visible: &AtomicU64,
        retention_floor: Version,
    ) -> (Version, Version) {
        let mut live = self.live.lock();
        let mark = visible.load(Ordering::Acquire);
        self.scan_mark.store(mark, Ordering::Release);
        fence(Ordering::SeqCst);
        let oldest_reader = [Some(mark), self.held_slots().min(), live.versions.oldest()]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(mark);
        let floor = live.floor.max(oldest_reader.min(retention_floor));
        live.floor = floor;
        (oldest_reader, floor)
    }

    /// Versions held in slots now.
    fn held_slots(&self) -> impl Iterator<Item = Version> + '_ {
        self.slots
            .iter()
            .flat_map(|group| &group.0)
            .map(|s| s.load(Ordering::Acquire))
            .filter(|&held| held != 0)
            .map(|held| held - 1)
    }

    /// Oldest readable version.
    pub(crate) fn floor(&self) -> Version {
        self.live.lock().floor
    }

    /// Raise the floor (recovery of a pruned checkpoint).
    pub(crate) fn raise_floor(&self, v: Version) {
        let mut live = self.live.lock();
        live.floor = live.floor.max(v);
    }

    /// Number of live registrations (slots read one by one: exact when
    /// no snapshot is being taken or dropped meanwhile).
    pub(crate) fn count(&self) -> usize {
        self.live.lock().versions.holders() + self.held_slots().count()
    }
}

/// The slot group of the calling thread: threads are numbered in the order
/// they first register, so up to [`GROUPS`] threads each write lines of
/// their own.
#[cfg(not(loom))]
fn home_group() -> usize {
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static HOME: usize = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % GROUPS;
    }
    // Group 0 for a thread whose thread-locals are being torn down (a
    // snapshot taken in a thread-local destructor).
    HOME.try_with(|home| *home).unwrap_or(0)
}

/// Under loom, one group for every thread.
#[cfg(loom)]
fn home_group() -> usize {
    0
}

#[cfg(test)]
mod test {
    use std::collections::BTreeMap;

    use super::VersionCounts;

    /// The deque multiset agrees with a `BTreeMap` model under registrations
    /// at the newest version (mostly), at past versions, and releases
    /// anywhere: same oldest version, same holder count, same refusals.
    #[test]
    fn version_counts_match_a_btreemap_model() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut counts = VersionCounts::default();
        let mut model: BTreeMap<u64, usize> = BTreeMap::new();
        let mut newest = 0u64;
        for _ in 0..20_000 {
            match rng.u8(0..10) {
                0..=3 => {
                    newest += u64::from(rng.bool());
                    counts.add(newest);
                    *model.entry(newest).or_insert(0) += 1;
                }
                4 => {
                    let v = rng.u64(0..=newest);
                    counts.add(v);
                    *model.entry(v).or_insert(0) += 1;
                }
                _ => {
                    let v = match rng.u8(0..3) {
                        0 => model.keys().next().copied().unwrap_or(0),
                        1 => newest,
                        _ => rng.u64(0..=newest + 1),
                    };
                    let in_model = match model.get_mut(&v) {
                        Some(n) => {
                            *n -= 1;
                            if *n == 0 {
                                model.remove(&v);
                            }
                            true
                        }
                        None => false,
                    };
                    assert_eq!(counts.remove(v), in_model, "remove({v})");
                }
            }
            assert_eq!(counts.oldest(), model.keys().next().copied());
            assert_eq!(counts.holders(), model.values().sum::<usize>());
            assert!(counts.entries.iter().all(|(_, n)| *n > 0));
            assert!(
                counts
                    .entries
                    .iter()
                    .zip(counts.entries.iter().skip(1))
                    .all(|(a, b)| a.0 < b.0)
            );
        }
    }
}
