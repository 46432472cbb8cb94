//! [`Value`]: the JSON-like value every primitive stores.
//!
//! Strings, bytes, arrays and objects sit behind `Arc`, so handing a value
//! to a reader is a reference-count bump, never a deep copy.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A JSON-like value. Cloning is cheap (shared, not deep-copied).
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
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
    Array(Arc<Vec<Value>>),
    /// A map from text keys, ordered by key.
    Object(Arc<BTreeMap<String, Value>>),
}

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
        // Scalars, strings and bytes (most values) without the stack's
        // allocation: this runs on every put.
        match self {
            Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) => return 8,
            Value::String(s) => return 8 + s.len(),
            Value::Bytes(b) => return 8 + b.len(),
            Value::Array(_) | Value::Object(_) => {}
        }
        let mut total = 0usize;
        let mut stack = vec![self];
        while let Some(v) = stack.pop() {
            total = total.saturating_add(match v {
                Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) => 8,
                Value::String(s) => 8 + s.len(),
                Value::Bytes(b) => 8 + b.len(),
                Value::Array(a) => {
                    stack.extend(a.iter());
                    8
                }
                Value::Object(o) => {
                    let mut n = 8;
                    for (k, v) in o.iter() {
                        n += k.len();
                        stack.push(v);
                    }
                    n
                }
            });
        }
        total
    }

    /// Nesting depth (a scalar is 1).
    pub fn depth(&self) -> usize {
        if !matches!(self, Value::Array(_) | Value::Object(_)) {
            return 1; // No allocation for the common flat values.
        }
        let mut max = 0;
        let mut stack = vec![(self, 1usize)];
        while let Some((v, d)) = stack.pop() {
            max = max.max(d);
            match v {
                Value::Array(a) => stack.extend(a.iter().map(|x| (x, d + 1))),
                Value::Object(o) => stack.extend(o.values().map(|x| (x, d + 1))),
                _ => {}
            }
        }
        max
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
            J::Array(a) => Value::Array(Arc::new(a.into_iter().map(Value::from).collect())),
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
        Value::Array(Arc::new(a))
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
