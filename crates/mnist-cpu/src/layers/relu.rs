//! ReLU on its own (where no pooling follows it to fuse with): `y = max(x, 0)`, and a gradient
//! that passes where `x > 0`, as PyTorch's and TensorFlow's does.

use rayon::prelude::*;

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

pub fn forward(x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "relu: slice sizes differ");
    y.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(y, x)| {
            for (y, &x) in y.iter_mut().zip(x) {
                *y = x.max(0.0);
            }
        });
}

/// The gradient rule, in one place: `dy` where the forward's input `x` was positive, else 0.
#[inline(always)]
fn gate(x: f32, dy: f32) -> f32 {
    if x > 0.0 {
        dy
    } else {
        0.0
    }
}

/// [`backward`] in place: `dy` kept where `y > 0`, zero elsewhere (`y` the forward's input, or
/// its output: each is positive exactly where the other is).
pub fn mask(y: &[f32], dy: &mut [f32]) {
    assert_eq!(y.len(), dy.len(), "relu mask: slice sizes differ");
    dy.par_chunks_mut(CHUNK)
        .zip(y.par_chunks(CHUNK))
        .for_each(|(dy, y)| {
            for (dy, &y) in dy.iter_mut().zip(y) {
                *dy = gate(y, *dy);
            }
        });
}

pub fn backward(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    assert!(
        x.len() == dy.len() && dy.len() == dx.len(),
        "relu backward: slice sizes differ"
    );
    dx.par_chunks_mut(CHUNK)
        .zip(dy.par_chunks(CHUNK).zip(x.par_chunks(CHUNK)))
        .for_each(|(dx, (dy, x))| {
            for ((dx, &dy), &x) in dx.iter_mut().zip(dy).zip(x) {
                *dx = gate(x, dy);
            }
        });
}
