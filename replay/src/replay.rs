//! [`replay_run`]: rebuild the state a run produced from its own versions.
//!
//! Cost is O(run size): the engine's per-run index lists the run's commits,
//! the keys each wrote and their chains; replay reads exactly those
//! versions (no index lookup: a walk down each key's chain to the commit,
//! which passes only versions written to that same key after it), about
//! 1,024 keys at a time through `Engine::versions_written_into`. It never
//! scans the store and never looks at other runs' keys.

use std::ops::Bound;

use rewinddb_engine::{
    Engine, Error as EngineError, Progress, ProgressCounter, RunCommit, RunId, TypeTag, Value,
    Version,
};
use serde::{Deserialize, Serialize};

use crate::digest::{Digest, DigestBuilder, canonical_value};
use crate::error::{Error, Result};
use crate::key::RunKey;
use crate::view::RunView;

/// One write of a step: `value == None` deletes the key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Write {
    /// The key, relative to the replayed run.
    pub key: RunKey,
    /// The value written, or `None` for a delete.
    pub value: Option<Value>,
}

/// One commit of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Position among the run's commits, from 0.
    pub index: usize,
    /// The commit version (use with `snapshot_at` to see the whole database
    /// as it was right after this step).
    pub version: Version,
    /// Wall-clock milliseconds at commit.
    pub wall_ms: u64,
    /// The writes, in [`RunKey`] order.
    pub writes: Vec<Write>,
}

/// The state a run produced: every key it wrote and the last value it
/// wrote there (keys it deleted last are absent). Only this run's writes
/// count: other runs' writes to shared keys are not in it.
///
/// Kept as one vector sorted by [`RunKey`]: a replay builds it with one
/// stable sort of all its writes (each step is already a sorted run, so
/// the sort merges them), instead of one ordered-map insert per write.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunState {
    entries: Vec<(RunKey, Value)>,
}

impl RunState {
    /// The state after `steps`, applied in order. O(w log s) key
    /// comparisons for w writes in s steps: each step holds its writes in
    /// key order, so the steps are merged, not sorted again.
    pub fn of_steps(steps: &[Step]) -> RunState {
        let writes = merge_steps(steps);
        let mut entries = Vec::with_capacity(writes.len());
        for (i, w) in writes.iter().enumerate() {
            // Writes to one key are adjacent, in step order: the last wins.
            let superseded = writes.get(i + 1).is_some_and(|next| next.key == w.key);
            if let (false, Some(v)) = (superseded, &w.value) {
                entries.push((w.key.clone(), v.clone()));
            }
        }
        RunState { entries }
    }

    /// Apply one step's writes: one merge pass, O(state + step) (steps
    /// hold their writes in key order; [`RunState::of_steps`] builds a
    /// whole replay at once).
    pub fn apply(&mut self, step: &Step) {
        let mut updates: Vec<&Write> = step.writes.iter().collect();
        updates.sort_by(|a, b| a.key.cmp(&b.key));
        let old = std::mem::take(&mut self.entries);
        let mut merged = Vec::with_capacity(old.len() + updates.len());
        let mut old = old.into_iter().peekable();
        for (i, w) in updates.iter().enumerate() {
            while let Some(entry) = old.next_if(|(k, _)| *k < w.key) {
                merged.push(entry);
            }
            old.next_if(|(k, _)| *k == w.key);
            let superseded = updates.get(i + 1).is_some_and(|next| next.key == w.key);
            if let (false, Some(v)) = (superseded, &w.value) {
                merged.push((w.key.clone(), v.clone()));
            }
        }
        merged.extend(old);
        self.entries = merged;
    }

    /// The value the run left at `key`.
    pub fn get(&self, key: &RunKey) -> Option<&Value> {
        let i = self.entries.binary_search_by(|(k, _)| k.cmp(key)).ok()?;
        Some(&self.entries[i].1)
    }

    /// Every key and value, in [`RunKey`] order.
    pub fn iter(&self) -> impl Iterator<Item = (&RunKey, &Value)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// The keys of one primitive, in order.
    pub fn of_tag(&self, tag: TypeTag) -> impl Iterator<Item = (&RunKey, &Value)> {
        let start = self.entries.partition_point(|(k, _)| k.tag < tag);
        let end = self.entries.partition_point(|(k, _)| k.tag <= tag);
        self.entries[start..end].iter().map(|(k, v)| (k, v))
    }

    /// Entries from `start` on, in order.
    pub(crate) fn starting_at(
        &self,
        start: Bound<&RunKey>,
    ) -> impl Iterator<Item = (&RunKey, &Value)> {
        let first = match start {
            Bound::Included(s) => self.entries.partition_point(|(k, _)| k < s),
            Bound::Excluded(s) => self.entries.partition_point(|(k, _)| k <= s),
            Bound::Unbounded => 0,
        };
        self.entries[first..].iter().map(|(k, v)| (k, v))
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if the run left no key.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Every write of `steps` in key order, writes to one key in step order:
/// bottom-up merges of adjacent steps, each pass halving their number.
/// A step whose writes are not in key order (a hand-built `Step`) is
/// sorted first.
fn merge_steps(steps: &[Step]) -> Vec<&Write> {
    let mut items: Vec<&Write> = Vec::with_capacity(steps.iter().map(|s| s.writes.len()).sum());
    let mut bounds = vec![0];
    for step in steps {
        let start = items.len();
        items.extend(&step.writes);
        let run = &mut items[start..];
        if !run.is_sorted_by(|a, b| a.key <= b.key) {
            run.sort_by(|a, b| a.key.cmp(&b.key));
        }
        bounds.push(items.len());
    }
    let mut merged = Vec::with_capacity(items.len());
    while bounds.len() > 2 {
        merged.clear();
        let mut next = vec![0];
        for pair in bounds.windows(3).step_by(2) {
            merge_two(
                &items[pair[0]..pair[1]],
                &items[pair[1]..pair[2]],
                &mut merged,
            );
            next.push(pair[2]);
        }
        if bounds.len() % 2 == 0 {
            // An odd number of runs: the last one has no partner this pass.
            let last = bounds[bounds.len() - 2];
            merged.extend_from_slice(&items[last..]);
            next.push(items.len());
        }
        std::mem::swap(&mut items, &mut merged);
        bounds = next;
    }
    items
}

/// Merge two key-ordered runs into `out`; on equal keys `a`'s come first.
fn merge_two<'w>(a: &[&'w Write], b: &[&'w Write], out: &mut Vec<&'w Write>) {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if b[j].key < a[i].key {
            out.push(b[j]);
            j += 1;
        } else {
            out.push(a[i]);
            i += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
}

/// What the run index says about a replayed run, for [`ReplayedRun::verify`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Recorded {
    /// Replayed from the engine alone: nothing is known about the run's end.
    Unknown,
    /// The run has not ended: there is no digest to check yet.
    InProgress,
    /// The run ended and `end_run` recorded this digest.
    Ended(Digest),
}

/// The outcome of a successful [`ReplayedRun::verify`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verification {
    /// The replay's digest equals the one recorded at `end_run`.
    Matched(Digest),
    /// The run is still in progress: nothing to check yet.
    InProgress,
    /// No record of the run's end is known (engine-only replay).
    NotRecorded,
}

/// A replayed run: its steps, the state it produced and its digest.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayedRun {
    run: RunId,
    steps: Vec<Step>,
    state: RunState,
    digest: Digest,
    recorded: Recorded,
}

impl ReplayedRun {
    /// A run that exists but has committed nothing yet.
    pub fn empty(run: RunId) -> ReplayedRun {
        ReplayedRun {
            run,
            steps: Vec::new(),
            state: RunState::default(),
            digest: DigestBuilder::new(run).finish(),
            recorded: Recorded::Unknown,
        }
    }

    /// The same replay, with what the run index says about the run's end.
    #[must_use]
    pub fn with_recorded(mut self, recorded: Recorded) -> ReplayedRun {
        self.recorded = recorded;
        self
    }

    /// The replayed run.
    pub fn run(&self) -> RunId {
        self.run
    }

    /// The run's commits, in order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The state the run produced (after its last step).
    pub fn state(&self) -> &RunState {
        &self.state
    }

    /// Digest of the run's writes (see [`crate::digest`] for the encoding).
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// What the run index says about the run's end.
    pub fn recorded(&self) -> Recorded {
        self.recorded
    }

    /// True if the run has not ended yet.
    pub fn is_in_progress(&self) -> bool {
        self.recorded == Recorded::InProgress
    }

    /// Total writes over all steps.
    pub fn write_count(&self) -> usize {
        self.steps.iter().map(|s| s.writes.len()).sum()
    }

    /// The run's state right after step `k` (0-based): only steps `0..=k`
    /// applied. O(size of those steps).
    pub fn at_step(&self, k: usize) -> Result<RunState> {
        self.check_step(k)?;
        Ok(RunState::of_steps(&self.steps[..=k]))
    }

    /// The final state read back per primitive, without wall-clock times.
    pub fn view(&self) -> Result<RunView> {
        RunView::of(&self.state, self.run)
    }

    /// The state after step `k`, read back per primitive.
    pub fn view_at_step(&self, k: usize) -> Result<RunView> {
        RunView::of(&self.at_step(k)?, self.run)
    }

    /// Each step's writes with canonical values (no absolute versions, no
    /// wall-clock times): what must be identical when the same workload
    /// runs in two databases.
    pub fn canonical_steps(&self) -> Vec<Vec<Write>> {
        self.steps
            .iter()
            .map(|s| {
                s.writes
                    .iter()
                    .map(|w| Write {
                        key: w.key.clone(),
                        value: w
                            .value
                            .as_ref()
                            .map(|v| canonical_value(&w.key, v).into_owned()),
                    })
                    .collect()
            })
            .collect()
    }

    /// The commit version of step `k`: `snapshot_at` it to read the whole
    /// database right after that step.
    pub fn version_at_step(&self, k: usize) -> Result<Version> {
        self.check_step(k)?;
        Ok(self.steps[k].version)
    }

    /// Check the digest against the one recorded at `end_run`: an error on
    /// a mismatch, never a silent pass.
    pub fn verify(&self) -> Result<Verification> {
        match self.recorded {
            Recorded::Ended(expected) => self.verify_against(expected).map(Verification::Matched),
            Recorded::InProgress => Ok(Verification::InProgress),
            Recorded::Unknown => Ok(Verification::NotRecorded),
        }
    }

    /// Check the digest against `expected`.
    pub fn verify_against(&self, expected: Digest) -> Result<Digest> {
        if expected == self.digest {
            Ok(expected)
        } else {
            Err(Error::ReplayDiverged {
                run: self.run,
                expected,
                actual: self.digest,
            })
        }
    }

    fn check_step(&self, k: usize) -> Result<()> {
        if k < self.steps.len() {
            Ok(())
        } else {
            Err(Error::StepOutOfRange {
                run: self.run,
                step: k,
                steps: self.steps.len(),
            })
        }
    }
}

/// Replay `run` from its own versions. `Error::UnknownRun` if the engine
/// holds no commit of it; `Error::RunOutsideRetention` or
/// `Error::HistoryPruned` if GC already took part of its history.
pub fn replay_run(engine: &Engine, run: RunId) -> Result<ReplayedRun> {
    replay_commits(engine, run, &engine.run_commits(run)?)
}

/// [`replay_run`] from `commits`, the run's commits as
/// `Engine::run_commits(run)` listed them: a caller that already holds
/// that list saves copying it again under the engine's commit lock.
pub fn replay_commits(engine: &Engine, run: RunId, commits: &[RunCommit]) -> Result<ReplayedRun> {
    let (steps, digest) = read_steps(engine, run, commits)?;
    Ok(ReplayedRun {
        run,
        state: RunState::of_steps(&steps),
        steps,
        digest,
        recorded: Recorded::Unknown,
    })
}

/// The digest a replay of `run` from `commits` would give, with the same
/// errors, without building its state: what `end_run` records.
pub fn digest_commits(engine: &Engine, run: RunId, commits: &[RunCommit]) -> Result<Digest> {
    read_steps(engine, run, commits).map(|(_, digest)| digest)
}

/// Read every step of `run` from its commits and digest them.
fn read_steps(engine: &Engine, run: RunId, commits: &[RunCommit]) -> Result<(Vec<Step>, Digest)> {
    let Some(first) = commits.first() else {
        return Err(Error::UnknownRun(run));
    };
    check_retention(engine, run, first.version)?;
    let writes_total = commits.iter().map(|c| c.keys().len() as u64).sum();
    let mut progress = ProgressCounter::new(engine.config().progress.as_ref(), |writes_done| {
        Progress::Replay {
            run,
            writes_done,
            writes_total,
        }
    });
    let mut digest = DigestBuilder::new(run);
    let mut steps = Vec::with_capacity(commits.len());
    let mut values = Vec::with_capacity(READ_BATCH_KEYS);
    for batch in batches(commits) {
        values.clear();
        engine.versions_written_into(batch, &mut values);
        let mut values = values.drain(..);
        for commit in batch {
            let index = steps.len();
            let written = values.by_ref().take(commit.keys().len());
            let step = read_step(run, index, commit, written)?;
            for w in &step.writes {
                digest.write(index, &w.key, w.value.as_ref())?;
                progress.tick();
            }
            steps.push(step);
        }
    }
    progress.finish();
    Ok((steps, digest.finish()))
}

/// The commit version of step `k` of `run`, from the per-run index alone.
pub fn version_at_step(engine: &Engine, run: RunId, k: usize) -> Result<Version> {
    let commits = engine.run_commits(run)?;
    if commits.is_empty() {
        return Err(Error::UnknownRun(run));
    }
    commits
        .get(k)
        .map(|c| c.version)
        .ok_or(Error::StepOutOfRange {
            run,
            step: k,
            steps: commits.len(),
        })
}

/// Refuse a run whose first commit lies behind the retention floor:
/// registering a snapshot there is the engine's own check.
fn check_retention(engine: &Engine, run: RunId, first: Version) -> Result<()> {
    match engine.snapshot_at(first) {
        Ok(_) => Ok(()),
        Err(EngineError::VersionOutsideRetention { requested, horizon }) => {
            Err(Error::RunOutsideRetention {
                run,
                version: requested,
                horizon,
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Keys read per `Engine::versions_written_into` call: large enough for
/// the chain reads' cache misses to overlap, small enough that its guard
/// does not hold back reclamation for long.
const READ_BATCH_KEYS: usize = 1024;

/// Consecutive slices of `commits` with about `READ_BATCH_KEYS` keys each
/// (at least one commit per slice).
fn batches(commits: &[RunCommit]) -> impl Iterator<Item = &[RunCommit]> {
    let mut rest = commits;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut keys = 0;
        let n = rest
            .iter()
            .take_while(|c| {
                keys += c.keys().len();
                keys <= READ_BATCH_KEYS
            })
            .count()
            .max(1);
        let (batch, tail) = rest.split_at(n);
        rest = tail;
        Some(batch)
    })
}

fn read_step(
    run: RunId,
    index: usize,
    commit: &RunCommit,
    values: impl Iterator<Item = Option<Option<Value>>>,
) -> Result<Step> {
    let mut writes = Vec::with_capacity(commit.keys().len());
    for (key, value) in commit.keys().zip(values) {
        // The index says this commit wrote `key`, so a missing version can
        // only mean GC unlinked it.
        let value = value.ok_or_else(|| Error::HistoryPruned {
            run,
            version: commit.version,
            key: key.to_string(),
        })?;
        writes.push(Write {
            key: RunKey::relative_to(key, run),
            value,
        });
    }
    writes.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(Step {
        index,
        version: commit.version,
        wall_ms: commit.wall_ms,
        writes,
    })
}
