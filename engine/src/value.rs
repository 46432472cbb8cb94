//! [`Value`]: the JSON-like value every primitive stores.
//!
//! Strings, bytes, arrays and objects sit behind `Arc`, so handing a value
//! to a reader is a reference-count bump, never a deep copy.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Bytes a scalar counts for in [`Value::measure`].
const SCALAR_BYTES: usize = 8;

/// Bytes text or bytes of `len` bytes count for in [`Value::measure`] (and
/// in [`ValueRef::measure`], which must agree with it).
fn string_bytes(len: usize) -> usize {
    SCALAR_BYTES + len
}

/// A JSON-like value. Cloning is cheap (shared, not deep-copied).
///
/// Equal when the stored values are the same: floats compare by their
/// bits, so a NaN equals itself and `0.0` differs from `-0.0`, as a
/// run's digest sees them (it hashes the bits). IEEE equality would make
/// two runs that stored the same NaN differ in a diff while their digests
/// match. Hence also `Eq`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub enum Value {
    /// Null.
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// UTF-8 text.
    String(Arc<str>),
    /// Raw bytes.
    Bytes(Arc<[u8]>),
    /// An ordered list.
    Array(Arc<[Value]>),
    /// A map from text keys, ordered by key.
    Object(Arc<BTreeMap<String, Value>>),
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
            (Value::String(a), Value::String(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            (Value::Array(a), Value::Array(b)) => a == b,
            (Value::Object(a), Value::Object(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Value {}

impl Value {
    /// The integer, if this is an `Int`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The float (integers widen), if numeric.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The boolean, if this is a `Bool`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The text, if this is a `String`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The bytes, if this is `Bytes`.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The elements, if this is an `Array`.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The map, if this is an `Object`.
    pub fn as_object(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// A field of an object.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.as_object().and_then(|o| o.get(field))
    }

    /// True for `Null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The size this value counts against `value_size_bytes_max`: payload
    /// bytes plus 8 per scalar, element and field. Iterative, so a deeply
    /// nested value cannot overflow the stack here.
    pub fn size_bytes(&self) -> usize {
        self.measure().0
    }

    /// Nesting depth (a scalar is 1).
    pub fn depth(&self) -> usize {
        self.measure().1
    }

    /// `(size_bytes, depth)` in one walk. This runs on every put, so the
    /// walk's stack lives inline (no allocation) until a value holds more
    /// than a few dozen pending children.
    pub fn measure(&self) -> (usize, usize) {
        let flat_size = |v: &Value| match v {
            Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) => Some(SCALAR_BYTES),
            Value::String(s) => Some(string_bytes(s.len())),
            Value::Bytes(b) => Some(string_bytes(b.len())),
            Value::Array(_) | Value::Object(_) => None,
        };
        if let Some(size) = flat_size(self) {
            return (size, 1);
        }
        // An array of scalars (an event record around a scalar payload, a
        // list of numbers) in one pass, without the walk's stack.
        if let Value::Array(a) = self {
            let flat = a
                .iter()
                .try_fold(8usize, |sum, x| flat_size(x).map(|n| sum.saturating_add(n)));
            if let Some(size) = flat {
                return (size, if a.is_empty() { 1 } else { 2 });
            }
        }
        let (mut size, mut depth) = (0usize, 0usize);
        let mut stack: smallvec::SmallVec<[(&Value, usize); 32]> = smallvec::smallvec![(self, 1)];
        while let Some((v, d)) = stack.pop() {
            depth = depth.max(d);
            let own = match v {
                Value::Array(a) => {
                    for x in a.iter() {
                        match flat_size(x) {
                            Some(n) => {
                                size = size.saturating_add(n);
                                depth = depth.max(d + 1);
                            }
                            None => stack.push((x, d + 1)),
                        }
                    }
                    8
                }
                Value::Object(o) => {
                    let mut n = 8usize;
                    for (k, x) in o.iter() {
                        n = n.saturating_add(k.len());
                        match flat_size(x) {
                            Some(m) => {
                                n = n.saturating_add(m);
                                depth = depth.max(d + 1);
                            }
                            None => stack.push((x, d + 1)),
                        }
                    }
                    n
                }
                flat => flat_size(flat).unwrap_or(8),
            };
            size = size.saturating_add(own);
        }
        (size, depth)
    }

    /// Convert to `serde_json::Value`. Bytes become an array of numbers;
    /// non-finite floats become null (JSON has no NaN).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::String(s) => J::String(s.to_string()),
            Value::Bytes(b) => J::Array(b.iter().map(|x| J::from(*x)).collect()),
            Value::Array(a) => J::Array(a.iter().map(Value::to_json).collect()),
            Value::Object(o) => {
                J::Object(o.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }
}

/// A value as a borrowed read sees it (`Snapshot::get_with`): text and
/// bytes the engine holds inline in a version are lent as slices, other
/// values as the stored [`Value`]. Nothing is allocated or counted to hand
/// it out; [`ValueRef::to_value`] makes an owned copy.
///
/// Equal to a [`Value`] when that value is the same (as `Value`'s own
/// equality says), so `ValueRef::Bytes(b"x")` equals `Value::Bytes` of the
/// same bytes, and serialised exactly as the equal `Value` is.
#[derive(Clone, Copy, Debug)]
pub enum ValueRef<'a> {
    /// Text held inline.
    String(&'a str),
    /// Bytes held inline.
    Bytes(&'a [u8]),
    /// Any other value (and long text or bytes), as stored.
    Value(&'a Value),
}

impl<'a> ValueRef<'a> {
    /// The bytes, if this is bytes.
    pub fn as_bytes(self) -> Option<&'a [u8]> {
        match self {
            ValueRef::Bytes(b) => Some(b),
            ValueRef::Value(v) => v.as_bytes(),
            ValueRef::String(_) => None,
        }
    }

    /// The text, if this is text.
    pub fn as_str(self) -> Option<&'a str> {
        match self {
            ValueRef::String(s) => Some(s),
            ValueRef::Value(v) => v.as_str(),
            ValueRef::Bytes(_) => None,
        }
    }

    /// The stored value, if it is neither inline text nor inline bytes.
    pub fn as_value(self) -> Option<&'a Value> {
        match self {
            ValueRef::Value(v) => Some(v),
            ValueRef::String(_) | ValueRef::Bytes(_) => None,
        }
    }

    /// `(size_bytes, depth)`, as [`Value::measure`] gives for the equal
    /// value.
    pub fn measure(self) -> (usize, usize) {
        match self {
            ValueRef::String(s) => (string_bytes(s.len()), 1),
            ValueRef::Bytes(b) => (string_bytes(b.len()), 1),
            ValueRef::Value(v) => v.measure(),
        }
    }

    /// An owned value equal to this one (inline text and bytes are copied
    /// into an allocation of their own).
    pub fn to_value(self) -> Value {
        match self {
            ValueRef::String(s) => Value::String(Arc::from(s)),
            ValueRef::Bytes(b) => Value::Bytes(Arc::from(b)),
            ValueRef::Value(v) => v.clone(),
        }
    }
}

impl<'a> From<&'a Value> for ValueRef<'a> {
    fn from(v: &'a Value) -> ValueRef<'a> {
        ValueRef::Value(v)
    }
}

impl PartialEq<Value> for ValueRef<'_> {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (ValueRef::String(a), Value::String(b)) => *a == &**b,
            (ValueRef::Bytes(a), Value::Bytes(b)) => *a == &**b,
            (ValueRef::Value(a), b) => *a == b,
            _ => false,
        }
    }
}

impl PartialEq for ValueRef<'_> {
    fn eq(&self, other: &ValueRef<'_>) -> bool {
        match (self, other) {
            (a, ValueRef::Value(b)) => a == *b,
            (ValueRef::Value(a), b) => b == *a,
            (ValueRef::String(a), ValueRef::String(b)) => a == b,
            (ValueRef::Bytes(a), ValueRef::Bytes(b)) => a == b,
            _ => false,
        }
    }
}

/// As the equal [`Value`] serialises (the derived form: variant index 4 for
/// text, 5 for bytes, the bytes as a sequence), so a checkpoint written
/// from inline versions holds the same bytes as one written from values.
impl Serialize for ValueRef<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            ValueRef::String(text) => s.serialize_newtype_variant("Value", 4, "String", *text),
            ValueRef::Bytes(bytes) => s.serialize_newtype_variant("Value", 5, "Bytes", *bytes),
            ValueRef::Value(v) => v.serialize(s),
        }
    }
}

impl From<serde_json::Value> for Value {
    fn from(j: serde_json::Value) -> Value {
        use serde_json::Value as J;
        match j {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => Value::String(Arc::from(s)),
            J::Array(a) => Value::Array(a.into_iter().map(Value::from).collect()),
            J::Object(o) => Value::Object(Arc::new(
                o.into_iter().map(|(k, v)| (k, Value::from(v))).collect(),
            )),
        }
    }
}

impl From<&Value> for serde_json::Value {
    fn from(v: &Value) -> serde_json::Value {
        v.to_json()
    }
}

impl From<Value> for serde_json::Value {
    fn from(v: Value) -> serde_json::Value {
        v.to_json()
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(i: $t) -> Value { Value::Int(i64::from(i)) }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}
impl From<f64> for Value {
    fn from(f: f64) -> Value {
        Value::Float(f)
    }
}
impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(Arc::from(s))
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(Arc::from(s))
    }
}
impl From<&String> for Value {
    fn from(s: &String) -> Value {
        Value::String(Arc::from(s.as_str()))
    }
}
impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Value {
        Value::Bytes(Arc::from(b))
    }
}
impl From<&[u8]> for Value {
    fn from(b: &[u8]) -> Value {
        Value::Bytes(Arc::from(b))
    }
}
impl From<Vec<Value>> for Value {
    fn from(a: Vec<Value>) -> Value {
        Value::Array(Arc::from(a))
    }
}
impl From<BTreeMap<String, Value>> for Value {
    fn from(o: BTreeMap<String, Value>) -> Value {
        Value::Object(Arc::new(o))
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(o: Option<T>) -> Value {
        o.map_or(Value::Null, Into::into)
    }
}

/// A value with its size and depth ([`Value::measure`]), measured once:
/// a caller that looks at a value's size before its transaction (the
/// facade picks an event append's path by it) hands the figures on to
/// [`Transaction::put_measured`](crate::Transaction::put_measured), whose
/// limit check then reads them instead of walking the value again. Built
/// only by measuring (or by [`Measured::array`] from measured parts,
/// which adds their figures exactly as `measure` would), and a `Value`
/// never changes, so the figures stay true.
#[derive(Clone, Debug, PartialEq)]
pub struct Measured {
    value: Value,
    size: usize,
    depth: usize,
}

impl Measured {
    /// Measure `value` (one walk).
    #[inline]
    pub fn new(value: Value) -> Measured {
        let (size, depth) = value.measure();
        Measured { value, size, depth }
    }

    /// `Value::Array(items)`, its figures added from the items' instead
    /// of walking them again: 8 bytes for the array plus theirs; one level
    /// deeper than the deepest (1 if empty).
    #[inline]
    pub fn array<const N: usize>(items: [Measured; N]) -> Measured {
        let (mut size, mut depth) = (8usize, 1usize);
        // Through an array, not an iterator: `Arc::from` an array is one
        // allocation and a copy, collecting is a slower element loop.
        let values = items.map(|item| {
            size = size.saturating_add(item.size);
            depth = depth.max(item.depth.saturating_add(1));
            item.value
        });
        Measured {
            value: Value::Array(Arc::from(values)),
            size,
            depth,
        }
    }

    /// The size it counts against `value_size_bytes_max` ([`Value::size_bytes`]).
    #[inline]
    pub fn size_bytes(&self) -> usize {
        self.size
    }

    /// Its nesting depth ([`Value::depth`]).
    #[inline]
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The value.
    #[inline]
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The value, giving up the figures.
    #[inline]
    pub fn into_value(self) -> Value {
        self.value
    }
}

#[cfg(test)]
mod test {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::{Measured, Value, ValueRef};

    /// The definition of size and depth, written recursively.
    fn reference(v: &Value) -> (usize, usize) {
        match v {
            Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) => (8, 1),
            Value::String(s) => (8 + s.len(), 1),
            Value::Bytes(b) => (8 + b.len(), 1),
            Value::Array(a) => a
                .iter()
                .map(reference)
                .fold((8, 1), |(s, d), (cs, cd)| (s + cs, d.max(cd + 1))),
            Value::Object(o) => o.iter().fold((8, 1), |(s, d), (k, x)| {
                let (cs, cd) = reference(x);
                (s + k.len() + cs, d.max(cd + 1))
            }),
        }
    }

    fn random_value(rng: &mut fastrand::Rng, depth: usize) -> Value {
        match rng.u8(0..if depth == 0 { 5 } else { 7 }) {
            0 => Value::Null,
            1 => Value::Int(rng.i64(..)),
            2 => Value::Bool(rng.bool()),
            3 => Value::String(Arc::from("x".repeat(rng.usize(0..20)))),
            4 => Value::Bytes(Arc::from(vec![0u8; rng.usize(0..40)])),
            5 => Value::Array(
                (0..rng.usize(0..50))
                    .map(|_| random_value(rng, depth - 1))
                    .collect(),
            ),
            _ => Value::Object(Arc::new(
                (0..rng.usize(0..6))
                    .map(|i| ("k".repeat(i), random_value(rng, depth - 1)))
                    .collect::<BTreeMap<_, _>>(),
            )),
        }
    }

    /// The one-pass, inline-stack `measure` agrees with the recursive
    /// definition on random nested values, including arrays wider than
    /// the inline stack.
    #[test]
    fn measure_matches_the_recursive_definition() {
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..2_000 {
            let v = random_value(&mut rng, 5);
            assert_eq!(v.measure(), reference(&v), "{v:?}");
            assert_eq!((v.size_bytes(), v.depth()), reference(&v));
        }
    }

    /// A lent value measures as the equal owned value, whether text and
    /// bytes are lent as slices or as the value (`Transaction::put_ref`
    /// checks the limits with these figures).
    #[test]
    fn a_lent_value_measures_as_the_owned_value() {
        let mut rng = fastrand::Rng::with_seed(5);
        for _ in 0..2_000 {
            let v = random_value(&mut rng, 5);
            let lent = match &v {
                Value::String(s) => ValueRef::String(s),
                Value::Bytes(b) => ValueRef::Bytes(b),
                other => ValueRef::Value(other),
            };
            assert_eq!(lent.measure(), v.measure(), "{v:?}");
            assert_eq!(ValueRef::Value(&v).measure(), v.measure(), "{v:?}");
        }
    }

    /// An array built from measured parts carries the figures a walk of
    /// the whole array finds (sizes add, depth is one more than the
    /// deepest part), at every nesting, with no parts, and at the
    /// saturation edge of the size.
    #[test]
    fn an_array_of_measured_parts_measures_as_the_whole() {
        let mut rng = fastrand::Rng::with_seed(5);
        let figures = |m: &Measured| (m.size_bytes(), m.depth());
        for _ in 0..2_000 {
            let parts = [0, 1, 2, 3].map(|_| {
                let depth = rng.usize(0..5);
                random_value(&mut rng, depth)
            });
            let whole = Measured::array(parts.clone().map(Measured::new));
            assert_eq!(whole.value(), &Value::from(parts.to_vec()));
            assert_eq!(figures(&whole), reference(whole.value()));
            let [a, ..] = parts;
            let one = Measured::array([Measured::new(a)]);
            assert_eq!(figures(&one), one.value().measure());
        }
        let empty = Measured::array([]);
        assert_eq!(figures(&empty), (8, 1));
        assert_eq!(figures(&empty), empty.value().measure());
        let huge = Measured {
            value: Value::Null,
            size: usize::MAX - 4,
            depth: 1,
        };
        assert_eq!(Measured::array([huge]).size_bytes(), usize::MAX);
    }
}
