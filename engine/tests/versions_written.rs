//! `Engine::versions_written` (the batched read replay uses) gives, for
//! each key of a run's commit, exactly what `version_of` gives: the value
//! that commit wrote, a tombstone, or None once GC unlinked it; and
//! `versions_written_into` gives the same, flattened and appended.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rewinddb_engine::{
    Engine, EngineConfig, Isolation, Key, Namespace, Retention, RunId, Scope, TypeTag, Value,
};

fn key(name: &str) -> Key {
    Key::new(
        Namespace::new("vw").unwrap(),
        Scope::Shared,
        TypeTag::Kv,
        name,
    )
}

#[test]
fn batched_reads_match_version_of_for_values_tombstones_and_pruned_versions() {
    let config = EngineConfig::default().retention(Retention::Versions(1));
    let engine = Engine::open_in_memory(config).unwrap();
    let run = RunId::new();
    // Each transaction is dropped at once: a live one would pin its start
    // version against GC.
    let commit = |run: RunId, writes: &[(&str, Option<Value>)]| {
        let mut txn = engine.begin(run, Isolation::Snapshot);
        for (k, v) in writes {
            match v {
                Some(v) => txn.put(key(k), v.clone()).unwrap(),
                None => txn.delete(key(k)).unwrap(),
            }
        }
        txn.commit().unwrap();
    };
    commit(run, &[("a", Some(1.into())), ("b", Some("x".into()))]);
    commit(run, &[("a", None), ("c", Some(3.into()))]);
    commit(RunId::new(), &[("b", Some("y".into()))]); // another run overwrites b

    let check = |expected: Vec<Vec<Option<Option<Value>>>>| {
        let commits = engine.run_commits(run).unwrap();
        let got = engine.versions_written(&commits);
        let singly: Vec<_> = commits
            .iter()
            .flat_map(|c| engine.versions_written(std::slice::from_ref(c)))
            .collect();
        assert_eq!(got, singly);
        let one_by_one: Vec<Vec<_>> = commits
            .iter()
            .map(|c| c.keys().map(|k| engine.version_of(k, c.version)).collect())
            .collect();
        assert_eq!(got, one_by_one);
        let mut flat = vec![Some(Some(Value::from("kept")))];
        engine.versions_written_into(&commits, &mut flat);
        let mut expected_flat = vec![Some(Some(Value::from("kept")))];
        expected_flat.extend(got.iter().flatten().cloned());
        assert_eq!(
            flat, expected_flat,
            "appended, flattened in commit then key order"
        );
        assert_eq!(got, expected);
    };
    check(vec![
        vec![Some(Some(Value::from(1))), Some(Some(Value::from("x")))],
        vec![Some(None), Some(Some(Value::from(3)))],
    ]);
    engine.gc().unwrap(); // keeps one version per key: a@1 and b@1 go
    check(vec![
        vec![None, None],
        vec![Some(None), Some(Some(Value::from(3)))],
    ]);
}
