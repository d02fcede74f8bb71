//! 2x2 max-pool with stride 2 (an odd last row or column is dropped, as in PyTorch), alone or
//! fused with the ReLU before it: `x [b, c, s, s]` → `y [b, c, s/2, s/2]`, recording each
//! window's winner so the backward routes its gradient there in one pass.
//!
//! Fused, `relu(max(window))` is the same function as `max(relu(window))`, and a window whose
//! maximum is not positive passes no gradient ([`INACTIVE`]); the ReLU's output is never stored.

use rayon::prelude::*;

use crate::simd::simd_kernel;
use crate::Level;

pub use super::first_conv::INACTIVE;

/// Pooling over `c` maps of `side`x`side`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolDims {
    pub c: usize,
    pub side: usize,
}

impl PoolDims {
    pub fn out_side(&self) -> usize {
        self.side / 2
    }
    pub fn in_len(&self) -> usize {
        self.c * self.side * self.side
    }
    pub fn out_len(&self) -> usize {
        self.c * self.out_side() * self.out_side()
    }
}

/// The forward: `y` and `winners` (one per output: 0..4 row-major in the window, or
/// [`INACTIVE`] when `relu` is set and the maximum is not positive).
pub fn forward(
    level: Level,
    d: &PoolDims,
    relu: bool,
    x: &[f32],
    y: &mut [f32],
    winners: &mut [u8],
) {
    assert!(
        x.len().is_multiple_of(d.in_len())
            && y.len() == x.len() / d.in_len() * d.out_len()
            && winners.len() == y.len(),
        "pool: slice sizes do not match {d:?}"
    );
    let (s, so) = (d.side, d.out_side());
    y.par_chunks_mut(d.out_len())
        .zip(winners.par_chunks_mut(d.out_len()))
        .zip(x.par_chunks(d.in_len()))
        .for_each(|((y, winners), x)| forward_image(level, relu, s, so, x, y, winners));
}

simd_kernel! {
    /// One image: every output row of every channel, compiled for the level with its rows.
    fn forward_image(
        relu: bool,
        s: usize,
        so: usize,
        x: &[f32],
        y: &mut [f32],
        winners: &mut [u8],
    ) {
        let rows = y.chunks_exact_mut(so).zip(winners.chunks_exact_mut(so));
        // Output row r of every channel reads input rows 2r and 2r + 1 of its plane.
        for (r, (y, winners)) in rows.enumerate() {
            let (ch, py) = (r / so, r % so);
            let top = &x[ch * s * s + 2 * py * s..][..2 * so];
            let bottom = &x[ch * s * s + (2 * py + 1) * s..][..2 * so];
            pool_row(relu, top, bottom, y, winners);
        }
    }
}

/// One output row from its two input rows: exact-length slices and no branches, so the
/// compiler vectorizes it (the stride-2 reads become shuffles).
#[inline(always)]
fn pool_row(relu: bool, top: &[f32], bottom: &[f32], y: &mut [f32], winners: &mut [u8]) {
    let n = y.len();
    let (top, bottom, winners) = (&top[..2 * n], &bottom[..2 * n], &mut winners[..n]);
    for px in 0..n {
        let window = [
            top[2 * px],
            top[2 * px + 1],
            bottom[2 * px],
            bottom[2 * px + 1],
        ];
        let max = window[0].max(window[1]).max(window[2].max(window[3]));
        // The first position holding the maximum (PyTorch's rule), branch-free.
        let (na, nb, nc) = (window[0] != max, window[1] != max, window[2] != max);
        let best = na as u8 + (na & nb) as u8 + (na & nb & nc) as u8;
        // Not positive (or NaN): the ReLU is off.
        let positive = max > 0.0;
        let off = relu & !positive;
        y[px] = if off { 0.0 } else { max };
        winners[px] = if off { INACTIVE } else { best };
    }
}

/// The backward: each active output's gradient goes to its winner, every other input gets zero.
pub fn backward(d: &PoolDims, dy: &[f32], winners: &[u8], dx: &mut [f32]) {
    assert!(
        dx.len().is_multiple_of(d.in_len())
            && dy.len() == dx.len() / d.in_len() * d.out_len()
            && winners.len() == dy.len(),
        "pool backward: slice sizes do not match {d:?}"
    );
    let (s, so) = (d.side, d.out_side());
    dx.par_chunks_mut(d.in_len())
        .zip(dy.par_chunks(d.out_len()))
        .zip(winners.par_chunks(d.out_len()))
        .for_each(|((dx, dy), winners)| {
            dx.fill(0.0);
            for ch in 0..d.c {
                for py in 0..so {
                    for px in 0..so {
                        let at = ch * so * so + py * so + px;
                        let code = winners[at];
                        if code == INACTIVE {
                            continue;
                        }
                        let (wy, wx) = (code as usize >> 1, code as usize & 1);
                        dx[ch * s * s + (2 * py + wy) * s + 2 * px + wx] = dy[at];
                    }
                }
            }
        });
}
