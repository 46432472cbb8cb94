//! The primitives' error type: engine errors pass through unchanged, and
//! each primitive adds the failures of its own rules (an undefined state
//! machine, a disallowed transition, an ended run ...).

use rewinddb_engine::{RunId, Value};

/// Result alias for the primitives.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a primitive. Every message names the
/// thing that was wrong and, where there is one, the limit that was hit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An engine error (conflict, size limit, retention, I/O ...).
    #[error(transparent)]
    Engine(#[from] rewinddb_engine::Error),
    /// A name (KV key, event type, state machine name, run name, tag, span
    /// kind ...) was empty, too long or otherwise unusable.
    #[error("invalid {what} {name:?}: {reason}")]
    InvalidName {
        /// What kind of name it was.
        what: &'static str,
        /// The rejected name (at most 64 characters of it).
        name: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A caller-supplied argument was invalid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The run is not in the run index.
    #[error("unknown run {0}: begin it with begin_run first")]
    UnknownRun(RunId),
    /// The run has ended: it accepts no more writes.
    #[error("run {run} has ended ({status}): it accepts no more writes")]
    RunEnded {
        /// The run.
        run: RunId,
        /// Its final status.
        status: &'static str,
    },
    /// A run status change that the lifecycle does not allow.
    #[error("run {run} cannot go from {from} to {to}")]
    InvalidStatusTransition {
        /// The run.
        run: RunId,
        /// Its current status.
        from: &'static str,
        /// The requested status.
        to: &'static str,
    },
    /// A state machine that was never defined.
    #[error("state machine {name:?} in {namespace} is not defined")]
    StateNotDefined {
        /// Namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// `define` on a state machine that already exists.
    #[error("state machine {name:?} in {namespace} is already defined")]
    StateAlreadyDefined {
        /// Namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// A state machine `cas` expected another version.
    #[error(
        "state machine {name:?} is at version {current_version}, not {expected} (current state {current:?})"
    )]
    StateVersionMismatch {
        /// Its name.
        name: String,
        /// The version the caller expected.
        expected: u64,
        /// The version it is at.
        current_version: u64,
        /// The state it is in.
        current: Value,
    },
    /// A state machine transition not in its allowed list.
    #[error("state machine {name:?} does not allow the transition {from:?} -> {to:?}")]
    TransitionNotAllowed {
        /// Its name.
        name: String,
        /// Current state.
        from: Value,
        /// Requested state.
        to: Value,
    },
    /// A span id that the trace store does not hold.
    #[error("unknown span {seq} in run {run}")]
    UnknownSpan {
        /// The run the span id names.
        run: RunId,
        /// Its number.
        seq: u64,
    },
    /// A span whose parent belongs to another run.
    #[error("span parent {parent_seq} belongs to run {parent_run}, not to run {run}")]
    ParentInOtherRun {
        /// The run the new span belongs to.
        run: RunId,
        /// The parent's run.
        parent_run: RunId,
        /// The parent's number.
        parent_seq: u64,
    },
    /// An event log's hash chain does not verify.
    #[error("event log of run {run} in {namespace}: hash chain broken at seq {seq}")]
    ChainBroken {
        /// Namespace.
        namespace: String,
        /// The run.
        run: RunId,
        /// First sequence number whose hash does not match.
        seq: u64,
    },
    /// A stored record does not have the shape its primitive writes.
    #[error("malformed {what} record at {key}: {reason}")]
    Malformed {
        /// Which primitive's record.
        what: &'static str,
        /// Its key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A retried transaction kept conflicting.
    #[error("transaction gave up after {attempts} attempts; last conflict: {last}")]
    RetriesExhausted {
        /// Attempts made.
        attempts: u32,
        /// The last conflict.
        last: Box<Error>,
    },
    /// The requested feature is not available in this build.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl Error {
    /// True if this is a conflict: retrying the transaction may succeed.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Engine(e) if e.is_conflict())
    }

    pub(crate) fn invalid_name(what: &'static str, name: &str, reason: impl Into<String>) -> Error {
        Error::InvalidName {
            what,
            name: name.chars().take(64).collect(),
            reason: reason.into(),
        }
    }

    pub(crate) fn malformed(
        what: &'static str,
        key: &impl std::fmt::Display,
        reason: &str,
    ) -> Error {
        Error::Malformed {
            what,
            key: key.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// Longest name (event type, state machine name, run name, tag, span kind,
/// tool name, attribute key) accepted, in bytes.
pub const NAME_SIZE_BYTES_MAX: usize = 256;

/// Check a name: non-empty, at most [`NAME_SIZE_BYTES_MAX`] bytes, no NUL.
pub(crate) fn check_name(what: &'static str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid_name(what, name, "empty"));
    }
    if name.len() > NAME_SIZE_BYTES_MAX {
        return Err(Error::invalid_name(
            what,
            name,
            format!(
                "{} bytes exceeds NAME_SIZE_BYTES_MAX = {NAME_SIZE_BYTES_MAX}",
                name.len()
            ),
        ));
    }
    if name.contains('\0') {
        return Err(Error::invalid_name(what, name, "contains NUL"));
    }
    Ok(())
}
