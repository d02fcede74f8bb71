//! Batch normalization over `x [b, c, plane]` (`plane` = a map's pixels after a convolution, 1
//! after a dense layer), PyTorch's: in training each channel is normalized with its batch mean
//! and biased variance, and the running averages move by `momentum` towards them (the variance's
//! unbiased, `n / (n - 1)`); in inference the running averages are used.
//!
//! Channel sums are accumulated in f64, one channel per task and in a fixed order, so results do
//! not depend on the thread count.

use rayon::prelude::*;

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

/// Channel `ch`'s values across the batch, in a fixed order.
fn channel<'a>(d: &NormDims, x: &'a [f32], ch: usize) -> impl Iterator<Item = &'a [f32]> {
    let (len, plane) = (d.len(), d.plane);
    x.chunks_exact(len)
        .map(move |image| &image[ch * plane..][..plane])
}

/// `y = x * scale[ch] + shift[ch]`, image by image in parallel.
fn affine(d: &NormDims, x: &[f32], scale: &[f32], shift: &[f32], y: &mut [f32]) {
    y.par_chunks_mut(d.len())
        .zip(x.par_chunks(d.len()))
        .for_each(|(y, x)| {
            for ((y, x), (&a, &b)) in y
                .chunks_exact_mut(d.plane)
                .zip(x.chunks_exact(d.plane))
                .zip(scale.iter().zip(shift))
            {
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = x * a + b;
                }
            }
        });
}

/// Floats [`forward_train`] saves per channel for the backward and the running averages: the
/// batch mean, inverse standard deviation and biased variance.
pub const SAVED: usize = 3;

/// The training forward: normalizes with the batch's statistics, and saves them in `saved`
/// (`[mean; c]`, `[invstd; c]`, `[var; c]`) for [`backward`] and [`update_running`].
pub fn forward_train(
    d: &NormDims,
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
    let stats: Vec<(f64, f64)> = (0..d.c)
        .into_par_iter()
        .map(|ch| {
            let sum: f64 = channel(d, x, ch).flatten().map(|&v| v as f64).sum();
            let mean = sum / n;
            let sq: f64 = channel(d, x, ch)
                .flatten()
                .map(|&v| (v as f64 - mean) * (v as f64 - mean))
                .sum();
            (mean, sq / n)
        })
        .collect();
    let mut scale = vec![0f32; d.c];
    let mut shift = vec![0f32; d.c];
    let (means, rest) = saved.split_at_mut(d.c);
    let (invstds, vars) = rest.split_at_mut(d.c);
    for (ch, &(mean, var)) in stats.iter().enumerate() {
        let invstd = 1.0 / (var + d.eps).sqrt();
        (means[ch], invstds[ch], vars[ch]) = (mean as f32, invstd as f32, var as f32);
        scale[ch] = (gamma[ch] as f64 * invstd) as f32;
        shift[ch] = (beta[ch] as f64 - mean * gamma[ch] as f64 * invstd) as f32;
    }
    affine(d, x, &scale, &shift, y);
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

/// The inference forward, with the running averages.
pub fn forward_infer(
    d: &NormDims,
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
    affine(d, x, &scale, &shift, y);
}

/// The backward of [`forward_train`]: `dgamma`, `dbeta` (overwritten) and `dx` when given.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    d: &NormDims,
    gamma: &[f32],
    saved: &[f32],
    x: &[f32],
    dy: &[f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    dx: Option<&mut [f32]>,
) {
    let b = x.len() / d.len();
    assert!(
        x.len() == b * d.len() && dy.len() == x.len(),
        "batch norm backward: bad sizes"
    );
    let (saved_mean, saved_invstd) = (&saved[..d.c], &saved[d.c..2 * d.c]);
    let n = (b * d.plane) as f64;
    let sums: Vec<(f64, f64)> = (0..d.c)
        .into_par_iter()
        .map(|ch| {
            let (mean, invstd) = (saved_mean[ch] as f64, saved_invstd[ch] as f64);
            let mut sum_dy = 0f64;
            let mut sum_dy_xhat = 0f64;
            for (x, dy) in channel(d, x, ch).zip(channel(d, dy, ch)) {
                for (&x, &dy) in x.iter().zip(dy) {
                    sum_dy += dy as f64;
                    sum_dy_xhat += dy as f64 * (x as f64 - mean) * invstd;
                }
            }
            (sum_dy, sum_dy_xhat)
        })
        .collect();
    for (ch, &(sum_dy, sum_dy_xhat)) in sums.iter().enumerate() {
        dbeta[ch] = sum_dy as f32;
        dgamma[ch] = sum_dy_xhat as f32;
    }
    let Some(dx) = dx else { return };
    // dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat))
    let coef: Vec<[f32; 4]> = (0..d.c)
        .map(|ch| {
            let (sum_dy, sum_dy_xhat) = sums[ch];
            let invstd = saved_invstd[ch] as f64;
            [
                (gamma[ch] as f64 * invstd) as f32,
                (sum_dy / n) as f32,
                (sum_dy_xhat / n) as f32,
                saved_mean[ch],
            ]
        })
        .collect();
    dx.par_chunks_mut(d.len())
        .zip(dy.par_chunks(d.len()).zip(x.par_chunks(d.len())))
        .for_each(|(dx, (dy, x))| {
            for (ch, ((dx, dy), x)) in dx
                .chunks_exact_mut(d.plane)
                .zip(dy.chunks_exact(d.plane))
                .zip(x.chunks_exact(d.plane))
                .enumerate()
            {
                let [scale, mean_dy, mean_dy_xhat, mean] = coef[ch];
                let invstd = saved_invstd[ch];
                for ((dx, &dy), &x) in dx.iter_mut().zip(dy).zip(x) {
                    let xhat = (x - mean) * invstd;
                    *dx = scale * (dy - mean_dy - xhat * mean_dy_xhat);
                }
            }
        });
}
