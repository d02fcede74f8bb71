//! The one interface the epoch loop trains through, and its two implementations: candle's
//! autograd plus [`Optimizer`] (any device; the reference in tests), and the CPU backend
//! (`mnist-cpu`), which holds the weights and optimizer state in its own buffers during training
//! and writes them back on [`TrainStep::sync`].

use std::ops::Range;

use candle_core::{DType, Device, Tensor};
use mnist_cpu::{CpuTrainer, Level};
use mnist_data::augment::{PenRedraws, Warp};
use mnist_data::batch::DeviceSplit;
use mnist_data::{Normalization, IMAGE_PIXELS};
use mnist_model::Network;
use rayon::prelude::*;

use crate::classifier::cpu_network;
use crate::{Optimizer, Result, TrainError};

/// Which implementation trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The CPU backend (CPU only).
    Cpu,
    /// Candle's autograd and the tensor optimizer (any device).
    Autograd,
}

impl Backend {
    /// The CPU backend on the CPU, candle's autograd on other devices.
    pub fn for_device(device: &Device) -> Self {
        if device.is_cpu() {
            Backend::Cpu
        } else {
            Backend::Autograd
        }
    }
}

/// One way of taking training steps. The network and optimizer are the trainer's; a step may
/// keep its own copy of their state during an epoch and writes it back in [`TrainStep::sync`].
pub trait TrainStep {
    /// Starts an epoch over `split` in the shuffled `order`, with the running sums at zero.
    fn start_epoch(&mut self, split: &DeviceSplit, order: &[u32]) -> Result<()>;

    /// Whether the step can warp each batch's images as it gathers them
    /// ([`TrainStep::set_warps`]), so that an augmented epoch needs no warped copy of the split.
    fn warps_batches(&self) -> bool {
        false
    }

    /// For the epoch just started: image `i` of the split is to be trained on as warped by
    /// `warps[i]`, its pen redraw (where the warp asks for one) taken from `redrawn` when
    /// given. Only called where [`TrainStep::warps_batches`].
    fn set_warps(&mut self, _warps: Vec<Warp>, _redrawn: Option<PenRedraws>) -> Result<()> {
        Err(TrainError::Config(
            "this step cannot warp batches; augment the split instead".into(),
        ))
    }

    /// One update on the images `order[range]` at learning rate `lr`.
    fn step(
        &mut self,
        network: &Network,
        optimizer: &mut Optimizer,
        split: &DeviceSplit,
        range: Range<usize>,
        lr: f64,
    ) -> Result<()>;

    /// The summed loss and the correct predictions since the epoch started (a device sync).
    fn running(&mut self) -> Result<(f64, f64)>;

    /// Makes `network`'s variables and `optimizer`'s state current.
    fn sync(&mut self, network: &Network, optimizer: &mut Optimizer) -> Result<()>;
}

/// Builds the step for `backend`.
pub fn new_step(
    backend: Backend,
    network: &Network,
    optimizer: &Optimizer,
    normalization: Normalization,
) -> Result<Box<dyn TrainStep>> {
    Ok(match backend {
        Backend::Cpu => Box::new(CpuStep::new(network, optimizer, normalization)?),
        Backend::Autograd => Box::new(AutogradStep::new(network.device(), normalization)?),
    })
}

/// Candle's forward, `cross_entropy`, `backward` and the optimizer, with the running sums kept on
/// the device (read back only when asked: every read is a sync).
pub struct AutogradStep {
    normalization: Normalization,
    device: Device,
    order: Option<Tensor>,
    loss_sum: Tensor,
    correct: Tensor,
}

impl AutogradStep {
    pub fn new(device: Device, normalization: Normalization) -> Result<Self> {
        Ok(Self {
            normalization,
            loss_sum: Tensor::zeros((), DType::F32, &device)?,
            correct: Tensor::zeros((), DType::F32, &device)?,
            order: None,
            device,
        })
    }
}

impl TrainStep for AutogradStep {
    fn start_epoch(&mut self, _split: &DeviceSplit, order: &[u32]) -> Result<()> {
        self.order = Some(Tensor::from_slice(order, order.len(), &self.device)?);
        self.loss_sum = self.loss_sum.zeros_like()?;
        self.correct = self.correct.zeros_like()?;
        Ok(())
    }

    fn step(
        &mut self,
        network: &Network,
        optimizer: &mut Optimizer,
        split: &DeviceSplit,
        range: Range<usize>,
        lr: f64,
    ) -> Result<()> {
        optimizer.set_lr(lr);
        let order = self
            .order
            .as_ref()
            .ok_or_else(|| TrainError::Config("a step before the epoch started".into()))?;
        let len = range.len();
        let batch = split.gather(&order.narrow(0, range.start, len)?, &self.normalization)?;
        let logits = network.forward(&batch.images, true)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &batch.labels)?;
        optimizer.step(&loss.backward()?)?;
        self.loss_sum = (&self.loss_sum + (loss.detach() * len as f64)?)?;
        let hits = logits
            .detach()
            .argmax(1)?
            .eq(&batch.labels)?
            .to_dtype(DType::F32)?
            .sum_all()?;
        self.correct = (&self.correct + hits)?;
        Ok(())
    }

    fn running(&mut self) -> Result<(f64, f64)> {
        Ok((
            self.loss_sum.to_scalar::<f32>()? as f64,
            self.correct.to_scalar::<f32>()? as f64,
        ))
    }

    fn sync(&mut self, _network: &Network, _optimizer: &mut Optimizer) -> Result<()> {
        Ok(())
    }
}

/// The CPU backend: weights, moments and buffers live in a [`CpuTrainer`] from the trainer's
/// start; the network's variables and the optimizer's tensors are brought up to date on sync.
pub struct CpuStep {
    trainer: CpuTrainer,
    order: Vec<u32>,
    /// The epoch's warps, one per image of the split, when it is augmented, and the images'
    /// pen redraws when they were made ahead.
    warps: Option<(Vec<Warp>, Option<PenRedraws>)>,
    /// A warped batch: its pixels, labels and positions `0..b` (grown to the largest batch).
    warped: (Vec<u8>, Vec<u32>, Vec<u32>),
    loss_sum: f64,
    correct: usize,
}

impl CpuStep {
    /// Loads `network`'s weights and `optimizer`'s state and step count.
    pub fn new(
        network: &Network,
        optimizer: &Optimizer,
        normalization: Normalization,
    ) -> Result<Self> {
        if !network.device().is_cpu() {
            return Err(TrainError::Config(
                "the CPU backend needs the network on the CPU".into(),
            ));
        }
        let level = Level::from_env().map_err(TrainError::Config)?;
        let mut trainer = CpuTrainer::new(
            cpu_network(network, level)?,
            optimizer.config().rule(),
            &normalization,
        );
        let state: std::collections::BTreeMap<String, Tensor> =
            optimizer.state().into_iter().collect();
        let lookup = |name: &str| -> Option<Vec<f32>> {
            state.get(name)?.flatten_all().ok()?.to_vec1::<f32>().ok()
        };
        trainer
            .load_optimizer_state(&lookup, optimizer.step_count())
            .map_err(TrainError::Config)?;
        Ok(Self {
            trainer,
            order: Vec::new(),
            warps: None,
            warped: Default::default(),
            loss_sum: 0.0,
            correct: 0,
        })
    }
}

impl TrainStep for CpuStep {
    fn start_epoch(&mut self, _split: &DeviceSplit, order: &[u32]) -> Result<()> {
        self.order = order.to_vec();
        self.warps = None;
        self.loss_sum = 0.0;
        self.correct = 0;
        Ok(())
    }

    fn warps_batches(&self) -> bool {
        true
    }

    fn set_warps(&mut self, warps: Vec<Warp>, redrawn: Option<PenRedraws>) -> Result<()> {
        if warps.len() != self.order.len() {
            return Err(TrainError::Config(format!(
                "{} warps for an epoch of {} images",
                warps.len(),
                self.order.len()
            )));
        }
        if let Some(redrawn) = &redrawn {
            if redrawn.len() != warps.len() {
                return Err(TrainError::Config(format!(
                    "{} pen redraws for an epoch of {} images",
                    redrawn.len(),
                    warps.len()
                )));
            }
        }
        self.warps = Some((warps, redrawn));
        Ok(())
    }

    fn step(
        &mut self,
        _network: &Network,
        _optimizer: &mut Optimizer,
        split: &DeviceSplit,
        range: Range<usize>,
        lr: f64,
    ) -> Result<()> {
        let indices = &self.order[range];
        let Self {
            trainer,
            warps,
            warped: (batch_pixels, batch_labels, positions),
            ..
        } = self;
        let score = split
            .with_host_data(|pixels, labels| match warps {
                None => trainer.train_batch(pixels, labels, indices, lr),
                // The batch's images warped into a buffer of their own, in batch order: the
                // same input as gathering them from a warped copy of the split.
                Some((warps, redrawn)) => {
                    let b = indices.len();
                    batch_pixels.resize(b * IMAGE_PIXELS, 0);
                    batch_labels.clear();
                    // In parallel: a pen redraw made here costs about 0.1 ms an image.
                    batch_pixels
                        .par_chunks_exact_mut(IMAGE_PIXELS)
                        .zip(indices)
                        .for_each(|(dst, &i)| {
                            let i = i as usize;
                            let src = &pixels[i * IMAGE_PIXELS..][..IMAGE_PIXELS];
                            warps[i].apply_with(src, redrawn.as_ref().map(|r| r.image(i)), dst);
                        });
                    batch_labels.extend(indices.iter().map(|&i| labels[i as usize]));
                    if positions.len() < b {
                        *positions = (0..b as u32).collect();
                    }
                    trainer.train_batch(batch_pixels, batch_labels, &positions[..b], lr)
                }
            })
            .ok_or_else(|| TrainError::Config("the CPU backend needs the data on the CPU".into()))?
            .map_err(TrainError::Config)?;
        self.loss_sum += score.loss_sum;
        self.correct += score.correct;
        Ok(())
    }

    fn running(&mut self) -> Result<(f64, f64)> {
        Ok((self.loss_sum, self.correct as f64))
    }

    fn sync(&mut self, network: &Network, optimizer: &mut Optimizer) -> Result<()> {
        let vars: std::collections::BTreeMap<String, candle_core::Var> =
            network.named_vars().into_iter().collect();
        for (spec, values) in self.trainer.network().tensors() {
            let var = vars.get(&spec.name).ok_or_else(|| {
                TrainError::Config(format!("the network has no variable {}", spec.name))
            })?;
            var.set(&Tensor::from_slice(values, var.dims(), &Device::Cpu)?)?;
        }
        let dims: std::collections::BTreeMap<String, Vec<usize>> = self
            .trainer
            .network()
            .tensors()
            .map(|(s, _)| (s.name.clone(), s.dims.clone()))
            .collect();
        let mut state = std::collections::BTreeMap::new();
        for (name, values) in self.trainer.optimizer_state() {
            let param = name.split_once('.').map_or("", |(_, p)| p);
            let shape = dims
                .get(param)
                .cloned()
                .unwrap_or_else(|| vec![values.len()]);
            state.insert(name, Tensor::from_slice(values, shape, &Device::Cpu)?);
        }
        optimizer
            .load_state(&state, self.trainer.step_count())
            .map_err(TrainError::Config)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use mnist_model::Architecture;

    use super::*;
    use crate::{OptimizerConfig, OptimizerKind};

    /// MNIST-like pixels and labels from a fixed seed.
    fn data(n: usize) -> DeviceSplit {
        let split = mnist_data::synthetic::speckled(n, 1);
        DeviceSplit::new(split.images, &split.labels, &Device::Cpu).unwrap()
    }

    fn host(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// A network and optimizer holding a copy of `network`'s and `optimizer`'s state.
    fn copy(network: &Network, optimizer: &Optimizer) -> (Network, Optimizer) {
        let twin = Network::seeded(network.architecture.clone(), 0, &Device::Cpu).unwrap();
        let values: BTreeMap<String, Tensor> = network
            .named_vars()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().copy().unwrap()))
            .collect();
        for (name, var) in twin.named_vars() {
            var.set(&values[&name]).unwrap();
        }
        let mut twin_optimizer =
            Optimizer::new(*optimizer.config(), twin.trainable_vars()).unwrap();
        let state: BTreeMap<String, Tensor> = optimizer.state().into_iter().collect();
        twin_optimizer
            .load_state(&state, optimizer.step_count())
            .unwrap();
        (twin, twin_optimizer)
    }

    /// Every tensor by name: weights, running statistics and optimizer slots.
    fn tensors(network: &Network, optimizer: &Optimizer) -> BTreeMap<String, Vec<f32>> {
        let mut values: BTreeMap<String, Vec<f32>> = network
            .named_vars()
            .into_iter()
            .map(|(n, v)| (n, host(v.as_tensor())))
            .collect();
        values.extend(optimizer.state().into_iter().map(|(n, t)| (n, host(&t))));
        values
    }

    /// The largest difference between two tensors, and the largest magnitude in the second.
    fn worst(a: &[f32], b: &[f32]) -> (f32, f32) {
        let diff = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        (diff, b.iter().fold(0f32, |m, x| m.max(x.abs())))
    }

    /// Warping each batch as it is gathered trains on exactly the pixels of a warped copy of
    /// the split: the same weights and moments, bit for bit, over several batches (a short last
    /// one too), in a shuffled order, with half of the images redrawn with a pen (the batches
    /// from redraws made ahead, the copy redrawing as it warps).
    #[test]
    fn warped_batches_train_as_a_warped_copy_does() {
        use mnist_data::augment::{apply_warps, draw_warps, AugmentConfig, PenRedraws};
        use mnist_data::rng::{seeded_rng, RngPurpose};

        let split = data(75);
        let config = AugmentConfig {
            pen_fraction: 0.5,
            ..AugmentConfig::default()
        };
        let warps = draw_warps(75, &config, &mut seeded_rng(3, RngPurpose::Augment, 1));
        let (pixels, labels, redrawn) = split
            .with_host_data(|p, l| {
                (
                    apply_warps(p, None, &warps),
                    l.iter().map(|&l| l as u8).collect::<Vec<_>>(),
                    PenRedraws::of(p),
                )
            })
            .unwrap();
        let warped = DeviceSplit::new(pixels, &labels, &Device::Cpu).unwrap();
        let order: Vec<u32> = (0..75).map(|i| (i * 31) % 75).collect();
        let arch =
            Architecture::from_text("conv8x3,relu,pool2,flatten,dense16,relu,dense10").unwrap();
        let network = Network::seeded(arch.clone(), 5, &Device::Cpu).unwrap();
        let optimizer = Optimizer::new(
            OptimizerConfig::new(OptimizerKind::Adam, 1e-3),
            network.trainable_vars(),
        )
        .unwrap();
        let norm = arch.default_normalization();
        let [per_batch, copied] = [true, false].map(|per_batch| {
            let (network, mut optimizer) = copy(&network, &optimizer);
            let mut step = new_step(Backend::Cpu, &network, &optimizer, norm).unwrap();
            let images = if per_batch { &split } else { &warped };
            step.start_epoch(images, &order).unwrap();
            if per_batch {
                step.set_warps(warps.clone(), Some(redrawn.clone()))
                    .unwrap();
            }
            for range in [0..32, 32..64, 64..75] {
                step.step(&network, &mut optimizer, images, range, 1e-3)
                    .unwrap();
            }
            step.sync(&network, &mut optimizer).unwrap();
            (tensors(&network, &optimizer), step.running().unwrap())
        });
        assert_eq!(per_batch, copied);
        // And a warp per image is checked.
        let mut step = new_step(Backend::Cpu, &network, &optimizer, norm).unwrap();
        step.start_epoch(&split, &order).unwrap();
        let err = step
            .set_warps(warps[..10].to_vec(), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("10 warps for an epoch of 75 images"), "{err}");
        let few = split.with_host_data(|p, _| PenRedraws::of(&p[..IMAGE_PIXELS * 10]));
        let err = step.set_warps(warps, few).unwrap_err().to_string();
        assert!(
            err.contains("10 pen redraws for an epoch of 75 images"),
            "{err}"
        );
    }

    /// A whole step (forward, loss, backward, update) through the CPU backend equals one
    /// through candle's autograd plus the optimizer, taken from the same state: after three
    /// warm-up steps (so the moments and the step count are not trivial), for the shipped
    /// networks and lists no code special-cases, with SGD (momentum 0.9), Adam and AdamW.
    ///
    /// The tolerances: gradients agree to rounding (mnist-cpu's tests: 1e-5), and SGD carries
    /// that straight into the weights: every tensor within 1e-5 of its largest value (measured:
    /// 5.2e-6). Adam divides each gradient by its own size, so where a gradient is at rounding
    /// level its weight may move by up to the step size: weights within 2% of the learning rate
    /// (measured: 1.54%, a conv bias of the first custom list whose gradient is near rounding
    /// level), moments within 1e-4 of their largest value. (Whole trajectories are not
    /// compared: Winograd's transforms break exact ties in blank regions, so after a few steps
    /// a pooling window may route its gradient to another of its equal values.)
    #[test]
    fn a_cpu_step_equals_an_autograd_step_plus_the_optimizer() {
        let split = data(109);
        let order: Vec<u32> = (0..109).rev().collect();
        let lists = mnist_model::BUILT_IN.map(|(_, list)| list).into_iter().chain([
            "conv6x4,relu,pool2,conv12x3,bn,relu,conv12x3,relu,pool2,flatten,dense24,bn,relu,dense10",
            "flatten,dense64,relu,dense32,relu,dense10",
        ]);
        for list in lists {
            let arch = Architecture::from_text(list).unwrap();
            let norm = arch.default_normalization();
            for kind in [
                OptimizerKind::Sgd,
                OptimizerKind::Adam,
                OptimizerKind::Adamw,
            ] {
                let mut config = OptimizerConfig::new(kind, 2e-3);
                config.momentum = 0.9;
                let network = Network::seeded(arch.clone(), 7, &Device::Cpu).unwrap();
                let mut optimizer = Optimizer::new(config, network.trainable_vars()).unwrap();
                let mut warm = new_step(Backend::Cpu, &network, &optimizer, norm).unwrap();
                warm.start_epoch(&split, &order).unwrap();
                for range in [0..32, 32..64, 64..96] {
                    warm.step(&network, &mut optimizer, &split, range, 2e-3)
                        .unwrap();
                }
                warm.sync(&network, &mut optimizer).unwrap();
                let after = [Backend::Cpu, Backend::Autograd].map(|backend| {
                    let (network, mut optimizer) = copy(&network, &optimizer);
                    let mut step = new_step(backend, &network, &optimizer, norm).unwrap();
                    step.start_epoch(&split, &order).unwrap();
                    step.step(&network, &mut optimizer, &split, 96..109, 1e-3)
                        .unwrap();
                    step.sync(&network, &mut optimizer).unwrap();
                    let (loss, hits) = step.running().unwrap();
                    (
                        tensors(&network, &optimizer),
                        loss,
                        hits,
                        optimizer.step_count(),
                    )
                });
                let [(cpu, cpu_loss, cpu_hits, cpu_steps), (reference, ref_loss, ref_hits, ref_steps)] =
                    after;
                let what = format!("{list} {kind:?}");
                assert_eq!((cpu_steps, cpu_hits), (ref_steps, ref_hits), "{what}");
                assert!(
                    (cpu_loss - ref_loss).abs() <= 1e-5 * ref_loss,
                    "{what}: {cpu_loss} vs {ref_loss}"
                );
                assert_eq!(
                    cpu.keys().collect::<Vec<_>>(),
                    reference.keys().collect::<Vec<_>>()
                );
                for (name, expected) in &reference {
                    let (diff, scale) = worst(&cpu[name], expected);
                    let bound = match kind {
                        OptimizerKind::Sgd => 1e-5 * scale,
                        _ if name.starts_with("exp_avg") => 1e-4 * scale,
                        _ => 0.02 * 1e-3,
                    };
                    assert!(diff <= bound, "{what}: {name} differs by {diff} of {scale}");
                }
            }
        }
    }
}
