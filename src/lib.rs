//! # rewinddb
//!
//! An embedded, in-memory, crash-safe database for AI-agent state. This
//! facade re-exports the engine until the primitives land.

pub use rewinddb_engine as engine;
