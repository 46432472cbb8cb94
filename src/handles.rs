//! Primitive handles: a primitive paired with where it reads and writes.
//!
//! `KvHandle<'_, Database>` writes in its own retried transaction per call
//! (autocommit) and reads the newest state; `KvHandle<'_, Transaction>`
//! reads and writes inside that transaction; `KvHandle<'_, Snapshot>` only
//! reads, at the snapshot's version. The same holds for every primitive.

use std::ops::RangeBounds;

use rewinddb_engine::{Measured, Namespace, RunId, Value, Version};
use rewinddb_primitives::{
    Error, Event, EventHead, EventLog, Kv, KvPage, LIST_LIMIT_DEFAULT, Reader, Result, RunInfo,
    RunQuery, RunSpec, RunStatus, Span, SpanId, SpanSpec, SpanTree, StateMachines, StateRead,
    TraceStore, Transitions,
};

use crate::context::{Access, Transaction, WriteAccess};
use crate::database::Database;

/// A primitive built once when a handle is made, or the namespace that
/// could not be parsed (every call on the handle then reports it).
#[derive(Clone, Debug)]
pub(crate) struct Prim<T>(std::result::Result<T, String>);

impl<T> Prim<T> {
    pub(crate) fn new(raw_ns: &str, make: impl FnOnce(Namespace) -> T) -> Prim<T> {
        Prim(
            Namespace::new(raw_ns)
                .map(make)
                .map_err(|_| raw_ns.to_string()),
        )
    }

    pub(crate) fn get(&self) -> Result<&T> {
        self.0.as_ref().map_err(|raw| match Namespace::new(raw) {
            Err(e) => Error::from(e),
            Ok(_) => Error::InvalidArgument(format!("namespace {raw:?}")),
        })
    }

    /// `f` on the primitive and a reader of `ctx`.
    pub(crate) fn read<R>(
        &self,
        ctx: &impl Access,
        f: impl FnOnce(&T, &mut dyn Reader) -> Result<R>,
    ) -> Result<R> {
        let prim = self.get()?;
        ctx.read(|r| f(prim, r))
    }
}

// ---------------------------------------------------------------- KV

/// The KV store of one namespace and scope, bound to a database, a
/// transaction or a snapshot. See [`Kv`] for the encoding.
pub struct KvHandle<'a, C> {
    ctx: &'a C,
    kv: Prim<Kv>,
    run: Option<RunId>,
}

impl<'a, C: Access> KvHandle<'a, C> {
    pub(crate) fn new(ctx: &'a C, ns: &str, run: Option<RunId>) -> Self {
        let kv = Prim::new(ns, |ns| match run {
            None => Kv::shared(ns),
            Some(run) => Kv::run(ns, run),
        });
        KvHandle { ctx, kv, run }
    }

    fn kv(&self) -> Result<&Kv> {
        self.kv.get()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Result<Option<Value>> {
        self.kv.read(self.ctx, |kv, r| kv.get(r, key))
    }

    /// Up to [`LIST_LIMIT_DEFAULT`] entries whose keys start with `prefix`,
    /// in key order; `next` resumes.
    pub fn list(&self, prefix: &str) -> Result<KvPage> {
        self.list_from(prefix, None, LIST_LIMIT_DEFAULT)
    }

    /// Entries whose keys start with `prefix`, strictly after `after`, in
    /// key order, at most `limit`; `next` resumes.
    pub fn list_from(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<KvPage> {
        self.kv
            .read(self.ctx, |kv, r| kv.list(r, prefix, after, limit))
    }
}

impl KvHandle<'_, Database> {
    #[inline]
    fn check_scope(&self, run: RunId) -> Result<()> {
        match self.run {
            Some(owner) if owner != run => Err(scope_error(owner, run)),
            _ => Ok(()),
        }
    }

    /// Write `value` to `key` on behalf of `run` (autocommit); returns the
    /// commit version. A run-scoped store accepts writes only from its run.
    pub fn put(&self, run: RunId, key: &str, value: impl Into<Value>) -> Result<Version> {
        self.check_scope(run)?;
        let kv = self.kv()?;
        let value = value.into();
        let ((), v) = self
            .ctx
            .autocommit(run, |txn| kv.put(txn, key, value.clone()))?;
        Ok(v)
    }

    /// Delete `key` on behalf of `run` (autocommit); returns the commit
    /// version.
    pub fn delete(&self, run: RunId, key: &str) -> Result<Version> {
        self.check_scope(run)?;
        let kv = self.kv()?;
        let ((), v) = self.ctx.autocommit(run, |txn| kv.delete(txn, key))?;
        Ok(v)
    }
}

impl KvHandle<'_, Transaction> {
    /// Write `value` to `key` in this transaction.
    pub fn put(&self, key: &str, value: impl Into<Value>) -> Result<()> {
        let kv = self.kv()?;
        self.ctx.with(|txn| kv.put(txn, key, value))
    }

    /// Delete `key` in this transaction.
    pub fn delete(&self, key: &str) -> Result<()> {
        let kv = self.kv()?;
        self.ctx.with(|txn| kv.delete(txn, key))
    }
}

#[cold]
fn scope_error(owner: RunId, run: RunId) -> Error {
    Error::InvalidArgument(format!("KV scope of run {owner} written by run {run}"))
}

// ---------------------------------------------------------------- events

/// The event log of one run in one namespace, bound to a database, a
/// transaction or a snapshot. See [`EventLog`] for the encoding and chain.
pub struct EventsHandle<'a, C> {
    ctx: &'a C,
    log: Prim<EventLog>,
    run: RunId,
}

impl<'a, C: Access> EventsHandle<'a, C> {
    pub(crate) fn new(ctx: &'a C, ns: &str, run: RunId) -> Self {
        let log = Prim::new(ns, |ns| EventLog::new(ns, run));
        EventsHandle { ctx, log, run }
    }

    /// Number of events.
    pub fn len(&self) -> Result<u64> {
        self.log.read(self.ctx, |log, r| log.len(r))
    }

    /// True if the log holds no event.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Length and last hash.
    pub fn head(&self) -> Result<EventHead> {
        self.log.read(self.ctx, |log, r| log.head(r))
    }

    /// Event `seq`, if present.
    pub fn get(&self, seq: u64) -> Result<Option<Event>> {
        self.log.read(self.ctx, |log, r| log.get(r, seq))
    }

    /// The last event, if any.
    pub fn last(&self) -> Result<Option<Event>> {
        self.log.read(self.ctx, |log, r| log.last(r))
    }

    /// Events with sequence numbers in `range`, in order.
    pub fn read(&self, range: impl RangeBounds<u64>) -> Result<Vec<Event>> {
        self.log.read(self.ctx, |log, r| log.read(r, range))
    }

    /// Check the hash chain: `Ok` or [`Error::ChainBroken`] with the first
    /// broken sequence number.
    /// Reports [`Progress::VerifyEvents`](crate::Progress::VerifyEvents)
    /// to the observer of [`Config::progress`](crate::Config::progress).
    pub fn verify(&self) -> Result<()> {
        let observer = self.ctx.engine().config().progress.as_ref();
        self.log
            .read(self.ctx, |log, r| log.verify_observed(r, observer))
    }
}

/// Largest payload (as `Value::size_bytes` measures it) an autocommit
/// append hashes under the commit lock. The chain hash covers the payload
/// and needs the previous hash first, so it cannot be computed before the
/// lock; a larger payload takes the optimistic path (hashed outside the
/// lock, retried on conflict) so it does not stall every other committer.
pub(crate) const LOCKED_APPEND_PAYLOAD_BYTES_MAX: usize = 16 * 1024;

impl<C: WriteAccess> EventsHandle<'_, C> {
    /// Append an event; returns its sequence number. Through the database
    /// it is its own transaction (autocommit): a payload up to 16 KiB is
    /// appended under the engine's commit lock
    /// (`Engine::transaction_locked`: reads the log head at the newest
    /// state, never conflicts, no retry), a larger one in an optimistic
    /// transaction retried on conflict. Through a transaction it joins it.
    pub fn append(&self, event_type: &str, payload: impl Into<Value>) -> Result<u64> {
        let log = self.log.get()?;
        // Measured once, here: the append's limit check reads the figures.
        let payload = Measured::new(payload.into());
        if payload.size_bytes() > LOCKED_APPEND_PAYLOAD_BYTES_MAX {
            return self.ctx.write_with(self.run, payload, |txn, payload| {
                log.append_measured(txn, event_type, payload)
            });
        }
        self.ctx.write_locked(self.run, |txn| {
            log.append_measured(txn, event_type, payload)
        })
    }
}

// ---------------------------------------------------------------- runs

/// The run index, bound to a database, a transaction or a snapshot. See
/// [`rewinddb_primitives::RunIndex`] for the encoding.
pub struct RunsHandle<'a, C> {
    ctx: &'a C,
}

impl<'a, C: Access> RunsHandle<'a, C> {
    pub(crate) fn new(ctx: &'a C) -> Self {
        RunsHandle { ctx }
    }

    fn index(&self) -> Result<rewinddb_primitives::RunIndex> {
        rewinddb_primitives::RunIndex::new()
    }

    /// The run's record; [`Error::UnknownRun`] if there is none. For a run
    /// still running, the commit versions are derived from the engine's
    /// per-run commit index, up to this handle's read version.
    pub fn get_run(&self, run: RunId) -> Result<RunInfo> {
        let index = self.index()?;
        let mut info = self.ctx.read(|r| index.get_run(r, run))?;
        if info.status == RunStatus::Running {
            let span = self.ctx.engine().run_span(run, self.ctx.read_version())?;
            info.first_version = span.map(|(first, _)| first);
            info.last_version = span.map(|(_, last)| last);
        }
        Ok(info)
    }

    /// Runs matching `query`, ordered by start time.
    pub fn query_runs(&self, query: &RunQuery) -> Result<Vec<RunInfo>> {
        let index = self.index()?;
        self.ctx.read(|r| index.query_runs(r, query))
    }
}

impl RunsHandle<'_, Database> {
    /// Start a run (status `Running`); returns its id.
    pub fn begin_run(&self, spec: RunSpec) -> Result<RunId> {
        let index = self.ctx.run_index();
        let (id, _) = self
            .ctx
            .autocommit(RunId::NIL, |txn| index.begin_run(txn, &spec))?;
        Ok(id)
    }

    /// Move a running run to a final status, recording its end time, its
    /// first and last commit version and its replay digest. Any other change is
    /// [`Error::InvalidStatusTransition`].
    pub fn update_status(&self, run: RunId, status: RunStatus) -> Result<RunInfo> {
        let index = self.ctx.run_index();
        // Replayed once before the status change: O(run size).
        let span = self.ctx.end_run_span(run)?;
        let (info, version) = self.ctx.autocommit(RunId::NIL, |txn| {
            index.update_status(txn, run, status, span)
        })?;
        self.ctx.run_ended(run, version);
        Ok(info)
    }

    /// End a run: [`RunsHandle::update_status`] to a final status.
    pub fn end_run(&self, run: RunId, status: RunStatus) -> Result<RunInfo> {
        self.update_status(run, status)
    }
}

// ---------------------------------------------------------------- state

/// The state machines of one namespace and scope, bound to a database, a
/// transaction or a snapshot. See [`StateMachines`] for the encoding.
pub struct StateHandle<'a, C> {
    ctx: &'a C,
    machines: Prim<StateMachines>,
}

impl<'a, C: Access> StateHandle<'a, C> {
    pub(crate) fn new(ctx: &'a C, ns: &str, run: Option<RunId>) -> Self {
        let machines = Prim::new(ns, |ns| match run {
            None => StateMachines::shared(ns),
            Some(run) => StateMachines::run(ns, run),
        });
        StateHandle { ctx, machines }
    }

    /// The current state and its version; [`Error::StateNotDefined`] for a
    /// machine never defined.
    pub fn read_state(&self, name: &str) -> Result<StateRead> {
        self.machines.read(self.ctx, |m, r| m.read_state(r, name))
    }

    /// The allowed `(from, to)` pairs (None: any transition).
    pub fn allowed(&self, name: &str) -> Result<Option<Transitions>> {
        self.machines.read(self.ctx, |m, r| m.allowed(r, name))
    }
}

impl<C: WriteAccess> StateHandle<'_, C> {
    fn define_for(
        &self,
        run: RunId,
        name: &str,
        initial: Value,
        allowed: Option<Transitions>,
    ) -> Result<u64> {
        let m = self.machines.get()?;
        self.ctx
            .write_with(run, (initial, allowed), |txn, (initial, allowed)| {
                m.define(txn, name, initial, allowed)
            })
    }

    fn cas_for(&self, run: RunId, name: &str, expected_version: u64, new: Value) -> Result<u64> {
        let m = self.machines.get()?;
        self.ctx
            .write_with(run, new, |txn, new| m.cas(txn, name, expected_version, new))
    }
}

impl StateHandle<'_, Database> {
    /// Define machine `name` in state `initial` (version 1), allowing only
    /// the `(from, to)` pairs in `allowed` (None: any), on behalf of `run`.
    pub fn define(
        &self,
        run: RunId,
        name: &str,
        initial: impl Into<Value>,
        allowed: Option<Transitions>,
    ) -> Result<u64> {
        self.define_for(run, name, initial.into(), allowed)
    }

    /// Move to `new` if at `expected_version`; returns the new version.
    /// [`Error::StateVersionMismatch`] carries the current state.
    pub fn cas(
        &self,
        run: RunId,
        name: &str,
        expected_version: u64,
        new: impl Into<Value>,
    ) -> Result<u64> {
        self.cas_for(run, name, expected_version, new.into())
    }

    /// Move to `f(current)`, retried on conflict (so `f` may run more than
    /// once, each time on the then-current state); returns the new state
    /// and version.
    pub fn transition<V: Into<Value>>(
        &self,
        run: RunId,
        name: &str,
        mut f: impl FnMut(&Value) -> V,
    ) -> Result<StateRead> {
        let m = self.machines.get()?;
        let (s, _) = self
            .ctx
            .autocommit(run, |txn| m.transition(txn, name, &mut f))?;
        Ok(s)
    }
}

impl StateHandle<'_, Transaction> {
    /// Define machine `name` in this transaction (see the autocommit form).
    pub fn define(
        &self,
        name: &str,
        initial: impl Into<Value>,
        allowed: Option<Transitions>,
    ) -> Result<u64> {
        self.define_for(self.ctx.run(), name, initial.into(), allowed)
    }

    /// Compare-and-set in this transaction.
    pub fn cas(&self, name: &str, expected_version: u64, new: impl Into<Value>) -> Result<u64> {
        self.cas_for(self.ctx.run(), name, expected_version, new.into())
    }

    /// Move to `f(current)` in this transaction. `f` must not use this
    /// transaction (it is busy during the call).
    pub fn transition<V: Into<Value>>(
        &self,
        name: &str,
        f: impl FnOnce(&Value) -> V,
    ) -> Result<StateRead> {
        let m = self.machines.get()?;
        self.ctx.with(|txn| m.transition(txn, name, f))
    }
}

// ---------------------------------------------------------------- traces

/// The trace store of one run in one namespace, bound to a database, a
/// transaction or a snapshot. See [`TraceStore`] for the encoding.
pub struct TracesHandle<'a, C> {
    ctx: &'a C,
    store: Prim<TraceStore>,
    run: RunId,
}

impl<'a, C: Access> TracesHandle<'a, C> {
    pub(crate) fn new(ctx: &'a C, ns: &str, run: RunId) -> Self {
        let store = Prim::new(ns, |ns| TraceStore::new(ns, run));
        TracesHandle { ctx, store, run }
    }

    /// Number of spans.
    pub fn len(&self) -> Result<u64> {
        self.store.read(self.ctx, |s, r| s.len(r))
    }

    /// True if no span was recorded.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Span `seq`, if recorded.
    pub fn get(&self, seq: u64) -> Result<Option<Span>> {
        self.store.read(self.ctx, |s, r| s.get(r, seq))
    }

    /// Every span of the run, in recording order.
    pub fn spans(&self) -> Result<Vec<Span>> {
        self.store.read(self.ctx, |s, r| s.spans(r))
    }

    /// Spans of one kind (`tool_call`, `decision`, `query` or a custom name).
    pub fn by_kind(&self, kind: &str) -> Result<Vec<Span>> {
        self.store.read(self.ctx, |s, r| s.by_kind(r, kind))
    }

    /// The children of span `parent`, in recording order.
    pub fn children(&self, parent: SpanId) -> Result<Vec<Span>> {
        let s = self.store.get()?;
        self.check_own(parent)?;
        self.ctx.read(|r| s.children(r, parent.seq))
    }

    /// The run's whole span tree (its roots with their subtrees).
    pub fn tree(&self) -> Result<Vec<SpanTree>> {
        self.store.read(self.ctx, |s, r| s.tree(r))
    }
}

impl<C: WriteAccess> TracesHandle<'_, C> {
    /// Record a span; returns its id. Through the database it is its own
    /// transaction (autocommit, retried on conflict); through a transaction
    /// it joins it.
    pub fn record(&self, spec: SpanSpec) -> Result<SpanId> {
        let s = self.store.get()?;
        self.ctx
            .write_with(self.run, spec, |txn, spec| s.record(txn, spec))
    }

    /// End a span now; a tool call may record its outcome. Autocommit
    /// through the database, part of the transaction through one.
    pub fn end(
        &self,
        span: SpanId,
        outcome: Option<std::result::Result<Value, String>>,
    ) -> Result<Span> {
        let s = self.store.get()?;
        self.check_own(span)?;
        self.ctx.write_with(self.run, outcome, |txn, outcome| {
            s.end(txn, span.seq, None, outcome)
        })
    }
}

impl<C> TracesHandle<'_, C> {
    fn check_own(&self, span: SpanId) -> Result<()> {
        if span.run == self.run {
            Ok(())
        } else {
            Err(Error::UnknownSpan {
                run: self.run,
                seq: span.seq,
            })
        }
    }
}
