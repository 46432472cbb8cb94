//! Snapshot registration: which versions live readers still need.
//!
//! Registration, the retention floor and the GC horizon live under one small
//! lock. A reader registers the version it reads at under that lock; GC
//! computes its horizon under it too, so the horizon never passes a version
//! a registered reader still needs, and `snapshot_at(v)` can never register a
//! version GC is about to cut.

use std::collections::BTreeMap;

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::sync::{AtomicU64, Ordering};
use crate::types::Version;

#[derive(Debug, Default)]
struct Live {
    /// Multiset of registered versions.
    versions: BTreeMap<Version, usize>,
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
        *live.versions.entry(v).or_insert(0) += 1;
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
        *live.versions.entry(v).or_insert(0) += 1;
        Ok(())
    }

    /// Register one more holder of an already registered version.
    pub(crate) fn register(&self, v: Version) {
        *self.live.lock().versions.entry(v).or_insert(0) += 1;
    }

    /// Drop one registration of `v`.
    pub(crate) fn release(&self, v: Version) {
        let mut live = self.live.lock();
        if let Some(n) = live.versions.get_mut(&v) {
            *n -= 1;
            if *n == 0 {
                live.versions.remove(&v);
            }
        } else {
            debug_assert!(false, "released a snapshot that was not registered");
        }
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
        let oldest_reader = match live.versions.keys().next() {
            Some(v) => *v,
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
        self.live.lock().versions.values().sum()
    }
}
