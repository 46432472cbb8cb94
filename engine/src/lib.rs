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
//! txn.put(key.clone(), "hello")?;
//! let v = txn.commit()?;
//!
//! assert_eq!(before.get(&key)?, None);             // the past is unchanged
//! assert_eq!(engine.snapshot().get(&key)?.and_then(|v| v.as_str().map(String::from)), Some("hello".into()));
//! assert_eq!(engine.snapshot_at(v)?.version(), v);
//! # Ok::<(), rewinddb_engine::Error>(())
//! ```

mod chain;
mod clock;
mod config;
pub mod durability;
mod engine;
mod error;
#[cfg(all(test, loom))]
mod loom_tests;
mod record;
mod snapshot;
mod store;
mod sync;
mod time_index;
mod txn;
mod types;
mod value;

pub use chain::{ReadAt, VersionChain, VersionNode};
pub use clock::wall_clock_ms;
pub use config::{EngineConfig, Isolation, Limits, Retention, RetryPolicy};
pub use durability::{CheckpointPolicy, Durability, RecoveryMode};
pub use engine::{Engine, EngineStats, GcStats, Snapshot};
pub use error::{Error, Result};
pub use record::{CommitRecord, RunCommit};
pub use store::Versioned;
pub use txn::Transaction;
pub use types::{Key, NAMESPACE_SIZE_BYTES_MAX, Namespace, RunId, Scope, TypeTag, Version};
pub use value::Value;
