//! [`CommitRecord`]: one committed transaction, as the WAL stores it and as
//! the per-run index summarises it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::chain::VersionChain;
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

/// One commit of a run, as the per-run index keeps it (derived data,
/// rebuilt on recovery): enough to find the run's versions in the chains.
#[derive(Clone, Debug)]
pub struct RunCommit {
    /// Commit version.
    pub version: Version,
    /// Wall-clock milliseconds at commit.
    pub wall_ms: u64,
    /// Keys written, in key order.
    pub keys: Arc<[Key]>,
    /// The chain of each key of `keys`, same order: replay reads the run's
    /// versions through them without an index lookup per key.
    pub chains: Arc<[Arc<VersionChain>]>,
}

/// A key a commit wrote, with its chain.
pub(crate) type WrittenKey = (Key, Arc<VersionChain>);

impl RunCommit {
    /// A run commit from the keys it wrote, in key order, with their chains.
    pub(crate) fn new(version: Version, wall_ms: u64, written: Vec<WrittenKey>) -> RunCommit {
        let (keys, chains): (Vec<Key>, Vec<Arc<VersionChain>>) = written.into_iter().unzip();
        RunCommit {
            version,
            wall_ms,
            keys: Arc::from(keys),
            chains: Arc::from(chains),
        }
    }
}

/// Chains are derived from keys: two run commits are equal when version,
/// time and keys are.
impl PartialEq for RunCommit {
    fn eq(&self, other: &RunCommit) -> bool {
        self.version == other.version && self.wall_ms == other.wall_ms && self.keys == other.keys
    }
}
