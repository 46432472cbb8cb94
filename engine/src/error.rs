//! The engine's error type.
//!
//! A conflict (another transaction won) is kept apart from a failure (bad
//! input, I/O, corruption): callers retry the first and propagate the rest.
//! Test it with [`Error::is_conflict`].

use crate::types::{RunId, Version};

/// Result alias for the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine. Every message names what was
/// wrong and, where there is one, the limit that was hit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another transaction committed a conflicting write first. Retry.
    #[error("transaction conflict on {key}: it changed after version {start} (now at {current})")]
    Conflict {
        /// A key (or scanned range prefix) that changed.
        key: String,
        /// The transaction's start version.
        start: Version,
        /// The newest commit version found for that key.
        current: Version,
    },
    /// A compare-and-set found another version than expected.
    #[error("compare-and-set on {key} expected version {expected} but found {current}")]
    CasMismatch {
        /// The key.
        key: String,
        /// The version the caller expected.
        expected: Version,
        /// The version actually found (0 = the key never existed).
        current: Version,
    },
    /// A namespace was empty, too long or contained NUL.
    #[error("invalid namespace {namespace:?}: {reason}")]
    InvalidNamespace {
        /// The rejected namespace (lossy).
        namespace: String,
        /// Why.
        reason: &'static str,
    },
    /// A key was longer than `key_size_bytes_max`.
    #[error("key of {size} bytes exceeds key_size_bytes_max = {max}")]
    KeyTooLarge {
        /// Size of the rejected key.
        size: usize,
        /// The configured limit.
        max: usize,
    },
    /// A value was larger than `value_size_bytes_max`.
    #[error("value of {size} bytes exceeds value_size_bytes_max = {max}")]
    ValueTooLarge {
        /// Size of the rejected value.
        size: usize,
        /// The configured limit.
        max: usize,
    },
    /// A value was nested deeper than `value_depth_max`.
    #[error("value nested {depth} deep exceeds value_depth_max = {max}")]
    ValueTooDeep {
        /// Nesting depth of the rejected value (a scalar is 1).
        depth: usize,
        /// The configured limit.
        max: usize,
    },
    /// A transaction tried to write more keys than `txn_writes_count_max`.
    #[error("transaction writes {count} keys, more than txn_writes_count_max = {max}")]
    TooManyWrites {
        /// Writes attempted.
        count: usize,
        /// The configured limit.
        max: usize,
    },
    /// A read at a version newer than anything committed.
    #[error("version {requested} is in the future: the newest visible version is {visible}")]
    VersionInFuture {
        /// Requested version.
        requested: Version,
        /// Newest visible version.
        visible: Version,
    },
    /// A read at a version whose history was already garbage collected.
    #[error("version {requested} is outside retention: history is kept from version {horizon}")]
    VersionOutsideRetention {
        /// Requested version.
        requested: Version,
        /// Oldest version that can still be read.
        horizon: Version,
    },
    /// The versions of one key that a read at `requested` needs were
    /// garbage collected (`Retention::Versions`).
    #[error("history of {key} at version {requested} was garbage collected (retention)")]
    HistoryPruned {
        /// The key.
        key: String,
        /// Requested version.
        requested: Version,
    },
    /// A transaction was used after commit or rollback.
    #[error("transaction already finished ({0})")]
    TransactionFinished(&'static str),
    /// The retry helper gave up.
    #[error("transaction gave up after {attempts} attempts; last conflict: {last}")]
    RetriesExhausted {
        /// Attempts made.
        attempts: u32,
        /// The last conflict.
        last: Box<Error>,
    },
    /// A run that does not exist.
    #[error("unknown run {0}")]
    UnknownRun(RunId),
    /// Invalid argument supplied by a caller.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An I/O operation failed.
    #[error("I/O error during {context}: {source}")]
    Io {
        /// What the engine was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Bytes on disk are damaged.
    #[error("corruption in {file} at offset {offset}: {reason}")]
    Corruption {
        /// The file.
        file: String,
        /// Byte offset of the damaged record.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Another process (or another engine in this one) has the data
    /// directory open.
    #[error("data directory {0} is locked by another open database")]
    Locked(String),
    /// A file was written by a newer format version than this build reads.
    #[error("{file} has format version {found}; this build reads versions up to {supported}")]
    UnsupportedFormat {
        /// The file.
        file: String,
        /// Its format version.
        found: u32,
        /// Newest format version this build reads.
        supported: u32,
    },
    /// The closure of [`Engine::transaction_locked`](crate::Engine::transaction_locked)
    /// called something that needs this engine's commit lock, which that
    /// closure holds (another commit, a nested locked transaction, a
    /// commit-index query, a flush or checkpoint). Refused instead of
    /// deadlocking; nothing was changed. Call it after the closure returns.
    #[error(
        "{0} was called inside Engine::transaction_locked's closure, which holds the commit lock it needs; call it after the closure returns"
    )]
    ReentrantCommitLock(&'static str),
    /// The database can no longer accept writes (e.g. after a failed fsync).
    #[error("database is read-only after an earlier failure: {0}")]
    Poisoned(String),
}

impl Error {
    /// True if this is a conflict: retrying the transaction may succeed.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }
}
