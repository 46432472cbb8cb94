//! The replay crate's error type.

use rewinddb_engine::{RunId, Version};

use crate::digest::Digest;

/// Result alias for replay.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while replaying, stepping or diffing a run.
/// Every message names the run and, where there is one, the step or version.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The engine refused a read.
    #[error(transparent)]
    Engine(#[from] rewinddb_engine::Error),
    /// A primitive could not read a replayed record (malformed record).
    #[error(transparent)]
    Primitives(#[from] rewinddb_primitives::Error),
    /// No commit of this run is known to the database.
    #[error("unknown run {0}: the database holds no commit of it")]
    UnknownRun(RunId),
    /// `at_step(k)` or `version_at_step(k)` with `k` past the last step.
    #[error("run {run} has {steps} steps (numbered 0 to {steps} - 1); step {step} is past the end")]
    StepOutOfRange {
        /// The run.
        run: RunId,
        /// The step asked for.
        step: usize,
        /// How many steps the run has.
        steps: usize,
    },
    /// The run's history starts behind the retention floor.
    #[error(
        "run {run} is outside retention: its first commit is version {version}, history is kept from version {horizon}"
    )]
    RunOutsideRetention {
        /// The run.
        run: RunId,
        /// The run's oldest commit.
        version: Version,
        /// Oldest version still readable.
        horizon: Version,
    },
    /// A version the run wrote was garbage collected (`Retention::Versions`).
    #[error(
        "history of run {run} was garbage collected: the version of {key} written by commit {version} is gone"
    )]
    HistoryPruned {
        /// The run.
        run: RunId,
        /// The commit whose version is gone.
        version: Version,
        /// The key (printed).
        key: String,
    },
    /// The run index recorded an earlier first commit than the engine
    /// still holds: older commits of the run were garbage collected.
    #[error(
        "history of run {run} is incomplete: it first committed at version {recorded_first}, \
         the oldest of its commits still held is {held_first:?} (garbage collected behind retention)"
    )]
    CommitsMissing {
        /// The run.
        run: RunId,
        /// First commit version recorded by `end_run`.
        recorded_first: Version,
        /// Oldest commit of the run the engine still indexes (None: none).
        held_first: Option<Version>,
    },
    /// Replay produced another digest than the one recorded at `end_run`.
    #[error(
        "replay of run {run} diverged: end_run recorded digest {expected}, replay computed {actual}"
    )]
    ReplayDiverged {
        /// The run.
        run: RunId,
        /// Digest recorded when the run ended.
        expected: Digest,
        /// Digest of the replay.
        actual: Digest,
    },
    /// A write could not be encoded for the digest.
    #[error("could not encode a write of run {run} for its digest: {reason}")]
    Encode {
        /// The run.
        run: RunId,
        /// The encoder's message.
        reason: String,
    },
}
