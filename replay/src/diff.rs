//! [`RunDiff`]: what two runs left differently, per primitive.
//!
//! Both runs are compared by their replayed state ([`crate::RunState`]),
//! keys taken relative to each run ([`crate::RunKey`]), so run `a`'s own
//! event log lines up with run `b`'s. Run index records (`TypeTag::Run`)
//! are bookkeeping about the runs and are not compared.

use std::cmp::Ordering;
use std::fmt;

use rewinddb_engine::{RunId, TypeTag, Value};
use serde::{Deserialize, Serialize};

use crate::digest::{Digest, is_digested};
use crate::key::RunKey;
use crate::replay::{ReplayedRun, RunState};

/// A key and the value one run left there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The key.
    pub key: RunKey,
    /// The value.
    pub value: Value,
}

/// A key both runs left, with different values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Changed {
    /// The key.
    pub key: RunKey,
    /// Run `a`'s value.
    pub a: Value,
    /// Run `b`'s value.
    pub b: Value,
}

/// Differences between two runs over the keys of one primitive.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyDiff {
    /// Keys only run `a` left.
    pub only_a: Vec<Entry>,
    /// Keys only run `b` left.
    pub only_b: Vec<Entry>,
    /// Keys both left, with different values.
    pub changed: Vec<Changed>,
}

impl KeyDiff {
    /// True if the runs left the same keys and values.
    pub fn is_empty(&self) -> bool {
        self.only_a.is_empty() && self.only_b.is_empty() && self.changed.is_empty()
    }

    /// Number of differences.
    pub fn len(&self) -> usize {
        self.only_a.len() + self.only_b.len() + self.changed.len()
    }
}

/// The differences of one primitive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TagDiff {
    /// The primitive.
    pub tag: TypeTag,
    /// Its differing keys.
    pub keys: KeyDiff,
}

/// Everything two runs left differently. `Display` prints a readable
/// report; serde gives a machine-readable one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunDiff {
    /// The first run.
    pub a: RunId,
    /// The second run.
    pub b: RunId,
    /// Digest of run `a`.
    pub digest_a: Digest,
    /// Digest of run `b`.
    pub digest_b: Digest,
    /// Steps of run `a`.
    pub steps_a: usize,
    /// Steps of run `b`.
    pub steps_b: usize,
    /// One entry per primitive with at least one difference, in tag order.
    pub tags: Vec<TagDiff>,
}

impl RunDiff {
    /// Compare two replayed runs.
    pub fn between(a: &ReplayedRun, b: &ReplayedRun) -> RunDiff {
        RunDiff {
            a: a.run(),
            b: b.run(),
            digest_a: a.digest(),
            digest_b: b.digest(),
            steps_a: a.steps().len(),
            steps_b: b.steps().len(),
            tags: diff_states(a.state(), b.state()),
        }
    }

    /// True if both runs left the same state.
    pub fn is_empty(&self) -> bool {
        self.tags.iter().all(|t| t.keys.is_empty())
    }

    /// The differences of one primitive (empty if none).
    pub fn tag(&self, tag: TypeTag) -> KeyDiff {
        self.tags
            .iter()
            .find(|t| t.tag == tag)
            .map(|t| t.keys.clone())
            .unwrap_or_default()
    }
}

/// Merge-walk two states (both ordered by [`RunKey`]) into per-tag diffs.
pub fn diff_states(a: &RunState, b: &RunState) -> Vec<TagDiff> {
    let mut out: Vec<TagDiff> = Vec::new();
    let mut ia = a.iter().filter(|(k, _)| is_digested(k.tag)).peekable();
    let mut ib = b.iter().filter(|(k, _)| is_digested(k.tag)).peekable();
    loop {
        let order = match (ia.peek(), ib.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((ka, _)), Some((kb, _))) => ka.cmp(kb),
        };
        match order {
            Ordering::Less => {
                if let Some((k, v)) = ia.next() {
                    section(&mut out, k.tag).only_a.push(entry(k, v));
                }
            }
            Ordering::Greater => {
                if let Some((k, v)) = ib.next() {
                    section(&mut out, k.tag).only_b.push(entry(k, v));
                }
            }
            Ordering::Equal => {
                if let (Some((k, va)), Some((_, vb))) = (ia.next(), ib.next()) {
                    if va != vb {
                        section(&mut out, k.tag).changed.push(Changed {
                            key: k.clone(),
                            a: va.clone(),
                            b: vb.clone(),
                        });
                    }
                }
            }
        }
    }
    out.retain(|t| !t.keys.is_empty());
    out
}

/// The diff of `tag`, appended if the last section is another tag's
/// (keys arrive in tag order, so each tag gets one section).
fn section(out: &mut Vec<TagDiff>, tag: TypeTag) -> &mut KeyDiff {
    if out.last().is_none_or(|t| t.tag != tag) {
        out.push(TagDiff {
            tag,
            keys: KeyDiff::default(),
        });
    }
    let last = out.len() - 1;
    &mut out[last].keys
}

fn entry(key: &RunKey, value: &Value) -> Entry {
    Entry {
        key: key.clone(),
        value: value.clone(),
    }
}

/// A value as compact JSON, for reports.
pub(crate) fn show(v: &Value) -> String {
    v.to_json().to_string()
}

impl fmt::Display for RunDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "diff of run a = {} and run b = {}", self.a, self.b)?;
        writeln!(
            f,
            "  a: {} steps, digest {};  b: {} steps, digest {}",
            self.steps_a, self.digest_a, self.steps_b, self.digest_b
        )?;
        if self.is_empty() {
            return writeln!(f, "  no differences");
        }
        for t in &self.tags {
            writeln!(f, "  {:?}: {} difference(s)", t.tag, t.keys.len())?;
            for c in &t.keys.changed {
                writeln!(
                    f,
                    "    changed  {}: {} -> {}",
                    c.key,
                    show(&c.a),
                    show(&c.b)
                )?;
            }
            for e in &t.keys.only_a {
                writeln!(f, "    only a   {} = {}", e.key, show(&e.value))?;
            }
            for e in &t.keys.only_b {
                writeln!(f, "    only b   {} = {}", e.key, show(&e.value))?;
            }
        }
        Ok(())
    }
}
