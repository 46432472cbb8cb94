//! [`RunIndex`]: every run's name, tags, parent, metadata, status, times
//! and commit-version span.
//!
//! ## Encoding (TypeTag::Run, namespace [`RUNS_NAMESPACE`], scope Shared)
//! - user key `b"r"` followed by the run id as a big-endian `u128`. Run ids
//!   are time-ordered (UUIDv7 layout), so a scan of `b"r"` visits runs in
//!   start order;
//! - value: `Value::Object` with fields `name` (String), `tags` (Array of
//!   String), `parent` (String run id or Null), `metadata` (any),
//!   `status` (`"running" | "completed" | "failed" | "cancelled"`),
//!   `started_ms` (Int), `ended_ms` (Int or Null), `first_version` and
//!   `last_version` (Int or Null; set by `end_run`), `digest` (Int holding
//!   the 64 bits of the replay digest, or Null; set by `end_run`; a record
//!   without the field reads as Null).
//!
//! Run records are written by [`RunId::NIL`] transactions (administration),
//! so a run's own commits hold only its own data.

use std::collections::BTreeMap;
use std::sync::Arc;

use rewinddb_engine::{
    Engine, Family, Key, Namespace, RunId, Scope, Transaction, TypeTag, Value, Version,
    wall_clock_ms,
};

use crate::access::Reader;
use crate::error::{Error, Result, check_name};

/// The reserved namespace that holds the run index.
pub const RUNS_NAMESPACE: &str = "_rewinddb/runs";

/// Most tags one run may carry.
pub const RUN_TAGS_COUNT_MAX: usize = 64;

const RUN_PREFIX: u8 = b'r';

/// A run's lifecycle status. `Running` may move to any of the three final
/// statuses; a final status never changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RunStatus {
    /// Accepting writes.
    Running,
    /// Ended successfully.
    Completed,
    /// Ended with a failure.
    Failed,
    /// Ended by cancellation.
    Cancelled,
}

impl RunStatus {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// Parse a stored name.
    pub fn parse(s: &str) -> Option<RunStatus> {
        Some(match s {
            "running" => RunStatus::Running,
            "completed" => RunStatus::Completed,
            "failed" => RunStatus::Failed,
            "cancelled" => RunStatus::Cancelled,
            _ => return None,
        })
    }

    /// True for the three final statuses.
    pub fn is_final(self) -> bool {
        self != RunStatus::Running
    }
}

/// What `begin_run` records about a new run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSpec {
    /// A name, such as the agent's (non-empty).
    pub name: String,
    /// Free-form tags.
    pub tags: Vec<String>,
    /// The run this one was started from.
    pub parent: Option<RunId>,
    /// Anything else worth keeping.
    pub metadata: Value,
}

impl RunSpec {
    /// A spec with `name`, no tags, no parent, null metadata.
    pub fn new(name: impl Into<String>) -> RunSpec {
        RunSpec {
            name: name.into(),
            tags: Vec::new(),
            parent: None,
            metadata: Value::Null,
        }
    }

    /// Add a tag.
    #[must_use]
    pub fn tag(mut self, tag: impl Into<String>) -> RunSpec {
        self.tags.push(tag.into());
        self
    }

    /// Set the parent run.
    #[must_use]
    pub fn parent(mut self, parent: RunId) -> RunSpec {
        self.parent = Some(parent);
        self
    }

    /// Set the metadata.
    #[must_use]
    pub fn metadata(mut self, metadata: impl Into<Value>) -> RunSpec {
        self.metadata = metadata.into();
        self
    }
}

/// A run as the index knows it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunInfo {
    /// Its id.
    pub id: RunId,
    /// Its name.
    pub name: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its parent run.
    pub parent: Option<RunId>,
    /// Its metadata.
    pub metadata: Value,
    /// Its status.
    pub status: RunStatus,
    /// Wall-clock milliseconds at `begin_run` (the id's timestamp).
    pub started_ms: u64,
    /// Wall-clock milliseconds when it reached a final status.
    pub ended_ms: Option<u64>,
    /// Its first commit version (None: no commit yet).
    pub first_version: Option<Version>,
    /// Its last commit version (None: no commit yet).
    pub last_version: Option<Version>,
    /// Digest of the run's writes recorded when it ended (see
    /// rewinddb-replay's `Digest`); None while running.
    pub digest: Option<u64>,
}

/// A filter for [`RunIndex::query_runs`]; every set field must match.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunQuery {
    /// Only runs with this status.
    pub status: Option<RunStatus>,
    /// Only runs carrying this tag.
    pub tag: Option<String>,
    /// Only runs whose name starts with this.
    pub name_prefix: Option<String>,
    /// Only runs started at or after this wall-clock millisecond.
    pub started_from_ms: Option<u64>,
    /// Only runs started before this wall-clock millisecond.
    pub started_before_ms: Option<u64>,
    /// At most this many runs (None: all).
    pub limit: Option<usize>,
}

impl RunQuery {
    /// Every run.
    pub fn all() -> RunQuery {
        RunQuery::default()
    }

    /// Only runs with `status`.
    #[must_use]
    pub fn status(mut self, status: RunStatus) -> RunQuery {
        self.status = Some(status);
        self
    }

    /// Only runs tagged `tag`.
    #[must_use]
    pub fn tag(mut self, tag: impl Into<String>) -> RunQuery {
        self.tag = Some(tag.into());
        self
    }

    /// Only runs whose name starts with `prefix`.
    #[must_use]
    pub fn name_prefix(mut self, prefix: impl Into<String>) -> RunQuery {
        self.name_prefix = Some(prefix.into());
        self
    }

    /// Only runs started in `[from_ms, before_ms)`.
    #[must_use]
    pub fn started_between(mut self, from_ms: u64, before_ms: u64) -> RunQuery {
        self.started_from_ms = Some(from_ms);
        self.started_before_ms = Some(before_ms);
        self
    }

    /// At most `limit` runs.
    #[must_use]
    pub fn limit(mut self, limit: usize) -> RunQuery {
        self.limit = Some(limit);
        self
    }

    fn matches(&self, run: &RunInfo) -> bool {
        self.status.is_none_or(|s| s == run.status)
            && self.tag.as_ref().is_none_or(|t| run.tags.contains(t))
            && self
                .name_prefix
                .as_ref()
                .is_none_or(|p| run.name.starts_with(p.as_str()))
            && self.started_from_ms.is_none_or(|t| run.started_ms >= t)
            && self.started_before_ms.is_none_or(|t| run.started_ms < t)
    }
}

/// The run index. Holds no state.
#[derive(Clone, Debug)]
pub struct RunIndex {
    /// Its keys' family (`RUNS_NAMESPACE`, shared, `TypeTag::Run`).
    family: Family,
}

impl RunIndex {
    /// The index in [`RUNS_NAMESPACE`].
    pub fn new() -> Result<RunIndex> {
        Ok(RunIndex {
            family: Family::new(Namespace::new(RUNS_NAMESPACE)?, Scope::Shared, TypeTag::Run),
        })
    }

    fn key(&self, run: RunId) -> Key {
        let mut user = [0u8; 17];
        user[0] = RUN_PREFIX;
        user[1..].copy_from_slice(&run.as_u128().to_be_bytes());
        self.family.key(user)
    }

    /// Record a new run (status `Running`) and return its fresh id.
    pub fn begin_run(&self, txn: &mut Transaction, spec: &RunSpec) -> Result<RunId> {
        check_spec(spec)?;
        if let Some(parent) = spec.parent {
            self.get_run(txn, parent)?;
        }
        let id = RunId::new();
        let info = RunInfo {
            id,
            name: spec.name.clone(),
            tags: spec.tags.clone(),
            parent: spec.parent,
            metadata: spec.metadata.clone(),
            status: RunStatus::Running,
            // The id's own timestamp, so the start order is the key order.
            started_ms: id.timestamp_ms(),
            ended_ms: None,
            first_version: None,
            last_version: None,
            digest: None,
        };
        txn.put(self.key(id), encode(&info))?;
        Ok(id)
    }

    /// The run's record; [`Error::UnknownRun`] if there is none. Its commit
    /// versions are those recorded at `end_run` (see [`commit_span`] for a
    /// running run).
    pub fn get_run<R: Reader + ?Sized>(&self, r: &mut R, run: RunId) -> Result<RunInfo> {
        let key = self.key(run);
        let value = r.read(&key)?.ok_or(Error::UnknownRun(run))?;
        decode(run, &value).ok_or_else(|| Error::malformed("run", &key, "unexpected fields"))
    }

    /// The run's status, read cheaply: one point read and one field.
    pub fn status<R: Reader + ?Sized>(&self, r: &mut R, run: RunId) -> Result<RunStatus> {
        let key = self.key(run);
        let value = r.read(&key)?.ok_or(Error::UnknownRun(run))?;
        value
            .get("status")
            .and_then(Value::as_str)
            .and_then(RunStatus::parse)
            .ok_or_else(|| Error::malformed("run", &key, "no status"))
    }

    /// `Ok` if `run` may write: [`RunId::NIL`] always may, any other run
    /// only while it is `Running`.
    pub fn check_writable<R: Reader + ?Sized>(&self, r: &mut R, run: RunId) -> Result<()> {
        if run.is_nil() {
            return Ok(());
        }
        match self.status(r, run)? {
            RunStatus::Running => Ok(()),
            status => Err(Error::RunEnded {
                run,
                status: status.as_str(),
            }),
        }
    }

    /// Move `run` to `status`. Only `Running -> Completed | Failed |
    /// Cancelled` is allowed; anything else is
    /// [`Error::InvalidStatusTransition`] and changes nothing. Reaching a
    /// final status records the end time and the commit span given.
    pub fn update_status(
        &self,
        txn: &mut Transaction,
        run: RunId,
        status: RunStatus,
        span: CommitSpan,
    ) -> Result<RunInfo> {
        let mut info = self.get_run(txn, run)?;
        if info.status != RunStatus::Running || status == RunStatus::Running {
            return Err(Error::InvalidStatusTransition {
                run,
                from: info.status.as_str(),
                to: status.as_str(),
            });
        }
        info.status = status;
        info.ended_ms = Some(wall_clock_ms());
        info.first_version = span.first;
        info.last_version = span.last;
        info.digest = span.digest;
        txn.put(self.key(run), encode(&info))?;
        Ok(info)
    }

    /// Runs matching `query`, ordered by start time (then id).
    pub fn query_runs<R: Reader + ?Sized>(
        &self,
        r: &mut R,
        query: &RunQuery,
    ) -> Result<Vec<RunInfo>> {
        let prefix = self.family.key([RUN_PREFIX]);
        // Ids are time-ordered, so the scan may start at the first id of
        // `started_from_ms`; the `started_ms` filter stays exact.
        let after = query.started_from_ms.filter(|&ms| ms > 0).map(|ms| {
            self.key(RunId::from_u128(
                u128::from(ms - 1) << 80 | (u128::MAX >> 48),
            ))
        });
        let mut runs = Vec::new();
        for (key, value) in r.scan(&prefix, after.as_ref(), usize::MAX)? {
            let info = run_of(&key)
                .and_then(|id| decode(id, &value))
                .ok_or_else(|| Error::malformed("run", &key, "unexpected fields"))?;
            if query.matches(&info) {
                runs.push(info);
            }
        }
        runs.sort_by_key(|r| (r.started_ms, r.id));
        runs.truncate(query.limit.unwrap_or(usize::MAX));
        Ok(runs)
    }
}

/// What `end_run` records about a run's commits: first and last commit
/// version, and the digest of its writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitSpan {
    /// First commit version (None: none yet).
    pub first: Option<Version>,
    /// Last commit version (None: none yet).
    pub last: Option<Version>,
    /// Digest of the run's writes (computed by the replay crate, which this
    /// crate does not depend on; None: not computed).
    pub digest: Option<u64>,
}

/// The run's first and last commit version, from the engine's per-run
/// commit index. An error only inside a locked transaction's closure
/// (`Error::Engine(ReentrantCommitLock)`).
pub fn commit_span(engine: &Engine, run: RunId) -> Result<CommitSpan> {
    let span = engine.run_span(run, Version::MAX)?;
    Ok(CommitSpan {
        first: span.map(|(first, _)| first),
        last: span.map(|(_, last)| last),
        digest: None,
    })
}

fn check_spec(spec: &RunSpec) -> Result<()> {
    check_name("run name", &spec.name)?;
    if spec.tags.len() > RUN_TAGS_COUNT_MAX {
        return Err(Error::InvalidArgument(format!(
            "{} tags exceeds RUN_TAGS_COUNT_MAX = {RUN_TAGS_COUNT_MAX}",
            spec.tags.len()
        )));
    }
    spec.tags.iter().try_for_each(|t| check_name("run tag", t))
}

fn run_of(key: &Key) -> Option<RunId> {
    let bytes: [u8; 16] = key.user().get(1..)?.try_into().ok()?;
    Some(RunId::from_u128(u128::from_be_bytes(bytes)))
}

fn opt_int(v: Option<u64>) -> Value {
    v.map_or(Value::Null, |x| Value::Int(x as i64))
}

fn encode(info: &RunInfo) -> Value {
    let mut o = BTreeMap::new();
    o.insert("name".to_string(), Value::from(info.name.as_str()));
    let tags: Vec<Value> = info.tags.iter().map(Value::from).collect();
    o.insert("tags".to_string(), Value::from(tags));
    let parent = info
        .parent
        .map_or(Value::Null, |p| Value::from(p.to_string()));
    o.insert("parent".to_string(), parent);
    o.insert("metadata".to_string(), info.metadata.clone());
    o.insert("status".to_string(), Value::from(info.status.as_str()));
    o.insert("started_ms".to_string(), Value::Int(info.started_ms as i64));
    o.insert("ended_ms".to_string(), opt_int(info.ended_ms));
    o.insert("first_version".to_string(), opt_int(info.first_version));
    o.insert("last_version".to_string(), opt_int(info.last_version));
    // All 64 bits, reinterpreted as i64 (Value has no u64).
    let digest = info.digest.map_or(Value::Null, |d| Value::Int(d as i64));
    o.insert("digest".to_string(), digest);
    Value::Object(Arc::new(o))
}

fn decode(id: RunId, v: &Value) -> Option<RunInfo> {
    let get_opt = |f: &str| -> Option<Option<u64>> {
        match v.get(f)? {
            Value::Null => Some(None),
            x => Some(Some(x.as_i64()? as u64)),
        }
    };
    let parent = match v.get("parent")? {
        Value::Null => None,
        p => Some(p.as_str()?.parse().ok()?),
    };
    let mut tags = Vec::new();
    for t in v.get("tags")?.as_array()? {
        tags.push(t.as_str()?.to_string());
    }
    Some(RunInfo {
        id,
        name: v.get("name")?.as_str()?.to_string(),
        tags,
        parent,
        metadata: v.get("metadata")?.clone(),
        status: RunStatus::parse(v.get("status")?.as_str()?)?,
        started_ms: v.get("started_ms")?.as_i64()? as u64,
        ended_ms: get_opt("ended_ms")?,
        first_version: get_opt("first_version")?,
        last_version: get_opt("last_version")?,
        digest: match v.get("digest") {
            None | Some(Value::Null) => None,
            Some(d) => Some(d.as_i64()? as u64),
        },
    })
}
