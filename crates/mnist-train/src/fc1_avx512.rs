//! fc1 of the fused step (the `[h, f]` dense layer that holds 98% of the tutorial network's
//! weights) with AVX-512 kernels written for its shapes, in place of general GEMM calls.
//!
//! Why: through `gemm`, a quarter of each fc1 GEMM's time went to packing its operands, and Adam
//! then read the weight gradient back from memory. Here the kernels read the weight where it lies,
//! and the backward computes each 4 x 96 tile of the weight gradient in registers and applies Adam
//! to it there, so the gradient never reaches memory. Every sum runs in the order of the `gemm`
//! path in [`crate::fused_step`] (sequential over the summed index; the forward's partial products
//! of each column block added in block order), so both paths give the same bits (tested), and
//! results still do not depend on the thread count.

use std::arch::x86_64::*;

use rayon::prelude::*;

use crate::fused_adam::AdamScalars;

const LANES: usize = 16;
/// Forward tile: hidden units per pass over a block's columns (16 accumulators for a batch of 32).
const FORWARD_ROWS: usize = 8;
/// Backward tile: 4 rows by 6 vectors of 16 columns, 24 accumulators, leaving registers for the
/// 6 loaded vectors and a broadcast.
const TILE_ROWS: usize = 4;
const TILE_VECTORS: usize = 6;
/// Rows of the batch per tile of the input gradient (by half a task's columns).
const DX_ROWS: usize = 8;
/// How many rows ahead the backward prefetches Adam's moments.
const PREFETCH_ROWS: usize = 3 * TILE_ROWS;
/// Columns per backward task and per tile.
const TILE_COLUMNS: usize = TILE_VECTORS * LANES;

/// Whether this CPU can run these kernels.
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx512f")
}

/// `pre [b, h] = x [b, f] @ w [h, f]ᵀ`. Each block of `block` columns is a task whose partial
/// product goes into `partials`; they are then added in block order, as the `gemm` path does.
///
/// # Panics
/// If the slices do not have the shapes given, or the CPU lacks AVX-512F.
pub(crate) fn forward(
    (b, h, f): (usize, usize, usize),
    block: usize,
    x: &[f32],
    w: &[f32],
    pre: &mut [f32],
    partials: &mut Vec<f32>,
) {
    assert!(available(), "fc1_avx512 needs AVX-512F");
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
                forward_block((h, f, bp, width), w[first..].as_ptr(), xt, partial)
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
        "fc1 input too large for 32-bit gather offsets"
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

/// One block's partial product `partial [h, bp] = w[:, block] @ xt [width, bp]`, in tiles of
/// [`FORWARD_ROWS`] hidden units by up to two vectors of the batch.
#[target_feature(enable = "avx512f")]
unsafe fn forward_block(
    (h, f, bp, width): (usize, usize, usize, usize),
    w: *const f32,
    xt: &[f32],
    partial: &mut [f32],
) {
    let vectors = bp / LANES;
    let mut j = 0;
    while j < h {
        let rows = if h - j >= FORWARD_ROWS {
            FORWARD_ROWS
        } else {
            1
        };
        let mut v = 0;
        while v < vectors {
            let (wj, xv, out) = (
                // SAFETY: rows j..j + rows of the block (see `forward`).
                unsafe { w.add(j * f) },
                &xt[v * LANES..],
                &mut partial[j * bp + v * LANES..],
            );
            // SAFETY: as in `forward`; the tiles stay inside `xt` and `partial`.
            unsafe {
                match (rows, vectors - v >= 2) {
                    (FORWARD_ROWS, true) => {
                        forward_tile::<FORWARD_ROWS, 2>((f, bp, width), wj, xv, out)
                    }
                    (FORWARD_ROWS, false) => {
                        forward_tile::<FORWARD_ROWS, 1>((f, bp, width), wj, xv, out)
                    }
                    (_, true) => forward_tile::<1, 2>((f, bp, width), wj, xv, out),
                    (_, false) => forward_tile::<1, 1>((f, bp, width), wj, xv, out),
                }
            }
            v += if vectors - v >= 2 { 2 } else { 1 };
        }
        j += rows;
    }
}

/// `out[r, v] = Σ_c w[r * f + c] · xt[c * bp + v]` for `R` rows and `V` vectors, summed over `c`
/// in order.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn forward_tile<const R: usize, const V: usize>(
    (f, bp, width): (usize, usize, usize),
    w: *const f32,
    xt: &[f32],
    out: &mut [f32],
) {
    assert!(xt.len() >= (width - 1) * bp + V * LANES && out.len() >= (R - 1) * bp + V * LANES);
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    for c in 0..width {
        // SAFETY: asserted above.
        let xs: [__m512; V] = std::array::from_fn(|k| unsafe {
            _mm512_loadu_ps(xt.as_ptr().add(c * bp + k * LANES))
        });
        for (r, acc) in acc.iter_mut().enumerate() {
            // SAFETY: the caller's rows and columns lie inside the weight.
            let wb = _mm512_set1_ps(unsafe { *w.add(r * f + c) });
            for (a, &x) in acc.iter_mut().zip(&xs) {
                *a = _mm512_fmadd_ps(wb, x, *a);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (k, &a) in acc.iter().enumerate() {
            // SAFETY: asserted above.
            unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(r * bp + k * LANES), a) };
        }
    }
}

/// The backward of fc1 and its Adam update, for tasks of [`TILE_COLUMNS`] input columns in
/// parallel: first `dx [b, f] = dh [b, h] @ w [h, f]` for the task's columns (with the weights
/// before this step), then for each 4 x 96 tile the weight gradient `dhᵀ @ x`, in registers, and
/// Adam on that tile of `w`, `m` and `v`.
///
/// # Panics
/// If the slices do not have the shapes given, or the CPU lacks AVX-512F.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_and_update(
    (b, h, f): (usize, usize, usize),
    x: &[f32],
    dh: &[f32],
    w: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    dx: &mut [f32],
    adam: AdamScalars,
) {
    assert!(available(), "fc1_avx512 needs AVX-512F");
    assert!(x.len() == b * f && dh.len() == b * h && dx.len() == b * f);
    assert!(w.len() == h * f && m.len() == h * f && v.len() == h * f);
    let ptrs = Ptrs {
        w: w.as_mut_ptr(),
        m: m.as_mut_ptr(),
        v: v.as_mut_ptr(),
        dx: dx.as_mut_ptr(),
    };
    (0..f.div_ceil(TILE_COLUMNS))
        .into_par_iter()
        .for_each(|task| {
            let first = task * TILE_COLUMNS;
            let width = TILE_COLUMNS.min(f - first);
            // SAFETY: AVX-512F checked above; each task reads and writes only columns
            // `first..first + width` of the `[h, f]` and `[b, f]` buffers, which lie inside them
            // (asserted sizes), so no two tasks touch the same element.
            unsafe { backward_columns((b, h, f), first, width, x, dh, ptrs, &adam) };
        });
}

/// The mutable buffers of [`backward_and_update`], shared by tasks that write disjoint columns.
#[derive(Clone, Copy)]
struct Ptrs {
    w: *mut f32,
    m: *mut f32,
    v: *mut f32,
    dx: *mut f32,
}
// SAFETY: only used where each task writes its own columns (see `backward_and_update`).
unsafe impl Send for Ptrs {}
unsafe impl Sync for Ptrs {}

/// Lane masks of the [`TILE_VECTORS`] vectors covering `width` columns (all-zero past the end).
fn column_masks(width: usize) -> [__mmask16; TILE_VECTORS] {
    std::array::from_fn(|k| {
        let lanes = width.saturating_sub(k * LANES).min(LANES);
        ((1u32 << lanes) - 1) as __mmask16
    })
}

/// One task of [`backward_and_update`]: columns `first..first + width` (at most
/// [`TILE_COLUMNS`]).
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn backward_columns(
    (b, h, f): (usize, usize, usize),
    first: usize,
    width: usize,
    x: &[f32],
    dh: &[f32],
    p: Ptrs,
    adam: &AdamScalars,
) {
    let masks = column_masks(width);
    // SAFETY (all below): the caller's columns lie inside rows of length `f`; the masks keep
    // every access inside `first..first + width`.
    let (w, x) = unsafe { (p.w.add(first).cast_const(), x.as_ptr().add(first)) };
    let dx = unsafe { p.dx.add(first) };
    // dx[i, c] = Σ_j dh[i, j] w[j, c], in tiles of 8 rows i (then single rows) by half the
    // columns: that half of the weight rows (24 KB) then stays in L1 across the row tiles.
    const HALF: usize = TILE_VECTORS / 2;
    for half in 0..2 {
        let half_masks: [__mmask16; HALF] = std::array::from_fn(|k| masks[half * HALF + k]);
        if half_masks[0] == 0 {
            break;
        }
        let (w, dx) = unsafe { (w.add(half * HALF * LANES), dx.add(half * HALF * LANES)) };
        let mut i = 0;
        while i < b {
            let rows = if b - i >= DX_ROWS { DX_ROWS } else { 1 };
            let (a, out) = (&dh[i * h..], unsafe { dx.add(i * f) });
            let store = |r: usize, k: usize, acc: __m512| unsafe {
                _mm512_mask_storeu_ps(out.add(r * f + k * LANES), half_masks[k], acc)
            };
            unsafe {
                if rows == DX_ROWS {
                    gradient_tile::<DX_ROWS, HALF>((h, h, 1), f, a, w, half_masks, store);
                } else {
                    gradient_tile::<1, HALF>((h, h, 1), f, a, w, half_masks, store);
                }
            }
            i += rows;
        }
    }
    // dw[j, c] = Σ_i dh[i, j] x[i, c], then Adam, in tiles of 4 rows j (then single rows).
    // Each row's span of the moments is in another page, where the hardware prefetcher does not
    // follow, so they are prefetched a few tiles ahead.
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
    let mut j = 0;
    while j < h {
        let rows = if h - j >= TILE_ROWS { TILE_ROWS } else { 1 };
        (j + PREFETCH_ROWS..j + PREFETCH_ROWS + rows).for_each(prefetch);
        let mut tile = [[_mm512_setzero_ps(); TILE_VECTORS]; TILE_ROWS];
        let keep = |r: usize, k: usize, g: __m512| tile[r][k] = g;
        unsafe {
            if rows == TILE_ROWS {
                gradient_tile::<TILE_ROWS, TILE_VECTORS>((b, 1, h), f, &dh[j..], x, masks, keep);
            } else {
                gradient_tile::<1, TILE_VECTORS>((b, 1, h), f, &dh[j..], x, masks, keep);
            }
            let at = j * f + first;
            adam_tile(
                adam,
                &tile[..rows],
                f,
                (p.w.add(at), p.m.add(at), p.v.add(at)),
                masks,
            );
        }
        j += rows;
    }
}

/// Adam on a gradient tile (rows of [`TILE_VECTORS`] vectors) for the weights and moments at
/// `w`, `m` and `v` (rows `f` apart). Not inlined: Adam's seven constants would otherwise be
/// hoisted into registers across the gradient loop, which then spilled its accumulators.
///
/// # Safety
/// The masked lanes of each row must be valid for reads and writes.
#[target_feature(enable = "avx512f")]
#[inline(never)]
unsafe fn adam_tile(
    adam: &AdamScalars,
    tile: &[[__m512; TILE_VECTORS]],
    f: usize,
    (w, m, v): (*mut f32, *mut f32, *mut f32),
    masks: [__mmask16; TILE_VECTORS],
) {
    for (r, row) in tile.iter().enumerate() {
        for (k, &g) in row.iter().enumerate() {
            let o = r * f + k * LANES;
            // SAFETY: the caller guarantees the masked lanes are valid.
            unsafe { adam.update_m512(g, w.add(o), m.add(o), v.add(o), masks[k]) };
        }
    }
}

/// The `R` x `V` vectors tile `Σ_s a[r * a_row + s * a_step] · rhs[s * f + c]` over
/// `s < depth`, summed in order (as `gemm` sums), each of its vectors then handed to
/// `finish(r, k, acc)`.
///
/// # Safety
/// The masked lanes of `rhs[s * f + k * 16..]` must be readable for every `s < depth`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn gradient_tile<const R: usize, const V: usize>(
    (depth, a_row, a_step): (usize, usize, usize),
    f: usize,
    a: &[f32],
    rhs: *const f32,
    masks: [__mmask16; V],
    mut finish: impl FnMut(usize, usize, __m512),
) {
    assert!(depth > 0 && a.len() > (R - 1) * a_row + (depth - 1) * a_step);
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    for s in 0..depth {
        // SAFETY: the caller guarantees the masked lanes are readable.
        let row: [__m512; V] = std::array::from_fn(|k| unsafe {
            _mm512_maskz_loadu_ps(masks[k], rhs.add(s * f + k * LANES))
        });
        for (r, acc) in acc.iter_mut().enumerate() {
            let scalar = _mm512_set1_ps(a[r * a_row + s * a_step]);
            for (sum, &v) in acc.iter_mut().zip(&row) {
                *sum = _mm512_fmadd_ps(scalar, v, *sum);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (k, &sum) in acc.iter().enumerate() {
            finish(r, k, sum);
        }
    }
}
