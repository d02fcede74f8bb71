//! Each layer's forward and backward over host slices, `[b, …]` row-major per image. Fast
//! variants (SIMD levels, fused pairs) sit beside the plain kernels they replace and are tested
//! against them and against candle's autograd.

pub mod batchnorm;
pub mod conv;
pub mod dense;
#[cfg(target_arch = "x86_64")]
mod dense_avx512;
pub mod first_conv;
pub mod pool;
pub mod relu;
pub mod winograd;

/// Grows a reused buffer to at least `len` values, zero-filling the new room. It never shrinks,
/// so per-thread and per-workspace buffers settle at the largest size they are asked for.
pub(crate) fn grow(buf: &mut Vec<f32>, len: usize) {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
}
