//! mimalloc settings for the commands whose memory profile differs from the
//! server's steady state: the short batch commands, and the bulk load of a
//! DNS policy at start-up.

use libmimalloc_sys::mi_option_t;

/// mimalloc v3's `mi_option_purge_delay` (libmimalloc-sys 0.1.49 bundles
/// mimalloc 3.3; its Rust constants stop at older options).
const MI_OPTION_PURGE_DELAY: mi_option_t = 15;

/// `tune_for_batch`'s purge delay, in milliseconds.
const BATCH_PURGE_DELAY_MS: std::os::raw::c_long = 10;

/// Allocator settings for the short batch commands (`hunt`, `rules
/// check`), which build a large rule index once and exit within a second.
/// Measured on the attack samples with all SigmaHQ rules (BENCHMARKS.md):
/// with mimalloc's defaults peak RSS was 310 MB against 206 MB under the
/// system allocator. Two causes: mimalloc marks its arenas for transparent
/// huge pages (the kernel here honours `madvise`), so every touched 2 MiB
/// region is resident whole; and it returns freed pages only after a purge
/// delay of 1 s, longer than the whole hunt. Without THP and with immediate
/// purging the peak is 222 MB and the wall time drops too (fewer huge-page
/// faults to zero). The server keeps the defaults: its long-lived heaps are
/// what mimalloc's archive-path throughput was measured with.
///
/// The purge delay is 10 ms rather than 0: with the rule engines' indexes
/// built only when they pay (mimamori-detect's shards), the peak fell to
/// ~157 MB, and purging every freed page at once cost ~0.1 s of system
/// time in `madvise`; 10 ms saves that for ~20 MB more peak (attack
/// samples, 5 runs each: 0.59-0.65 s wall, 0.19-0.26 s sys, 155-158 MB at
/// 0 ms; 0.56-0.61 s, 0.10-0.15 s sys, 172-183 MB at 10 ms).
pub fn tune_for_batch() {
    // SAFETY: mi_option_set only stores an integer option; mimalloc reads
    // it on its next purge decision.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, BATCH_PURGE_DELAY_MS) };
    // No transparent huge pages for this process from now on (what
    // mimalloc's own `allow_thp=0` does at start-up; too late to set that
    // option here, since mimalloc initialised before main). Best effort: a
    // kernel without the call only costs memory.
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

/// Settings for building a large, long-lived table once (a 1M-name RPZ zone
/// at resolver start), restored when the guard drops. Measured with the
/// 1M-domain benchmark zone (BENCHMARKS.md, Protective DNS): the load took
/// 1.08 s with mimalloc's defaults, 0.84 s without transparent huge pages
/// and with immediate purging. A third of the load's CPU was the kernel
/// zeroing pages: the growing hash tables are reallocated (doubling), and
/// with THP each fresh 2 MiB region is faulted in and zeroed whole, while
/// the freed old tables are held back for the purge delay instead of being
/// reused as normal pages. What the resolver then serves from is allocated
/// by then; the rest of the process gets the defaults back.
pub struct BulkLoad {
    purge_delay: std::os::raw::c_long,
    thp_disabled_before: bool,
}

/// Start a bulk load (see [`BulkLoad`]): the batch settings
/// ([`tune_for_batch`]) until the guard drops.
pub fn bulk_load() -> BulkLoad {
    // SAFETY: mi_option_get/set read and store an integer option.
    let purge_delay = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
    // SAFETY: PR_GET_THP_DISABLE takes plain integers and touches no memory.
    let thp_disabled_before = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) } == 1;
    tune_for_batch();
    BulkLoad {
        purge_delay,
        thp_disabled_before,
    }
}

impl Drop for BulkLoad {
    fn drop(&mut self) {
        // SAFETY: as in `tune_for_batch`.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, self.purge_delay) };
        if !self.thp_disabled_before {
            // SAFETY: as in `tune_for_batch`.
            unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 0, 0, 0, 0) };
        }
    }
}
