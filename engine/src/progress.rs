//! [`Progress`]: reports of long work (opening a durable database,
//! writing a checkpoint, a GC pass; and, from the layers above the engine,
//! replaying a run and verifying an event log) to an observer the caller
//! sets with [`EngineConfig::progress`](crate::EngineConfig::progress).
//!
//! Reports are coarse (per WAL segment, per [`PROGRESS_STEP_KEYS`] keys,
//! writes or events),
//! so observing costs nothing measurable. The observer runs on the thread
//! doing the work, possibly a background checkpoint thread, while the
//! work's locks are held: it must return quickly and must not call into
//! the engine. A panic in it is caught and the report dropped: a progress
//! display never fails the work it watches.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use crate::types::{RunId, Version};

/// Keys a checkpoint writes or a GC pass visits, writes a replay reads, or
/// events a verification checks, between two reports.
pub const PROGRESS_STEP_KEYS: u64 = 16_384;

/// One report of long work.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Progress {
    /// Opening: the checkpoint at `version` (a file of `bytes` bytes) is
    /// being decoded. Reported again for an older checkpoint if this one
    /// turns out damaged.
    OpenCheckpoint {
        /// The checkpoint's version.
        version: Version,
        /// Its file's size.
        bytes: u64,
    },
    /// Opening: `keys_done` of the checkpoint's `keys_total` keys are
    /// installed. Reported every [`PROGRESS_STEP_KEYS`] keys and once at
    /// the end, from the thread installing them while the WAL is being
    /// decoded, so these reports interleave with [`Progress::OpenWal`].
    OpenCheckpointKeys {
        /// The checkpoint's version.
        version: Version,
        /// Keys installed so far.
        keys_done: u64,
        /// Keys in the checkpoint.
        keys_total: u64,
    },
    /// Opening: `segments_done` of the `segments_total` WAL segments to
    /// read are decoded, through version `version`. Reported once per
    /// segment; the reports stop short of `segments_total` when the WAL
    /// ends before its last segment (a torn tail, or damage and
    /// `RecoveryMode::SalvagePrefix`).
    OpenWal {
        /// Segments decoded so far.
        segments_done: usize,
        /// Segments recovery reads (from the one holding the version after
        /// the checkpoint on).
        segments_total: usize,
        /// Newest version decoded so far.
        version: Version,
    },
    /// Opening finished: the state is recovered through `version`, with
    /// `keys` keys. The open's last report (a background checkpoint
    /// started by the open may report before it).
    Opened {
        /// Newest recovered version.
        version: Version,
        /// Keys in the recovered state.
        keys: u64,
    },
    /// A checkpoint at `version` has written `keys_done` keys of the
    /// `keys_total` there were when it started (keys created meanwhile may
    /// take `keys_done` past it). Reported every [`PROGRESS_STEP_KEYS`]
    /// keys and once at the end.
    Checkpoint {
        /// The checkpoint's version.
        version: Version,
        /// Keys written so far.
        keys_done: u64,
        /// Keys when the checkpoint started.
        keys_total: u64,
    },
    /// A GC pass has visited `keys_done` keys of the `keys_total` there
    /// were when it started (both from the key index, which may count a
    /// key twice while it grows: `keys_done` may end off `keys_total`).
    /// Reported every [`PROGRESS_STEP_KEYS`] keys and once at the end
    /// (under `Retention::KeepAll` GC visits nothing and reports nothing).
    Gc {
        /// Keys visited so far.
        keys_done: u64,
        /// Keys when the pass started.
        keys_total: u64,
    },
    /// Replaying `run` (a replay, each side of a diff, and the digest that
    /// ending a run records): `writes_done` of its `writes_total` writes
    /// are read back. Reported every [`PROGRESS_STEP_KEYS`] writes and once
    /// at the end, unless the replay fails first.
    Replay {
        /// The run.
        run: RunId,
        /// Writes read back so far.
        writes_done: u64,
        /// Writes the run made.
        writes_total: u64,
    },
    /// Verifying the hash chain of `run`'s event log: `events_done` of its
    /// `events_total` events are checked. Reported every
    /// [`PROGRESS_STEP_KEYS`] events and once at the end, unless the chain
    /// breaks first (the error names where).
    VerifyEvents {
        /// The run whose log is verified.
        run: RunId,
        /// Events checked so far.
        events_done: u64,
        /// Events in the log.
        events_total: u64,
    },
}

/// Where progress reports go: a function called with each report.
#[derive(Clone)]
pub struct ProgressObserver(Arc<dyn Fn(&Progress) + Send + Sync>);

impl ProgressObserver {
    /// An observer calling `f` with each report.
    pub fn new(f: impl Fn(&Progress) + Send + Sync + 'static) -> ProgressObserver {
        ProgressObserver(Arc::new(f))
    }

    /// Hand `report` to the observer; a panic in it is caught and dropped.
    pub fn report(&self, report: Progress) {
        let _ = catch_unwind(AssertUnwindSafe(|| (self.0)(&report)));
    }
}

impl fmt::Debug for ProgressObserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProgressObserver(..)")
    }
}

/// Counts the items (keys, writes, events) of a long pass and reports
/// every [`PROGRESS_STEP_KEYS`] of them, and at the end;
/// `report(items_done)` builds the report. Without an observer it only
/// counts.
pub struct ProgressCounter<'o, F> {
    observer: Option<&'o ProgressObserver>,
    done: u64,
    report: F,
}

impl<'o, F: Fn(u64) -> Progress> ProgressCounter<'o, F> {
    /// A counter at 0 reporting to `observer`, if any.
    pub fn new(observer: Option<&'o ProgressObserver>, report: F) -> ProgressCounter<'o, F> {
        ProgressCounter {
            observer,
            done: 0,
            report,
        }
    }

    /// One more item; a report if that completes a step.
    pub fn tick(&mut self) {
        self.done += 1;
        if self.done % PROGRESS_STEP_KEYS == 0 {
            self.send();
        }
    }

    /// The final report.
    pub fn finish(self) {
        self.send();
    }

    fn send(&self) {
        if let Some(observer) = self.observer {
            observer.report((self.report)(self.done));
        }
    }
}
