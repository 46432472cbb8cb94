//! [`CommitRecord`]: one committed transaction, as the WAL stores it and as
//! the per-run index summarises it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

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
#[derive(Clone, Debug, PartialEq)]
pub struct RunCommit {
    /// Commit version.
    pub version: Version,
    /// Wall-clock milliseconds at commit.
    pub wall_ms: u64,
    /// Keys written, in key order.
    pub keys: Arc<[Key]>,
}
