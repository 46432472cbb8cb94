//! A small end-to-end tour of the engine until the agent example exists.

use rewinddb_engine::{Engine, EngineConfig, Isolation, Key, Namespace, RunId, Scope, TypeTag};

fn main() -> Result<(), rewinddb_engine::Error> {
    let engine = Engine::open_in_memory(EngineConfig::default())?;
    let ns = Namespace::new("acme/bot")?;
    let run = RunId::new();
    let key = Key::new(ns, Scope::Shared, TypeTag::Kv, b"count");
    let mut versions = Vec::new();
    for i in 0..3i64 {
        let (_, v) = engine.transaction(run, Isolation::Snapshot, |txn| {
            let n = txn.get(&key)?.and_then(|v| v.as_i64()).unwrap_or(0);
            txn.put(key.clone(), n + i)
        })?;
        versions.push(v);
    }
    for v in versions {
        let value = engine.snapshot_at(v)?.get(&key)?;
        println!("count at version {v}: {value:?}");
    }
    println!("run {run} made {} commits", engine.run_commits(run).len());
    Ok(())
}
