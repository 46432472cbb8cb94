//! [`Database`]: the entry point. Opens the engine, hands out primitive
//! handles, runs transactions and takes snapshots.

use rewinddb_engine::{Engine, Isolation, RunId, Version};
use rewinddb_primitives::{Result, RunIndex, RunInfo, RunSpec, RunStatus, retry_on_conflict};

use std::sync::Arc;

use crate::config::Config;
use crate::context::{Snapshot, Transaction};
use crate::running::RunningCache;

/// An open database. Cheap to clone; clones share everything and may be
/// used from many threads.
#[derive(Clone)]
pub struct Database {
    engine: Engine,
    runs: RunIndex,
    running: Arc<RunningCache>,
}

impl Database {
    /// A database with no files at all.
    pub fn in_memory() -> Result<Database> {
        Database::open(Config::in_memory())
    }

    /// Open a database as `config` says: a durable one recovers what a
    /// previous process left in its directory (see the engine's
    /// `Engine::open` for the errors: a locked, unwritable or damaged
    /// directory); an in-memory one starts empty.
    pub fn open(config: Config) -> Result<Database> {
        Ok(Database {
            engine: Engine::open(config.engine)?,
            runs: RunIndex::new()?,
            running: Arc::default(),
        })
    }

    /// The engine underneath, for what the facade does not cover.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn run_index(&self) -> &RunIndex {
        &self.runs
    }

    /// Start a run; shorthand for `db.runs().begin_run(spec)`.
    pub fn begin_run(&self, spec: RunSpec) -> Result<RunId> {
        self.runs().begin_run(spec)
    }

    /// End a run with a final status; shorthand for
    /// `db.runs().end_run(run, status)`.
    pub fn end_run(&self, run: RunId, status: RunStatus) -> Result<RunInfo> {
        self.runs().end_run(run, status)
    }

    /// Run `f` in a transaction of `run` (snapshot isolation) and commit,
    /// retrying on conflict; `f` must be re-runnable. `run` must be
    /// running (or [`RunId::NIL`] for administration). Returns `f`'s value.
    pub fn transaction<T>(
        &self,
        run: RunId,
        f: impl FnMut(&Transaction) -> Result<T>,
    ) -> Result<T> {
        self.transaction_versioned(run, f).map(|(t, _)| t)
    }

    /// [`Database::transaction`], also returning the commit version.
    pub fn transaction_versioned<T>(
        &self,
        run: RunId,
        mut f: impl FnMut(&Transaction) -> Result<T>,
    ) -> Result<(T, Version)> {
        retry_on_conflict(&self.engine.config().retry, || {
            let txn = self.begin(run, Isolation::Snapshot)?;
            let t = f(&txn)?;
            Ok((t, txn.commit()?))
        })
    }

    /// Begin an explicit transaction of `run`; commit it with
    /// [`Transaction::commit`]. `run` must be running (or
    /// [`RunId::NIL`]): the check reads the run index at the
    /// transaction's start version.
    ///
    /// A transaction admitted while its run was running and still open
    /// when `end_run` commits: under [`Isolation::Serializable`] the check
    /// is in its read set, so its commit is a conflict (and a retry is
    /// refused with [`Error::RunEnded`](crate::Error::RunEnded)); under [`Isolation::Snapshot`]
    /// it may still commit after the end, and the run's recorded
    /// `last_version` then predates it.
    pub fn begin(&self, run: RunId, isolation: Isolation) -> Result<Transaction> {
        let txn = self.begin_engine(run, isolation)?;
        Ok(Transaction::new(self.engine.clone(), txn))
    }

    /// An engine transaction of `run`, admitted only if `run` may write.
    /// Snapshot-isolated transactions of a run known to be running skip
    /// the read; serializable ones always read the run record, so it joins
    /// their read set.
    fn begin_engine(
        &self,
        run: RunId,
        isolation: Isolation,
    ) -> Result<rewinddb_engine::Transaction> {
        let mut txn = self.engine.begin(run, isolation);
        self.admit(&mut txn)?;
        Ok(txn)
    }

    /// Refuse `txn` unless its run may write (see `begin_engine`). Takes
    /// the transaction by reference: the write path checks it in place.
    #[inline]
    fn admit(&self, txn: &mut rewinddb_engine::Transaction) -> Result<()> {
        let run = txn.run();
        if run.is_nil() || (txn.isolation() == Isolation::Snapshot && self.running.contains(run)) {
            return Ok(());
        }
        self.admit_by_reading(txn, run)
    }

    /// `admit` for a run not known to be running: read its record.
    #[cold]
    fn admit_by_reading(&self, txn: &mut rewinddb_engine::Transaction, run: RunId) -> Result<()> {
        self.runs.check_writable(txn, run)?;
        self.running.admit(run, txn.start_version());
        Ok(())
    }

    /// `run` ended in the commit at `version`: forget it is running.
    pub(crate) fn run_ended(&self, run: RunId, version: Version) {
        self.running.ended(run, version);
    }

    /// One retried transaction on the engine transaction directly: the
    /// path every autocommit handle write takes.
    pub(crate) fn autocommit<T>(
        &self,
        run: RunId,
        mut f: impl FnMut(&mut rewinddb_engine::Transaction) -> Result<T>,
    ) -> Result<(T, Version)> {
        retry_on_conflict(&self.engine.config().retry, || {
            let mut txn = self.engine.begin(run, Isolation::Snapshot);
            self.admit(&mut txn)?;
            let t = f(&mut txn)?;
            Ok((t, txn.commit()?))
        })
    }

    /// One admitted transaction under the engine's commit lock
    /// (`Engine::transaction_locked`): `f` reads the newest installed state
    /// and cannot conflict, so it runs once. The run check is the same as
    /// `autocommit`'s, read at that newest state. Every other committer
    /// waits while `f` runs: for short, bounded writes only.
    pub(crate) fn autocommit_locked<T>(
        &self,
        run: RunId,
        f: impl FnOnce(&mut rewinddb_engine::Transaction) -> Result<T>,
    ) -> Result<(T, Version)> {
        self.engine.transaction_locked(run, |txn| {
            self.admit(txn)?;
            f(txn)
        })
    }

    /// A snapshot of the newest state. O(1).
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::new(self.engine.clone(), self.engine.snapshot())
    }

    /// A snapshot of the state right after commit `version`; an error if
    /// `version` is in the future or outside retention.
    pub fn snapshot_at(&self, version: Version) -> Result<Snapshot> {
        Ok(Snapshot::new(
            self.engine.clone(),
            self.engine.snapshot_at(version)?,
        ))
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Database(visible = {})", self.engine.visible_version())
    }
}
