//! Model check: `replay_run(r)` equals a state built only from run r's own
//! writes, whatever other runs commit in between (to shared keys too), and
//! `at_step(k)` equals the model after r's first k + 1 commits; runs larger
//! than one batched read replay whole. `RunState::apply` step by step
//! agrees with `at_step`; `RunKey`'s order is its fields' order.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use rewinddb_engine::{
    Engine, EngineConfig, Isolation, Key, Namespace, RunId, Scope, TypeTag, Value,
};
use rewinddb_replay::{RunKey, RunScope, RunState, Step, Write, replay_run};

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
        user: rewinddb_engine::KeyBytes::from(&[k][..]),
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

#[path = "../../tests/support/proptest_cases.rs"]
mod proptest_cases;
use proptest_cases::cases_or;

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases_or(128),
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
            let keys: Vec<&RunKey> = replay.state().iter().map(|(k, _)| k).collect();
            prop_assert!(keys.windows(2).all(|w| w[0] < w[1]), "state in key order");
            let mut applied = RunState::default();
            for (k, model) in models[r].iter().enumerate() {
                let at_step = replay.at_step(k).unwrap();
                let at: BTreeMap<RunKey, Value> =
                    at_step.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                prop_assert_eq!(&at, model);
                applied.apply(&replay.steps()[k]);
                prop_assert_eq!(&applied, &at_step);
            }
        }
    }
}

fn run_key() -> impl Strategy<Value = RunKey> {
    let scope = prop_oneof![
        Just(RunScope::Shared),
        Just(RunScope::Own),
        (0u128..3).prop_map(|r| RunScope::Run(RunId::from_u128(r))),
    ];
    (
        0usize..4,
        prop::sample::select(vec!["a", "ab", "b"]),
        scope,
        prop::collection::vec(0u8..3, 0..3),
    )
        .prop_map(|(tag, ns, scope, user)| RunKey {
            tag: TAGS[tag],
            ns: Namespace::new(ns).unwrap(),
            scope,
            user: rewinddb_engine::KeyBytes::from(user),
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/proptest-regressions/model.txt",
        ))),
        ..ProptestConfig::default()
    })]

    /// `RunKey`'s hand-written order (with its shared-allocation shortcut)
    /// is the order of (tag, namespace, scope, user bytes), for distinct
    /// allocations and for a key compared with its own clone.
    #[test]
    fn run_key_order_is_field_order(a in run_key(), b in run_key()) {
        let fields = |k: &RunKey| (k.tag, k.ns.as_str().to_string(), k.scope, k.user.to_vec());
        prop_assert_eq!(a.cmp(&b), fields(&a).cmp(&fields(&b)));
        prop_assert_eq!(a.cmp(&b) == std::cmp::Ordering::Equal, a == b);
        prop_assert_eq!(a.cmp(&a.clone()), std::cmp::Ordering::Equal);
    }
}

/// Runs larger than one read batch (about 1,024 keys), including a single
/// commit larger than a batch, replay whole and in order.
#[test]
fn runs_larger_than_a_read_batch_replay_whole() {
    let engine = Engine::open_in_memory(EngineConfig::default()).unwrap();
    let run = RunId::new();
    let sizes: Vec<usize> = (0..250).map(|i| if i == 100 { 2000 } else { 10 }).collect();
    for (c, &n) in sizes.iter().enumerate() {
        let mut txn = engine.begin(run, Isolation::Snapshot);
        for k in 0..n {
            let key = Key::new(ns(), Scope::Run(run), TypeTag::Kv, format!("{k:05}"));
            txn.put(key, (c * 10_000 + k) as i64).unwrap();
        }
        txn.commit().unwrap();
    }
    let replay = replay_run(&engine, run).unwrap();
    assert_eq!(replay.steps().len(), 250);
    assert_eq!(replay.write_count(), sizes.iter().sum::<usize>());
    for (step, &n) in replay.steps().iter().zip(&sizes) {
        assert_eq!(step.writes.len(), n, "step {}", step.index);
    }
    // Keys 0..10 were last written by commit 249, keys 10..2000 by commit 100.
    let value_of = |k: usize| {
        let key = RunKey {
            tag: TypeTag::Kv,
            ns: ns(),
            scope: RunScope::Own,
            user: rewinddb_engine::KeyBytes::from(format!("{k:05}").as_bytes()),
        };
        replay.state().get(&key).and_then(Value::as_i64)
    };
    assert_eq!(value_of(3), Some(2_490_003));
    assert_eq!(value_of(1999), Some(1_001_999));
    assert_eq!(replay.state().len(), 2000);
}

/// Hand-built steps need not keep their writes in key order:
/// `RunState::of_steps` still gives the state that applying them one by
/// one gives (last write to a key wins, deletes remove).
#[test]
fn of_steps_accepts_steps_out_of_key_order() {
    let write = |k: u8, v: Option<i64>| Write {
        key: model_key((k, true, 0)),
        value: v.map(Value::from),
    };
    let step = |index: usize, writes: Vec<Write>| Step {
        index,
        version: index as u64 + 1,
        wall_ms: 0,
        writes,
    };
    let steps = vec![
        step(
            0,
            vec![write(5, Some(1)), write(3, Some(2)), write(1, Some(3))],
        ),
        step(1, vec![write(4, Some(4)), write(3, None)]),
        step(
            2,
            vec![write(9, Some(5)), write(5, Some(6)), write(0, Some(7))],
        ),
    ];
    let mut applied = RunState::default();
    steps.iter().for_each(|s| applied.apply(s));
    let state = RunState::of_steps(&steps);
    assert_eq!(state, applied);
    let got: Vec<(u8, i64)> = state
        .iter()
        .map(|(k, v)| (k.user[0], v.as_i64().unwrap()))
        .collect();
    assert_eq!(got, [(0, 7), (1, 3), (4, 4), (5, 6), (9, 5)]);
}
