//! [`ZeroedArray`]: a fixed-length array that starts all zero bytes and,
//! when large, sits on transparent huge pages: the point index's table
//! (`point_index.rs`).
//!
//! ## Why huge pages
//! A point read probes a random slot of a table that is 32 MB at 1M keys.
//! With 4 KB pages almost every probe also misses the TLB, and the page
//! walk is itself a chain of loads (two-dimensional under a hypervisor);
//! with 2 MB pages the table's 16 translations stay in the TLB. Measured
//! with `examples/w2_split` (1M keys, the bare `scc::HashIndex` in the same
//! rounds): 225.8 -> 216.9 ns per get with the advice switched off and on
//! in one build (12 rounds each, alternated), 230.7 -> 215.8 ns against
//! the build before (0.725 -> 0.759 of the bare index's rate). The cost:
//! huge-page faults while a fresh index grows, about 8-12% of a bulk load
//! of 1M keys on this project's VM (docs/next-layout.md, session 15).
//!
//! ## How
//! An array of at least [`HUGE_MIN_BYTES`] is allocated 2 MB-aligned and
//! uninitialized, advised `MADV_HUGEPAGE` (Linux) before anything touches
//! it, and only then zeroed, so that the first touch faults it in as huge
//! pages wherever the kernel's THP setting is `madvise` or `always`.
//! Anywhere else (another OS, THP `never`, a smaller array, Miri) it is an
//! ordinary zeroed allocation. The advice is only advice: its result is
//! ignored, and nothing depends on it but speed.

use std::alloc::{self, Layout};
use std::ops::Deref;
use std::ptr::NonNull;

/// Size of a huge page (x86-64 and aarch64 with 4 KB base pages).
const HUGE_PAGE_BYTES: usize = 2 << 20;

/// Arrays from this size on are put on huge pages: two huge pages or more,
/// so that at most a quarter of the allocation is alignment padding
/// (the padding is address space, never touched).
pub(crate) const HUGE_MIN_BYTES: usize = 2 * HUGE_PAGE_BYTES;

/// A type for which all-zero bytes are a valid value.
///
/// # Safety
/// All-zero bytes must be a valid `Self`, and `Self` must not need drop
/// (a [`ZeroedArray`] frees its memory without dropping its elements).
pub(crate) unsafe trait ZeroIsValid: Sized {}

/// A fixed-length array of `T`, every element all zero bytes when made
/// (see the module docs).
pub(crate) struct ZeroedArray<T: ZeroIsValid> {
    ptr: NonNull<T>,
    len: usize,
    /// The allocation's layout (a huge page's alignment when large), for
    /// `dealloc`; size 0 for an empty array, which allocates nothing.
    layout: Layout,
}

// SAFETY: the array owns its elements as a `Box<[T]>` would.
unsafe impl<T: ZeroIsValid + Send> Send for ZeroedArray<T> {}
// SAFETY: shared access gives out only `&[T]`.
unsafe impl<T: ZeroIsValid + Sync> Sync for ZeroedArray<T> {}

impl<T: ZeroIsValid> ZeroedArray<T> {
    /// `len` all-zero elements. Aborts, as `Vec` does, if the allocator
    /// fails; panics if `len` elements overflow the address space.
    pub(crate) fn new(len: usize) -> ZeroedArray<T> {
        const {
            assert!(!std::mem::needs_drop::<T>() && std::mem::size_of::<T>() > 0);
        }
        let layout = Layout::array::<T>(len).unwrap_or_else(|_| too_large(len));
        if layout.size() == 0 {
            return ZeroedArray {
                ptr: NonNull::dangling(),
                len,
                layout,
            };
        }
        let huge = HUGE_PAGES && layout.size() >= HUGE_MIN_BYTES;
        let layout = match huge {
            true => layout
                .align_to(HUGE_PAGE_BYTES)
                .unwrap_or_else(|_| too_large(len)),
            false => layout,
        };
        // SAFETY: the layout's size is nonzero (checked above).
        let raw = unsafe {
            match huge {
                // Untouched until advised (`alloc_zeroed` would zero it,
                // faulting it in as small pages, before the advice).
                true => alloc::alloc(layout),
                false => alloc::alloc_zeroed(layout),
            }
        };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        if huge {
            advise_huge_pages(raw, layout.size());
            // SAFETY: `raw` is valid for writes of `layout.size()` bytes
            // (just allocated with that layout).
            unsafe { raw.write_bytes(0, layout.size()) };
        }
        ZeroedArray {
            ptr: ptr.cast(),
            len,
            layout,
        }
    }

    /// True if the array was allocated aligned for huge pages (whether the
    /// kernel backs it with them is its own choice).
    #[cfg(test)]
    fn huge_aligned(&self) -> bool {
        self.layout.align() == HUGE_PAGE_BYTES
    }
}

impl<T: ZeroIsValid> Deref for ZeroedArray<T> {
    type Target = [T];

    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` holds `len` initialized elements (all-zero bytes
        // are valid, `ZeroIsValid`) for as long as `self`, or is dangling
        // with a zero-sized layout, which is valid for an empty slice.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: ZeroIsValid> Drop for ZeroedArray<T> {
    fn drop(&mut self) {
        if self.layout.size() != 0 {
            // SAFETY: allocated in `new` with this very layout; elements
            // need no drop (`ZeroIsValid`).
            unsafe { alloc::dealloc(self.ptr.as_ptr().cast(), self.layout) };
        }
    }
}

/// Whether large arrays are advised onto huge pages here.
const HUGE_PAGES: bool = cfg!(all(target_os = "linux", not(miri)));

#[cfg(all(target_os = "linux", not(miri)))]
fn advise_huge_pages(start: *mut u8, len: usize) {
    // Whole huge pages only: `start` is aligned to one, and the tail past
    // the last whole one (none for the power-of-two tables) stays small.
    let len = len / HUGE_PAGE_BYTES * HUGE_PAGE_BYTES;
    // SAFETY: `[start, start + len)` lies in one live allocation of ours;
    // `MADV_HUGEPAGE` changes how its pages are backed, never their
    // contents. Its result is ignored: the advice is optional (THP may be
    // off, or the kernel too old), and nothing depends on it but speed.
    let _ = unsafe { libc::madvise(start.cast(), len, libc::MADV_HUGEPAGE) };
}

#[cfg(not(all(target_os = "linux", not(miri))))]
fn advise_huge_pages(_start: *mut u8, _len: usize) {}

#[cold]
fn too_large(len: usize) -> ! {
    panic!("an array of {len} elements overflows the address space")
}

#[cfg(test)]
mod test {
    use super::{HUGE_MIN_BYTES, HUGE_PAGES, ZeroIsValid, ZeroedArray};
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Cell(AtomicU64);
    // SAFETY: an `AtomicU64` has `u64`'s representation; it needs no drop.
    unsafe impl ZeroIsValid for Cell {}

    fn check(len: usize) -> ZeroedArray<Cell> {
        let array = ZeroedArray::<Cell>::new(len);
        assert_eq!(array.len(), len);
        assert!(array.iter().all(|c| c.0.load(Ordering::Relaxed) == 0));
        for (i, c) in array.iter().enumerate() {
            c.0.store(i as u64 + 1, Ordering::Relaxed);
        }
        for (i, c) in array.iter().enumerate() {
            assert_eq!(c.0.load(Ordering::Relaxed), i as u64 + 1);
        }
        array
    }

    #[test]
    fn small_and_empty_arrays_start_zeroed_and_hold_what_is_written() {
        for len in [0, 1, 3, 64, 1000] {
            let array = check(len);
            assert!(!array.huge_aligned());
        }
    }

    /// A large array takes the huge-page path where there is one (aligned
    /// to a huge page, zeroed after the advice) and reads back whole.
    #[cfg_attr(
        miri,
        ignore = "4 MB through Miri is slow; the small path is the same code"
    )]
    #[test]
    fn large_arrays_are_huge_page_aligned_and_start_zeroed() {
        let len = HUGE_MIN_BYTES / size_of::<Cell>();
        for len in [len - 1, len, 3 * len + 5] {
            let array = check(len);
            let at_least = len * size_of::<Cell>() >= HUGE_MIN_BYTES;
            assert_eq!(array.huge_aligned(), HUGE_PAGES && at_least);
            if array.huge_aligned() {
                assert_eq!(array.as_ptr() as usize % (2 << 20), 0);
            }
        }
    }
}
