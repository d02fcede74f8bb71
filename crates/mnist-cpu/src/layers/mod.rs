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
