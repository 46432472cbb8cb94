//! # rewinddb-replay
//!
//! Replay, verify, step through and diff runs. Every version in the engine
//! records the run that wrote it, and the engine keeps a per-run index of
//! commits and keys, so [`replay_run`] rebuilds what a run produced from
//! exactly its own versions: O(run size), whatever else the database holds.
//!
//! - [`ReplayedRun`]: the run's [`Step`]s (one per commit: version, time,
//!   writes), its final [`RunState`], `at_step(k)`, and a stable [`Digest`]
//!   checked by `verify()` against the one recorded at `end_run`.
//! - [`RunView`]: a state read back per primitive (KV, event logs, state
//!   machines, trace trees), without wall-clock times.
//! - [`RunDiff`]: what two runs left differently, per primitive.
//! - Time travel: [`version_at_step`] and [`ReplayedRun::version_at_step`]
//!   give commit versions to read the whole database at with `snapshot_at`.
//!
//! Replay never writes.
//!
//! ```
//! use rewinddb_engine::{Engine, EngineConfig, Isolation, Namespace, RunId};
//! use rewinddb_primitives::{EventLog, Kv, autocommit};
//! use rewinddb_replay::{diff_runs, replay_run};
//!
//! let engine = Engine::open_in_memory(EngineConfig::default())?;
//! let ns = Namespace::new("acme/bot")?;
//! let mut runs = Vec::new();
//! for answer in ["sun", "rain"] {
//!     let run = RunId::new();
//!     let (kv, log) = (Kv::run(ns.clone(), run), EventLog::new(ns.clone(), run));
//!     autocommit(&engine, run, Isolation::Snapshot, |t| log.append(t, "asked", "weather"))?;
//!     autocommit(&engine, run, Isolation::Snapshot, |t| kv.put(t, "answer", answer))?;
//!     runs.push(run);
//! }
//!
//! let replay = replay_run(&engine, runs[0])?;
//! assert_eq!(replay.steps().len(), 2);                     // one step per commit
//! assert_eq!(replay.view_at_step(0)?.kv.len(), 0);         // after step 0: only the event
//! assert_eq!(replay.view()?.kv[0].value.as_str(), Some("sun"));
//! assert_eq!(replay.verify_against(replay.digest())?, replay.digest());
//!
//! let diff = diff_runs(&engine, runs[0], runs[1])?;       // own scopes line up
//! assert_eq!((diff.kv.len(), diff.events.len()), (1, 0));
//! # Ok::<(), rewinddb_replay::Error>(())
//! ```

#![deny(unsafe_code)]

mod diff;
pub mod digest;
mod error;
mod key;
mod replay;
mod view;

pub use diff::{
    Change, Changed, Entry, EventLogDiff, KeyDiff, RunDiff, TagDiff, TraceDiff, diff_states,
};
pub use digest::Digest;
pub use error::{Error, Result};
pub use key::{RunKey, RunScope};
pub use replay::{
    Recorded, ReplayedRun, RunState, Step, Verification, Write, digest_commits, replay_commits,
    replay_run, version_at_step,
};
pub use view::{
    EventItem, EventLogView, KvItem, MachineItem, RunView, SpanItem, StateReader, TraceView,
    covered_by_view, describe_write,
};

/// Replay runs `a` and `b` and compare what they left.
pub fn diff_runs(
    engine: &rewinddb_engine::Engine,
    a: rewinddb_engine::RunId,
    b: rewinddb_engine::RunId,
) -> Result<RunDiff> {
    let ra = replay_run(engine, a)?;
    let rb = replay_run(engine, b)?;
    RunDiff::between(&ra, &rb)
}
