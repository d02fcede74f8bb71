//! The one place randomness comes from. Everything random in training (initialization,
//! shuffling, augmentation) draws from a stream derived from `--seed`, a purpose and an epoch,
//! so runs repeat exactly and a resumed run draws what the uninterrupted run would have drawn.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Independent streams, so that (for example) turning augmentation on does not change the
/// initial weights or the batch order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RngPurpose {
    Init = 1,
    Shuffle = 2,
    Augment = 3,
    /// Which 1s get a flag, and how it is drawn (`augment::flag_ones`).
    FlaggedOnes = 4,
}

/// The generator for `purpose` in `epoch` (use 0 for things that happen once).
pub fn seeded_rng(seed: u64, purpose: RngPurpose, epoch: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(((purpose as u64) << 32) | epoch);
    rng
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn streams_differ_by_purpose_and_epoch_but_repeat_for_same_inputs() {
        let draw = |p, e| seeded_rng(7, p, e).random::<u64>();
        assert_eq!(draw(RngPurpose::Shuffle, 3), draw(RngPurpose::Shuffle, 3));
        assert_ne!(draw(RngPurpose::Shuffle, 3), draw(RngPurpose::Shuffle, 4));
        assert_ne!(draw(RngPurpose::Shuffle, 3), draw(RngPurpose::Augment, 3));
    }
}
