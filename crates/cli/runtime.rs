//! Process-wide settings that make CPU work fast: the binary's business, not a library's. Call
//! [`run_on_worker_pool`] (or [`configure_process`]) once, at the start of `main`, before any
//! tensor work.
//!
//! Measured with the step_time example on 2 cores (tutorial step, batch 32): 3.6 → 2.9 ms.

/// Chosen when training ran through candle's autograd, which allocates and frees large
/// activation buffers at every op: glibc's malloc handed each back to the kernel and
/// page-faulted it in again, 40% of a CPU step (19 → 11 ms per tutorial step). Not re-measured
/// since the CPU backend allocates its buffers once; candle's path (the candle model, image
/// preprocessing) still allocates per op. Linux only: that is where it was measured, and mimalloc's C build needs the target's C toolchain
/// (the Metal compile check on Linux has none for macOS).
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sets the process up for fast CPU tensor work; [`run_on_worker_pool`] calls it. Call it alone
/// in programs that must not run on a pool worker (an async server's runtime, say):
///
/// * candle's own elementwise pool is turned off (`CANDLE_NUM_THREADS=1` unless the user set it),
///   so its spinning threads do not fight rayon's for the same cores;
/// * rayon's global pool is built now (`RAYON_NUM_THREADS` threads; if it already exists, it is
///   used as it is).
///
/// mimalloc returns freed pages to the kernel after its default delay: the CPU backend
/// allocates its buffers once, so keeping freed pages mapped (which the step through candle's
/// autograd needed) no longer saved time, and it held on to every epoch's augmented copy of
/// the training set and every evaluation's buffers (the tutorial recipe: 148 MB peak with it,
/// 126-131 MB without, epochs no slower).
pub fn configure_process() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // Before candle reads it (its pool starts at first use) and before other threads exist.
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    // An error only means the global pool exists already.
    let _ = rayon::ThreadPoolBuilder::new().build_global();
}

/// [`configure_process`], then runs `job` on a worker of rayon's global pool, so that the custom
/// ops and the GEMM split work with the other workers instead of waking them and parking the
/// main thread at every op.
pub fn run_on_worker_pool<R: Send>(job: impl FnOnce() -> R + Send) -> R {
    configure_process();
    // Called from outside the pool, `scope` runs its closure on a pool worker.
    rayon::scope(|_| job())
}
