//! Snapshot registration: which versions live readers still need.
//!
//! Registration, the retention floor and the GC horizon live under one small
//! lock. A reader registers the version it reads at under that lock; GC
//! computes its horizon under it too, so the horizon never passes a version
//! a registered reader still needs, and `snapshot_at(v)` can never register a
//! version GC is about to cut.

use std::collections::VecDeque;

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::sync::{AtomicU64, Ordering};
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

/// Tracks versions held by live snapshots and transactions.
#[derive(Debug, Default)]
pub(crate) struct SnapshotTracker {
    live: Mutex<Live>,
}

impl SnapshotTracker {
    /// Read the visible version and register it.
    pub(crate) fn register_visible(&self, visible: &AtomicU64) -> Version {
        let mut live = self.live.lock();
        let v = visible.load(Ordering::Acquire);
        live.versions.add(v);
        v
    }

    /// Register a past version `v`, if it is inside retention and not in the
    /// future.
    pub(crate) fn register_at(&self, v: Version, visible: &AtomicU64) -> Result<()> {
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
        Ok(())
    }

    /// Register one more holder of an already registered version.
    pub(crate) fn register(&self, v: Version) {
        self.live.lock().versions.add(v);
    }

    /// Drop one registration of `v`.
    pub(crate) fn release(&self, v: Version) {
        let released = self.live.lock().versions.remove(v);
        debug_assert!(released, "released a snapshot that was not registered");
    }

    /// GC's horizons, computed atomically with registration: the oldest
    /// version a live reader holds (or `visible` if none), and the new floor
    /// `min(that, retention_floor)`, which is recorded and returned.
    pub(crate) fn horizons(
        &self,
        visible: &AtomicU64,
        retention_floor: Version,
    ) -> (Version, Version) {
        let mut live = self.live.lock();
        let oldest_reader = match live.versions.oldest() {
            Some(v) => v,
            None => visible.load(Ordering::Acquire),
        };
        let floor = live.floor.max(oldest_reader.min(retention_floor));
        live.floor = floor;
        (oldest_reader, floor)
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

    /// Number of live registrations.
    pub(crate) fn count(&self) -> usize {
        self.live.lock().versions.holders()
    }
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
