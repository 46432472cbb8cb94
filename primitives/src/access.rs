//! How primitives reach the engine: [`Reader`] for reads (a transaction or
//! a snapshot), `&mut Transaction` for writes, and [`autocommit`] for one
//! retried transaction around a closure.

use rewinddb_engine::{
    Engine, Isolation, Key, RetryPolicy, RunId, Snapshot, Transaction, Value, ValueRef, Version,
};

use crate::error::{Error, Result};

/// Something primitives can read from: a [`Transaction`] (its own writes
/// included) or a [`Snapshot`] (a fixed version, read-only). Every read of
/// every primitive is written against this trait, so each one works both
/// inside a transaction and on a point-in-time snapshot.
pub trait Reader {
    /// The value of `key` (None: absent or deleted).
    fn read(&mut self, key: &Key) -> Result<Option<Value>>;

    /// The value of `key` lent to `f` (None: absent or deleted), for reads
    /// that only look at it: a version's inline text or bytes are not
    /// copied out. By default, `f` of what [`Reader::read`] returns.
    fn read_with(&mut self, key: &Key, f: &mut dyn FnMut(Option<ValueRef<'_>>)) -> Result<()> {
        let value = self.read(key)?;
        f(value.as_ref().map(ValueRef::from));
        Ok(())
    }

    /// Live keys with `prefix`, strictly after `after`, in key order, at
    /// most `limit`.
    fn scan(
        &mut self,
        prefix: &Key,
        after: Option<&Key>,
        limit: usize,
    ) -> Result<Vec<(Key, Value)>>;
}

/// `Reader` for engine types whose own `get` and `scan` already mean what
/// the trait says, called by path so the trait method cannot call itself.
macro_rules! reader_by_inherent_methods {
    ($($reader:ty => $owner:ty),* $(,)?) => {$(
        impl Reader for $reader {
            fn read(&mut self, key: &Key) -> Result<Option<Value>> {
                Ok(<$owner>::get(self, key)?)
            }

            fn read_with(
                &mut self,
                key: &Key,
                f: &mut dyn FnMut(Option<ValueRef<'_>>),
            ) -> Result<()> {
                Ok(<$owner>::get_with(self, key, f)?)
            }

            fn scan(
                &mut self,
                prefix: &Key,
                after: Option<&Key>,
                limit: usize,
            ) -> Result<Vec<(Key, Value)>> {
                Ok(<$owner>::scan(self, prefix, after, limit)?)
            }
        }
    )*};
}

reader_by_inherent_methods!(
    Transaction => Transaction,
    Snapshot => Snapshot,
    &Snapshot => Snapshot,
);

/// Run `f` in a transaction of `run` and commit it, retrying on conflict
/// (see [`retry_on_conflict`]). `f` must be re-runnable: each attempt
/// starts from a fresh snapshot. Any other error ends the loop with nothing
/// committed. Returns `f`'s result and the commit version.
pub fn autocommit<T>(
    engine: &Engine,
    run: RunId,
    isolation: Isolation,
    mut f: impl FnMut(&mut Transaction) -> Result<T>,
) -> Result<(T, Version)> {
    retry_on_conflict(&engine.config().retry, || {
        let mut txn = engine.begin(run, isolation);
        let t = f(&mut txn)?;
        Ok((t, txn.commit()?))
    })
}

/// Call `attempt` until it returns anything but a conflict, at most
/// `policy.attempts` times. Gives up with [`Error::RetriesExhausted`]
/// carrying the last conflict. The backoff between tries is the engine's
/// (`RetryPolicy`): the conflicting commit sets its thread's, and the
/// `Engine::begin` of the next try waits it out.
pub fn retry_on_conflict<T>(
    policy: &RetryPolicy,
    mut attempt: impl FnMut() -> Result<T>,
) -> Result<T> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match attempt() {
            Err(e) if e.is_conflict() => {
                if attempts >= policy.attempts {
                    return Err(Error::RetriesExhausted {
                        attempts,
                        last: Box::new(e),
                    });
                }
                // No sleep here: the conflicting commit set its thread's
                // backoff, which the next `Engine::begin` waits out.
            }
            other => return other,
        }
    }
}
