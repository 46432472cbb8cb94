//! [`Kv`]: key-value memory, shared across runs or private to one run.
//!
//! ## Encoding (TypeTag::Kv)
//! - key: `(namespace, scope, Kv, user = the key's UTF-8 bytes)`, so the
//!   engine's key order is the byte order of the keys and `list(prefix)`
//!   is one ordered range scan;
//! - value: the caller's [`Value`], stored as is; a delete is an engine
//!   tombstone.

use rewinddb_engine::{Family, Key, Namespace, RunId, Scope, Transaction, TypeTag, Value};

use crate::access::Reader;
use crate::error::{Error, Result};

/// Entries `list` returns when the caller gives no limit.
pub const LIST_LIMIT_DEFAULT: usize = 1000;

/// The KV store of one namespace and scope. Holds no state: every call
/// reads or writes through the transaction or snapshot it is given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kv {
    /// Its keys' family (namespace, scope, `TypeTag::Kv`), built once.
    family: Family,
}

/// One page of a [`Kv::list`].
#[derive(Clone, Debug, PartialEq)]
pub struct KvPage {
    /// Entries in key order.
    pub entries: Vec<(String, Value)>,
    /// If more entries follow, the cursor to pass as `after` for the next
    /// page (the last key of this page).
    pub next: Option<String>,
}

impl Kv {
    /// The KV store of `ns` memory shared by all runs.
    pub fn shared(ns: Namespace) -> Kv {
        Kv {
            family: Family::new(ns, Scope::Shared, TypeTag::Kv),
        }
    }

    /// The KV store of `ns` private to `run`.
    pub fn run(ns: Namespace, run: RunId) -> Kv {
        Kv {
            family: Family::new(ns, Scope::Run(run), TypeTag::Kv),
        }
    }

    /// Its scope.
    pub fn scope(&self) -> Scope {
        self.family.scope()
    }

    #[inline]
    fn key(&self, key: &str) -> Result<Key> {
        if key.is_empty() {
            return Err(Error::invalid_name("KV key", key, "empty"));
        }
        Ok(self.family.key(key))
    }

    /// The value of `key`.
    pub fn get<R: Reader + ?Sized>(&self, r: &mut R, key: &str) -> Result<Option<Value>> {
        r.read(&self.key(key)?)
    }

    /// Write `value` to `key`.
    pub fn put(&self, txn: &mut Transaction, key: &str, value: impl Into<Value>) -> Result<()> {
        Ok(txn.put(self.key(key)?, value)?)
    }

    /// Delete `key` (deleting an absent key is not an error).
    pub fn delete(&self, txn: &mut Transaction, key: &str) -> Result<()> {
        Ok(txn.delete(self.key(key)?)?)
    }

    /// Keys starting with `prefix` (empty: all keys), strictly after
    /// `after` if given, in key order, at most `limit` (>= 1). `next` is
    /// set when more entries follow.
    pub fn list<R: Reader + ?Sized>(
        &self,
        r: &mut R,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<KvPage> {
        if limit == 0 {
            return Err(Error::InvalidArgument(
                "list limit must be at least 1".into(),
            ));
        }
        let range = self.family.key(prefix);
        let after = after.map(|a| self.family.key(a));
        // One extra entry tells whether another page follows.
        let mut found = r.scan(&range, after.as_ref(), limit.saturating_add(1))?;
        let more = found.len() > limit;
        found.truncate(limit);
        let mut entries = Vec::with_capacity(found.len());
        for (key, value) in found {
            let text = String::from_utf8(key.user().to_vec())
                .map_err(|_| Error::malformed("KV", &key, "key is not UTF-8"))?;
            entries.push((text, value));
        }
        let next = if more {
            entries.last().map(|(k, _)| k.clone())
        } else {
            None
        };
        Ok(KvPage { entries, next })
    }
}
