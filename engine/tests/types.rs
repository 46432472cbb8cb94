//! Guards the core types through the public API: `RunId` layout, display, parsing and order; `KeyBytes` order and equality; `TypeTag` bytes; `Key` order, hashing and `has_prefix`; `Value` JSON and serde round trips; the commit time index.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use rewinddb_engine::{
    Engine, EngineConfig, Family, Isolation, Key, KeyBytes, Namespace, RunId, Scope, TypeTag,
    Value, wall_clock_ms,
};

fn ns(s: &str) -> Namespace {
    Namespace::new(s).unwrap()
}

fn kv(namespace: &str, user: &str) -> Key {
    Key::new(ns(namespace), Scope::Shared, TypeTag::Kv, user)
}

// ---- RunId -------------------------------------------------------------------------------

#[test]
fn run_ids_have_the_uuid_v7_layout_and_the_current_time() {
    let before = wall_clock_ms();
    let id = RunId::new();
    let after = wall_clock_ms();
    let v = id.as_u128();
    assert_eq!((v >> 76) & 0xf, 7, "version nibble");
    assert_eq!((v >> 62) & 0b11, 0b10, "variant bits");
    assert!(
        (before..=after).contains(&id.timestamp_ms()),
        "{before} <= {} <= {after}",
        id.timestamp_ms()
    );
    assert!(!id.is_nil());
}

#[test]
fn run_ids_made_by_one_process_strictly_increase() {
    let ids: Vec<RunId> = (0..20_000).map(|_| RunId::new()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids made in one millisecond must still increase"
    );
    // Many ids per millisecond: the counter in rand_a must carry them, not repeat.
    let distinct: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len());
}

#[test]
fn run_ids_order_by_time_first() {
    let a = RunId::new();
    std::thread::sleep(Duration::from_millis(3));
    let b = RunId::new();
    assert!(a.timestamp_ms() < b.timestamp_ms());
    assert!(a < b);
    assert!(RunId::NIL < a);
    assert_eq!(a.cmp(&b), a.as_u128().cmp(&b.as_u128()));
}

#[test]
fn run_ids_print_like_uuids_and_parse_back() {
    let id = RunId::from_u128(0x0190_f5a0_1234_7abc_8def_0123_4567_89ab);
    assert_eq!(id.to_string(), "0190f5a0-1234-7abc-8def-0123456789ab");
    assert_eq!(
        format!("{id:?}"),
        "RunId(0190f5a0-1234-7abc-8def-0123456789ab)"
    );
    assert_eq!(
        "0190f5a0-1234-7abc-8def-0123456789ab"
            .parse::<RunId>()
            .unwrap(),
        id
    );
    assert_eq!(
        "0190F5A0-1234-7ABC-8DEF-0123456789AB"
            .parse::<RunId>()
            .unwrap(),
        id,
        "hex is case-insensitive"
    );
    assert_eq!(
        RunId::NIL.to_string(),
        "00000000-0000-0000-0000-000000000000"
    );
    assert!(RunId::NIL.is_nil());
    for _ in 0..1000 {
        let id = RunId::new();
        assert_eq!(id.to_string().parse::<RunId>().unwrap(), id);
    }
}

// Only the canonical 8-4-4-4-12 form parses: no sign, no dashes elsewhere.
#[test]
fn run_ids_in_other_shapes_do_not_parse() {
    for bad in [
        "+0000000-0000-0000-0000-000000000001",
        "00000000000000000000000000000000----",
        "0000000-00000-0000-0000-000000000001",
        "00000000-0000-0000-0000-00000000000 ",
        "{0000000-0000-0000-0000-00000000001}",
        "00000000-0000-0000-0000-0000000000001",
    ] {
        assert!(bad.parse::<RunId>().is_err(), "{bad:?} parsed");
    }
}

#[test]
fn run_ids_round_trip_through_serde() {
    let id = RunId::new();
    let json = serde_json::to_string(&id).unwrap();
    assert_eq!(serde_json::from_str::<RunId>(&json).unwrap(), id);
}

// Held as four 32-bit words: order, equality, the u128 round trip and the timestamp must be
// those of the 128-bit value, at every word boundary (values drawn per word, so carries and
// equal high words are common).
proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("tests/proptest-regressions/types.txt"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn run_ids_order_and_convert_as_their_128_bit_values(
        a in prop::array::uniform4(prop_oneof![Just(0u32), Just(u32::MAX), any::<u32>()]),
        b in prop::array::uniform4(prop_oneof![Just(0u32), Just(u32::MAX), any::<u32>()]),
    ) {
        let value = |w: [u32; 4]| w.iter().fold(0u128, |acc, &x| (acc << 32) | u128::from(x));
        let (va, vb) = (value(a), value(b));
        let (ra, rb) = (RunId::from_u128(va), RunId::from_u128(vb));
        prop_assert_eq!(ra.as_u128(), va);
        prop_assert_eq!(ra.cmp(&rb), va.cmp(&vb));
        prop_assert_eq!(ra == rb, va == vb);
        prop_assert_eq!(ra.timestamp_ms(), (va >> 80) as u64);
        prop_assert_eq!(ra.is_nil(), va == 0);
        let json = serde_json::to_string(&ra).unwrap();
        prop_assert_eq!(json, va.to_string());
    }
}

// User key bytes order and compare exactly as the byte slices they hold, on both sides of the
// inline limit (22 bytes): inline strings compare as zero-padded words, so the strategy favours
// zero bytes, shared prefixes and lengths around the limit, where that could go wrong.
fn arb_user_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![3 => Just(0u8), 1 => Just(1u8), 2 => any::<u8>()],
        0..26,
    )
}

#[path = "../../tests/support/proptest_cases.rs"]
mod proptest_cases;
use proptest_cases::cases_or;

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("tests/proptest-regressions/types.txt"))),
        cases: cases_or(2048),
        ..ProptestConfig::default()
    })]

    #[test]
    fn key_bytes_order_and_equality_are_the_slices(a in arb_user_bytes(), b in arb_user_bytes(), cut in 0usize..26) {
        // Also a prefix of `a`, so prefixes and strings equal but for trailing bytes are common.
        let c = a[..cut.min(a.len())].to_vec();
        for (x, y) in [(&a, &b), (&a, &c), (&c, &a), (&b, &c)] {
            let (kx, ky) = (KeyBytes::from(x.as_slice()), KeyBytes::from(y.as_slice()));
            prop_assert_eq!(kx.cmp(&ky), x.cmp(y), "{:?} vs {:?}", x, y);
            prop_assert_eq!(kx == ky, x == y);
        }
    }
}

// A key fits in 32 bytes: its family (namespace, scope, tag) is one shared pointer beside
// the user bytes (ARCHITECTURE.md, "Memory per key"); the fields side by side took 56. A
// run id is 4-byte aligned, so a scope holding one (in the family) is 20 bytes.
#[test]
fn keys_and_scopes_keep_their_size() {
    assert_eq!(std::mem::align_of::<RunId>(), 4);
    assert_eq!(std::mem::size_of::<RunId>(), 16);
    assert_eq!(std::mem::size_of::<Scope>(), 20);
    assert_eq!(std::mem::size_of::<Key>(), 32);
}

// ---- TypeTag -----------------------------------------------------------------------------

#[test]
fn type_tags_keep_their_bytes() {
    let tags = [
        (TypeTag::Kv, 1),
        (TypeTag::Event, 2),
        (TypeTag::State, 3),
        (TypeTag::Trace, 4),
        (TypeTag::Run, 5),
    ];
    for (tag, byte) in tags {
        assert_eq!(tag.as_u8(), byte);
        assert_eq!(TypeTag::from_u8(byte), Some(tag));
    }
    for byte in [0, 6, 7, 255] {
        assert_eq!(
            TypeTag::from_u8(byte),
            None,
            "byte {byte} is reserved or invalid"
        );
    }
}

// ---- Key ---------------------------------------------------------------------------------

#[test]
fn keys_order_by_namespace_scope_tag_then_user_bytes() {
    let run_a = RunId::from_u128(1);
    let run_b = RunId::from_u128(2);
    let k = |n: &str, scope: Scope, tag: TypeTag, user: &str| Key::new(ns(n), scope, tag, user);
    let ordered = [
        k("a", Scope::Shared, TypeTag::Kv, "zzz"),
        k("a", Scope::Shared, TypeTag::Event, ""),
        k("a", Scope::Run(run_a), TypeTag::Kv, ""),
        k("a", Scope::Run(run_a), TypeTag::Kv, "a"),
        k("a", Scope::Run(run_a), TypeTag::Kv, "ab"),
        k("a", Scope::Run(run_a), TypeTag::Kv, "b"),
        k("a", Scope::Run(run_b), TypeTag::Kv, ""),
        k("a/b", Scope::Shared, TypeTag::Kv, ""),
        k("b", Scope::Shared, TypeTag::Kv, ""),
    ];
    for w in ordered.windows(2) {
        assert!(w[0] < w[1], "{:?} < {:?}", w[0], w[1]);
    }
}

#[test]
fn has_prefix_needs_the_same_namespace_scope_and_tag() {
    let prefix = kv("acme", "user:42:");
    assert!(kv("acme", "user:42:name").has_prefix(&prefix));
    assert!(
        kv("acme", "user:42:").has_prefix(&prefix),
        "a key is its own prefix"
    );
    assert!(!kv("acme", "user:4").has_prefix(&prefix));
    assert!(!kv("acme", "user:420").has_prefix(&prefix));
    assert!(!kv("acme2", "user:42:name").has_prefix(&prefix));
    let other_tag = Key::new(ns("acme"), Scope::Shared, TypeTag::State, "user:42:name");
    assert!(!other_tag.has_prefix(&prefix));
    let other_scope = Key::new(
        ns("acme"),
        Scope::Run(RunId::new()),
        TypeTag::Kv,
        "user:42:name",
    );
    assert!(!other_scope.has_prefix(&prefix));
    assert!(
        kv("acme", "anything").has_prefix(&kv("acme", "")),
        "an empty prefix covers its range"
    );
}

#[test]
fn keys_display_their_parts() {
    let run = RunId::from_u128(0x0190_f5a0_1234_7abc_8def_0123_4567_89ab);
    let key = Key::new(ns("acme/bot"), Scope::Run(run), TypeTag::Event, "e:1");
    assert_eq!(
        key.to_string(),
        "acme/bot/run:0190f5a0-1234-7abc-8def-0123456789ab/Event/e:1"
    );
    assert_eq!(kv("acme", "k").to_string(), "acme/shared/Kv/k");
    assert_eq!(kv("acme", "k").size_bytes(), 1);
}

fn arb_key() -> impl Strategy<Value = Key> {
    let namespace = prop::sample::select(vec!["a", "ab", "b"]);
    let scope = prop_oneof![
        Just(Scope::Shared),
        (1..3u128).prop_map(|r| Scope::Run(RunId::from_u128(r)))
    ];
    let tag = prop::sample::select(vec![TypeTag::Kv, TypeTag::Event]);
    let user = prop::collection::vec(prop::sample::select(vec![0u8, b'a', b'b', 0xff]), 0..4);
    (namespace, scope, tag, user).prop_map(|(n, s, t, u)| Key::new(ns(n), s, t, u))
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("tests/proptest-regressions/types.txt"))),
        ..ProptestConfig::default()
    })]

    // The store's scans rely on this: the keys with a prefix form one contiguous run in key
    // order, starting at or after the prefix key itself.
    #[test]
    fn keys_with_a_prefix_are_contiguous_in_key_order(mut keys in prop::collection::vec(arb_key(), 1..40), prefix in arb_key()) {
        keys.sort();
        keys.dedup();
        let hits: Vec<usize> = keys.iter().enumerate().filter(|(_, k)| k.has_prefix(&prefix)).map(|(i, _)| i).collect();
        if let (Some(first), Some(last)) = (hits.first(), hits.last()) {
            prop_assert_eq!(last - first + 1, hits.len(), "not contiguous");
            prop_assert!(keys[*first] >= prefix);
            // Every key between the prefix and the first hit sorts before the range.
            for k in &keys[..*first] {
                prop_assert!(!k.has_prefix(&prefix));
            }
        }
    }

    #[test]
    fn keys_round_trip_through_serde(key in arb_key()) {
        let json = serde_json::to_string(&key).unwrap();
        prop_assert_eq!(serde_json::from_str::<Key>(&json).unwrap(), key);
    }
}

// ---- Value -------------------------------------------------------------------------------

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value as J;
    let leaf = prop_oneof![
        Just(J::Null),
        any::<bool>().prop_map(J::Bool),
        any::<i64>().prop_map(J::from),
        // Finite floats only: JSON has no NaN or infinities.
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(J::from),
        ".{0,8}".prop_map(J::String),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(J::Array),
            prop::collection::btree_map(".{0,4}", inner, 0..4)
                .prop_map(|m| J::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("tests/proptest-regressions/types.txt"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn json_values_round_trip_through_value(json in arb_json()) {
        let value = Value::from(json.clone());
        prop_assert_eq!(value.to_json(), json.clone());
        prop_assert_eq!(serde_json::Value::from(&value), json);
    }

    // Through a binary serde format (postcard, as a WAL record would carry it) a value comes
    // back exactly, floats and bytes included. (Through JSON *text*, serde_json's default float
    // parser may be off by one ulp, e.g. for 2.7965721498917176e-40.)
    #[test]
    fn values_round_trip_through_serde(json in arb_json(), bytes in prop::collection::vec(any::<u8>(), 0..8)) {
        let value = Value::from(vec![Value::from(json), Value::from(bytes)]);
        let encoded = postcard::to_allocvec(&value).unwrap();
        prop_assert_eq!(postcard::from_bytes::<Value>(&encoded).unwrap(), value);
    }
}

#[test]
fn value_conversions_that_json_cannot_hold_are_documented() {
    // Bytes become an array of numbers; non-finite floats become null.
    assert_eq!(
        Value::from(vec![1u8, 255]).to_json(),
        serde_json::json!([1, 255])
    );
    assert_eq!(Value::Float(f64::NAN).to_json(), serde_json::Value::Null);
    assert_eq!(
        Value::Float(f64::INFINITY).to_json(),
        serde_json::Value::Null
    );
    // Integers beyond i64 come in as floats.
    assert_eq!(
        Value::from(serde_json::json!(u64::MAX)),
        Value::Float(u64::MAX as f64)
    );
    assert_eq!(Value::from(serde_json::json!(-7)), Value::Int(-7));
}

#[test]
fn value_accessors_and_measures() {
    let mut fields = BTreeMap::new();
    fields.insert("name".to_string(), Value::from("Ada"));
    fields.insert(
        "tags".to_string(),
        Value::from(vec![Value::from(1), Value::from(true)]),
    );
    let v = Value::from(fields);
    assert_eq!(v.get("name").and_then(Value::as_str), Some("Ada"));
    assert_eq!(
        v.get("tags").and_then(Value::as_array).map(<[Value]>::len),
        Some(2)
    );
    assert_eq!(v.depth(), 3);
    // 8 for the object + "name" (4) + "tags" (4) + (8 + 3) for "Ada" + 8 for the array + 2 * 8.
    assert_eq!(v.size_bytes(), 8 + 4 + 4 + 11 + 8 + 16);
    assert_eq!(Value::Int(3).as_f64(), Some(3.0));
    assert_eq!(Value::from(Option::<i64>::None), Value::Null);
    assert!(Value::default().is_null());
    // Clones share the payload instead of copying it.
    let big = Value::from("x".repeat(1000));
    let copy = big.clone();
    assert!(std::ptr::eq(big.as_str().unwrap(), copy.as_str().unwrap()));
}

#[test]
fn depth_and_size_of_very_deep_values_do_not_overflow_the_stack() {
    let mut v = Value::Int(0);
    for _ in 1..50_000 {
        v = Value::from(vec![v]);
    }
    assert_eq!(v.depth(), 50_000);
    assert_eq!(v.size_bytes(), 50_000 * 8);
    // Unwind it by hand: dropping a 50 000-deep value recursively is the caller's stack.
    let mut cur = v;
    while let Value::Array(mut items) = cur {
        cur = std::sync::Arc::get_mut(&mut items)
            .unwrap()
            .first_mut()
            .map(std::mem::take)
            .unwrap_or(Value::Null);
    }
}

// ---- Commit time index -------------------------------------------------------------------

#[test]
fn commit_times_map_versions_to_wall_clock_and_back() {
    let engine = Engine::open_in_memory(EngineConfig::default()).unwrap();
    let commit = |i: i64| {
        let mut t = engine.begin(RunId::NIL, Isolation::Snapshot);
        t.put(kv("t", "k"), i).unwrap();
        t.commit().unwrap()
    };
    let start = wall_clock_ms();
    let v1 = commit(1);
    let v2 = commit(2);
    std::thread::sleep(Duration::from_millis(5));
    let v3 = commit(3);
    let (t1, t2, t3) = (
        engine.commit_time(v1).unwrap(),
        engine.commit_time(v2).unwrap(),
        engine.commit_time(v3).unwrap(),
    );
    assert!(
        start <= t1 && t1 <= t2 && t2 < t3 && t3 <= wall_clock_ms(),
        "{t1} {t2} {t3}"
    );
    assert_eq!(
        engine.commit_time(0).unwrap(),
        0,
        "version 0 (the empty database) has no time"
    );
    assert_eq!(
        engine.commit_time(v3 + 1).unwrap(),
        0,
        "a version not yet committed has no time"
    );
    assert_eq!(engine.version_at_time(0).unwrap(), 0);
    assert_eq!(engine.version_at_time(t1.saturating_sub(1)).unwrap(), 0);
    assert_eq!(
        engine.version_at_time(t2).unwrap(),
        v2,
        "the newest version committed at or before t2"
    );
    assert_eq!(engine.version_at_time(t3 - 1).unwrap(), v2);
    assert_eq!(engine.version_at_time(t3).unwrap(), v3);
    assert_eq!(engine.version_at_time(u64::MAX).unwrap(), v3);
}

/// Values are equal when stored alike: floats by their bits (a NaN equals
/// itself, also nested; `0.0` and `-0.0` differ), never across variants.
#[test]
fn values_compare_as_stored() {
    let nan = Value::Float(f64::NAN);
    assert_eq!(nan, nan.clone());
    assert_eq!(
        Value::from(vec![Value::from(1), nan.clone()]),
        Value::from(vec![Value::from(1), nan.clone()])
    );
    assert_ne!(Value::Float(0.0), Value::Float(-0.0));
    assert_ne!(Value::Int(1), Value::Float(1.0));
    assert_ne!(nan, Value::Null);
    assert_eq!(Value::from("a"), Value::from("a"));
    assert_ne!(Value::from("a"), Value::from(&b"a"[..]));
}

/// A namespace is written as its text, in JSON and in the WAL's and
/// checkpoints' postcard form, as it was before it carried a hash: files
/// written by older versions keep reading.
#[test]
fn namespaces_serialize_as_their_text() {
    let n = ns("acme/bot");
    assert_eq!(serde_json::to_string(&n).unwrap(), "\"acme/bot\"");
    assert_eq!(
        postcard::to_allocvec(&n).unwrap(),
        postcard::to_allocvec("acme/bot").unwrap()
    );
    let back: Namespace =
        postcard::from_bytes(&postcard::to_allocvec("acme/bot").unwrap()).unwrap();
    assert_eq!(back, n);
}

/// Keys hash as they compare: equal keys (even built from two separate
/// copies of a namespace) hash alike, and keys differing in any one field
/// (namespace, shared vs a run's scope, even run nil, tag, user bytes,
/// including a prefix of them) hash apart.
#[test]
fn keys_hash_as_they_compare() {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    let hash = |k: &Key| BuildHasherDefault::<DefaultHasher>::default().hash_one(k);
    let run = RunId::from_u128(7 << 64 | 9);
    let mut keys = Vec::new();
    for namespace in ["a", "b", "ab"] {
        for scope in [Scope::Shared, Scope::Run(RunId::NIL), Scope::Run(run)] {
            for tag in [TypeTag::Kv, TypeTag::Event] {
                for user in ["", "h", "hh", "e\0"] {
                    keys.push(Key::new(ns(namespace), scope, tag, user));
                }
            }
        }
    }
    for a in &keys {
        let twin = Key::new(ns(a.ns().as_str()), a.scope(), a.tag(), a.user());
        assert_eq!(hash(a), hash(&twin), "{a}");
        for b in &keys {
            assert_eq!(a == b, hash(a) == hash(b), "{a} vs {b}");
        }
    }
}

/// A key is written as its four fields in order, as the derived form of the
/// struct that held them side by side wrote it: the WAL and checkpoints of
/// older versions keep reading, and new ones are the same bytes.
#[test]
fn keys_serialize_as_their_four_fields() {
    #[derive(serde::Serialize)]
    struct Fields<'a> {
        ns: &'a Namespace,
        scope: Scope,
        tag: TypeTag,
        user: &'a [u8],
    }
    let run = RunId::from_u128(3 << 100 | 5);
    for scope in [Scope::Shared, Scope::Run(run)] {
        for user in [&b""[..], b"k", &[7u8; 40]] {
            let n = ns("acme/bot");
            let key = Key::new(n.clone(), scope, TypeTag::State, user);
            let fields = Fields {
                ns: &n,
                scope,
                tag: TypeTag::State,
                user,
            };
            let bytes = postcard::to_allocvec(&key).unwrap();
            assert_eq!(bytes, postcard::to_allocvec(&fields).unwrap(), "{key}");
            if scope == Scope::Shared {
                // JSON holds no 128-bit run id, as before.
                let json = serde_json::to_value(&key).unwrap();
                assert_eq!(json["ns"], serde_json::json!("acme/bot"));
                assert_eq!(json["tag"], serde_json::json!("State"));
            }
            let back: Key = postcard::from_bytes(&bytes).unwrap();
            assert_eq!(back, key);
        }
    }
}

/// Families compare, order and hash by their fields, whatever allocation
/// holds them: a key from `Family::key` equals the one `Key::new` builds,
/// and keys of families built apart order as (namespace, scope, tag, user).
#[test]
fn families_compare_by_their_fields_not_their_allocation() {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    let hash = |k: &Key| BuildHasherDefault::<DefaultHasher>::default().hash_one(k);
    let run = RunId::from_u128(11);
    let mut keys = Vec::new();
    for namespace in ["a", "b"] {
        for scope in [Scope::Shared, Scope::Run(run)] {
            for tag in [TypeTag::Kv, TypeTag::Trace] {
                let family = Family::new(ns(namespace), scope, tag);
                for user in ["", "x", "y"] {
                    let built = Key::new(ns(namespace), scope, tag, user);
                    let made = family.key(user);
                    assert_eq!(built, made);
                    assert_eq!(built.cmp(&made), std::cmp::Ordering::Equal);
                    assert_eq!(hash(&built), hash(&made));
                    assert_eq!(made.family(), &family);
                    keys.push(made);
                }
            }
        }
    }
    let fields = |k: &Key| (k.ns().clone(), k.scope(), k.tag(), k.user().to_vec());
    for a in &keys {
        for b in &keys {
            assert_eq!(a.cmp(b), fields(a).cmp(&fields(b)), "{a} vs {b}");
            assert_eq!(
                a.family() == b.family(),
                fields(a).0 == fields(b).0 && a.scope() == b.scope() && a.tag() == b.tag()
            );
        }
    }
}

/// A `ValueRef` says what the equal `Value` says: its accessors, its
/// equality (with values and with other views, inline or not) and its
/// serialised form.
#[test]
fn value_refs_read_compare_and_serialise_as_their_values() {
    use rewinddb_engine::ValueRef;
    let bytes = Value::from(&b"ab"[..]);
    let text = Value::from("ab");
    let views = [
        (ValueRef::Bytes(b"ab"), bytes.clone()),
        (ValueRef::Value(&bytes), bytes.clone()),
        (ValueRef::String("ab"), text.clone()),
        (ValueRef::Value(&text), text.clone()),
        (ValueRef::from(&Value::Int(3)), Value::Int(3)),
    ];
    for (view, value) in &views {
        assert_eq!(view.as_bytes(), value.as_bytes());
        assert_eq!(view.as_str(), value.as_str());
        assert_eq!(&view.to_value(), value);
        assert_eq!(view, value);
        assert_eq!(
            postcard::to_allocvec(view).unwrap(),
            postcard::to_allocvec(value).unwrap()
        );
        assert_eq!(
            serde_json::to_value(view).unwrap(),
            serde_json::to_value(value).unwrap()
        );
        for (other, other_value) in &views {
            assert_eq!(view == other, value == other_value, "{view:?} vs {other:?}");
        }
    }
    assert!(ValueRef::Bytes(b"ab").as_value().is_none());
    assert_eq!(ValueRef::from(&text).as_value(), Some(&text));
    assert_ne!(ValueRef::Bytes(b"ab"), text);
    assert_ne!(ValueRef::String("ab"), bytes);
}
