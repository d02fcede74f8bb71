//! A dense layer, `y [b, out] = x [b, in] @ wᵀ + bias` with PyTorch's `w [out, in]`.
//!
//! Both directions split the input columns into fixed blocks that run in parallel: the forward
//! adds the blocks' partial products in block order, and the backward gives each block its own
//! columns of `dx`, `dw` and (for Adam) of the weight and moments, so every sum runs in an order
//! that depends on the shapes only. With Adam, a block's weight gradient is used for its update
//! while it is still in cache and never exists as a whole ([`Sink::Adam`]); the weights it reads
//! for `dx` are the ones from before the step.

use rayon::prelude::*;

use crate::gemm::matmul;
use crate::{AdamScalars, Level};

/// Input columns per forward partial product (and per backward task on the gemm path): enough
/// for gemm to be worth a task, small enough to split a layer over threads.
const BLOCK: usize = 160;

/// A dense layer's sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DenseDims {
    pub inp: usize,
    pub out: usize,
}

impl DenseDims {
    /// Partial products of the forward.
    pub fn blocks(&self) -> usize {
        self.inp.div_ceil(BLOCK)
    }

    /// Floats of forward partial products a batch of `b` needs.
    pub fn partials_len(&self, b: usize) -> usize {
        self.blocks() * self.out * b.next_multiple_of(16)
    }
}

/// Where the backward puts the weight gradient.
pub enum Sink<'a> {
    /// Into this `[out, in]` buffer, for the optimizer's pass.
    Grad(&'a mut [f32]),
    /// Into the weight at once, through Adam with these moments.
    Adam {
        m: &'a mut [f32],
        v: &'a mut [f32],
        scalars: AdamScalars,
    },
}

/// `y = x @ wᵀ + bias`. `partials` holds [`DenseDims::partials_len`] floats.
pub fn forward(
    level: Level,
    d: &DenseDims,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    partials: &mut Vec<f32>,
) {
    let b = x.len() / d.inp;
    assert!(
        x.len() == b * d.inp && w.len() == d.out * d.inp && y.len() == b * d.out,
        "dense: slice sizes do not match {d:?}"
    );
    match level {
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => super::dense_avx512::forward((b, d.out, d.inp), BLOCK, x, w, y, partials),
        _ => forward_gemm(d, b, x, w, y, partials),
    }
    if let Some(bias) = bias {
        for row in y.chunks_exact_mut(d.out) {
            row.iter_mut().zip(bias).for_each(|(y, &b)| *y += b);
        }
    }
}

/// [`forward`] through gemm: one product per block of input columns, added in block order.
fn forward_gemm(
    d: &DenseDims,
    b: usize,
    x: &[f32],
    w: &[f32],
    y: &mut [f32],
    partials: &mut Vec<f32>,
) {
    let part = b * d.out;
    if partials.len() < d.blocks() * part {
        partials.resize(d.blocks() * part, 0.0);
    }
    let partials = &mut partials[..d.blocks() * part];
    partials
        .par_chunks_mut(part)
        .enumerate()
        .for_each(|(index, partial)| {
            let first = index * BLOCK;
            let width = BLOCK.min(d.inp - first);
            // SAFETY: columns `first..first + width` of row-major `[b, in]` and `[out, in]`
            // matrices lie inside `x` and `w` (asserted sizes); `partial` is `[b, out]`.
            unsafe {
                matmul(
                    (b, d.out, width),
                    (partial.as_mut_ptr(), d.out, 1),
                    (x.as_ptr().add(first), d.inp, 1),
                    (w.as_ptr().add(first), 1, d.inp),
                )
            };
        });
    let (first, rest) = partials.split_at(part);
    y.copy_from_slice(first);
    for partial in rest.chunks_exact(part) {
        y.iter_mut().zip(partial).for_each(|(a, p)| *a += p);
    }
}

/// The backward from `dy [b, out]`: the bias gradient `db` (overwritten) when given, `dx [b, in]`
/// (overwritten) when given, and the weight gradient into `sink`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    level: Level,
    d: &DenseDims,
    x: &[f32],
    dy: &[f32],
    w: &mut [f32],
    db: Option<&mut [f32]>,
    dx: Option<&mut [f32]>,
    sink: Sink,
) {
    let b = x.len() / d.inp;
    assert!(
        x.len() == b * d.inp && dy.len() == b * d.out && w.len() == d.out * d.inp,
        "dense backward: slice sizes do not match {d:?}"
    );
    if let Some(db) = db {
        db.fill(0.0);
        for row in dy.chunks_exact(d.out) {
            db.iter_mut().zip(row).for_each(|(s, &g)| *s += g);
        }
    }
    match level {
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => super::dense_avx512::backward((b, d.out, d.inp), x, dy, w, dx, sink),
        _ => backward_gemm(level, d, b, x, dy, w, dx, sink),
    }
}

/// [`backward`] through gemm, one task per block of input columns.
#[allow(clippy::too_many_arguments)]
fn backward_gemm(
    level: Level,
    d: &DenseDims,
    b: usize,
    x: &[f32],
    dy: &[f32],
    w: &mut [f32],
    dx: Option<&mut [f32]>,
    sink: Sink,
) {
    let (h, f) = (d.out, d.inp);
    let (grad, m, v, adam) = match sink {
        Sink::Grad(g) => {
            assert_eq!(g.len(), h * f, "dense backward: gradient size");
            (Shared(g.as_mut_ptr()), Shared::null(), Shared::null(), None)
        }
        Sink::Adam { m, v, scalars } => {
            assert!(
                m.len() == h * f && v.len() == h * f,
                "dense backward: moment sizes"
            );
            (
                Shared::null(),
                Shared(m.as_mut_ptr()),
                Shared(v.as_mut_ptr()),
                Some(scalars),
            )
        }
    };
    if let Some(dx) = &dx {
        assert_eq!(dx.len(), b * f, "dense backward: input gradient size");
    }
    let weights = Shared(w.as_mut_ptr());
    let dx = dx.map_or(Shared::null(), |dx| Shared(dx.as_mut_ptr()));
    (0..d.blocks())
        .into_par_iter()
        .for_each_init(Vec::new, |tile: &mut Vec<f32>, index| {
            let first = index * BLOCK;
            let width = BLOCK.min(f - first);
            // SAFETY: each task owns columns `first..first + width` of the row-major `[h, f]`
            // weight, gradient and moments and of the `[b, f]` input gradient (asserted sizes),
            // so no two tasks touch the same element, and the buffers outlive the loop.
            unsafe {
                let w = weights.ptr().add(first);
                if !dx.ptr().is_null() {
                    // dx[:, block] = dy [b, h] @ w[:, block], with the weights before the step.
                    matmul(
                        (b, width, h),
                        (dx.ptr().add(first), f, 1),
                        (dy.as_ptr(), h, 1),
                        (w, f, 1),
                    );
                }
                let x = x.as_ptr().add(first);
                let Some(adam) = adam else {
                    // dw[:, block] = dyᵀ @ x[:, block]
                    matmul(
                        (h, width, b),
                        (grad.ptr().add(first), f, 1),
                        (dy.as_ptr(), 1, h),
                        (x, f, 1),
                    );
                    return;
                };
                tile.resize(h * width, 0.0);
                matmul(
                    (h, width, b),
                    (tile.as_mut_ptr(), width, 1),
                    (dy.as_ptr(), 1, h),
                    (x, f, 1),
                );
                for (row, g) in tile.chunks_exact(width).enumerate() {
                    let span = |p: Shared| {
                        std::slice::from_raw_parts_mut(p.ptr().add(row * f + first), width)
                    };
                    adam.update(level, span(weights), g, span(m), span(v));
                }
            }
        });
}

/// A raw pointer handed to parallel tasks that write disjoint parts of one buffer.
#[derive(Clone, Copy)]
struct Shared(*mut f32);
// SAFETY: only used where each task writes a disjoint range (see `backward_gemm`).
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    fn null() -> Self {
        Shared(std::ptr::null_mut())
    }

    /// The pointer (a method, so closures capture the `Send` wrapper, not the raw field).
    fn ptr(self) -> *mut f32 {
        self.0
    }
}
