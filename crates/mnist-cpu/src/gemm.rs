//! The one place the backend multiplies matrices: the `gemm` crate (packed, for large shapes),
//! and on AVX-512 a packing-free kernel for small ones whose right-hand side is row-major.

#[cfg(target_arch = "x86_64")]
pub mod unpacked;

use crate::Level;

/// `dst [m, n] = lhs [m, k] @ rhs [k, n]` through the `gemm` crate on the calling thread, each
/// matrix given as (pointer, row stride, column stride) in elements, so a transpose is a swap of
/// strides. Each output's sum over `k` runs in an order that depends only on the shapes, never on
/// the thread count.
///
/// # Safety
/// Every element the strides address must lie inside its allocation, and `dst` must not overlap
/// either input.
pub unsafe fn matmul(
    (m, n, k): (usize, usize, usize),
    (dst, dst_rs, dst_cs): (*mut f32, usize, usize),
    (lhs, lhs_rs, lhs_cs): (*const f32, usize, usize),
    (rhs, rhs_rs, rhs_cs): (*const f32, usize, usize),
) {
    // SAFETY: the caller's contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            dst_cs as isize,
            dst_rs as isize,
            false,
            lhs,
            lhs_cs as isize,
            lhs_rs as isize,
            rhs,
            rhs_cs as isize,
            rhs_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// [`matmul`] where `rhs` and `dst` have contiguous rows (given as pointer and row stride): at
/// [`Level::Avx512`] through [`unpacked::matmul`], which skips gemm's packing (faster for small
/// products) and gives the same bits; otherwise through gemm.
///
/// # Safety
/// As for [`matmul`]; `level` must be available on this CPU.
pub unsafe fn matmul_rows(
    level: Level,
    (m, n, k): (usize, usize, usize),
    (dst, dst_rs): (*mut f32, usize),
    (lhs, lhs_rs, lhs_cs): (*const f32, usize, usize),
    (rhs, rhs_rs): (*const f32, usize),
) {
    #[cfg(target_arch = "x86_64")]
    if level == Level::Avx512 {
        // SAFETY: the CPU has AVX-512F (the caller's level); the rest is the caller's contract.
        return unsafe {
            unpacked::matmul(
                (m, n, k),
                (dst, dst_rs),
                (lhs, lhs_rs, lhs_cs),
                (rhs, rhs_rs),
            )
        };
    }
    let _ = level;
    // SAFETY: the caller's contract.
    unsafe {
        matmul(
            (m, n, k),
            (dst, dst_rs, 1),
            (lhs, lhs_rs, lhs_cs),
            (rhs, rhs_rs, 1),
        )
    }
}
