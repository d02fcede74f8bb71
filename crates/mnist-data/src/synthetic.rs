//! MNIST-shaped data from a seed, for the tests and benchmarks that need images of the right
//! shape and statistics but not the dataset (kernels against references, step timings).

use crate::{Split, IMAGE_PIXELS, NUM_CLASSES};

/// `n` images of mostly paper with scattered ink (about a third of the pixels, 170 to 255) and
/// labels `0..10`, from a xorshift stream seeded by `seed`: the same seed gives the same bytes
/// on every machine.
pub fn speckled(n: usize, seed: u64) -> Split {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let images = (0..n * IMAGE_PIXELS)
        .map(|_| match (next() >> 56) as u8 {
            r if r < 170 => 0,
            r => r,
        })
        .collect();
    let labels = (0..n)
        .map(|_| (next() % NUM_CLASSES as u64) as u8)
        .collect();
    Split { images, labels }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_mostly_paper_and_every_digit() {
        let a = speckled(200, 3);
        assert_eq!(a.images, speckled(200, 3).images);
        assert_ne!(a.images, speckled(200, 4).images);
        assert_eq!((a.images.len(), a.labels.len()), (200 * IMAGE_PIXELS, 200));
        let ink = a.images.iter().filter(|&&p| p > 0).count() as f64 / a.images.len() as f64;
        assert!((0.30..0.37).contains(&ink), "ink fraction {ink}");
        assert!(a.images.iter().all(|&p| p == 0 || p >= 170));
        assert!((0..10).all(|d| a.labels.contains(&d)));
    }
}
