//! # rewinddb
//!
//! An embedded, in-memory database for AI-agent state. Agents keep memory
//! (KV), append hash-chained events, move state machines, record traces,
//! and every write belongs to a **run**. Every key keeps its history, so
//! any past state can be read through [`Database::snapshot_at`].
//!
//! Every primitive is reached through a handle bound to where it works:
//! - `db.kv(ns)`, `db.events(ns, run)` ...: each write is its own
//!   transaction (retried on conflict), each read sees the newest state;
//! - `txn.kv(ns)`, `txn.events(ns)` ... inside [`Database::transaction`]
//!   or [`Database::begin`]: all writes commit or vanish together;
//! - `snap.kv(ns)`, `snap.events(ns, run)` ... on a [`Snapshot`]: reads
//!   at that version.
//!
//! ## Runs
//! ```
//! use rewinddb::{Database, RunQuery, RunSpec, RunStatus};
//!
//! let db = Database::in_memory()?;
//! let run = db.begin_run(RunSpec::new("support-bot").tag("exp-7"))?;
//! db.kv("acme/bot").put(run, "greeting", "hi")?;
//! let info = db.end_run(run, RunStatus::Completed)?;
//! assert_eq!(info.first_version, info.last_version);          // one commit
//! let done = db.runs().query_runs(&RunQuery::all().tag("exp-7").status(RunStatus::Completed))?;
//! assert_eq!(done[0].id, run);
//! assert!(db.kv("acme/bot").put(run, "greeting", "again").is_err()); // ended
//! # Ok::<(), rewinddb::Error>(())
//! ```
//!
//! ## KV
//! ```
//! use rewinddb::{Database, RunId, RunSpec};
//!
//! let db = Database::in_memory()?;
//! let run = db.begin_run(RunSpec::new("bot"))?;
//! let kv = db.kv("acme/bot");                      // memory shared by runs
//! kv.put(run, "user:42:name", "Ada")?;
//! kv.put(run, "user:42:lang", "en")?;
//! kv.put(RunId::NIL, "config", 7)?;                // administration
//! assert_eq!(kv.get("user:42:name")?.unwrap().as_str(), Some("Ada"));
//! let page = kv.list_from("user:42:", None, 1)?;   // ordered, paged
//! assert_eq!(page.entries[0].0, "user:42:lang");
//! let rest = kv.list_from("user:42:", page.next.as_deref(), 10)?;
//! assert_eq!(rest.entries[0].0, "user:42:name");
//! db.kv_run("acme/bot", run).put(run, "scratch", true)?; // the run's own
//! assert_eq!(kv.get("scratch")?, None);
//! # Ok::<(), rewinddb::Error>(())
//! ```
//!
//! ## Event log
//! ```
//! use rewinddb::{Database, RunSpec, Value};
//!
//! let db = Database::in_memory()?;
//! let run = db.begin_run(RunSpec::new("bot"))?;
//! let log = db.events("acme/bot", run);
//! assert_eq!(log.append("tool.called", "search")?, 0);
//! assert_eq!(log.append("tool.returned", 3)?, 1);
//! let events = log.read(0..2)?;
//! assert_eq!(events[1].payload, Value::Int(3));
//! assert_eq!(log.head()?.last_hash, events[1].hash);
//! log.verify()?;                                    // the hash chain holds
//! # Ok::<(), rewinddb::Error>(())
//! ```
//!
//! ## State machine
//! ```
//! use rewinddb::{Database, Error, RunId, Value};
//!
//! let db = Database::in_memory()?;
//! let sm = db.state("acme/bot");
//! let allowed = vec![("idle".into(), "busy".into()), ("busy".into(), "idle".into())];
//! assert_eq!(sm.define(RunId::NIL, "worker", "idle", Some(allowed))?, 1);
//! let v = sm.cas(RunId::NIL, "worker", 1, "busy")?;               // -> version 2
//! match sm.cas(RunId::NIL, "worker", 1, "idle") {                 // stale version
//!     Err(Error::StateVersionMismatch { current_version, current, .. }) => {
//!         assert_eq!((current_version, current), (v, Value::from("busy")));
//!     }
//!     other => panic!("{other:?}"),
//! }
//! let now = sm.transition(RunId::NIL, "worker", |_| "idle")?;    // retried on conflict
//! assert_eq!(now.version, 3);
//! assert!(matches!(sm.cas(RunId::NIL, "worker", 3, "gone"), Err(Error::TransitionNotAllowed { .. })));
//! assert!(matches!(sm.read_state("never"), Err(Error::StateNotDefined { .. })));
//! # Ok::<(), rewinddb::Error>(())
//! ```
//!
//! ## Trace store
//! ```
//! use rewinddb::{Database, RunSpec, SpanSpec, Value};
//!
//! let db = Database::in_memory()?;
//! let run = db.begin_run(RunSpec::new("bot"))?;
//! let traces = db.traces("acme/bot", run);
//! let plan = traces.record(SpanSpec::decision(
//!     vec!["search".into(), "answer".into()], "search", "not sure yet"))?;
//! let call = traces.record(SpanSpec::tool_call("search", "weather paris").parent(plan).attr("attempt", 1))?;
//! traces.end(call, Some(Ok(Value::from("sunny"))))?;
//! traces.record(SpanSpec::query("paris", vec!["doc-1".into()]).parent(plan))?;
//! assert_eq!(traces.children(plan)?.len(), 2);
//! assert_eq!(traces.by_kind("tool_call")?[0].end_ms.is_some(), true);
//! let tree = traces.tree()?;
//! assert_eq!((tree.len(), tree[0].children.len()), (1, 2));
//! # Ok::<(), rewinddb::Error>(())
//! ```
//!
//! ## Durability, replay and diff
//! ```
//! use rewinddb::{Config, Database, Durability, RunSpec, RunStatus, Verification};
//!
//! let dir = std::env::temp_dir().join(format!("rewinddb-facade-doc-{}", std::process::id()));
//! let config = Config::new(&dir).durability(Durability::Strict); // acknowledged after fsync
//! let (a, b) = {
//!     let db = Database::open(config.clone())?;
//!     let mut runs = Vec::new();
//!     for answer in ["sun", "rain"] {
//!         let run = db.begin_run(RunSpec::new("forecast"))?;
//!         db.events("acme/bot", run).append("asked", "weather")?;
//!         db.kv_run("acme/bot", run).put(run, "answer", answer)?;
//!         db.end_run(run, RunStatus::Completed)?;   // records the digest
//!         runs.push(run);
//!     }
//!     (runs[0], runs[1])
//! };                                                // closed: dropped
//!
//! let db = Database::open(config)?;                 // recovered from disk
//! let replay = db.replay_run(a)?;
//! assert!(matches!(replay.verify()?, Verification::Matched(_)));
//! assert_eq!(replay.steps().len(), 2);
//! let diff = db.diff_runs(a, b)?;
//! assert_eq!((diff.kv.len(), diff.events.len()), (1, 0));
//! let after_first_step = db.snapshot_at(db.version_at_step(b, 0)?)?;
//! assert_eq!(after_first_step.kv_run("acme/bot", b).get("answer")?, None);
//! # drop(db);
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Transactions and snapshots
//! ```
//! use rewinddb::{Database, Isolation, RunSpec};
//!
//! let db = Database::in_memory()?;
//! let run = db.begin_run(RunSpec::new("bot"))?;
//! let before = db.snapshot();
//! let v = db.transaction_versioned(run, |txn| {   // retried on conflict
//!     let n = txn.kv("acme/bot").get("count")?.and_then(|v| v.as_i64()).unwrap_or(0);
//!     txn.kv("acme/bot").put("count", n + 1)?;
//!     txn.events("acme/bot").append("counter.bumped", n + 1)?;
//!     Ok(())
//! })?.1;
//! let txn = db.begin(run, Isolation::Snapshot)?;  // explicit
//! txn.kv("acme/bot").put("count", 10)?;
//! let later = txn.commit()?;
//! assert_eq!(db.snapshot_at(v)?.kv("acme/bot").get("count")?.and_then(|v| v.as_i64()), Some(1));
//! assert_eq!(db.snapshot_at(later)?.kv("acme/bot").get("count")?.and_then(|v| v.as_i64()), Some(10));
//! assert_eq!(before.kv("acme/bot").get("count")?, None);
//! assert_eq!(before.events("acme/bot", run).len()?, 0);
//! # Ok::<(), rewinddb::Error>(())
//! ```

/// The README's Rust blocks, compiled and run as doctests so the
/// quickstart cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

mod config;
mod context;
mod database;
mod handles;
mod running;
mod time_travel;

pub use config::Config;
pub use context::{Access, Snapshot, Transaction, WriteAccess};
pub use database::Database;
pub use handles::{EventsHandle, KvHandle, RunsHandle, StateHandle, TracesHandle};
pub use rewinddb_replay as replay;
pub use rewinddb_replay::{
    Change, Digest, Error as ReplayError, EventLogDiff, ReplayedRun, RunDiff, RunKey, RunScope,
    RunState, RunView, Step, TraceDiff, Verification, describe_write,
};
pub use time_travel::ReplayResult;

pub use rewinddb_engine as engine;
pub use rewinddb_engine::{
    CheckpointPolicy, Durability, Isolation, Limits, Namespace, PROGRESS_STEP_KEYS, Progress,
    ProgressObserver, RecoveryMode, Retention, RetryPolicy, RunId, Scope, TypeTag, Value, Version,
};
pub use rewinddb_primitives as primitives;
pub use rewinddb_primitives::{
    Error, Event, EventHead, KvPage, Result, RunInfo, RunQuery, RunSpec, RunStatus, Span, SpanId,
    SpanKind, SpanSpec, SpanTree, StateRead, Transitions,
};

/// The handle constructors of a context whose handles name their run
/// (`Database`: autocommit writes, newest reads; `Snapshot`: reads at its
/// version). `$at` ends each doc line.
macro_rules! handles_naming_their_run {
    ($context:ident, $at:literal) => {
        impl $context {
            #[doc = concat!("The KV store of `ns`, shared by all runs", $at, ".")]
            pub fn kv(&self, ns: &str) -> KvHandle<'_, $context> {
                KvHandle::new(self, ns, None)
            }

            #[doc = concat!("The KV store of `ns` private to `run`", $at, ".")]
            pub fn kv_run(&self, ns: &str, run: RunId) -> KvHandle<'_, $context> {
                KvHandle::new(self, ns, Some(run))
            }

            #[doc = concat!("The event log of `run` in `ns`", $at, ".")]
            pub fn events(&self, ns: &str, run: RunId) -> EventsHandle<'_, $context> {
                EventsHandle::new(self, ns, run)
            }

            #[doc = concat!("The state machines of `ns`, shared by all runs", $at, ".")]
            pub fn state(&self, ns: &str) -> StateHandle<'_, $context> {
                StateHandle::new(self, ns, None)
            }

            #[doc = concat!("The state machines of `ns` private to `run`", $at, ".")]
            pub fn state_run(&self, ns: &str, run: RunId) -> StateHandle<'_, $context> {
                StateHandle::new(self, ns, Some(run))
            }

            #[doc = concat!("The trace store of `run` in `ns`", $at, ".")]
            pub fn traces(&self, ns: &str, run: RunId) -> TracesHandle<'_, $context> {
                TracesHandle::new(self, ns, run)
            }

            #[doc = concat!("The run index", $at, ".")]
            pub fn runs(&self) -> RunsHandle<'_, $context> {
                RunsHandle::new(self)
            }
        }
    };
}

handles_naming_their_run!(Database, "");
handles_naming_their_run!(Snapshot, ", at this version");

impl Transaction {
    /// The KV store of `ns` shared by all runs, inside this transaction.
    pub fn kv(&self, ns: &str) -> KvHandle<'_, Transaction> {
        KvHandle::new(self, ns, None)
    }

    /// The KV store of `ns` private to this transaction's run.
    pub fn kv_run(&self, ns: &str) -> KvHandle<'_, Transaction> {
        KvHandle::new(self, ns, Some(self.run()))
    }

    /// The event log of this transaction's run in `ns`.
    pub fn events(&self, ns: &str) -> EventsHandle<'_, Transaction> {
        EventsHandle::new(self, ns, self.run())
    }

    /// The state machines of `ns` shared by all runs, inside this transaction.
    pub fn state(&self, ns: &str) -> StateHandle<'_, Transaction> {
        StateHandle::new(self, ns, None)
    }

    /// The state machines of `ns` private to this transaction's run.
    pub fn state_run(&self, ns: &str) -> StateHandle<'_, Transaction> {
        StateHandle::new(self, ns, Some(self.run()))
    }

    /// The trace store of this transaction's run in `ns`.
    pub fn traces(&self, ns: &str) -> TracesHandle<'_, Transaction> {
        TracesHandle::new(self, ns, self.run())
    }

    /// The run index, read inside this transaction.
    pub fn runs(&self) -> RunsHandle<'_, Transaction> {
        RunsHandle::new(self)
    }
}
