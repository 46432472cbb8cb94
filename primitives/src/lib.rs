//! # rewinddb-primitives
//!
//! The five things an agent keeps, as stateless facades over engine
//! transactions:
//!
//! | primitive | type tag | scope |
//! |---|---|---|
//! | [`Kv`] | `Kv` | shared or one run |
//! | [`EventLog`] | `Event` | one run |
//! | [`StateMachines`] | `State` | shared or one run |
//! | [`TraceStore`] | `Trace` | one run |
//! | [`RunIndex`] | `Run` | the reserved namespace [`RUNS_NAMESPACE`] |
//!
//! Each owns one [`TypeTag`](rewinddb_engine::TypeTag), documents its key
//! and value encoding in its module, holds no state of its own and imports
//! no other primitive. Writes take a `&mut Transaction`; reads take any
//! [`Reader`] (a transaction or a snapshot), so every operation composes
//! inside one transaction and every read also works at a past version.
//!
//! ```
//! use rewinddb_engine::{Engine, EngineConfig, Isolation, Namespace, RunId};
//! use rewinddb_primitives::{EventLog, Kv, autocommit};
//!
//! let engine = Engine::open_in_memory(EngineConfig::default())?;
//! let ns = Namespace::new("acme/bot")?;
//! let run = RunId::new();
//! let (kv, log) = (Kv::shared(ns.clone()), EventLog::new(ns, run));
//! let (seq, v) = autocommit(&engine, run, Isolation::Snapshot, |txn| {
//!     kv.put(txn, "user:42:name", "Ada")?;
//!     log.append(txn, "user.named", "Ada")
//! })?;
//! assert_eq!(seq, 0);
//! let mut snap = engine.snapshot_at(v)?;
//! assert_eq!(kv.get(&mut snap, "user:42:name")?.unwrap().as_str(), Some("Ada"));
//! log.verify(&mut snap)?;
//! # Ok::<(), rewinddb_primitives::Error>(())
//! ```

#![deny(unsafe_code)]

mod access;
mod error;
pub mod event;
pub mod kv;
pub mod run;
pub mod state;
pub mod trace;

pub use access::{Reader, autocommit, retry_on_conflict};
pub use error::{Error, NAME_SIZE_BYTES_MAX, Result};
pub use event::{Event, EventHead, EventLog};
pub use kv::{Kv, KvPage, LIST_LIMIT_DEFAULT};
pub use run::{
    CommitSpan, RUN_TAGS_COUNT_MAX, RUNS_NAMESPACE, RunIndex, RunInfo, RunQuery, RunSpec,
    RunStatus, commit_span,
};
pub use state::{StateMachines, StateRead, TRANSITIONS_COUNT_MAX, Transitions};
pub use trace::{
    SPAN_ATTRIBUTES_COUNT_MAX, SPAN_DEPTH_MAX, Span, SpanId, SpanKind, SpanSpec, SpanTree,
    TraceStore,
};

#[cfg(test)]
mod test;
