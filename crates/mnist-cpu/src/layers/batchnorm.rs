//! Batch normalization over `x [b, c, plane]` (`plane` = a map's pixels after a convolution, 1
//! after a dense layer), PyTorch's: in training each channel is normalized with its batch mean
//! and biased variance, and the running averages move by `momentum` towards them (the variance's
//! unbiased, `n / (n - 1)`); in inference the running averages are used. With `relu`, the ReLU
//! that follows is fused in: one pass forward, and its mask applied inside the backward's passes.
//!
//! Each image's planes are summed in f32 sixteen lanes at a time (vectorized), one task per
//! image; the planes' sums are then added per channel in f64, in image order, so results do not
//! depend on the thread count. The per-plane passes are compiled for the run's SIMD level, with
//! the same arithmetic at every level (no fused multiply-add), so every level gives the same
//! bits.

use rayon::prelude::*;

use crate::simd::simd_kernel;
use crate::Level;

/// Batch norm over `c` channels of `plane` values per image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NormDims {
    pub c: usize,
    pub plane: usize,
    pub eps: f64,
    pub momentum: f64,
}

impl NormDims {
    pub fn len(&self) -> usize {
        self.c * self.plane
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Floats [`forward_train`] saves per channel for the backward and the running averages: the
/// batch mean, inverse standard deviation and biased variance.
pub const SAVED: usize = 3;

/// Lanes of the f32 partial sums: wide enough for the compiler to fill AVX-512 registers.
const LANES: usize = 16;

/// `Σ f(i)` over a plane of `n` values, in [`LANES`] f32 partial sums added at the end.
#[inline(always)]
fn plane_sum(n: usize, f: impl Fn(usize) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let whole = n / LANES * LANES;
    for base in (0..whole).step_by(LANES) {
        for (l, a) in acc.iter_mut().enumerate() {
            *a += f(base + l);
        }
    }
    for i in whole..n {
        acc[i - whole] += f(i);
    }
    acc.iter().sum()
}

simd_kernel! {
    /// `Σ x` over a plane.
    fn sum_of(x: &[f32]) -> f32 {
        plane_sum(x.len(), |k| x[k])
    }
}

simd_kernel! {
    /// `Σ (x - mean)²` over a plane.
    fn squared_deviations(x: &[f32], mean: f32) -> f32 {
        plane_sum(x.len(), |k| (x[k] - mean) * (x[k] - mean))
    }
}

/// Per image and channel, `[Σ f(x), …]` over the plane, then per channel the sum over images in
/// f64, in order.
fn channel_sums(
    d: &NormDims,
    b: usize,
    per_plane: impl Fn(usize, usize) -> f32 + Sync,
) -> Vec<f64> {
    let planes: Vec<f32> = (0..b)
        .into_par_iter()
        .flat_map_iter(|i| (0..d.c).map(move |ch| (i, ch)))
        .map(|(i, ch)| per_plane(i, ch))
        .collect();
    let mut sums = vec![0f64; d.c];
    for image in planes.chunks_exact(d.c) {
        for (s, &p) in sums.iter_mut().zip(image) {
            *s += p as f64;
        }
    }
    sums
}

/// `y = x * scale[ch] + shift[ch]` (then `max(_, 0)` with `relu`), image by image in parallel.
#[allow(clippy::too_many_arguments)]
fn affine(
    level: Level,
    d: &NormDims,
    relu: bool,
    x: &[f32],
    scale: &[f32],
    shift: &[f32],
    y: &mut [f32],
) {
    let plane = d.plane;
    y.par_chunks_mut(d.len())
        .zip(x.par_chunks(d.len()))
        .for_each(|(y, x)| affine_image(level, plane, relu, x, scale, shift, y));
}

simd_kernel! {
    /// [`affine`] of one image.
    fn affine_image(
        plane: usize,
        relu: bool,
        x: &[f32],
        scale: &[f32],
        shift: &[f32],
        y: &mut [f32],
    ) {
        for ((y, x), (&a, &b)) in y
            .chunks_exact_mut(plane)
            .zip(x.chunks_exact(plane))
            .zip(scale.iter().zip(shift))
        {
            if relu {
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = (x * a + b).max(0.0);
                }
            } else {
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = x * a + b;
                }
            }
        }
    }
}

/// The training forward: normalizes with the batch's statistics (then the ReLU, with `relu`),
/// and saves them in `saved` (`[mean; c]`, `[invstd; c]`, `[var; c]`) for [`backward`] and
/// [`update_running`]. Two passes over `x` for the statistics (mean, then squared deviations),
/// one to normalize.
pub fn forward_train(
    level: Level,
    d: &NormDims,
    relu: bool,
    (gamma, beta): (&[f32], &[f32]),
    x: &[f32],
    y: &mut [f32],
    saved: &mut [f32],
) {
    let b = x.len() / d.len();
    assert!(
        x.len() == b * d.len() && y.len() == x.len() && b > 0 && saved.len() == SAVED * d.c,
        "batch norm: bad sizes"
    );
    let n = (b * d.plane) as f64;
    let plane = |i: usize, ch: usize| &x[i * d.len() + ch * d.plane..][..d.plane];
    let means: Vec<f64> = channel_sums(d, b, |i, ch| sum_of(level, plane(i, ch)))
        .into_iter()
        .map(|s| s / n)
        .collect();
    let means32: Vec<f32> = means.iter().map(|&m| m as f32).collect();
    let vars: Vec<f64> = channel_sums(d, b, |i, ch| {
        squared_deviations(level, plane(i, ch), means32[ch])
    })
    .into_iter()
    .map(|s| s / n)
    .collect();
    let mut scale = vec![0f32; d.c];
    let mut shift = vec![0f32; d.c];
    let (saved_mean, rest) = saved.split_at_mut(d.c);
    let (saved_invstd, saved_var) = rest.split_at_mut(d.c);
    for ch in 0..d.c {
        let invstd = 1.0 / (vars[ch] + d.eps).sqrt();
        saved_mean[ch] = means32[ch];
        saved_invstd[ch] = invstd as f32;
        saved_var[ch] = vars[ch] as f32;
        scale[ch] = (gamma[ch] as f64 * invstd) as f32;
        shift[ch] = (beta[ch] as f64 - means32[ch] as f64 * gamma[ch] as f64 * invstd) as f32;
    }
    affine(level, d, relu, x, &scale, &shift, y);
}

/// Moves the running averages `momentum` of the way towards a batch's statistics (`saved` by
/// [`forward_train`] over `b` images); the variance's unbiased, as PyTorch's.
pub fn update_running(
    d: &NormDims,
    saved: &[f32],
    b: usize,
    running_mean: &mut [f32],
    running_var: &mut [f32],
) {
    let n = (b * d.plane) as f64;
    let (means, vars) = (&saved[..d.c], &saved[2 * d.c..3 * d.c]);
    let m = d.momentum;
    for ch in 0..d.c {
        let var = vars[ch] as f64;
        let unbiased = if n > 1.0 { var * n / (n - 1.0) } else { var };
        running_mean[ch] = ((1.0 - m) * running_mean[ch] as f64 + m * means[ch] as f64) as f32;
        running_var[ch] = ((1.0 - m) * running_var[ch] as f64 + m * unbiased) as f32;
    }
}

/// The inference forward, with the running averages (then the ReLU, with `relu`).
#[allow(clippy::too_many_arguments)]
pub fn forward_infer(
    level: Level,
    d: &NormDims,
    relu: bool,
    (gamma, beta): (&[f32], &[f32]),
    running_mean: &[f32],
    running_var: &[f32],
    x: &[f32],
    y: &mut [f32],
) {
    assert!(
        x.len().is_multiple_of(d.len()) && y.len() == x.len(),
        "batch norm: bad sizes"
    );
    let mut scale = vec![0f32; d.c];
    let mut shift = vec![0f32; d.c];
    for ch in 0..d.c {
        let invstd = 1.0 / (running_var[ch] as f64 + d.eps).sqrt();
        scale[ch] = (gamma[ch] as f64 * invstd) as f32;
        shift[ch] = (beta[ch] as f64 - running_mean[ch] as f64 * gamma[ch] as f64 * invstd) as f32;
    }
    affine(level, d, relu, x, &scale, &shift, y);
}

/// The backward of [`forward_train`] from `dy`, the gradient of its output `y`: `dgamma`,
/// `dbeta` (overwritten) and `dx` when given. With `relu`, the gradient passes only where
/// `y > 0`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    level: Level,
    d: &NormDims,
    relu: bool,
    gamma: &[f32],
    saved: &[f32],
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    dx: Option<&mut [f32]>,
) {
    let b = x.len() / d.len();
    assert!(
        x.len() == b * d.len() && dy.len() == x.len() && y.len() == x.len(),
        "batch norm backward: bad sizes"
    );
    let (saved_mean, saved_invstd) = (&saved[..d.c], &saved[d.c..2 * d.c]);
    let n = (b * d.plane) as f64;
    // Per plane, Σ dz and Σ dz (x - mean), with dz the gradient reaching the normalization:
    // dy, masked by the ReLU's output when fused. One pass, sixteen lanes.
    let planes: Vec<(f32, f32)> = (0..b)
        .into_par_iter()
        .flat_map_iter(|i| (0..d.c).map(move |ch| (i, ch)))
        .map(|(i, ch)| {
            let base = i * d.len() + ch * d.plane;
            let plane = base..base + d.plane;
            dz_sums(
                level,
                relu,
                &x[plane.clone()],
                &y[plane.clone()],
                &dy[plane],
                saved_mean[ch],
            )
        })
        .collect();
    let mut sum_dz = vec![0f64; d.c];
    let mut sum_dz_xc = vec![0f64; d.c];
    for image in planes.chunks_exact(d.c) {
        for (ch, &(a, b)) in image.iter().enumerate() {
            sum_dz[ch] += a as f64;
            sum_dz_xc[ch] += b as f64;
        }
    }
    for ch in 0..d.c {
        dbeta[ch] = sum_dz[ch] as f32;
        dgamma[ch] = (sum_dz_xc[ch] * saved_invstd[ch] as f64) as f32;
    }
    let Some(dx) = dx else { return };
    // dx = gamma * invstd * (dz - mean(dz) - (x - mean) * invstd² * mean(dz * (x - mean)))
    let coef: Vec<[f32; 4]> = (0..d.c)
        .map(|ch| {
            let invstd = saved_invstd[ch] as f64;
            [
                (gamma[ch] as f64 * invstd) as f32,
                (sum_dz[ch] / n) as f32,
                (sum_dz_xc[ch] / n * invstd * invstd) as f32,
                saved_mean[ch],
            ]
        })
        .collect();
    let (len, plane) = (d.len(), d.plane);
    dx.par_chunks_mut(len)
        .zip(
            x.par_chunks(len)
                .zip(y.par_chunks(len))
                .zip(dy.par_chunks(len)),
        )
        .for_each(|(dx, ((x, y), dy))| input_grad_image(level, plane, relu, &coef, x, y, dy, dx));
}

simd_kernel! {
    /// [`backward`]'s input gradient of one image, with each channel's `[scale, mean(dz),
    /// slope, mean]` in `coef`.
    fn input_grad_image(
        plane: usize,
        relu: bool,
        coef: &[[f32; 4]],
        x: &[f32],
        y: &[f32],
        dy: &[f32],
        dx: &mut [f32],
    ) {
        for (ch, dx) in dx.chunks_exact_mut(plane).enumerate() {
            let [scale, mean_dz, slope, mean] = coef[ch];
            let at = ch * plane;
            let (x, y, dy) = (&x[at..][..plane], &y[at..][..plane], &dy[at..][..plane]);
            if relu {
                for (((dx, &x), &y), &dy) in dx.iter_mut().zip(x).zip(y).zip(dy) {
                    let dz = if y > 0.0 { dy } else { 0.0 };
                    *dx = scale * (dz - mean_dz - (x - mean) * slope);
                }
            } else {
                for ((dx, &x), &dy) in dx.iter_mut().zip(x).zip(dy) {
                    *dx = scale * (dy - mean_dz - (x - mean) * slope);
                }
            }
        }
    }
}

simd_kernel! {
    /// `(Σ dz, Σ dz (x - mean))` over one plane, `dz = dy` where `y > 0` (all of it without
    /// `relu`), in sixteen f32 lanes.
    fn dz_sums(relu: bool, x: &[f32], y: &[f32], dy: &[f32], mean: f32) -> (f32, f32) {
        dz_sums_body(relu, x, y, dy, mean)
    }
}

#[inline(always)]
fn dz_sums_body(relu: bool, x: &[f32], y: &[f32], dy: &[f32], mean: f32) -> (f32, f32) {
    let (mut s1, mut s2) = ([0f32; LANES], [0f32; LANES]);
    let mut add = |l: usize, x: f32, y: f32, dy: f32| {
        let dz = if relu && y <= 0.0 { 0.0 } else { dy };
        s1[l] += dz;
        s2[l] += dz * (x - mean);
    };
    let whole = x.len() / LANES * LANES;
    for ((x, y), dy) in x[..whole]
        .chunks_exact(LANES)
        .zip(y[..whole].chunks_exact(LANES))
        .zip(dy[..whole].chunks_exact(LANES))
    {
        for l in 0..LANES {
            add(l, x[l], y[l], dy[l]);
        }
    }
    for (l, ((&x, &y), &dy)) in x[whole..]
        .iter()
        .zip(&y[whole..])
        .zip(&dy[whole..])
        .enumerate()
    {
        add(l, x, y, dy);
    }
    (s1.iter().sum(), s2.iter().sum())
}
