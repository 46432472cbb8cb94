//! Atomics and locks used by the concurrent core, swapped for loom's under
//! `cfg(loom)` so the loom tests explore the real code; and a prefetch hint.

#[cfg(loom)]
pub(crate) use loom::sync::Mutex;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering, fence};
#[cfg(not(loom))]
pub(crate) use std::sync::Mutex;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering, fence};

/// A prefetch of the cache line at `at`, where the target has an
/// instruction for it (x86_64); nothing elsewhere. For loops that know the
/// addresses they will touch a few iterations ahead (recovery's installer),
/// so that their cache misses overlap instead of each being waited for.
#[inline(always)]
pub(crate) fn prefetch_read<T: ?Sized>(at: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it never faults and changes no state
    // a program can observe, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(at.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}
