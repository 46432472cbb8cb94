//! [`StateMachines`]: named state machines with versioned compare-and-set.
//!
//! ## Encoding (TypeTag::State, scope Shared or `Run(run)`)
//! - user key: the machine's name in UTF-8;
//! - value: `Value::Array([state, version: Int, allowed])` where `state`
//!   is any [`Value`], `version` counts changes (1 at `define`, +1 per
//!   successful `cas` or `transition`) and `allowed` is `Null` (any
//!   transition) or an `Array` of `[from, to]` pairs.
//!
//! The version lives in the record rather than being the engine's commit
//! version, so it is exact inside a transaction that already changed the
//! machine. Two transactions moving one machine both write its key, so
//! the engine lets the first committer win and the other conflicts and
//! retries: no update is lost.

use std::sync::Arc;

use rewinddb_engine::{Family, Key, Namespace, RunId, Scope, Transaction, TypeTag, Value};

use crate::access::Reader;
use crate::error::{Error, Result, check_name};

/// Allowed transitions: `(from, to)` pairs.
pub type Transitions = Vec<(Value, Value)>;

/// Most `(from, to)` pairs one machine may allow.
pub const TRANSITIONS_COUNT_MAX: usize = 4096;

/// A machine's current state and version.
#[derive(Clone, Debug, PartialEq)]
pub struct StateRead {
    /// The state.
    pub value: Value,
    /// Its version: 1 at `define`, +1 per change.
    pub version: u64,
}

/// The state machines of one namespace and scope. Holds no state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateMachines {
    /// Its keys' family (namespace, scope, `TypeTag::State`), built once.
    family: Family,
}

struct Record {
    state: Value,
    version: u64,
    allowed: Value,
}

impl StateMachines {
    /// The machines of `ns` shared by all runs.
    pub fn shared(ns: Namespace) -> StateMachines {
        StateMachines {
            family: Family::new(ns, Scope::Shared, TypeTag::State),
        }
    }

    /// The machines of `ns` private to `run`.
    pub fn run(ns: Namespace, run: RunId) -> StateMachines {
        StateMachines {
            family: Family::new(ns, Scope::Run(run), TypeTag::State),
        }
    }

    fn key(&self, name: &str) -> Result<Key> {
        check_name("state machine name", name)?;
        Ok(self.family.key(name))
    }

    fn load<R: Reader + ?Sized>(&self, r: &mut R, name: &str) -> Result<(Key, Record)> {
        let key = self.key(name)?;
        let value = r.read(&key)?.ok_or_else(|| Error::StateNotDefined {
            namespace: self.family.ns().to_string(),
            name: name.to_string(),
        })?;
        let record = decode(&value)
            .ok_or_else(|| Error::malformed("state", &key, "not [state, version, allowed]"))?;
        Ok((key, record))
    }

    /// Define machine `name` in state `initial` (version 1). `allowed`
    /// lists the permitted `(from, to)` transitions; `None` permits any.
    /// Defining an existing machine is [`Error::StateAlreadyDefined`].
    pub fn define(
        &self,
        txn: &mut Transaction,
        name: &str,
        initial: impl Into<Value>,
        allowed: Option<Transitions>,
    ) -> Result<u64> {
        let key = self.key(name)?;
        if txn.get(&key)?.is_some() {
            return Err(Error::StateAlreadyDefined {
                namespace: self.family.ns().to_string(),
                name: name.to_string(),
            });
        }
        let allowed = match allowed {
            None => Value::Null,
            Some(pairs) if pairs.len() > TRANSITIONS_COUNT_MAX => {
                return Err(Error::InvalidArgument(format!(
                    "{} transitions exceeds TRANSITIONS_COUNT_MAX = {TRANSITIONS_COUNT_MAX}",
                    pairs.len()
                )));
            }
            Some(pairs) => Value::from(
                pairs
                    .into_iter()
                    .map(|(from, to)| Value::from(vec![from, to]))
                    .collect::<Vec<_>>(),
            ),
        };
        let record = Record {
            state: initial.into(),
            version: 1,
            allowed,
        };
        txn.put(key, encode(&record))?;
        Ok(1)
    }

    /// The current state and its version; [`Error::StateNotDefined`] if
    /// the machine was never defined.
    pub fn read_state<R: Reader + ?Sized>(&self, r: &mut R, name: &str) -> Result<StateRead> {
        let (_, rec) = self.load(r, name)?;
        Ok(StateRead {
            value: rec.state,
            version: rec.version,
        })
    }

    /// The allowed `(from, to)` pairs, or `None` if any transition is.
    pub fn allowed<R: Reader + ?Sized>(
        &self,
        r: &mut R,
        name: &str,
    ) -> Result<Option<Transitions>> {
        let (_, rec) = self.load(r, name)?;
        Ok(rec.allowed.as_array().map(|pairs| {
            pairs
                .iter()
                .filter_map(|p| match p.as_array() {
                    Some([from, to]) => Some((from.clone(), to.clone())),
                    _ => None,
                })
                .collect()
        }))
    }

    /// Move to `new` if the machine is at `expected_version`; returns the
    /// new version. A different version is [`Error::StateVersionMismatch`]
    /// carrying the current state; a transition the machine does not allow
    /// is [`Error::TransitionNotAllowed`]. Either way nothing is written.
    pub fn cas(
        &self,
        txn: &mut Transaction,
        name: &str,
        expected_version: u64,
        new: impl Into<Value>,
    ) -> Result<u64> {
        let (key, rec) = self.load(txn, name)?;
        if rec.version != expected_version {
            return Err(Error::StateVersionMismatch {
                name: name.to_string(),
                expected: expected_version,
                current_version: rec.version,
                current: rec.state,
            });
        }
        self.write(txn, key, name, rec, new.into())
    }

    /// Move to `f(current)`, whatever the version; returns the new state
    /// and version. Inside a retried transaction this is a read-modify-write
    /// that never loses an update.
    pub fn transition<V: Into<Value>>(
        &self,
        txn: &mut Transaction,
        name: &str,
        f: impl FnOnce(&Value) -> V,
    ) -> Result<StateRead> {
        let (key, rec) = self.load(txn, name)?;
        let new = f(&rec.state).into();
        let version = self.write(txn, key, name, rec, new.clone())?;
        Ok(StateRead {
            value: new,
            version,
        })
    }

    fn write(
        &self,
        txn: &mut Transaction,
        key: Key,
        name: &str,
        rec: Record,
        new: Value,
    ) -> Result<u64> {
        if !permits(&rec.allowed, &rec.state, &new) {
            return Err(Error::TransitionNotAllowed {
                name: name.to_string(),
                from: rec.state,
                to: new,
            });
        }
        let version = rec.version + 1;
        let next = Record {
            state: new,
            version,
            allowed: rec.allowed,
        };
        txn.put(key, encode(&next))?;
        Ok(version)
    }
}

fn permits(allowed: &Value, from: &Value, to: &Value) -> bool {
    match allowed.as_array() {
        None => true,
        Some(pairs) => pairs.iter().any(|p| match p.as_array() {
            Some([f, t]) => f == from && t == to,
            _ => false,
        }),
    }
}

fn encode(rec: &Record) -> Value {
    Value::Array(Arc::from([
        rec.state.clone(),
        Value::Int(rec.version as i64),
        rec.allowed.clone(),
    ]))
}

fn decode(v: &Value) -> Option<Record> {
    let [state, version, allowed] = v.as_array()? else {
        return None;
    };
    Some(Record {
        state: state.clone(),
        version: u64::try_from(version.as_i64()?).ok()?,
        allowed: allowed.clone(),
    })
}
