//! Replay, diff and time travel on a [`Database`] (see rewinddb-replay).
//!
//! These methods return [`ReplayError`] (rewinddb-replay's error enum,
//! which wraps the primitives' [`crate::Error`]): a mismatch of the digest
//! recorded at `end_run` is `ReplayError::ReplayDiverged`, a step past the
//! end `ReplayError::StepOutOfRange`, a run whose history is gone
//! `ReplayError::RunOutsideRetention` or `ReplayError::HistoryPruned`.

use rewinddb_engine::{RunId, Version};
use rewinddb_primitives::{CommitSpan, Error, RunStatus, commit_span};
use rewinddb_replay::{Digest, Recorded, ReplayedRun, RunDiff};

use crate::database::Database;

/// Result of the replay methods.
pub type ReplayResult<T> = std::result::Result<T, rewinddb_replay::Error>;

impl Database {
    /// Replay `run` from its own versions: its steps, final state, views
    /// per primitive and digest. O(run size), whatever else the database
    /// holds. A run still in progress replays too and says so
    /// (`is_in_progress`, `verify() == Verification::InProgress`); an ended
    /// run's `verify()` checks the digest recorded by `end_run`.
    pub fn replay_run(&self, run: RunId) -> ReplayResult<ReplayedRun> {
        let info = match self.runs().get_run(run) {
            Err(Error::UnknownRun(r)) => return Err(rewinddb_replay::Error::UnknownRun(r)),
            other => other?,
        };
        let recorded = match (info.status, info.digest) {
            (RunStatus::Running, _) => Recorded::InProgress,
            (_, Some(d)) => Recorded::Ended(Digest(d)),
            (_, None) => Recorded::Unknown,
        };
        let commits = self.engine().run_commits(run)?;
        let held_first = commits.first().map(|c| c.version);
        // GC can drop a run's oldest commits from the engine's index (after
        // a restart); the run record still knows where the run began.
        if let Some(recorded_first) = info.first_version.filter(|&f| Some(f) != held_first) {
            return Err(rewinddb_replay::Error::CommitsMissing {
                run,
                recorded_first,
                held_first,
            });
        }
        let replay = match held_first {
            None => ReplayedRun::empty(run),
            Some(_) => rewinddb_replay::replay_commits(self.engine(), run, &commits)?,
        };
        Ok(replay.with_recorded(recorded))
    }

    /// Replay runs `a` and `b` and compare what they left, per primitive.
    pub fn diff_runs(&self, a: RunId, b: RunId) -> ReplayResult<RunDiff> {
        RunDiff::between(&self.replay_run(a)?, &self.replay_run(b)?)
    }

    /// The commit version of step `k` (0-based) of `run`: pass it to
    /// [`Database::snapshot_at`] to read every primitive right after it.
    pub fn version_at_step(&self, run: RunId, k: usize) -> ReplayResult<Version> {
        rewinddb_replay::version_at_step(self.engine(), run, k)
    }

    /// The newest version committed at or before wall-clock `ms` (0 if
    /// none): pass it to [`Database::snapshot_at`]. An error only inside
    /// the closure of `Engine::transaction_locked`
    /// (`Error::Engine(ReentrantCommitLock)`).
    pub fn version_at_time(&self, ms: u64) -> Result<Version, Error> {
        Ok(self.engine().version_at_time(ms)?)
    }

    /// What `end_run` records about the run's commits: first and last
    /// version and digest, all from one copy of the run's commit list so
    /// they describe the same commits (the digest without building the
    /// run's state, which `end_run` does not need). If the history can no
    /// longer be replayed (retention), the span comes from the per-run
    /// index and the digest is None.
    pub(crate) fn end_run_span(&self, run: RunId) -> Result<CommitSpan, Error> {
        let commits = self.engine().run_commits(run)?;
        let digest = match commits.is_empty() {
            true => Ok(ReplayedRun::empty(run).digest()),
            false => rewinddb_replay::digest_commits(self.engine(), run, &commits),
        };
        match digest {
            Ok(d) => Ok(CommitSpan {
                first: commits.first().map(|c| c.version),
                last: commits.last().map(|c| c.version),
                digest: Some(d.0),
            }),
            Err(_) => commit_span(self.engine(), run),
        }
    }
}
