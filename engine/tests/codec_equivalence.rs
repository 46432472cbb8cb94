//! The hand-written WAL and checkpoint decoder (engine/src/durability/codec.rs)
//! reads exactly what serde + postcard wrote: every record postcard encodes
//! decodes to the same record, and whatever the decoder accepts from damaged
//! bytes, postcard's own derived decoder accepts too, with the same result,
//! and re-encodes to the very same bytes (only canonical encodings pass).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use rewinddb_engine::durability::codec::{DecodeError, decode_commit_record};
use rewinddb_engine::{CommitRecord, Key, Namespace, RunId, Scope, TypeTag, Value};

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        // Finite floats only: NaN != NaN would fail the equality below.
        (-1e300f64..1e300).prop_map(Value::Float),
        ".{0,12}".prop_map(Value::from),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(".{0,4}", inner, 0..4).prop_map(Value::from),
        ]
    })
}

fn key() -> impl Strategy<Value = Key> {
    (
        prop_oneof![Just("a"), Just("agent/x"), Just("zz")],
        prop_oneof![
            Just(Scope::Shared),
            any::<u128>().prop_map(|r| Scope::Run(RunId::from_u128(r)))
        ],
        0u8..5,
        prop::collection::vec(any::<u8>(), 0..20),
    )
        .prop_map(|(ns, scope, tag, user)| {
            let tag = TypeTag::from_u8(tag + 1).unwrap();
            Key::new(Namespace::new(ns).unwrap(), scope, tag, user)
        })
}

fn record() -> impl Strategy<Value = CommitRecord> {
    (
        any::<u64>(),
        any::<u128>(),
        any::<u64>(),
        prop::collection::btree_map(key(), prop::option::of(value()), 0..6),
    )
        .prop_map(|(version, run, wall_ms, writes)| CommitRecord {
            version,
            run: RunId::from_u128(run),
            wall_ms,
            writes: writes.into_iter().collect(),
        })
}

#[path = "../../tests/support/proptest_cases.rs"]
mod proptest_cases;
use proptest_cases::cases_or;

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases_or(512),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/proptest-regressions/codec_equivalence.txt"
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_postcard_record_decodes_to_itself(r in record()) {
        let bytes = postcard::to_allocvec(&r).unwrap();
        prop_assert_eq!(decode_commit_record(&bytes).unwrap(), r);
    }

    #[test]
    fn damaged_records_decode_only_as_postcard_would(
        r in record(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = postcard::to_allocvec(&r).unwrap();
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        if let Ok(mine) = decode_commit_record(&bytes) {
            let theirs: CommitRecord = postcard::from_bytes(&bytes).unwrap();
            prop_assert_eq!(&mine, &theirs);
            prop_assert_eq!(postcard::to_allocvec(&mine).unwrap(), bytes);
        }
    }
}

fn record_with(value: Value) -> CommitRecord {
    CommitRecord {
        version: 1,
        run: RunId::NIL,
        wall_ms: 0,
        writes: vec![(
            Key::new(
                Namespace::new("n").unwrap(),
                Scope::Shared,
                TypeTag::Kv,
                b"k",
            ),
            Some(value),
        )],
    }
}

fn refused(bytes: &[u8]) -> DecodeError {
    decode_commit_record(bytes).unwrap_err()
}

#[test]
fn non_canonical_encodings_are_refused() {
    // The version as a two-byte varint of 1: postcard would accept it,
    // but the encoder never writes it, so it is damage.
    let good = postcard::to_allocvec(&record_with(Value::Null)).unwrap();
    let mut long = vec![0x81, 0x00];
    long.extend_from_slice(&good[1..]);
    assert!(refused(&long).reason.contains("shortest"));
    // Option tag 2, bool 2.
    let n = good.len();
    let mut bad = good.clone();
    bad[n - 2] = 2;
    assert!(refused(&bad).reason.contains("option"));
    let mut bad = postcard::to_allocvec(&record_with(Value::Bool(true))).unwrap();
    let n = bad.len();
    bad[n - 1] = 2;
    assert!(refused(&bad).reason.contains("bool"));
    // Object fields out of order (a BTreeMap is always written sorted).
    let mut fields = BTreeMap::new();
    fields.insert("a".to_string(), Value::Null);
    fields.insert("b".to_string(), Value::Null);
    let mut bad = postcard::to_allocvec(&record_with(Value::from(fields))).unwrap();
    let n = bad.len();
    // ... [1 'a'][Null 0][1 'b'][Null 0]: swap the two names.
    assert_eq!(&bad[n - 6..], &[1, b'a', 0, 1, b'b', 0]);
    bad[n - 5] = b'b';
    bad[n - 2] = b'a';
    assert!(refused(&bad).reason.contains("order"));
}

#[test]
fn writes_out_of_key_order_or_repeated_are_refused() {
    let k = |u: &str| Key::new(Namespace::new("n").unwrap(), Scope::Shared, TypeTag::Kv, u);
    for writes in [
        vec![(k("b"), None), (k("a"), None)],
        vec![(k("a"), None), (k("a"), Some(Value::Int(1)))],
    ] {
        let r = CommitRecord {
            version: 1,
            run: RunId::NIL,
            wall_ms: 0,
            writes,
        };
        let e = refused(&postcard::to_allocvec(&r).unwrap());
        assert!(e.reason.contains("key order"), "{e}");
    }
}

#[test]
fn damage_is_reported_with_its_offset() {
    let good = postcard::to_allocvec(&record_with(Value::from("text"))).unwrap();
    // Invalid UTF-8 in the string's last byte.
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 1] = 0xff;
    let e = refused(&bad);
    assert!(e.reason.contains("UTF-8"), "{e}");
    assert_eq!(e.offset, n - 5, "{e}"); // where the string's length starts
    // Truncated anywhere: refused, never a panic.
    for len in 0..good.len() {
        assert!(decode_commit_record(&good[..len]).is_err(), "{len}");
    }
}

#[test]
fn keys_of_one_namespace_share_its_text() {
    let ns = Namespace::new("shared/ns").unwrap();
    let writes = (0..3u8)
        .map(|i| {
            let key = Key::new(ns.clone(), Scope::Shared, TypeTag::Kv, [i]);
            (key, None)
        })
        .collect();
    let r = CommitRecord {
        version: 1,
        run: RunId::NIL,
        wall_ms: 0,
        writes,
    };
    let decoded = decode_commit_record(&postcard::to_allocvec(&r).unwrap()).unwrap();
    assert_eq!(decoded, r);
    let first = decoded.writes[0].0.ns().as_str().as_ptr();
    for (key, _) in &decoded.writes {
        assert_eq!(key.ns().as_str().as_ptr(), first);
    }
}
