//! Process-wide settings that make CPU work fast: the binary's business, not a library's. Call
//! [`run_on_worker_pool`] (or [`configure_process`]) once, at the start of `main`, before any
//! tensor work.
//!
//! Measured with the step_time example on 2 cores (tutorial step, batch 32): 3.6 → 2.9 ms.

/// Training allocates and frees many large activation buffers per step; glibc's malloc hands
/// each back to the kernel and page-faults it in again, which cost 40% of a CPU step here
/// (measured with crates/mnist-train/examples/step_time: 19 → 11 ms per tutorial step). Linux
/// only: that is where it was measured, and mimalloc's C build needs the target's C toolchain
/// (the Metal compile check on Linux has none for macOS).
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `enum mi_option_e` (mimalloc.h, v2 and v3).
#[cfg(target_os = "linux")]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets the process up for fast CPU tensor work; [`run_on_worker_pool`] calls it. Call it alone
/// in programs that must not run on a pool worker (an async server's runtime, say):
///
/// * candle's own elementwise pool is turned off (`CANDLE_NUM_THREADS=1` unless the user set it),
///   so its spinning threads do not fight rayon's for the same cores;
/// * rayon's global pool is built now (`RAYON_NUM_THREADS` threads; if it already exists, it is
///   used as it is);
/// * mimalloc keeps freed pages mapped: every step frees and allocates the same large buffers,
///   and returning them to the kernel made it zero fresh pages each step (16% of a batch-256
///   step in `clear_page`).
pub fn configure_process() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // Before candle reads it (its pool starts at first use) and before other threads exist.
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    // SAFETY: sets a plain integer option; mimalloc documents it as callable at any time.
    #[cfg(target_os = "linux")]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1)
    };
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
