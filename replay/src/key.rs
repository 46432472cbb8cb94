//! [`RunKey`]: an engine [`Key`] as seen from one run.
//!
//! A run's own working state lives under `Scope::Run(its id)`. Two runs
//! with the same workload therefore write different engine keys, and two
//! databases give the same workload different run ids. Replay and diff
//! name a run's own scope [`RunScope::Own`] instead, so the replay of a run
//! does not depend on its id: the own-scope event log of run `a` lines up
//! with the one of run `b`, and a digest is the same in every database.

use std::cmp::Ordering;
use std::fmt;

use rewinddb_engine::{Family, Key, KeyBytes, Namespace, RunId, Scope, TypeTag};
use serde::{Deserialize, Serialize};

/// The scope of a key, relative to the run being replayed.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub enum RunScope {
    /// Memory shared across runs (`Scope::Shared`).
    Shared,
    /// The replayed run's own scope (`Scope::Run(replayed run)`).
    Own,
    /// Another run's scope (a run writing into a scope not its own).
    Run(RunId),
}

/// A key relative to one run. Ordered by (tag, namespace, scope, user
/// bytes), so one primitive's keys are contiguous.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RunKey {
    /// The primitive that owns the key.
    pub tag: TypeTag,
    /// The namespace.
    pub ns: Namespace,
    /// The scope, relative to the replayed run.
    pub scope: RunScope,
    /// The primitive's own key bytes.
    pub user: KeyBytes,
}

impl RunKey {
    /// `key` as seen from `run`.
    pub fn relative_to(key: &Key, run: RunId) -> RunKey {
        let scope = match key.scope() {
            Scope::Shared => RunScope::Shared,
            Scope::Run(r) if r == run => RunScope::Own,
            Scope::Run(r) => RunScope::Run(r),
        };
        RunKey {
            tag: key.tag(),
            ns: key.ns().clone(),
            scope,
            user: key.user().clone(),
        }
    }

    /// The engine key this names when replaying `run`.
    pub fn to_key(&self, run: RunId) -> Key {
        let scope = match self.scope {
            RunScope::Shared => Scope::Shared,
            RunScope::Own => Scope::Run(run),
            RunScope::Run(r) => Scope::Run(r),
        };
        Family::new(self.ns.clone(), scope, self.tag).key_from(self.user.clone())
    }
}

/// Ordered by (tag, namespace, scope, user bytes). Replay sorts all of a
/// run's writes, so this comparison is its inner loop. Keys of one replay
/// mostly share their namespace's allocation, which `Namespace`'s own
/// order finds equal from the two pointers alone, reading neither: do not
/// compare `as_str()` pointers instead, since the text sits behind a
/// second pointer inside the allocation (`Namespace` is one pointer wide)
/// and reading it adds a dependent load per key to every comparison.
impl Ord for RunKey {
    fn cmp(&self, other: &RunKey) -> Ordering {
        self.tag
            .cmp(&other.tag)
            .then_with(|| self.ns.cmp(&other.ns))
            .then_with(|| self.scope.cmp(&other.scope))
            .then_with(|| self.user.cmp(&other.user))
    }
}

impl PartialOrd for RunKey {
    fn partial_cmp(&self, other: &RunKey) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for RunKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scope = match self.scope {
            RunScope::Shared => "shared".to_string(),
            RunScope::Own => "run".to_string(),
            RunScope::Run(r) => format!("run:{r}"),
        };
        write!(f, "{:?} {}/{}/", self.tag, self.ns, scope)?;
        write_user_bytes(f, &self.user)
    }
}

impl fmt::Debug for RunKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RunKey({self})")
    }
}

/// User bytes as text when they are printable UTF-8, else as hex.
pub(crate) fn write_user_bytes(f: &mut fmt::Formatter<'_>, user: &[u8]) -> fmt::Result {
    match std::str::from_utf8(user) {
        Ok(s) if !s.chars().any(char::is_control) => f.write_str(s),
        _ => {
            f.write_str("0x")?;
            user.iter().try_for_each(|b| write!(f, "{b:02x}"))
        }
    }
}
