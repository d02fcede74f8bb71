//! Test helpers: seeded inputs (a failure can be rerun) and tolerant comparisons.

use mnist_data::rng::{seeded_rng, RngPurpose};
use rand::Rng;

/// Uniform values in `[-scale, scale)` from a seeded stream.
pub fn seeded_uniform(n: usize, scale: f32, seed: u64) -> Vec<f32> {
    let mut rng = seeded_rng(seed, RngPurpose::Init, 11);
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

/// Asserts `|actual - expected| <= tol * max(1, max |expected|)` elementwise, naming `what`.
pub fn assert_close(actual: &[f32], expected: &[f32], tol: f32, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths differ");
    let scale = expected.iter().fold(1f32, |m, &x| m.max(x.abs()));
    let (worst, at) = actual
        .iter()
        .zip(expected)
        .map(|(a, e)| (a - e).abs())
        .enumerate()
        .fold((0f32, 0), |(w, wi), (i, d)| {
            if d > w || d.is_nan() {
                (d, i)
            } else {
                (w, wi)
            }
        });
    assert!(
        worst <= tol * scale,
        "{what}: differs by {worst} at {at} (tolerance {} of scale {scale}): {} vs {}",
        tol * scale,
        actual[at],
        expected[at]
    );
}
