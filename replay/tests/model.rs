//! Model check: `replay_run(r)` equals a state built only from run r's own
//! writes, whatever other runs commit in between (to shared keys too), and
//! `at_step(k)` equals the model after r's first k + 1 commits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use rewinddb_engine::{
    Engine, EngineConfig, Isolation, Key, Namespace, RunId, Scope, TypeTag, Value,
};
use rewinddb_replay::{RunKey, RunScope, replay_run};

/// One write: key number, own scope?, tag index, value (None deletes).
type Op = (u8, bool, usize, Option<i64>);
/// One commit: which of the runs commits it, and its writes.
type Commit = (usize, Vec<Op>);

const RUNS: usize = 3;
const TAGS: [TypeTag; 4] = [TypeTag::Kv, TypeTag::Event, TypeTag::State, TypeTag::Trace];

fn commits() -> impl Strategy<Value = Vec<Commit>> {
    let op = (
        0u8..6,
        any::<bool>(),
        0usize..4,
        proptest::option::weighted(0.8, -3i64..3),
    );
    prop::collection::vec((0..RUNS, prop::collection::vec(op, 1..5)), 1..40)
}

fn ns() -> Namespace {
    Namespace::new("model").unwrap()
}

fn engine_key(run: RunId, (k, own, tag): (u8, bool, usize)) -> Key {
    let scope = if own { Scope::Run(run) } else { Scope::Shared };
    Key::new(ns(), scope, TAGS[tag], [k])
}

fn model_key((k, own, tag): (u8, bool, usize)) -> RunKey {
    RunKey {
        tag: TAGS[tag],
        ns: ns(),
        scope: if own { RunScope::Own } else { RunScope::Shared },
        user: std::sync::Arc::from(&[k][..]),
    }
}

/// Apply one commit's ops to a model map; within a commit the last write
/// to a key wins, as in a transaction's write buffer.
fn apply(model: &mut BTreeMap<RunKey, Value>, ops: &[Op]) {
    let mut last: BTreeMap<RunKey, Option<i64>> = BTreeMap::new();
    for (k, own, tag, v) in ops {
        last.insert(model_key((*k, *own, *tag)), *v);
    }
    for (key, v) in last {
        match v {
            Some(v) => model.insert(key, Value::from(v)),
            None => model.remove(&key),
        };
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        // Integration tests have no lib.rs beside them, so proptest's
        // default (SourceParallel) cannot place a regressions file: name it.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/proptest-regressions/model.txt",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn replay_equals_model_of_own_writes(commits in commits()) {
        let engine = Engine::open_in_memory(EngineConfig::default()).unwrap();
        let runs: Vec<RunId> = (0..RUNS).map(|_| RunId::new()).collect();
        // Per run: the model after each of its commits.
        let mut models: Vec<Vec<BTreeMap<RunKey, Value>>> = vec![Vec::new(); RUNS];
        for (r, ops) in &commits {
            let run = runs[*r];
            let mut txn = engine.begin(run, Isolation::Snapshot);
            for (k, own, tag, v) in ops {
                let key = engine_key(run, (*k, *own, *tag));
                match v {
                    Some(v) => txn.put(key, *v).unwrap(),
                    None => txn.delete(key).unwrap(),
                }
            }
            txn.commit().unwrap();
            let mut next = models[*r].last().cloned().unwrap_or_default();
            apply(&mut next, ops);
            models[*r].push(next);
        }
        for (r, run) in runs.iter().enumerate() {
            let Ok(replay) = replay_run(&engine, *run) else {
                prop_assert!(models[r].is_empty());
                continue;
            };
            prop_assert_eq!(replay.steps().len(), models[r].len());
            let state: BTreeMap<RunKey, Value> =
                replay.state().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            prop_assert_eq!(&state, models[r].last().unwrap());
            for (k, model) in models[r].iter().enumerate() {
                let at: BTreeMap<RunKey, Value> = replay.at_step(k).unwrap()
                    .iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                prop_assert_eq!(&at, model);
            }
        }
    }
}
