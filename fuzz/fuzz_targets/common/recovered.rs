//! Shared by the soak targets checkpoint_open and wal_open (included with
//! `#[path]`): the engine they recover from their input, and what they do
//! with it.

use std::sync::Arc;

use rewinddb_engine::durability::MemStorage;
use rewinddb_engine::{CheckpointPolicy, Engine, EngineConfig, Isolation, Key, RunId, Version};

/// Manual checkpoints and no background threads: every run is deterministic.
pub fn config() -> EngineConfig {
    EngineConfig::default()
        .checkpoint(CheckpointPolicy::MANUAL)
        .background_threads(false)
}

/// Read each of `keys` at each of `versions` (a point read and a scan of
/// its family), then its whole history: none of it may panic.
pub fn read_keys(engine: &Engine, keys: &[Key], versions: impl IntoIterator<Item = Version>) {
    for at in versions {
        if let Ok(snap) = engine.snapshot_at(at) {
            for k in keys {
                let _ = snap.get_versioned(k);
                let prefix = k.family().key(b"");
                let _ = snap.scan(&prefix, None, 100);
            }
        }
    }
    for k in keys {
        let _ = engine.history(k, u64::MAX);
    }
}

/// GC, one commit (to `key`, if given), a checkpoint, and a reopen from
/// `storage` that must come back at the version the commit left.
pub fn commit_checkpoint_reopen(engine: Engine, storage: MemStorage, key: Option<&Key>) {
    let _ = engine.gc();
    if let Some(k) = key {
        let mut t = engine.begin(RunId::NIL, Isolation::Snapshot);
        if t.put(k.clone(), 1i64).is_ok() {
            let _ = t.commit();
        }
    }
    let now = engine.visible_version();
    engine.checkpoint().expect("a recovered engine checkpoints");
    drop(engine);
    let reopened =
        Engine::open_with_storage(config(), Arc::new(storage)).expect("reopen after checkpoint");
    assert_eq!(reopened.visible_version(), now);
}
