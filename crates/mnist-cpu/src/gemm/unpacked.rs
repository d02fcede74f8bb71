//! A GEMM for small shapes whose right-hand side and destination are row-major: AVX-512 tiles of
//! 8 rows by 48 columns that read the right-hand side where it lies.
//!
//! Why: `gemm` copies ("packs") its operands into panels before multiplying, which pays for large
//! matrices; for small ones (a dense layer against a batch of 32; a 32 x 144 conv weight against
//! 968 patch columns) it spent about half as long packing as multiplying.
//! Each sum here runs over `k` in order, one fused multiply-add at a time from zero, as `gemm`'s
//! kernels do for these shapes, so both give the same bits (tested against [`super::matmul`]).

use std::arch::x86_64::*;

const LANES: usize = 16;
/// A tile: 8 rows by 3 vectors, 24 accumulators, leaving registers for 3 loads and a broadcast.
/// Narrow, so that a column chunk of the right-hand side (k x 48: 27 KB for k = 144) stays in
/// L1 while the row tiles read it.
const ROWS: usize = 8;
const VECTORS: usize = 3;
const COLUMNS: usize = VECTORS * LANES;

/// Whether the CPU can run [`matmul`].
pub fn available() -> bool {
    is_x86_feature_detected!("avx512f")
}

/// `dst [m, n] = lhs [m, k] @ rhs [k, n]`, with `lhs` given as (pointer, row stride, column
/// stride) and `rhs` and `dst` as (pointer, row stride) with contiguous columns.
///
/// # Safety
/// The CPU must have AVX-512F; every element the strides address must lie inside its allocation,
/// and `dst` must not overlap either input.
#[target_feature(enable = "avx512f")]
pub unsafe fn matmul(
    (m, n, k): (usize, usize, usize),
    (dst, dst_rs): (*mut f32, usize),
    (lhs, lhs_rs, lhs_cs): (*const f32, usize, usize),
    (rhs, rhs_rs): (*const f32, usize),
) {
    if k == 0 {
        for i in 0..m {
            // SAFETY: row i of `dst` holds n elements (caller).
            unsafe { std::ptr::write_bytes(dst.add(i * dst_rs), 0, n) };
        }
        return;
    }
    // Column chunks outside, row tiles inside: a chunk of `rhs` (k x 48) stays in cache while
    // every row tile reads it.
    for c0 in (0..n).step_by(COLUMNS) {
        let masks: [__mmask16; VECTORS] = std::array::from_fn(|v| {
            let lanes = (n - c0).saturating_sub(v * LANES).min(LANES);
            ((1u32 << lanes) - 1) as __mmask16
        });
        // A last chunk of at most two vectors (a batch of 32, say) skips the third.
        let narrow = n - c0 <= 2 * LANES;
        let mut i = 0;
        while i < m {
            let rows = if m - i >= ROWS { ROWS } else { 1 };
            // SAFETY: the tile's rows and the chunk's masked columns lie inside the matrices.
            unsafe {
                let d = (dst.add(i * dst_rs + c0), dst_rs);
                let l = (lhs.add(i * lhs_rs), lhs_rs, lhs_cs);
                let r = (rhs.add(c0), rhs_rs);
                match (rows, narrow) {
                    (ROWS, false) => tile::<ROWS, VECTORS>(k, d, l, r, masks),
                    (ROWS, true) => tile::<ROWS, 2>(k, d, l, r, masks),
                    (_, false) => tile::<1, VECTORS>(k, d, l, r, masks),
                    (_, true) => tile::<1, 2>(k, d, l, r, masks),
                }
            }
            i += rows;
        }
    }
}

/// One tile of [`matmul`], `R` rows by `V` vectors of 16 columns (the lanes outside `masks`
/// neither read nor written).
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn tile<const R: usize, const V: usize>(
    k: usize,
    (dst, dst_rs): (*mut f32, usize),
    (lhs, lhs_rs, lhs_cs): (*const f32, usize, usize),
    (rhs, rhs_rs): (*const f32, usize),
    masks: [__mmask16; VECTORS],
) {
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    // SAFETY (all below): as in `matmul`.
    let lhs_rows: [*const f32; R] = std::array::from_fn(|r| unsafe { lhs.add(r * lhs_rs) });
    let (mut lhs_at, mut rhs_row) = (0, rhs);
    for _ in 0..k {
        let row: [__m512; V] = std::array::from_fn(|v| unsafe {
            _mm512_maskz_loadu_ps(masks[v], rhs_row.add(v * LANES))
        });
        rhs_row = unsafe { rhs_row.add(rhs_rs) };
        for (acc, lhs_row) in acc.iter_mut().zip(&lhs_rows) {
            let scalar = _mm512_set1_ps(unsafe { *lhs_row.add(lhs_at) });
            for (sum, &x) in acc.iter_mut().zip(&row) {
                *sum = _mm512_fmadd_ps(scalar, x, *sum);
            }
        }
        lhs_at += lhs_cs;
    }
    for (r, acc) in acc.iter().enumerate() {
        for (v, &sum) in acc.iter().enumerate() {
            unsafe { _mm512_mask_storeu_ps(dst.add(r * dst_rs + v * LANES), masks[v], sum) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against `gemm` (through [`super::super::matmul`]) on the backend's shapes and ragged
    /// ones, with a transposed left-hand side too: the same bits. (Only AVX-512 machines can run
    /// it; `crate::tests::every_level_runs_here` fails on a machine that claims AVX-512 and skips.)
    #[test]
    fn gives_the_bits_of_gemm() {
        if !available() {
            return;
        }
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut random = |len: usize| -> Vec<f32> {
            (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                })
                .collect()
        };
        // (m, n, k, lhs transposed): fast's conv2 forward and patch gradient, then ragged.
        for (m, n, k, transposed) in [
            (32, 968, 144, false),
            (144, 968, 32, true),
            (32, 121, 144, false),
            (7, 45, 19, false),
            (128, 32, 169, false),
            (21, 17, 3, false),
            (5, 100, 9, true),
        ] {
            let (lhs, rhs) = (random(m * k), random(k * n));
            let (lhs_rs, lhs_cs) = if transposed { (1, m) } else { (k, 1) };
            let mut ours = vec![f32::NAN; m * n];
            let mut theirs = vec![0f32; m * n];
            // SAFETY: AVX-512F checked above; the strides describe the vectors' own shapes.
            unsafe {
                matmul(
                    (m, n, k),
                    (ours.as_mut_ptr(), n),
                    (lhs.as_ptr(), lhs_rs, lhs_cs),
                    (rhs.as_ptr(), n),
                );
                super::super::matmul(
                    (m, n, k),
                    (theirs.as_mut_ptr(), n, 1),
                    (lhs.as_ptr(), lhs_rs, lhs_cs),
                    (rhs.as_ptr(), n, 1),
                );
            }
            let same = ours
                .iter()
                .zip(&theirs)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(
                same,
                "{m}x{n}x{k} (transposed lhs: {transposed}) differs from gemm"
            );
        }
    }
}
