//! Inference on prepared 28x28 images (from MNIST or from people's pictures): the frozen model
//! plus the normalization it was trained with, so a caller cannot pair them wrongly.

use candle_core::{Device, ModuleT, Tensor};
use mnist_data::{Normalization, IMAGE_PIXELS, IMAGE_SIDE, NUM_CLASSES};

use crate::{Architecture, Model, Network, Result};

/// Images per forward pass: the convnet's activations for 256 images take about 0.5 GB.
pub const CLASSIFY_BATCH_SIZE: usize = 256;

/// A trained model ready to answer: weights detached from any graph, input normalization fixed.
#[derive(Debug, Clone)]
pub struct Classifier {
    pub architecture: Architecture,
    pub normalization: Normalization,
    model: Model,
    device: Device,
}

impl Classifier {
    pub fn new(network: &Network, normalization: Normalization) -> Result<Self> {
        let device = network
            .named_vars()
            .first()
            .map(|(_, v)| v.device().clone())
            .unwrap_or(Device::Cpu);
        Ok(Self {
            architecture: network.architecture,
            normalization,
            model: network.frozen()?,
            device,
        })
    }

    /// Class probabilities for each image (28x28 `u8`, 0 = paper, as in MNIST's files), in
    /// batches of [`CLASSIFY_BATCH_SIZE`].
    pub fn probabilities(&self, images: &[[u8; IMAGE_PIXELS]]) -> Result<Vec<[f32; NUM_CLASSES]>> {
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(CLASSIFY_BATCH_SIZE) {
            let pixels: Vec<u8> = chunk.iter().flatten().copied().collect();
            let xs = Tensor::from_vec(
                pixels,
                (chunk.len(), 1, IMAGE_SIDE, IMAGE_SIDE),
                &self.device,
            )?;
            let logits = self
                .model
                .forward_t(&self.normalization.apply(&xs)?, false)?;
            let probs = candle_nn::ops::softmax_last_dim(&logits)?.to_vec2::<f32>()?;
            out.extend(probs.into_iter().map(|row| {
                let mut p = [0.0; NUM_CLASSES];
                p.copy_from_slice(&row[..NUM_CLASSES]);
                p
            }));
        }
        Ok(out)
    }
}

/// The classes ordered from most to least probable.
pub fn ranked(probabilities: &[f32; NUM_CLASSES]) -> [usize; NUM_CLASSES] {
    let mut order: [usize; NUM_CLASSES] = std::array::from_fn(|i| i);
    order.sort_by(|&a, &b| probabilities[b].total_cmp(&probabilities[a]));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_sum_to_one_and_batches_do_not_change_answers() {
        let network =
            Network::seeded(Architecture::Seed(Default::default()), 3, &Device::Cpu).unwrap();
        let classifier = Classifier::new(&network, Normalization::Unit).unwrap();
        let images: Vec<[u8; IMAGE_PIXELS]> = (0..CLASSIFY_BATCH_SIZE + 3)
            .map(|i| std::array::from_fn(|p| ((p * 7 + i * 13) % 256) as u8))
            .collect();
        let all = classifier.probabilities(&images).unwrap();
        assert_eq!(all.len(), images.len());
        let last = classifier
            .probabilities(&images[images.len() - 1..])
            .unwrap();
        for (a, b) in all[images.len() - 1].iter().zip(&last[0]) {
            assert!((a - b).abs() < 1e-6);
        }
        for p in &all {
            assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn ranked_orders_by_probability() {
        let p = [0.05, 0.6, 0.0, 0.3, 0.05, 0.0, 0.0, 0.0, 0.0, 0.0];
        assert_eq!(&ranked(&p)[..2], &[1, 3]);
    }
}
