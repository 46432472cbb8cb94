//! [`Config`]: how a [`crate::Database`] is opened. A thin builder over the
//! engine's [`EngineConfig`]; [`Durability`], [`RecoveryMode`] and
//! [`CheckpointPolicy`] are the engine's, documented per variant there.

use std::path::PathBuf;

use rewinddb_engine::{
    CheckpointPolicy, Durability, EngineConfig, Limits, Progress, RecoveryMode, Retention,
    RetryPolicy,
};

/// How to open a database.
///
/// ## Defaults
/// - [`Config::new`]: a durable database in the given directory,
///   [`Durability::Strict`] (acknowledged only after fsync);
/// - [`Config::in_memory`]: [`Durability::InMemory`], no files;
/// - otherwise [`EngineConfig::default`]: 1 KiB keys, 1 MiB values, keep
///   all history, 16 retry attempts, [`RecoveryMode::TruncateTornTail`],
///   checkpoints every 5 minutes or 64 MiB of WAL, no progress observer.
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

    /// Report the progress of long work to `observer`: opening (the
    /// checkpoint and its keys as they are installed, each WAL segment,
    /// then [`Progress::Opened`]),
    /// checkpoints and GC passes (every
    /// [`PROGRESS_STEP_KEYS`](crate::PROGRESS_STEP_KEYS) keys), replays
    /// ([`Progress::Replay`]: `replay_run`, each side of `diff_runs`, and
    /// the digest `end_run` records; every as many writes) and event-log
    /// verification ([`Progress::VerifyEvents`], every as many events).
    /// Also for [`Config::in_memory`]. It runs on
    /// the thread doing the work, so it must return quickly and must not
    /// call into the database; a panic in it is caught and ignored.
    ///
    /// ```
    /// use rewinddb::{Config, Database, Progress};
    ///
    /// let dir = std::env::temp_dir().join(format!("rewinddb-progress-doc-{}", std::process::id()));
    /// let config = Config::new(&dir).progress(|p| match p {
    ///     Progress::OpenWal { segments_done, segments_total, .. } => {
    ///         eprintln!("recovering: segment {segments_done} of {segments_total}")
    ///     }
    ///     Progress::Opened { version, keys } => eprintln!("open at version {version}, {keys} keys"),
    ///     _ => {}
    /// });
    /// let db = Database::open(config)?;
    /// # drop(db);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), rewinddb::Error>(())
    /// ```
    #[must_use]
    pub fn progress(mut self, observer: impl Fn(&Progress) + Send + Sync + 'static) -> Config {
        self.engine = self.engine.progress(observer);
        self
    }
}
