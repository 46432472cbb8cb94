//! Where a handle reads and writes: the [`Database`] itself (autocommit),
//! an explicit [`Transaction`], or a point-in-time [`Snapshot`].

use std::cell::RefCell;

use rewinddb_engine::{Engine, RunId, Version};
use rewinddb_primitives::{Error, Reader, Result};

use crate::database::Database;

/// Something a primitive handle can read from. Implemented by
/// [`Database`] (each read takes a fresh snapshot of the newest state),
/// [`Transaction`] (reads see its own writes) and [`Snapshot`] (reads at a
/// fixed version).
pub trait Access {
    /// Run `f` with a reader.
    fn read<T>(&self, f: impl FnOnce(&mut dyn Reader) -> Result<T>) -> Result<T>;

    /// The engine underneath.
    fn engine(&self) -> &Engine;

    /// The newest commit version reads may see.
    fn read_version(&self) -> Version;
}

impl Access for Database {
    fn read<T>(&self, f: impl FnOnce(&mut dyn Reader) -> Result<T>) -> Result<T> {
        let mut snap = self.engine().snapshot();
        f(&mut snap)
    }

    fn engine(&self) -> &Engine {
        Database::engine(self)
    }

    fn read_version(&self) -> Version {
        self.engine().visible_version()
    }
}

/// A context a handle can also write through: the [`Database`] (each call
/// is its own transaction, retried on conflict: autocommit) or a
/// [`Transaction`] (the call joins it). Implemented by those two only.
pub trait WriteAccess: Access + sealed::Sealed {
    /// Run `f` on an engine transaction of `run` with `input`. Through the
    /// database `f` may run once per attempt, each with a clone of `input`;
    /// through a transaction it runs once, with `input` itself.
    #[doc(hidden)]
    fn write_with<I: Clone, T>(
        &self,
        run: RunId,
        input: I,
        f: impl FnMut(&mut rewinddb_engine::Transaction, I) -> Result<T>,
    ) -> Result<T>;

    /// Run `f` once on an engine transaction of `run` that cannot
    /// conflict. Through the database: an admitted transaction under the
    /// commit lock (`Engine::transaction_locked`), so every other committer
    /// waits while `f` runs: only for short, bounded work. Through a
    /// transaction: `f` joins it, as with `write_with`.
    #[doc(hidden)]
    fn write_locked<T>(
        &self,
        run: RunId,
        f: impl FnOnce(&mut rewinddb_engine::Transaction) -> Result<T>,
    ) -> Result<T>;
}

mod sealed {
    /// Keeps [`WriteAccess`](super::WriteAccess) to this crate's contexts.
    pub trait Sealed {}
    impl Sealed for crate::Database {}
    impl Sealed for super::Transaction {}
}

impl WriteAccess for Database {
    fn write_with<I: Clone, T>(
        &self,
        run: RunId,
        input: I,
        mut f: impl FnMut(&mut rewinddb_engine::Transaction, I) -> Result<T>,
    ) -> Result<T> {
        let (t, _) = self.autocommit(run, |txn| f(txn, input.clone()))?;
        Ok(t)
    }

    fn write_locked<T>(
        &self,
        run: RunId,
        f: impl FnOnce(&mut rewinddb_engine::Transaction) -> Result<T>,
    ) -> Result<T> {
        let (t, _) = self.autocommit_locked(run, f)?;
        Ok(t)
    }
}

/// An explicit transaction of one run, from [`Database::begin`] or handed
/// to the closure of [`Database::transaction`]. Its handles (`txn.kv(ns)`,
/// `txn.events(ns)` ...) read its own writes; nothing is visible to others
/// until [`Transaction::commit`]. Dropping it uncommitted rolls it back.
pub struct Transaction {
    inner: RefCell<rewinddb_engine::Transaction>,
    engine: Engine,
    // Copied out so they can be read while `inner` is borrowed (inside a
    // state transition closure).
    run: RunId,
    start: Version,
}

impl Transaction {
    pub(crate) fn new(engine: Engine, txn: rewinddb_engine::Transaction) -> Transaction {
        Transaction {
            run: txn.run(),
            start: txn.start_version(),
            inner: RefCell::new(txn),
            engine,
        }
    }

    /// Run `f` on the engine transaction.
    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&mut rewinddb_engine::Transaction) -> Result<T>,
    ) -> Result<T> {
        let mut txn = self.inner.try_borrow_mut().map_err(|_| {
            Error::InvalidArgument(
                "the transaction is already in use by an enclosing call (e.g. inside a \
                 state transition closure)"
                    .into(),
            )
        })?;
        f(&mut txn)
    }

    /// The run it writes for.
    pub fn run(&self) -> RunId {
        self.run
    }

    /// The version it reads at.
    pub fn start_version(&self) -> Version {
        self.start
    }

    /// Validate and commit; returns the commit version (the start version
    /// if nothing was written). A conflict is an error with
    /// [`Error::is_conflict`]; then nothing was installed.
    pub fn commit(self) -> Result<Version> {
        Ok(self.inner.into_inner().commit()?)
    }

    /// Discard every buffered write.
    pub fn rollback(self) -> Result<()> {
        Ok(self.inner.into_inner().rollback()?)
    }
}

impl Access for Transaction {
    fn read<T>(&self, f: impl FnOnce(&mut dyn Reader) -> Result<T>) -> Result<T> {
        self.with(|txn| f(txn))
    }

    fn engine(&self) -> &Engine {
        &self.engine
    }

    fn read_version(&self) -> Version {
        self.start_version()
    }
}

impl WriteAccess for Transaction {
    /// `run` is this transaction's own: its handles are built with it.
    fn write_with<I: Clone, T>(
        &self,
        _run: RunId,
        input: I,
        mut f: impl FnMut(&mut rewinddb_engine::Transaction, I) -> Result<T>,
    ) -> Result<T> {
        self.with(|txn| f(txn, input))
    }

    fn write_locked<T>(
        &self,
        _run: RunId,
        f: impl FnOnce(&mut rewinddb_engine::Transaction) -> Result<T>,
    ) -> Result<T> {
        self.with(f)
    }
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

/// A consistent, read-only view of the whole database at one version,
/// from [`Database::snapshot`] or [`Database::snapshot_at`]. O(1) to take;
/// it holds its version against GC until dropped.
#[derive(Clone)]
pub struct Snapshot {
    snap: rewinddb_engine::Snapshot,
    engine: Engine,
}

impl Snapshot {
    pub(crate) fn new(engine: Engine, snap: rewinddb_engine::Snapshot) -> Snapshot {
        Snapshot { snap, engine }
    }

    /// The version it reads at.
    pub fn version(&self) -> Version {
        self.snap.version()
    }
}

impl Access for Snapshot {
    fn read<T>(&self, f: impl FnOnce(&mut dyn Reader) -> Result<T>) -> Result<T> {
        let mut snap = &self.snap;
        f(&mut snap)
    }

    fn engine(&self) -> &Engine {
        &self.engine
    }

    fn read_version(&self) -> Version {
        self.snap.version()
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.snap.fmt(f)
    }
}
