//! The epoch loop. One `Trainer` owns the network, the optimizer, the device-resident data and
//! the [`TrainStep`] chosen once for the device; the caller drives it epoch by epoch and decides
//! where checkpoints and progress go. Nothing here depends on which step trains.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::Device;
use mnist_data::augment::{apply_warps, draw_warps, flag_ones, AugmentConfig, PenRedraws};
use mnist_data::batch::{batch_ranges, epoch_order, DeviceSplit};
use mnist_data::rng::{seeded_rng, RngPurpose};
use mnist_data::{Mnist, Normalization};
use mnist_model::checkpoint::{self, Checkpoint, CheckpointMeta};
use mnist_model::{Architecture, Network};
use serde::{Deserialize, Serialize};

use crate::step::{new_step, Backend, TrainStep};
use crate::{evaluate, EvalReport, Optimizer, OptimizerConfig, Result, TrainError};

/// Everything that determines a training run. Stored in every checkpoint, so `--resume`
/// continues with exactly the same recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub architecture: Architecture,
    pub epochs: usize,
    pub batch_size: usize,
    pub optimizer: OptimizerConfig,
    /// The learning rate is multiplied by this after every epoch (1 = constant).
    pub lr_decay: f64,
    pub seed: u64,
    pub normalization: Normalization,
    /// Random affine warps of the training images, redrawn every epoch.
    pub augment: bool,
    /// With `augment`, the fraction of training images (0-1) whose strokes are also redrawn
    /// with a pen each epoch, as a photo's pen line is redrawn before a model reads it
    /// ([`mnist_data::augment::redraw_with_pen`]). 0 in checkpoints from before it existed.
    #[serde(default)]
    pub pen_strokes: f32,
    /// With `augment`, the strength of an elastic distortion on top of the affine warp
    /// ([`mnist_data::augment::AugmentConfig::elastic`]; 0 for none, and in checkpoints from
    /// before it existed).
    #[serde(default)]
    pub elastic: f32,
    /// The fraction of the training set's 1s (0-1) drawn with a flag, as much of Europe writes
    /// them ([`mnist_data::augment::flag_ones`]): chosen and drawn once per run from `seed`. 0
    /// in checkpoints from before it existed.
    #[serde(default)]
    pub flagged_ones: f32,
    /// Batch size for evaluation (memory only; results do not depend on it).
    pub eval_batch_size: usize,
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(TrainError::Config(m));
        if self.epochs == 0 {
            return bad("--epochs must be at least 1".into());
        }
        if self.batch_size == 0 || self.batch_size > 60_000 {
            return bad(format!(
                "--batch-size must be between 1 and 60000, got {}",
                self.batch_size
            ));
        }
        if !(self.lr_decay.is_finite() && self.lr_decay > 0.0 && self.lr_decay <= 1.0) {
            return bad(format!(
                "--lr-decay must be in (0, 1], got {}",
                self.lr_decay
            ));
        }
        let o = &self.optimizer;
        if !(o.lr.is_finite() && o.lr > 0.0) {
            return bad(format!("--lr must be a positive number, got {}", o.lr));
        }
        if !(0.0..1.0).contains(&o.momentum) {
            return bad(format!("--momentum must be in [0, 1), got {}", o.momentum));
        }
        if !(o.weight_decay.is_finite() && o.weight_decay >= 0.0) {
            return bad(format!(
                "--weight-decay must be zero or positive, got {}",
                o.weight_decay
            ));
        }
        if !(0.0..=1.0).contains(&self.pen_strokes) {
            return bad(format!(
                "--pen-strokes must be a fraction from 0 to 1, got {}",
                self.pen_strokes
            ));
        }
        if self.pen_strokes > 0.0 && !self.augment {
            return bad("--pen-strokes redraws images as part of --augment: add --augment".into());
        }
        if !(self.elastic.is_finite() && (0.0..=100.0).contains(&self.elastic)) {
            return bad(format!(
                "--elastic must be a strength from 0 to 100 pixels, got {}",
                self.elastic
            ));
        }
        if self.elastic > 0.0 && !self.augment {
            return bad("--elastic distorts images as part of --augment: add --augment".into());
        }
        if !(0.0..=1.0).contains(&self.flagged_ones) {
            return bad(format!(
                "--flagged-ones must be a fraction from 0 to 1, got {}",
                self.flagged_ones
            ));
        }
        if self.eval_batch_size == 0 {
            return bad("the evaluation batch size must be at least 1".into());
        }
        Ok(())
    }

    /// The augmentation this recipe draws each epoch's warps from.
    pub fn augment_config(&self) -> AugmentConfig {
        AugmentConfig {
            pen_fraction: self.pen_strokes,
            elastic: self.elastic,
            ..AugmentConfig::default()
        }
    }

    /// Learning rate during `epoch` (0-based).
    pub fn lr_at(&self, epoch: usize) -> f64 {
        self.optimizer.lr * self.lr_decay.powi(epoch as i32)
    }
}

/// Progress inside an epoch, reported every few steps.
#[derive(Debug, Clone, Copy)]
pub struct StepProgress {
    pub step: usize,
    pub steps: usize,
    /// Mean training loss and accuracy over the epoch so far.
    pub loss: f64,
    pub accuracy: f64,
}

/// The result of one epoch.
#[derive(Debug, Clone, Serialize)]
pub struct EpochReport {
    /// 1-based number of the epoch just completed.
    pub epoch: usize,
    pub epochs: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub test: EvalReport,
    pub lr: f64,
    pub seconds: f64,
}

/// The training split: resident on the device as it is, or kept on the host (a CPU split, which
/// adopts the buffer) to be warped afresh each epoch: batch by batch where the step can (the CPU
/// backend: no warped copy at all), else into a warped copy uploaded to the device.
enum TrainImages {
    Resident(DeviceSplit),
    Augmented {
        source: DeviceSplit,
        labels: Vec<u8>,
        /// Every image's pen redraw, where `--pen-strokes` asks for some.
        redrawn: Option<PenRedraws>,
    },
}

pub struct Trainer {
    pub config: TrainConfig,
    pub network: Network,
    optimizer: Optimizer,
    train: TrainImages,
    test: DeviceSplit,
    device: Device,
    completed_epochs: usize,
    backend: Backend,
    step: Box<dyn TrainStep>,
}

/// How often (in steps) the running loss is read back: every read is a device sync.
const PROGRESS_EVERY: usize = 25;

impl Trainer {
    /// A fresh run: seeded weights, zeroed optimizer state.
    pub fn new(config: TrainConfig, data: Mnist, device: &Device) -> Result<Self> {
        config.validate()?;
        let network = Network::seeded(config.architecture.clone(), config.seed, device)?;
        let optimizer = Optimizer::new(config.optimizer, network.trainable_vars())?;
        Self::assemble(config, network, optimizer, data, device, 0)
    }

    /// Continues the run saved in `checkpoint`. `epochs`, when given, replaces the planned total
    /// (to extend a finished run); everything else comes from the checkpoint.
    pub fn resume(
        checkpoint: &Checkpoint,
        epochs: Option<usize>,
        data: Mnist,
        device: &Device,
    ) -> Result<Self> {
        let fail = |problem: String| TrainError::Resume {
            path: checkpoint.path.clone(),
            problem,
        };
        let meta = checkpoint
            .meta
            .as_ref()
            .ok_or_else(|| fail("it has no mnist training metadata".into()))?;
        let training = meta
            .training
            .clone()
            .ok_or_else(|| fail("it records no training configuration".into()))?;
        let mut config: TrainConfig = serde_json::from_value(training)
            .map_err(|e| fail(format!("its training configuration is unreadable: {e}")))?;
        if let Some(epochs) = epochs {
            config.epochs = epochs;
        }
        config.validate()?;
        if meta.epoch >= config.epochs {
            return Err(fail(format!(
                "it already completed {} of {} epochs; pass a larger --epochs to train further",
                meta.epoch, config.epochs
            )));
        }
        let step = meta
            .optimizer
            .as_ref()
            .and_then(|o| o.get("step"))
            .and_then(|s| s.as_u64())
            .ok_or_else(|| fail("it records no optimizer step".into()))?;
        let network = checkpoint.to_network(None, device)?;
        let mut optimizer = Optimizer::new(config.optimizer, network.trainable_vars())?;
        optimizer
            .load_state(&checkpoint.optimizer_state(), step)
            .map_err(fail)?;
        Self::assemble(config, network, optimizer, data, device, meta.epoch)
    }

    fn assemble(
        config: TrainConfig,
        network: Network,
        optimizer: Optimizer,
        mut data: Mnist,
        device: &Device,
        completed_epochs: usize,
    ) -> Result<Self> {
        if config.flagged_ones > 0.0 {
            flag_ones(
                &mut data.train.images,
                &data.train.labels,
                config.flagged_ones,
                &mut seeded_rng(config.seed, RngPurpose::FlaggedOnes, 0),
            );
        }
        let train = if config.augment {
            let redrawn = (config.pen_strokes > 0.0).then(|| PenRedraws::of(&data.train.images));
            TrainImages::Augmented {
                source: DeviceSplit::new(data.train.images, &data.train.labels, &Device::Cpu)?,
                labels: data.train.labels,
                redrawn,
            }
        } else {
            TrainImages::Resident(DeviceSplit::new(
                data.train.images,
                &data.train.labels,
                device,
            )?)
        };
        let test = DeviceSplit::new(data.test.images, &data.test.labels, device)?;
        let backend = Backend::for_device(device);
        let step = new_step(backend, &network, &optimizer, config.normalization)?;
        Ok(Self {
            config,
            network,
            optimizer,
            train,
            test,
            device: device.clone(),
            completed_epochs,
            backend,
            step,
        })
    }

    /// Which implementation takes the steps: the device's default ([`Backend::for_device`]),
    /// or candle's autograd on the CPU too, for comparisons and tests (the two agree to
    /// rounding).
    pub fn set_backend(&mut self, backend: Backend) -> Result<()> {
        self.step.sync(&self.network, &mut self.optimizer)?;
        self.step = new_step(
            backend,
            &self.network,
            &self.optimizer,
            self.config.normalization,
        )?;
        self.backend = backend;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn completed_epochs(&self) -> usize {
        self.completed_epochs
    }

    pub fn is_finished(&self) -> bool {
        self.completed_epochs >= self.config.epochs
    }

    /// Steps per epoch.
    pub fn steps_per_epoch(&self) -> usize {
        let images = match &self.train {
            TrainImages::Resident(split) => split.len(),
            TrainImages::Augmented { source, .. } => source.len(),
        };
        images.div_ceil(self.config.batch_size)
    }

    /// Runs the next epoch and evaluates on the test split. Returns `None` when `stop` was set
    /// mid-epoch: the weights then hold part of an epoch, so the caller must not checkpoint them
    /// (the file on disk already holds the last completed epoch).
    pub fn train_epoch(
        &mut self,
        stop: &AtomicBool,
        progress: &mut dyn FnMut(StepProgress),
    ) -> Result<Option<EpochReport>> {
        let started = Instant::now();
        let epoch = self.completed_epochs;
        let config = &self.config;
        let lr = config.lr_at(epoch);
        self.optimizer.set_lr(lr);
        let device = &self.device;

        let augmented;
        let mut batch_warps = None;
        let train = match &self.train {
            TrainImages::Resident(split) => split,
            TrainImages::Augmented {
                source,
                labels,
                redrawn,
            } => {
                let mut rng = seeded_rng(config.seed, RngPurpose::Augment, epoch as u64);
                let warps = draw_warps(source.len(), &config.augment_config(), &mut rng);
                if self.step.warps_batches() {
                    batch_warps = Some((warps, redrawn.clone()));
                    source
                } else {
                    let pixels = source
                        .with_host_data(|pixels, _| apply_warps(pixels, redrawn.as_ref(), &warps))
                        .ok_or_else(|| {
                            TrainError::Config("augmenting needs the images on the host".into())
                        })?;
                    augmented = DeviceSplit::new(pixels, labels, device)?;
                    &augmented
                }
            }
        };
        let order = epoch_order(train.len(), config.seed, epoch as u64);
        self.step.start_epoch(train, &order)?;
        if let Some((warps, redrawn)) = batch_warps {
            self.step.set_warps(warps, redrawn)?;
        }
        let steps = train.len().div_ceil(config.batch_size);
        let mut seen = 0usize;
        let mut running = (0.0, 0.0);
        for (step, (start, len)) in batch_ranges(train.len(), config.batch_size).enumerate() {
            if stop.load(Ordering::Relaxed) {
                // The weights hold part of an epoch: the caller must not checkpoint them.
                self.step.sync(&self.network, &mut self.optimizer)?;
                return Ok(None);
            }
            let optimizer = &mut self.optimizer;
            self.step
                .step(&self.network, optimizer, train, start..start + len, lr)?;
            seen += len;
            if (step + 1) % PROGRESS_EVERY == 0 || step + 1 == steps {
                let (loss_total, correct_total) = self.step.running()?;
                let loss_mean = (loss_total / seen as f64) as f32;
                if !loss_mean.is_finite() {
                    return Err(TrainError::NonFiniteLoss {
                        epoch: epoch + 1,
                        step: step + 1,
                        value: loss_mean,
                        lr,
                    });
                }
                running = (loss_mean as f64, correct_total / seen as f64);
                progress(StepProgress {
                    step: step + 1,
                    steps,
                    loss: running.0,
                    accuracy: running.1,
                });
            }
        }
        self.step.sync(&self.network, &mut self.optimizer)?;
        let test = evaluate(
            &self.network,
            &self.test,
            &config.normalization,
            config.eval_batch_size,
        )?;
        self.completed_epochs += 1;
        Ok(Some(EpochReport {
            epoch: self.completed_epochs,
            epochs: config.epochs,
            train_loss: running.0,
            train_accuracy: running.1,
            test,
            lr,
            seconds: started.elapsed().as_secs_f64(),
        }))
    }

    /// Writes weights, optimizer state and metadata atomically to `path`.
    pub fn save_checkpoint(&self, path: &Path, test_accuracy: Option<f64>) -> Result<()> {
        let mut meta =
            CheckpointMeta::new(self.config.architecture.clone(), self.config.normalization);
        meta.epoch = self.completed_epochs;
        meta.test_accuracy = test_accuracy;
        meta.training = Some(
            serde_json::to_value(&self.config).map_err(|e| TrainError::Config(e.to_string()))?,
        );
        meta.optimizer = Some(serde_json::json!({
            "kind": self.config.optimizer.kind,
            "step": self.optimizer.step_count(),
            "lr": self.optimizer.lr(),
        }));
        let batches = self.optimizer.step_count() as i64;
        checkpoint::save(path, &self.network, &self.optimizer.state(), &meta, batches)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use mnist_data::{Split, IMAGE_PIXELS};
    use mnist_model::Architecture;

    use super::*;
    use crate::OptimizerKind;

    /// Images whose digit is a bright bar at a digit-dependent place, with noise: learnable in a
    /// couple of epochs.
    fn synthetic(n: usize, seed: u64) -> Split {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut noise = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 58) as u8
        };
        let mut images = Vec::with_capacity(n * IMAGE_PIXELS);
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let digit = (i * 7 + seed as usize) % 10;
            for p in 0..IMAGE_PIXELS {
                let (row, col) = (p / 28, p % 28);
                let bar = row / 2 == digit + 2 && (4..24).contains(&col);
                images.push(if bar { 200 + noise() } else { noise() });
            }
            labels.push(digit as u8);
        }
        Split { images, labels }
    }

    fn run(
        backend: Backend,
        kind: OptimizerKind,
    ) -> (EpochReport, BTreeMap<String, Vec<f32>>, u64) {
        let data = Mnist {
            train: synthetic(640, 1),
            test: synthetic(200, 2),
        };
        let config = TrainConfig {
            architecture: Architecture::tutorial(),
            epochs: 2,
            batch_size: 32,
            // Plain SGD needs a larger step to learn in two epochs.
            optimizer: OptimizerConfig::new(
                kind,
                if kind == OptimizerKind::Sgd {
                    0.05
                } else {
                    1e-3
                },
            ),
            lr_decay: 0.5,
            seed: 3,
            normalization: Normalization::Unit,
            augment: false,
            pen_strokes: 0.0,
            elastic: 0.0,
            flagged_ones: 0.0,
            eval_batch_size: 128,
        };
        let mut trainer = Trainer::new(config, data, &Device::Cpu).unwrap();
        trainer.set_backend(backend).unwrap();
        let stop = AtomicBool::new(false);
        let mut last = None;
        while !trainer.is_finished() {
            last = trainer.train_epoch(&stop, &mut |_| {}).unwrap();
        }
        let weights = trainer
            .network
            .trainable_vars()
            .into_iter()
            .map(|(n, v)| (n, v.flatten_all().unwrap().to_vec1().unwrap()))
            .collect();
        (last.unwrap(), weights, trainer.optimizer.step_count())
    }

    /// Two epochs (with a learning-rate decay between them) through the CPU backend and
    /// through autograd end in the same place, to rounding.
    #[test]
    fn the_cpu_backend_trains_like_autograd() {
        for kind in [
            OptimizerKind::Adam,
            OptimizerKind::Adamw,
            OptimizerKind::Sgd,
        ] {
            let (fused, fused_weights, fused_steps) = run(Backend::Cpu, kind);
            let (reference, ref_weights, ref_steps) = run(Backend::Autograd, kind);
            assert_eq!(fused_steps, ref_steps);
            assert!(
                fused.test.accuracy > 0.9,
                "{kind:?}: {}",
                fused.test.accuracy
            );
            assert!((fused.test.accuracy - reference.test.accuracy).abs() <= 0.01);
            assert!(
                (fused.train_loss - reference.train_loss).abs()
                    < 1e-3 * reference.train_loss.max(0.01)
            );
            for (name, w) in &ref_weights {
                let diff = w
                    .iter()
                    .zip(&fused_weights[name])
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(diff < 1e-3, "{kind:?}: {name} differs by {diff}");
            }
        }
    }
}
