//! Refusing re-entry into the commit lock from the closure of
//! [`Engine::transaction_locked`](crate::Engine::transaction_locked).
//!
//! That closure runs while its thread holds the commit lock, and the lock
//! is not re-entrant: anything in it that takes the lock again (another
//! commit, a nested locked transaction, a commit-index query, a flush)
//! would wait for itself forever. Each engine records which thread, if
//! any, is running a locked closure on it ([`ClosureThread`]); every path
//! that takes the commit lock on behalf of a caller asks first, and
//! answers [`Error::ReentrantCommitLock`] instead of waiting.
//!
//! Cost on the uncontended path: taking the lock tries it first
//! (`try_lock`, the same atomic step `lock` starts with) and looks at the
//! owner only when the lock is busy; a locked transaction writes its
//! thread's number before its closure and clears it after (two plain
//! stores and a thread-local read).
//!
//! Why the check is exact: only the thread holding the commit lock
//! writes the owner, setting its own number before the closure and
//! clearing it after, always before it unlocks. A thread that reads its
//! own number there therefore wrote it itself and has not cleared it yet
//! (a thread always sees its own latest write to a location), so it is
//! inside a closure on this engine; a thread that is not reads 0 or
//! another thread's number. Thread numbers are never reused.

use std::cell::Cell;
// Plain std atomics even under loom: the loom models never build an
// engine, and this marker is not part of what they explore.
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::MutexGuard;

use crate::engine::{CommitState, EngineInner};
use crate::error::{Error, Result};

/// The thread running a locked transaction's closure on one engine (its
/// [`this_thread`] number), or 0 when none is.
#[derive(Default)]
pub(crate) struct ClosureThread(AtomicU64);

/// While alive, its engine's closure thread is this thread: set by
/// [`ClosureThread::enter`], cleared on drop (also when the closure
/// panics, so a caught panic does not leave the engine refusing this
/// thread forever).
pub(crate) struct InClosure<'a>(&'a ClosureThread);

impl ClosureThread {
    /// Mark this thread as running a locked closure. Only while holding
    /// the commit lock, and the returned marker must be dropped before it
    /// is released.
    #[inline(always)]
    pub(crate) fn enter(&self) -> InClosure<'_> {
        self.0.store(this_thread(), Ordering::Relaxed);
        InClosure(self)
    }

    /// True if this thread is running a locked closure on this engine.
    fn is_this_thread(&self) -> bool {
        self.0.load(Ordering::Relaxed) == this_thread()
    }
}

impl Drop for InClosure<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        self.0.0.store(0, Ordering::Relaxed);
    }
}

impl EngineInner {
    /// The commit lock for `call` (named in the error), or
    /// [`Error::ReentrantCommitLock`] if this thread already holds it in
    /// a locked closure.
    #[inline(always)]
    pub(crate) fn lock_commit(&self, call: &'static str) -> Result<MutexGuard<'_, CommitState>> {
        match self.commit.try_lock() {
            Some(state) => Ok(state),
            None => self.lock_commit_busy(call),
        }
    }

    /// [`Self::lock_commit`] when the lock is taken: by this thread in a
    /// locked closure (refused), or by another (wait for it).
    #[cold]
    #[inline(never)]
    fn lock_commit_busy(&self, call: &'static str) -> Result<MutexGuard<'_, CommitState>> {
        self.refuse_reentry(call)?;
        Ok(self.commit.lock())
    }

    /// [`Error::ReentrantCommitLock`] if this thread is in a locked
    /// closure on this engine: for calls that take other locks before the
    /// commit lock (a flush takes the WAL writer's, which a background
    /// flusher may hold while it waits for the commit lock).
    pub(crate) fn refuse_reentry(&self, call: &'static str) -> Result<()> {
        match self.closure_thread.is_this_thread() {
            true => Err(Error::ReentrantCommitLock(call)),
            false => Ok(()),
        }
    }
}

/// This thread's number: assigned on first use from a process-wide
/// counter, never 0 and never reused (a thread-local's address would be
/// reused by a later thread).
#[inline(always)]
fn this_thread() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local!(static THIS: Cell<u64> = const { Cell::new(0) });
    THIS.with(|this| match this.get() {
        0 => {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            this.set(n);
            n
        }
        n => n,
    })
}
