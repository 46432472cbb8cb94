//! [`Config`]: how a [`crate::Database`] is opened. A thin builder over the
//! engine's [`EngineConfig`]; [`Durability`], [`RecoveryMode`] and
//! [`CheckpointPolicy`] are the engine's, documented per variant there.

use std::path::PathBuf;

use rewinddb_engine::{
    CheckpointPolicy, Durability, EngineConfig, Limits, RecoveryMode, Retention, RetryPolicy,
};

/// How to open a database.
///
/// ## Defaults
/// - [`Config::new`]: a durable database in the given directory,
///   [`Durability::Strict`] (acknowledged only after fsync);
/// - [`Config::in_memory`]: [`Durability::InMemory`], no files;
/// - otherwise [`EngineConfig::default`]: 1 KiB keys, 1 MiB values, keep
///   all history, 16 retry attempts, [`RecoveryMode::TruncateTornTail`],
///   checkpoints every 5 minutes or 64 MiB of WAL.
#[derive(Clone, Debug)]
pub struct Config {
    /// The engine's configuration (directory, durability, limits,
    /// retention, retry, recovery, checkpoints).
    pub engine: EngineConfig,
}

impl Config {
    /// A durable database in directory `path` (created if missing).
    pub fn new(path: impl Into<PathBuf>) -> Config {
        Config {
            engine: EngineConfig::default()
                .dir(path)
                .durability(Durability::Strict),
        }
    }

    /// A database with no files.
    pub fn in_memory() -> Config {
        Config {
            engine: EngineConfig::default().durability(Durability::InMemory),
        }
    }

    /// Set the durability (for [`Durability::InMemory`] the directory is
    /// ignored).
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Config {
        self.engine.durability = durability;
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

    /// Set what recovery does with damaged WAL records.
    #[must_use]
    pub fn recovery(mut self, recovery: RecoveryMode) -> Config {
        self.engine.recovery = recovery;
        self
    }

    /// Set when background checkpoints are written.
    #[must_use]
    pub fn checkpoint(mut self, checkpoint: CheckpointPolicy) -> Config {
        self.engine.checkpoint = checkpoint;
        self
    }
}
