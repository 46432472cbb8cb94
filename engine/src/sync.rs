//! Atomics used by the concurrent core, swapped for loom's under `cfg(loom)`
//! so the loom tests explore the real code.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};
