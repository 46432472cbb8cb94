//! Random sequences of primitive operations — autocommitted one by one or
//! grouped into explicit transactions that commit or roll back — checked
//! against a plain in-memory model after every step, including reads at
//! every past version through `snapshot_at`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use rewinddb::{Database, Isolation, RunId, RunSpec, Snapshot, SpanId, SpanSpec, Version};

const NS: &str = "model/ns";
const KEYS: [&str; 5] = ["a", "a:1", "a:2", "b", "c"];
const TYPES: [&str; 3] = ["t.one", "t.two", "t.three"];

#[derive(Clone, Debug)]
enum Op {
    KvPut(usize, i64),
    KvDelete(usize),
    Append(usize, i64),
    Define(i64),
    Cas { stale: bool, value: i64 },
    Transition(i64),
    Span(Option<u8>),
}

#[derive(Clone, Debug)]
enum Step {
    One(Op),
    Txn(Vec<Op>, bool),
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Model {
    kv: BTreeMap<String, i64>,
    events: Vec<(String, i64)>,
    state: Option<(i64, u64)>,
    spans: Vec<Option<u64>>,
}

impl Model {
    /// Apply `op`; false if the database must refuse it.
    fn apply(&mut self, op: &Op) -> bool {
        match *op {
            Op::KvPut(k, v) => {
                self.kv.insert(KEYS[k].to_string(), v);
            }
            Op::KvDelete(k) => {
                self.kv.remove(KEYS[k]);
            }
            Op::Append(t, v) => self.events.push((TYPES[t].to_string(), v)),
            Op::Define(v) => match self.state {
                Some(_) => return false,
                None => self.state = Some((v, 1)),
            },
            Op::Cas { stale, value } => match self.state {
                Some((_, ver)) if !stale => self.state = Some((value, ver + 1)),
                _ => return false,
            },
            Op::Transition(d) => match self.state {
                Some((cur, ver)) => self.state = Some((cur.wrapping_add(d), ver + 1)),
                None => return false,
            },
            Op::Span(hint) => match self.parent_of(hint) {
                Some(p) if p >= self.spans.len() as u64 => return false,
                parent => self.spans.push(parent),
            },
        }
        true
    }

    /// The parent seq an op names: None, an existing span, or one past the
    /// end (which must be refused).
    fn parent_of(&self, hint: Option<u8>) -> Option<u64> {
        let len = self.spans.len() as u64;
        hint.map(|h| {
            if len > 0 && h < 200 {
                u64::from(h) % len
            } else {
                len + 3
            }
        })
    }

    fn expected_version(&self, stale: bool) -> u64 {
        self.state.map_or(1, |(_, v)| v) + u64::from(stale)
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..KEYS.len(), -5i64..5).prop_map(|(k, v)| Op::KvPut(k, v)),
        (0..KEYS.len()).prop_map(Op::KvDelete),
        (0..TYPES.len(), any::<i64>()).prop_map(|(t, v)| Op::Append(t, v)),
        (-3i64..3).prop_map(Op::Define),
        (any::<bool>(), -3i64..3).prop_map(|(stale, value)| Op::Cas { stale, value }),
        (-2i64..3).prop_map(Op::Transition),
        proptest::option::of(any::<u8>()).prop_map(Op::Span),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => op().prop_map(Step::One),
        1 => (proptest::collection::vec(op(), 1..5), any::<bool>()).prop_map(|(ops, c)| Step::Txn(ops, c)),
    ]
}

fn run_autocommit(db: &Database, run: RunId, model: &Model, op: &Op) -> bool {
    let sm = db.state(NS);
    match *op {
        Op::KvPut(k, v) => db.kv(NS).put(run, KEYS[k], v).is_ok(),
        Op::KvDelete(k) => db.kv(NS).delete(run, KEYS[k]).is_ok(),
        Op::Append(t, v) => db.events(NS, run).append(TYPES[t], v).is_ok(),
        Op::Define(v) => sm.define(run, "m", v, None).is_ok(),
        Op::Cas { stale, value } => sm
            .cas(run, "m", model.expected_version(stale), value)
            .is_ok(),
        Op::Transition(d) => sm
            .transition(run, "m", |c| c.as_i64().unwrap_or(0).wrapping_add(d))
            .is_ok(),
        Op::Span(hint) => {
            let mut spec = SpanSpec::custom("step", 0);
            if let Some(seq) = model.parent_of(hint) {
                spec = spec.parent(SpanId { run, seq });
            }
            db.traces(NS, run).record(spec).is_ok()
        }
    }
}

fn run_in_txn(txn: &rewinddb::Transaction, model: &Model, op: &Op) -> bool {
    let sm = txn.state(NS);
    match *op {
        Op::KvPut(k, v) => txn.kv(NS).put(KEYS[k], v).is_ok(),
        Op::KvDelete(k) => txn.kv(NS).delete(KEYS[k]).is_ok(),
        Op::Append(t, v) => txn.events(NS).append(TYPES[t], v).is_ok(),
        Op::Define(v) => sm.define("m", v, None).is_ok(),
        Op::Cas { stale, value } => sm.cas("m", model.expected_version(stale), value).is_ok(),
        Op::Transition(d) => sm
            .transition("m", |c| c.as_i64().unwrap_or(0).wrapping_add(d))
            .is_ok(),
        Op::Span(hint) => {
            let mut spec = SpanSpec::custom("step", 0);
            if let Some(seq) = model.parent_of(hint) {
                spec = spec.parent(SpanId {
                    run: txn.run(),
                    seq,
                });
            }
            txn.traces(NS).record(spec).is_ok()
        }
    }
}

/// Everything the primitives say, in the model's shape.
fn observe(snap: &Snapshot, run: RunId) -> Model {
    let kv = snap
        .kv(NS)
        .list("")
        .unwrap()
        .entries
        .into_iter()
        .map(|(k, v)| (k, v.as_i64().unwrap()))
        .collect::<BTreeMap<_, _>>();
    for key in KEYS {
        assert_eq!(
            snap.kv(NS).get(key).unwrap().and_then(|v| v.as_i64()),
            kv.get(key).copied()
        );
    }
    let log = snap.events(NS, run);
    log.verify().unwrap();
    let events: Vec<(String, i64)> = log
        .read(..)
        .unwrap()
        .into_iter()
        .map(|e| (e.event_type.to_string(), e.payload.as_i64().unwrap()))
        .collect();
    assert_eq!(log.len().unwrap(), events.len() as u64);
    let state = snap
        .state(NS)
        .read_state("m")
        .ok()
        .map(|s| (s.value.as_i64().unwrap(), s.version));
    let spans = snap
        .traces(NS, run)
        .spans()
        .unwrap()
        .into_iter()
        .map(|s| s.parent.map(|p| p.seq))
        .collect();
    Model {
        kv,
        events,
        state,
        spans,
    }
}

fn check(steps: Vec<Step>) {
    let db = Database::in_memory().unwrap();
    let run = db.begin_run(RunSpec::new("model")).unwrap();
    let mut model = Model::default();
    let mut history: Vec<(Version, Model)> = vec![(db.engine().visible_version(), model.clone())];
    for step in &steps {
        match step {
            Step::One(op) => {
                let ok = run_autocommit(&db, run, &model, op);
                assert_eq!(ok, model.apply(op), "{op:?}");
            }
            Step::Txn(ops, commit) => {
                let txn = db.begin(run, Isolation::Snapshot).unwrap();
                let mut inner = model.clone();
                for op in ops {
                    let ok = run_in_txn(&txn, &inner, op);
                    assert_eq!(ok, inner.apply(op), "{op:?} in a transaction");
                }
                if *commit {
                    txn.commit().unwrap();
                    model = inner;
                } else {
                    txn.rollback().unwrap();
                }
            }
        }
        assert_eq!(observe(&db.snapshot(), run), model, "after {step:?}");
        let v = db.engine().visible_version();
        if history.last().is_none_or(|(hv, _)| *hv != v) {
            history.push((v, model.clone()));
        }
    }
    for (v, expected) in &history {
        assert_eq!(
            &observe(&db.snapshot_at(*v).unwrap(), run),
            expected,
            "at version {v}"
        );
    }
}

#[path = "support/proptest_cases.rs"]
mod proptest_cases;
use proptest_cases::cases_or;

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases_or(64),
        // Integration tests have no lib.rs beside them, so proptest's
        // default (SourceParallel) cannot place a regressions file: name it.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/proptest-regressions/model.txt",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn primitives_match_the_model(steps in proptest::collection::vec(step(), 1..40)) {
        check(steps);
    }
}

#[test]
fn a_step_that_wrote_nothing_still_matches() {
    // Regression-style fixed case: a rolled-back group between commits.
    check(vec![
        Step::One(Op::Define(1)),
        Step::Txn(vec![Op::Transition(1), Op::Span(None)], false),
        Step::One(Op::Cas {
            stale: false,
            value: 5,
        }),
        Step::Txn(
            vec![Op::Span(None), Op::Span(Some(0)), Op::KvPut(1, 2)],
            true,
        ),
    ]);
}
