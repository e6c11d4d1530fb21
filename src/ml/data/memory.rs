//! Memory hints for the large arrays of a training run: prefetching what a later step will
//! read, and backing the arrays read at random with transparent huge pages.
//!
//! At 100M ratings and 5M customers the trainer reads, every step, scattered entries of arrays
//! of hundreds of MB to GB: the embedding tables, the ratings' columns (at the shuffled samples'
//! positions), the catch-up tables (at each lagging row's last step). Each such read is a cache
//! miss and, with 4 KiB pages, a TLB miss whose page walk (two-dimensional under a hypervisor)
//! misses the caches too. Huge pages make the walks short; prefetching far enough ahead makes
//! the misses overlap each other and ONNX Runtime's run instead of stalling the step.

use anyhow::Result;

use super::try_vec;

/// Asks the CPU to start loading `values` into its caches, one hint per 64-byte line, and
/// returns at once (a no-op off x86-64). `std` has no portable prefetch and no maintained crate
/// wraps this one intrinsic.
#[inline]
pub fn prefetch<T>(values: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let bytes = std::mem::size_of_val(values);
        let start = values.as_ptr().cast::<i8>();
        for offset in (0..bytes).step_by(64).chain(bytes.checked_sub(1)) {
            // SAFETY: a prefetch is a hint: it never faults and changes no memory, whatever the
            // address; `offset` stays inside `values` anyway. SSE (and so `prefetcht0`) is part
            // of every x86-64 CPU.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(offset)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = values;
}

/// Asks the CPU to load the one value `values[index]`, if there is one (see [`prefetch`]).
#[inline]
pub fn prefetch_at<T>(values: &[T], index: usize) {
    if let Some(value) = values.get(index) {
        prefetch(std::slice::from_ref(value));
    }
}

/// Asks the kernel to back `buffer`'s allocation with transparent huge pages (2 MiB on x86-64)
/// where it can, before the buffer is first written. A table of a million rows spans ~150,000
/// 4 KiB pages, so nearly every row a step touches is also a TLB miss; with huge pages the
/// page walks mostly hit the caches. It is a hint: where THP is off, unsupported or refused
/// the call fails and changes nothing, so its result is ignored. `std` has no `madvise`.
pub fn advise_huge_pages<T>(buffer: &Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `sysconf` reads a constant.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let start = (buffer.as_ptr() as usize).next_multiple_of(page);
        let end =
            (buffer.as_ptr() as usize + buffer.capacity() * std::mem::size_of::<T>()) / page * page;
        if end > start {
            // SAFETY: the range lies within `buffer`'s allocation, whole pages only, and
            // MADV_HUGEPAGE changes how the pages are backed, never their contents.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = buffer;
}

/// An empty vector with room for `len` values, allocated fallibly ([`try_vec`]) and advised
/// into huge pages (see [`advise_huge_pages`]): for arrays read at random.
pub fn try_vec_huge<T>(len: usize) -> Result<Vec<T>> {
    let values = try_vec(len)?;
    advise_huge_pages(&values);
    Ok(values)
}

/// `len` copies of `value` in an allocation advised into huge pages.
pub fn try_filled_huge<T: Clone>(len: usize, value: T) -> Result<Vec<T>> {
    let mut values = try_vec_huge(len)?;
    values.resize(len, value);
    Ok(values)
}
