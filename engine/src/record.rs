//! [`CommitRecord`]: one committed transaction, as the WAL stores it and as
//! the per-run index summarises it.

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::chain::ChainRef;
use crate::types::{Key, RunId, Version};
use crate::value::Value;

/// One commit: everything a WAL record holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommitRecord {
    /// Its commit version.
    pub version: Version,
    /// The run that committed it.
    pub run: RunId,
    /// Wall-clock milliseconds at commit.
    pub wall_ms: u64,
    /// Writes in key order; `None` deletes.
    pub writes: Vec<(Key, Option<Value>)>,
}

/// The chains of one run commit's keys, in key order, inline up to two
/// (most agent commits write one or two keys: a put; an event and its log
/// head).
pub(crate) type CommitChains = SmallVec<[ChainRef; 2]>;

/// One commit of a run, as the per-run index keeps it (derived data,
/// rebuilt on recovery): enough to find the run's versions in the chains.
///
/// It holds only the chains of the keys written: each chain knows its key.
/// Up to two live inside the record, so a one- or two-key commit costs the
/// run index no allocation (an `Arc<[Key]>` and an `Arc<[ChainRef]>`
/// used to cost about 580 of an event append's 7,060 instructions), and
/// the record stays small (40 bytes), so `Engine::run_commits`, which
/// clones a run's records under the commit lock, stays a copy plus one
/// reference-count increment per key.
#[derive(Clone, Debug)]
pub struct RunCommit {
    /// Commit version.
    pub version: Version,
    /// Wall-clock milliseconds at commit.
    pub wall_ms: u64,
    chains: CommitChains,
}

impl RunCommit {
    /// A run commit from the chains of the keys it wrote, in key order.
    pub(crate) fn new(version: Version, wall_ms: u64, chains: CommitChains) -> RunCommit {
        RunCommit {
            version,
            wall_ms,
            chains,
        }
    }

    /// Keys written, in key order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &Key> + '_ {
        self.chains.iter().map(|chain| chain.key())
    }

    /// The chain of each key of [`RunCommit::keys`], same order: replay
    /// reads the run's versions through them without an index lookup per
    /// key.
    pub fn chains(&self) -> &[ChainRef] {
        &self.chains
    }
}

/// Chains are derived from keys: two run commits are equal when version,
/// time and keys are.
impl PartialEq for RunCommit {
    fn eq(&self, other: &RunCommit) -> bool {
        self.version == other.version
            && self.wall_ms == other.wall_ms
            && self.keys().eq(other.keys())
    }
}
