//! [`TimeIndex`]: wall-clock time of commits, sparse (one entry per
//! millisecond that saw a commit), for `Retention::Window` and time travel.

use crate::types::Version;

/// Sorted `(first version committed in that ms, ms)` pairs; times never
/// decrease (a clock that steps back is clamped to the last time seen).
#[derive(Debug, Default, Clone)]
pub(crate) struct TimeIndex {
    entries: Vec<(Version, u64)>,
}

impl TimeIndex {
    /// Record that `version` committed at `ms`; returns the (clamped) time.
    pub(crate) fn record(&mut self, version: Version, ms: u64) -> u64 {
        match self.entries.last() {
            Some(&(_, last)) if ms <= last => last,
            _ => {
                self.entries.push((version, ms));
                ms
            }
        }
    }

    /// What [`TimeIndex::record`] would return for `ms` now, recording
    /// nothing.
    pub(crate) fn clamped(&self, ms: u64) -> u64 {
        match self.entries.last() {
            Some(&(_, last)) => ms.max(last),
            None => ms,
        }
    }

    /// Newest version committed at or before `ms` (0 if none).
    pub(crate) fn version_at(&self, ms: u64, visible: Version) -> Version {
        // Entry i covers versions [entries[i].0, entries[i+1].0).
        let i = self.entries.partition_point(|&(_, t)| t <= ms);
        match self.entries.get(i) {
            Some(&(next_first, _)) => next_first.saturating_sub(1).min(visible),
            None => visible,
        }
    }

    /// Rebuild from entries a checkpoint stored (checked strictly
    /// increasing when the checkpoint was read).
    pub(crate) fn from_entries(entries: Vec<(Version, u64)>) -> TimeIndex {
        TimeIndex { entries }
    }

    /// The entries of versions `<= version`, for a checkpoint.
    pub(crate) fn entries_through(&self, version: Version) -> Vec<(Version, u64)> {
        let n = self.entries.partition_point(|&(v, _)| v <= version);
        self.entries[..n].to_vec()
    }

    /// Wall-clock time of `version` (0 if unknown).
    pub(crate) fn time_of(&self, version: Version) -> u64 {
        let i = self.entries.partition_point(|&(v, _)| v <= version);
        if i == 0 { 0 } else { self.entries[i - 1].1 }
    }
}
