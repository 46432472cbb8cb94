//! # rewinddb-engine
//!
//! The storage engine under rewinddb: every version of every key is kept in
//! a lock-free **version chain** (newest first), so
//!
//! - a **snapshot** is one number: the visible version when it was taken.
//!   Creating one is O(1) and copies nothing; a read at version `v` walks a
//!   key's chain to the first version with `commit <= v`;
//! - **transactions** are optimistic: they read at their start version,
//!   buffer writes, and are validated at commit against the versions
//!   installed since (first committer wins; `Serializable` also checks
//!   reads and scanned ranges);
//! - **history** is kept per [`Retention`] and trimmed by [`Engine::gc`],
//!   never behind a live snapshot.
//!
//! The engine knows nothing of primitives: keys carry a [`TypeTag`] and
//! opaque user bytes.
//!
//! ```
//! use rewinddb_engine::{Engine, EngineConfig, Isolation, Key, Namespace, RunId, Scope, TypeTag};
//!
//! let engine = Engine::open_in_memory(EngineConfig::default())?;
//! let ns = Namespace::new("acme/bot")?;
//! let key = Key::new(ns, Scope::Shared, TypeTag::Kv, b"greeting");
//!
//! let before = engine.snapshot();                  // O(1)
//! let mut txn = engine.begin(RunId::NIL, Isolation::Snapshot);
//! txn.put(&key, "hello")?;                         // borrowed: not cloned
//! let v = txn.commit()?;
//!
//! assert_eq!(before.get(&key)?, None);             // the past is unchanged
//! assert_eq!(engine.snapshot().get(&key)?.and_then(|v| v.as_str().map(String::from)), Some("hello".into()));
//! assert_eq!(engine.snapshot_at(v)?.version(), v);
//! # Ok::<(), rewinddb_engine::Error>(())
//! ```
//!
//! ## Durability
//!
//! [`Engine::open`] keeps a write-ahead log and checkpoints in
//! `EngineConfig::dir` and recovers them on the next open: the newest valid
//! checkpoint, then the WAL after it, every key's history, the per-run
//! commit index and commit times included. [`Durability`] says when a
//! commit returns (`Strict`: after fdatasync, shared by concurrent
//! committers); [`RecoveryMode`] what a damaged WAL record does (a torn
//! tail is truncated; a damaged record in front of valid ones is
//! [`Error::Corruption`] unless `SalvagePrefix`). The byte formats and the
//! crash cases: `docs/format.md`.
//!
//! ```
//! use rewinddb_engine::{Durability, Engine, EngineConfig, Isolation, Key, Namespace, RunId, Scope, TypeTag};
//!
//! let dir = std::env::temp_dir().join(format!("rewinddb-engine-doc-{}", std::process::id()));
//! let config = EngineConfig::default().dir(&dir).durability(Durability::Strict);
//! let key = Key::new(Namespace::new("acme/bot")?, Scope::Shared, TypeTag::Kv, b"count");
//! let run = RunId::new();
//!
//! let engine = Engine::open(config.clone())?;
//! for n in 1..=3 {
//!     let mut txn = engine.begin(run, Isolation::Snapshot);
//!     txn.put(&key, n)?;
//!     txn.commit()?;                          // on disk when this returns
//! }
//! engine.close()?;
//!
//! let engine = Engine::open(config)?;         // recovery
//! assert_eq!(engine.visible_version(), 3);
//! assert_eq!(engine.snapshot_at(2)?.get(&key)?.and_then(|v| v.as_i64()), Some(2));
//! assert_eq!(engine.run_commits(run)?.len(), 3);
//! engine.close()?;
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), rewinddb_engine::Error>(())
//! ```

mod backoff;
mod chain;
mod clock;
mod config;
mod digest;
pub mod durability;
mod engine;
mod error;
mod key_bytes;
#[cfg(all(test, loom))]
mod loom_tests;
mod pending;
mod point_index;
mod progress;
mod record;
mod reentry;
mod snapshot;
mod store;
mod sync;
mod time_index;
mod txn;
mod types;
mod value;
mod write_set;
// The point index's slot memory; loom's atomics are not plain bytes, so
// under loom the index keeps boxed slots instead.
#[cfg(not(loom))]
mod zeroed_array;

pub use chain::{ChainRef, INLINE_VALUE_BYTES_MAX, NodeHead, ReadAt, VersionChain, VersionNode};
pub use clock::wall_clock_ms;
pub use config::{EngineConfig, Isolation, Limits, Retention, RetryPolicy};
pub use durability::{CheckpointPolicy, Durability, RecoveryMode};
pub use engine::{Engine, EngineStats, GcStats, Snapshot};
pub use error::{Error, Result};
pub use progress::{PROGRESS_STEP_KEYS, Progress, ProgressCounter, ProgressObserver};
pub use record::{CommitRecord, RunCommit};
pub use store::Versioned;
pub use txn::Transaction;
pub use types::{
    Family, Key, KeyBytes, NAMESPACE_SIZE_BYTES_MAX, Namespace, RunId, Scope, TypeTag, Version,
};
pub use value::{Measured, Value, ValueRef};
