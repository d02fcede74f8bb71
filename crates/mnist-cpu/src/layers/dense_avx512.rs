//! A dense layer `[h, f]` (`h` outputs of `f` inputs) on AVX-512, in place of the `gemm` calls
//! of [`super::dense`]: what makes the tutorial's fc1 (98% of its weights) fast.
//!
//! Why: through `gemm`, a third of each product's time went to packing its operands, and Adam
//! then read the whole block's weight gradient back. Here every product goes through
//! [`unpacked::matmul`], which reads the weight where it lies, and the backward computes the
//! weight gradient 8 rows by 96 columns at a time into a 3 KB tile that is stored, or that Adam
//! updates from L1 straight away. Every sum runs in the `gemm` path's order (sequential over the
//! summed index; the forward's partial products of each column block added in block order), so
//! both paths give the same bits (tested), and results do not depend on the thread count.

use std::arch::x86_64::*;

use rayon::prelude::*;

use super::dense::Sink;
use crate::gemm::unpacked;
use crate::Level;

const LANES: usize = 16;
/// Columns per backward task: six vectors.
const TASK_COLUMNS: usize = 6 * LANES;
/// Weight rows per gradient tile, which then gets its Adam update.
const GRAD_ROWS: usize = 8;
/// How many rows ahead the backward prefetches Adam's moments.
const PREFETCH_ROWS: usize = 12;

/// `pre [b, h] = x [b, f] @ w [h, f]ᵀ`. Each block of `block` columns is a task whose partial
/// product goes into `partials`; they are then added in block order, as the `gemm` path does.
///
/// # Panics
/// If the slices do not have the shapes given, or the CPU lacks AVX-512F.
pub(super) fn forward(
    (b, h, f): (usize, usize, usize),
    block: usize,
    x: &[f32],
    w: &[f32],
    pre: &mut [f32],
    partials: &mut Vec<f32>,
) {
    assert!(unpacked::available(), "dense_avx512 needs AVX-512F");
    assert!(x.len() == b * f && w.len() == h * f && pre.len() == b * h && block > 0);
    // Partials are `[h, bp]`: vectorized over the batch, padded to whole vectors.
    let bp = b.next_multiple_of(LANES);
    let blocks = f.div_ceil(block);
    if partials.len() < blocks * h * bp {
        partials.resize(blocks * h * bp, 0.0);
    }
    let partials = &mut partials[..blocks * h * bp];
    partials.par_chunks_mut(h * bp).enumerate().for_each_init(
        Vec::new,
        |xt: &mut Vec<f32>, (index, partial)| {
            let first = index * block;
            let width = block.min(f - first);
            xt.resize(width * bp, 0.0);
            // SAFETY: AVX-512F checked above; `x` is `[b, f]` and `xt` `[width, bp]`;
            // `w[j * f + first + c]` for j < h, c < width lies in `w`, and `partial` is `[h, bp]`.
            unsafe {
                transpose_block((b, f, bp), first, width, x, xt);
                // partial [h, bp] = w[:, block] @ xt [width, bp]
                unpacked::matmul(
                    (h, bp, width),
                    (partial.as_mut_ptr(), bp),
                    (w[first..].as_ptr(), f, 1),
                    (xt.as_ptr(), bp),
                )
            };
        },
    );
    // pre[i, j] = partials[0][j, i] + partials[1][j, i] + ..., in block order, summed into the
    // first block's partial and then transposed.
    let (sums, rest) = partials.split_at_mut(h * bp);
    for partial in rest.chunks_exact(h * bp) {
        for (s, &p) in sums.iter_mut().zip(partial) {
            *s += p;
        }
    }
    for (j, row) in sums.chunks_exact(bp).enumerate() {
        for (i, &s) in row[..b].iter().enumerate() {
            pre[i * h + j] = s;
        }
    }
}

/// Columns `first..first + width` of `x [b, f]`, transposed into `xt [width, bp]` (lanes past
/// `b` zero), so each of the forward's rows is whole vectors: one masked gather per 16 images.
#[target_feature(enable = "avx512f")]
unsafe fn transpose_block(
    (b, f, bp): (usize, usize, usize),
    first: usize,
    width: usize,
    x: &[f32],
    xt: &mut [f32],
) {
    assert!(x.len() == b * f && first + width <= f && xt.len() >= width * bp && b <= bp);
    assert!(
        b * f <= i32::MAX as usize,
        "dense input too large for 32-bit gather offsets"
    );
    let lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for v in 0..bp / LANES {
        let rows = _mm512_add_epi32(lane, _mm512_set1_epi32((v * LANES) as i32));
        let offsets = _mm512_mullo_epi32(rows, _mm512_set1_epi32(f as i32));
        let live = ((1u32 << b.saturating_sub(v * LANES).min(LANES)) - 1) as __mmask16;
        for c in 0..width {
            // SAFETY: live lanes address x[(v * 16 + l) * f + first + c] with row < b and
            // column < f (asserted); `xt` holds `width * bp` floats.
            unsafe {
                let column = _mm512_mask_i32gather_ps::<4>(
                    _mm512_setzero_ps(),
                    live,
                    offsets,
                    x.as_ptr().add(first + c),
                );
                _mm512_storeu_ps(xt.as_mut_ptr().add(c * bp + v * LANES), column);
            }
        }
    }
}

/// The backward, for tasks of [`TASK_COLUMNS`] input columns in parallel: first `dx [b, f] =
/// dh [b, h] @ w [h, f]` for the task's columns (with the weights before this step) when `dx` is
/// wanted, then for each [`GRAD_ROWS`]-row tile the weight gradient `dhᵀ @ x`, stored or given
/// its Adam update on that tile of `w`, `m` and `v` (see [`Sink`]).
///
/// # Panics
/// If the slices do not have the shapes given, or the CPU lacks AVX-512F.
pub(super) fn backward(
    (b, h, f): (usize, usize, usize),
    x: &[f32],
    dh: &[f32],
    w: &mut [f32],
    dx: Option<&mut [f32]>,
    sink: Sink,
) {
    assert!(unpacked::available(), "dense_avx512 needs AVX-512F");
    assert!(x.len() == b * f && dh.len() == b * h && w.len() == h * f);
    assert!(dx.as_ref().is_none_or(|dx| dx.len() == b * f));
    let (grad, m, v, adam) = match sink {
        Sink::Grad(g) => {
            assert_eq!(g.len(), h * f);
            (
                g.as_mut_ptr(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                None,
            )
        }
        Sink::Adam { m, v, scalars } => {
            assert!(m.len() == h * f && v.len() == h * f);
            (
                std::ptr::null_mut(),
                m.as_mut_ptr(),
                v.as_mut_ptr(),
                Some(scalars),
            )
        }
    };
    let ptrs = Ptrs {
        w: w.as_mut_ptr(),
        grad,
        m,
        v,
        dx: dx.map_or(std::ptr::null_mut(), |dx| dx.as_mut_ptr()),
    };
    (0..f.div_ceil(TASK_COLUMNS))
        .into_par_iter()
        .for_each(|task| {
            let first = task * TASK_COLUMNS;
            let width = TASK_COLUMNS.min(f - first);
            // SAFETY: AVX-512F checked above; each task reads and writes only columns
            // `first..first + width` of the `[h, f]` and `[b, f]` buffers, which lie inside them
            // (asserted sizes), so no two tasks touch the same element.
            unsafe { backward_columns((b, h, f), first, width, x, dh, ptrs, adam.as_ref()) };
        });
}

/// The mutable buffers of [`backward`], shared by tasks that write disjoint columns: the weight,
/// then either the gradient or Adam's moments (the others null), and the input gradient (null
/// when not wanted).
#[derive(Clone, Copy)]
struct Ptrs {
    w: *mut f32,
    grad: *mut f32,
    m: *mut f32,
    v: *mut f32,
    dx: *mut f32,
}
// SAFETY: only used where each task writes its own columns (see `backward`).
unsafe impl Send for Ptrs {}
unsafe impl Sync for Ptrs {}

/// One task of [`backward`]: columns `first..first + width` (at most [`TASK_COLUMNS`]).
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn backward_columns(
    (b, h, f): (usize, usize, usize),
    first: usize,
    width: usize,
    x: &[f32],
    dh: &[f32],
    p: Ptrs,
    adam: Option<&crate::AdamScalars>,
) {
    // SAFETY (all below): the caller's columns `first..first + width` lie inside rows of length
    // `f`, and every access below stays inside them.
    let (w, x) = unsafe { (p.w.add(first).cast_const(), x.as_ptr().add(first)) };
    if !p.dx.is_null() {
        // dx[:, columns] = dh [b, h] @ w[:, columns], with the weights before this step.
        let dx = unsafe { p.dx.add(first) };
        unsafe { unpacked::matmul((b, width, h), (dx, f), (dh.as_ptr(), h, 1), (w, f)) };
    }
    let Some(adam) = adam else {
        // The gradient stored where it belongs: dw[:, columns] = dhᵀ @ x[:, columns].
        let dw = unsafe { p.grad.add(first) };
        unsafe { unpacked::matmul((h, width, b), (dw, f), (dh.as_ptr(), 1, h), (x, f)) };
        return;
    };
    // dw[j, c] = Σ_i dh[i, j] x[i, c], then Adam, in tiles of GRAD_ROWS rows j. Each row's span
    // of the moments is in another page, where the hardware prefetcher does not follow, so they
    // are prefetched a few tiles ahead.
    let prefetch = |j: usize| {
        if j < h {
            let row = j * f + first;
            for k in (0..width).step_by(LANES).chain([width - 1]) {
                for base in [p.m, p.v] {
                    // SAFETY: `row + k` is inside the row's columns; a prefetch does not fault.
                    unsafe { _mm_prefetch::<_MM_HINT_T0>(base.add(row + k).cast_const().cast()) };
                }
            }
        }
    };
    (0..PREFETCH_ROWS).for_each(prefetch);
    let mut tile = [0f32; GRAD_ROWS * TASK_COLUMNS];
    for j in (0..h).step_by(GRAD_ROWS) {
        let rows = GRAD_ROWS.min(h - j);
        (j + PREFETCH_ROWS..j + PREFETCH_ROWS + rows).for_each(prefetch);
        let at = j * f + first;
        unsafe {
            // tile [rows, width] = dh[:, j..j + rows]ᵀ @ x[:, columns]
            unpacked::matmul(
                (rows, width, b),
                (tile.as_mut_ptr(), TASK_COLUMNS),
                (dh.as_ptr().add(j), 1, h),
                (x, f),
            );
            for (r, g) in tile.chunks_exact(TASK_COLUMNS).take(rows).enumerate() {
                let span =
                    |base: *mut f32| std::slice::from_raw_parts_mut(base.add(at + r * f), width);
                adam.update(Level::Avx512, span(p.w), &g[..width], span(p.m), span(p.v));
            }
        }
    }
}
