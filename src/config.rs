//! [`Config`] and [`Durability`]: how a [`crate::Database`] is opened.

use std::path::PathBuf;
use std::time::Duration;

use rewinddb_engine::{EngineConfig, Limits, Retention, RetryPolicy};

/// What a commit promises about surviving a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// No files at all: everything is lost when the process ends.
    InMemory,
    /// Acknowledged only after the commit's WAL record is fsynced
    /// (concurrent committers share one fsync).
    Strict,
    /// fsynced at least every `interval` or every `bytes` of WAL; a crash
    /// loses at most that window.
    Batched {
        /// Longest time between fsyncs.
        interval: Duration,
        /// Most WAL bytes between fsyncs.
        bytes: u64,
    },
    /// Written in the background with no fsync promise.
    Async,
}

/// How to open a database.
///
/// ## Defaults
/// - `durability`: [`Durability::Strict`] (for [`Config::new`]) or
///   [`Durability::InMemory`] (for [`Config::in_memory`]);
/// - `engine`: [`EngineConfig::default`] (1 KiB keys, 1 MiB values, keep
///   all history, 16 retry attempts).
#[derive(Clone, Debug)]
pub struct Config {
    /// Directory for WAL segments and checkpoints (unused in memory).
    pub path: PathBuf,
    /// What a commit promises.
    pub durability: Durability,
    /// Limits, retention and retry policy.
    pub engine: EngineConfig,
}

impl Config {
    /// A durable database in directory `path`.
    pub fn new(path: impl Into<PathBuf>) -> Config {
        Config {
            path: path.into(),
            durability: Durability::Strict,
            engine: EngineConfig::default(),
        }
    }

    /// A database with no files.
    pub fn in_memory() -> Config {
        Config {
            path: PathBuf::new(),
            durability: Durability::InMemory,
            engine: EngineConfig::default(),
        }
    }

    /// Set the durability.
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Config {
        self.durability = durability;
        self
    }

    /// Set the size limits.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Config {
        self.engine.limits = limits;
        self
    }

    /// Set the history retention.
    #[must_use]
    pub fn retention(mut self, retention: Retention) -> Config {
        self.engine.retention = retention;
        self
    }

    /// Set the retry policy of [`crate::Database::transaction`].
    #[must_use]
    pub fn retry(mut self, retry: RetryPolicy) -> Config {
        self.engine.retry = retry;
        self
    }
}
