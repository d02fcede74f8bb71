//! Inference on prepared 28x28 images (MNIST's, or people's pictures): a trained network plus
//! the normalization it was trained with, so a caller cannot pair them wrongly. On the CPU it
//! runs through the CPU backend (`mnist-cpu`); on a GPU through candle.

use std::sync::Mutex;

use rayon::prelude::*;

use candle_core::{Device, ModuleT, Tensor};
use mnist_cpu::{normalize_table, CpuNetwork, Level, Workspace};
use mnist_data::{Normalization, IMAGE_PIXELS, IMAGE_SIDE, NUM_CLASSES};
use mnist_model::{Architecture, Network, Sequential};

use crate::{Result, TrainError};

/// Images per forward pass of [`Classifier::probabilities`].
pub const CLASSIFY_BATCH_SIZE: usize = 128;

/// On the CPU, a batch is split into parts of this many images that run side by side, each
/// through the whole network on one thread's workspace: a part's activations stay in that
/// core's cache from layer to layer, where a whole batch's do not (`mnist eval` of the convnet
/// took 1.30 s in parts of 32 against 1.46 s as batches of 128, 2 threads, AVX-512). Each
/// image's logits are the same bits either way.
const CPU_SUB_BATCH: usize = 32;

/// Where the forward pass runs.
enum Forward {
    /// The CPU backend, with its buffers (one batch at a time).
    Cpu(Box<CpuForward>),
    /// Candle's model over detached weights, on `device`.
    Candle { model: Sequential, device: Device },
}

struct CpuForward {
    /// With batch norm folded into the layers before it ([`CpuNetwork::folded`]).
    network: CpuNetwork,
    /// One per part running at once ([`CPU_SUB_BATCH`]), kept between calls.
    workspaces: Mutex<Vec<Workspace>>,
    normalize: [f32; 256],
}

/// A trained model ready to answer: weights detached from any graph, normalization fixed.
pub struct Classifier {
    pub architecture: Architecture,
    pub normalization: Normalization,
    forward: Forward,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("architecture", &self.architecture)
            .field("normalization", &self.normalization)
            .finish_non_exhaustive()
    }
}

impl Classifier {
    /// `network`'s current weights, answering on the network's device.
    pub fn new(network: &Network, normalization: Normalization) -> Result<Self> {
        let device = network.device();
        let forward = if device.is_cpu() {
            Forward::Cpu(Box::new(CpuForward {
                network: cpu_network(network, Level::from_env().map_err(TrainError::Config)?)?
                    .folded(),
                workspaces: Mutex::new(Vec::new()),
                normalize: normalize_table(&normalization),
            }))
        } else {
            Forward::Candle {
                model: network.frozen()?,
                device,
            }
        };
        Ok(Self {
            architecture: network.architecture.clone(),
            normalization,
            forward,
        })
    }

    /// The logits `[b, 10]` of `b` images given as `b * 784` pixels (0 = paper, as in MNIST's
    /// files).
    pub fn logits(&self, pixels: &[u8]) -> Result<Vec<f32>> {
        let b = pixels.len() / IMAGE_PIXELS;
        match &self.forward {
            Forward::Cpu(cpu) => {
                let mut logits = vec![0f32; b * NUM_CLASSES];
                logits
                    .par_chunks_mut(CPU_SUB_BATCH * NUM_CLASSES)
                    .zip(pixels.par_chunks(CPU_SUB_BATCH * IMAGE_PIXELS))
                    .for_each(|(out, part)| {
                        let n = part.len() / IMAGE_PIXELS;
                        let workspaces =
                            || cpu.workspaces.lock().unwrap_or_else(|e| e.into_inner());
                        let mut ws = workspaces().pop().unwrap_or_default();
                        let input = ws.input(cpu.network.plan(), n);
                        for (x, &p) in input.iter_mut().zip(part) {
                            *x = cpu.normalize[p as usize];
                        }
                        out.copy_from_slice(cpu.network.infer(&mut ws, n));
                        workspaces().push(ws);
                    });
                Ok(logits)
            }
            Forward::Candle { model, device } => {
                let xs = Tensor::from_slice(pixels, (b, 1, IMAGE_SIDE, IMAGE_SIDE), device)?;
                let logits = model.forward_t(&self.normalization.apply(&xs)?, false)?;
                Ok(logits.flatten_all()?.to_vec1::<f32>()?)
            }
        }
    }

    /// Class probabilities for each image (28x28 `u8`, 0 = paper), in batches of
    /// [`CLASSIFY_BATCH_SIZE`].
    pub fn probabilities(&self, images: &[[u8; IMAGE_PIXELS]]) -> Result<Vec<[f32; NUM_CLASSES]>> {
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(CLASSIFY_BATCH_SIZE) {
            let pixels: Vec<u8> = chunk.iter().flatten().copied().collect();
            let logits = self.logits(&pixels)?;
            out.extend(logits.chunks_exact(NUM_CLASSES).map(softmax));
        }
        Ok(out)
    }
}

/// The CPU backend's copy of `network`'s weights.
pub(crate) fn cpu_network(network: &Network, level: Level) -> Result<CpuNetwork> {
    let mut cpu = CpuNetwork::new(&network.architecture, level);
    for (name, var) in network.named_vars() {
        let values = var.flatten_all()?.to_vec1::<f32>()?;
        cpu.set(&name, &values).map_err(TrainError::Config)?;
    }
    Ok(cpu)
}

/// Softmax of one row of logits, as candle's `softmax_last_dim` computes it.
fn softmax(logits: &[f32]) -> [f32; NUM_CLASSES] {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut p = [0f32; NUM_CLASSES];
    for (p, &l) in p.iter_mut().zip(logits) {
        *p = (l - max).exp();
    }
    let sum: f32 = p.iter().sum();
    p.iter_mut().for_each(|p| *p /= sum);
    p
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
        for name in ["tutorial", "convnet"] {
            let network = Network::seeded(name.parse().unwrap(), 3, &Device::Cpu).unwrap();
            let classifier = Classifier::new(&network, Normalization::Unit).unwrap();
            let images: Vec<[u8; IMAGE_PIXELS]> = (0..CLASSIFY_BATCH_SIZE + 3)
                .map(|i| std::array::from_fn(|p| ((p * 7 + i * 13) % 256) as u8))
                .collect();
            let all = classifier.probabilities(&images).unwrap();
            assert_eq!(all.len(), images.len());
            let last = classifier
                .probabilities(&images[images.len() - 1..])
                .unwrap();
            // Bit for bit with the AVX-512 kernels; the AVX2 ones sum a short batch's tail in
            // another order, which moves the last bit of a probability, never the answer.
            let (a, b) = (&all[images.len() - 1], &last[0]);
            assert!(
                a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-6) && ranked(a) == ranked(b),
                "{name}: {a:?} vs {b:?}"
            );
            for p in &all {
                assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            }
            // The same answers as candle's model of the same weights.
            let xs = Tensor::from_slice(
                &images[..5].concat()[..],
                (5, 1, IMAGE_SIDE, IMAGE_SIDE),
                &Device::Cpu,
            )
            .unwrap();
            let reference = network
                .forward(&Normalization::Unit.apply(&xs).unwrap(), false)
                .unwrap();
            let reference = candle_nn::ops::softmax_last_dim(&reference)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            for (ours, theirs) in all.iter().zip(&reference) {
                for (a, b) in ours.iter().zip(theirs) {
                    assert!((a - b).abs() < 1e-5, "{name}: {ours:?} vs {theirs:?}");
                }
            }
        }
    }

    #[test]
    fn ranked_orders_by_probability() {
        let p = [0.05, 0.6, 0.0, 0.3, 0.05, 0.0, 0.0, 0.0, 0.0, 0.0];
        assert_eq!(&ranked(&p)[..2], &[1, 3]);
    }
}
