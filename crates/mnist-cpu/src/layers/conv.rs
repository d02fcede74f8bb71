//! Convolution, `k`x`k`, stride 1, no padding, any number of channels: `x [b, c, s, s]` →
//! `y [b, o, s-k+1, s-k+1]`, as im2col plus one GEMM per chunk of images.
//!
//! Where Winograd's algorithm applies (3x3 kernels over several channels), [`forward`] goes
//! through [`super::winograd`] instead, and [`backward`] too from 32 input channels
//! ([`super::winograd::applies_backward`]); im2col serves every other shape.
//!
//! A chunk's patches `[c*k*k, n*area]` (one column per output pixel of its `n` images, rows
//! ordered (channel, kernel row, kernel column) to match the PyTorch-layout weight flattened to
//! `[o, c*k*k]`) are built in a per-thread buffer that stays in cache, and one GEMM multiplies
//! them:
//!
//! * forward: `y[o, cols] = w [o, c*k*k] @ patches`, plus the bias;
//! * backward: `dw += dy[o, cols] @ patchesᵀ` (the patches built again: cheaper than keeping
//!   them), `db += Σ dy`, and `dpatches = wᵀ @ dy`, added back into `dx` (col2im).
//!
//! Chunks hold enough images for a GEMM of about [`MIN_COLUMNS`] columns, a function of the
//! shape alone, and the weight gradient's partial sums are added in chunk order, so results do
//! not depend on the batch's split over threads.

use std::cell::RefCell;

use rayon::prelude::*;

use super::winograd;
use crate::gemm::matmul_rows;
use crate::Level;

/// Columns a chunk's GEMM aims for: below a few hundred, gemm's packing and loop overheads
/// dominate; beyond, the patches stop fitting in L2.
const MIN_COLUMNS: usize = 512;

/// A convolution's sizes: `c` input maps of `side`x`side`, `o` output maps, `k`x`k` kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvDims {
    pub c: usize,
    pub side: usize,
    pub o: usize,
    pub k: usize,
}

impl ConvDims {
    /// Output side.
    pub fn out_side(&self) -> usize {
        self.side + 1 - self.k
    }
    /// Output pixels per map.
    pub fn area(&self) -> usize {
        self.out_side() * self.out_side()
    }
    /// Rows of the patch matrix (and columns of the flattened weight).
    pub fn patch_rows(&self) -> usize {
        self.c * self.k * self.k
    }
    pub fn in_len(&self) -> usize {
        self.c * self.side * self.side
    }
    pub fn out_len(&self) -> usize {
        self.o * self.area()
    }
    /// Images per GEMM.
    pub fn chunk(&self) -> usize {
        MIN_COLUMNS.div_ceil(self.area()).max(1)
    }
    /// Weight-gradient partial sums a batch of `b` needs (one per chunk).
    pub fn chunks(&self, b: usize) -> usize {
        b.div_ceil(self.chunk())
    }
}

thread_local! {
    /// Per-thread patch, patch-gradient and output-gradient buffers, grown to the largest chunk
    /// seen.
    static SCRATCH: RefCell<[Vec<f32>; 3]> = const { RefCell::new([Vec::new(), Vec::new(), Vec::new()]) };
}

/// Runs `f` with this thread's three scratch buffers, each `len` long.
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32], &mut [f32], &mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut bufs = cell.borrow_mut();
        for buf in bufs.iter_mut() {
            super::grow(buf, len);
        }
        let [a, b, c] = &mut *bufs;
        f(&mut a[..len], &mut b[..len], &mut c[..len])
    })
}

/// One chunk's share of the backward: its partial sums, inputs, output gradients and (when
/// wanted) input gradients.
type ChunkArgs<'a> = (
    ((&'a mut [f32], &'a [f32]), &'a [f32]),
    Option<&'a mut [f32]>,
);

/// `w` as [`forward`] multiplies it, for a network whose weights stay as they are (inference):
/// Winograd's transformed kernels where that algorithm applies; `None` where `w` is used as it is.
pub fn prepared_kernels(d: &ConvDims, w: &[f32]) -> Option<Vec<f32>> {
    winograd::applies(d).then(|| winograd::transformed_kernels(d, w))
}

/// `y [b, o, area] = conv(x [b, c, s, s], w [o, c, k, k]) + bias`, then `max(y, 0)` when `relu`
/// is set (in the pass that writes `y`, not a pass of its own): by Winograd's algorithm where it
/// applies ([`super::winograd`]), else through im2col. `prepared` is [`prepared_kernels`] of
/// `w`, when the caller keeps it.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    level: Level,
    d: &ConvDims,
    relu: bool,
    x: &[f32],
    w: &[f32],
    prepared: Option<&[f32]>,
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    if winograd::applies(d) {
        winograd::forward(level, d, relu, x, w, prepared, bias, y)
    } else {
        im2col_forward(level, d, relu, x, w, bias, y)
    }
}

/// The backward of [`forward`] (by Winograd's algorithm where [`winograd::applies_backward`], else
/// im2col): `dw [o, c, k, k]` and `db [o]`
/// (overwritten) from `dy [b, o, area]`, and `dx` when given (overwritten); `partials` holds
/// [`partials_len`] floats.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    level: Level,
    d: &ConvDims,
    x: &[f32],
    dy: &[f32],
    w: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    dx: Option<&mut [f32]>,
    partials: &mut [f32],
) {
    if winograd::applies_backward(d) {
        winograd::backward(level, d, x, dy, w, dw, db, dx, partials)
    } else {
        im2col_backward(level, d, x, dy, w, dw, db, dx, partials)
    }
}

/// Floats of per-chunk gradient sums the backward of a batch of `b` needs.
pub fn partials_len(d: &ConvDims, b: usize) -> usize {
    if winograd::applies_backward(d) {
        winograd::chunks(d, b) * winograd::partial_len(d)
    } else {
        d.chunks(b) * (d.o * d.patch_rows() + d.o)
    }
}

/// [`forward`] through im2col, for any kernel size (and the reference Winograd's is tested
/// against).
pub fn im2col_forward(
    level: Level,
    d: &ConvDims,
    relu: bool,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    let b = x.len() / d.in_len();
    assert!(
        x.len() == b * d.in_len() && y.len() == b * d.out_len() && w.len() == d.o * d.patch_rows(),
        "conv: slice sizes do not match {d:?}"
    );
    let (n, area, rows) = (d.chunk(), d.area(), d.patch_rows());
    y.par_chunks_mut(n * d.out_len())
        .zip(x.par_chunks(n * d.in_len()))
        .for_each(|(y, x)| {
            let images = x.len() / d.in_len();
            // Always a whole chunk's width, the missing images' patches zero: the GEMM's shape,
            // and so each image's sums, do not depend on where the batch ends.
            let width = n * area;
            with_scratch(rows.max(d.o) * n * area, |patches, out, _| {
                if images < n {
                    patches.fill(0.0);
                }
                im2col(d, x, patches, width);
                // out [o, width] = w [o, rows] @ patches [rows, width]
                // SAFETY: the strides describe the slices' own row-major shapes; the level is
                // the caller's, available on this CPU.
                unsafe {
                    matmul_rows(
                        level,
                        (d.o, width, rows),
                        (out.as_mut_ptr(), width),
                        (w.as_ptr(), rows, 1),
                        (patches.as_ptr(), width),
                    )
                };
                // [o, images, area] → [images, o, area], adding the bias (and the ReLU).
                for (i, y) in y.chunks_exact_mut(d.out_len()).enumerate() {
                    for (ch, y) in y.chunks_exact_mut(area).enumerate() {
                        let src = &out[ch * width + i * area..][..area];
                        let b = bias.map_or(0.0, |b| b[ch]);
                        for (y, &s) in y.iter_mut().zip(src) {
                            *y = if relu { (s + b).max(0.0) } else { s + b };
                        }
                    }
                }
            })
        });
}

/// [`backward`] through im2col. `partials` holds the per-chunk weight and bias gradients
/// (`d.chunks(b) * (o * rows + o)` floats; the weight's transposed, `[rows, o]`).
#[allow(clippy::too_many_arguments)]
pub fn im2col_backward(
    level: Level,
    d: &ConvDims,
    x: &[f32],
    dy: &[f32],
    w: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    dx: Option<&mut [f32]>,
    partials: &mut [f32],
) {
    let b = x.len() / d.in_len();
    let (n, area, rows) = (d.chunk(), d.area(), d.patch_rows());
    let part = d.o * rows + d.o;
    assert!(
        x.len() == b * d.in_len()
            && dy.len() == b * d.out_len()
            && w.len() == d.o * rows
            && dw.len() == d.o * rows
            && partials.len() >= d.chunks(b) * part
            && dx.as_ref().is_none_or(|dx| dx.len() == x.len()),
        "conv backward: slice sizes do not match {d:?}"
    );
    let chunk = |(((partial, x), dy), dx): ChunkArgs| {
        let images = x.len() / d.in_len();
        let width = images * area;
        let (pw, pb) = partial.split_at_mut(d.o * rows);
        with_scratch(rows.max(2 * d.o) * n * area, |patches, dpatches, douts| {
            // dout [o, width] and its transpose [width, o] gathered from dy [images, o, area];
            // the bias gradient on the way.
            let (dout, dout_t) = douts.split_at_mut(d.o * width);
            for (ch, db) in pb.iter_mut().enumerate() {
                let mut sum = 0f32;
                for (i, dy) in dy.chunks_exact(d.out_len()).enumerate() {
                    let src = &dy[ch * area..][..area];
                    dout[ch * width + i * area..][..area].copy_from_slice(src);
                    for (p, &g) in src.iter().enumerate() {
                        dout_t[(i * area + p) * d.o + ch] = g;
                    }
                    sum += src.iter().sum::<f32>();
                }
                *db = sum;
            }
            im2col(d, x, patches, width);
            // SAFETY (both products): the strides describe the slices' own row-major shapes, and
            // the level is the caller's, available on this CPU.
            unsafe {
                // dwᵀ [rows, o] = patches [rows, width] @ doutᵀ [width, o]
                matmul_rows(
                    level,
                    (rows, d.o, width),
                    (pw.as_mut_ptr(), d.o),
                    (patches.as_ptr(), width, 1),
                    (dout_t.as_ptr(), d.o),
                );
            }
            if let Some(dx) = dx {
                unsafe {
                    // dpatches [rows, width] = wᵀ [rows, o] @ dout [o, width]
                    matmul_rows(
                        level,
                        (rows, width, d.o),
                        (dpatches.as_mut_ptr(), width),
                        (w.as_ptr(), 1, rows),
                        (dout.as_ptr(), width),
                    );
                }
                dx.fill(0.0);
                col2im(d, dpatches, width, dx);
            }
        })
    };
    let chunks = d.chunks(b);
    let partials = &mut partials[..chunks * part];
    let xs = x.par_chunks(n * d.in_len());
    let dys = dy.par_chunks(n * d.out_len());
    match dx {
        Some(dx) => partials
            .par_chunks_mut(part)
            .zip(xs)
            .zip(dys)
            .zip(dx.par_chunks_mut(n * d.in_len()).map(Some))
            .for_each(chunk),
        None => partials
            .par_chunks_mut(part)
            .zip(xs)
            .zip(dys)
            .zip((0..chunks).into_par_iter().map(|_| None))
            .for_each(chunk),
    }
    // The chunks' partial sums, added in chunk order into the first, whose transposed weight
    // gradient `[rows, o]` then goes to `dw [o, rows]`.
    let (first, rest) = partials.split_at_mut(part);
    for partial in rest.chunks_exact(part) {
        first.iter_mut().zip(partial).for_each(|(a, p)| *a += p);
    }
    let (pw, pb) = first.split_at(d.o * rows);
    for (r, row) in pw.chunks_exact(d.o).enumerate() {
        for (o, &g) in row.iter().enumerate() {
            dw[o * rows + r] = g;
        }
    }
    if let Some(db) = db {
        db.copy_from_slice(pb);
    }
}

/// The patches of a chunk of images `x [images, c, s, s]` into `patches [rows, width]`, image
/// `i`'s output pixels in columns `i * area..(i + 1) * area`.
fn im2col(d: &ConvDims, x: &[f32], patches: &mut [f32], width: usize) {
    let (k, s, so, area) = (d.k, d.side, d.out_side(), d.area());
    for (i, image) in x.chunks_exact(d.in_len()).enumerate() {
        for r in 0..d.patch_rows() {
            let (ch, ki, kj) = (r / (k * k), (r / k) % k, r % k);
            let plane = &image[ch * s * s..][..s * s];
            let row = &mut patches[r * width + i * area..][..area];
            for (y, out) in row.chunks_exact_mut(so).enumerate() {
                copy_short(out, &plane[(y + ki) * s + kj..][..so]);
            }
        }
    }
}

/// `dst.copy_from_slice(src)` for the short rows of a map, without a call into `memcpy` per row
/// (which cost more than the copying: 8% of a convnet step).
///
/// As fixed-size blocks with no loop over single values, which the compiler would turn back
/// into a `memcpy` call in some callers: the widest block the row holds, then the same block
/// ending at the row's end (copying some values twice).
#[inline(always)]
pub(super) fn copy_short(dst: &mut [f32], src: &[f32]) {
    let n = dst.len();
    let src = &src[..n];
    match n {
        16.. => {
            let mut at = 0;
            while at + 16 <= n {
                copy_block::<16>(&mut dst[at..], &src[at..]);
                at += 16;
            }
            if at < n {
                copy_block::<16>(&mut dst[n - 16..], &src[n - 16..]);
            }
        }
        8.. => {
            copy_block::<8>(dst, src);
            copy_block::<8>(&mut dst[n - 8..], &src[n - 8..]);
        }
        4.. => {
            copy_block::<4>(dst, src);
            copy_block::<4>(&mut dst[n - 4..], &src[n - 4..]);
        }
        2.. => {
            copy_block::<2>(dst, src);
            copy_block::<2>(&mut dst[n - 2..], &src[n - 2..]);
        }
        1 => dst[0] = src[0],
        0 => {}
    }
}

/// The first `N` values of `src` into `dst`.
#[inline(always)]
fn copy_block<const N: usize>(dst: &mut [f32], src: &[f32]) {
    let block: [f32; N] = src[..N].try_into().expect("N floats");
    dst[..N].copy_from_slice(&block);
}

/// The adjoint of [`im2col`]: adds the patch gradients `[rows, width]` into `dx [images, c, s,
/// s]`.
fn col2im(d: &ConvDims, dpatches: &[f32], width: usize, dx: &mut [f32]) {
    let (k, s, so, area) = (d.k, d.side, d.out_side(), d.area());
    for (i, image) in dx.chunks_exact_mut(d.in_len()).enumerate() {
        for r in 0..d.patch_rows() {
            let (ch, ki, kj) = (r / (k * k), (r / k) % k, r % k);
            let plane = &mut image[ch * s * s..][..s * s];
            let row = &dpatches[r * width + i * area..][..area];
            for (y, g) in row.chunks_exact(so).enumerate() {
                let dst = &mut plane[(y + ki) * s + kj..][..so];
                for (d, &g) in dst.iter_mut().zip(g) {
                    *d += g;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length up to a few blocks: the values copied, nothing written past the end.
    #[test]
    fn copy_short_copies_every_length() {
        for n in 0..40 {
            let src: Vec<f32> = (0..n).map(|i| i as f32 + 0.5).collect();
            let mut dst = vec![-1.0; n + 1];
            copy_short(&mut dst[..n], &src);
            assert_eq!(&dst[..n], &src[..], "length {n}");
            assert_eq!(dst[n], -1.0, "length {n}: wrote past the end");
        }
    }
}
