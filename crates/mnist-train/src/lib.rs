//! Training, evaluation and inference: optimizers whose state we own (so checkpoints can carry
//! it and a resumed run continues exactly), the epoch loop over a device-resident dataset
//! through one [`TrainStep`] interface (the CPU backend on the CPU, candle's autograd on GPUs),
//! batched evaluation with per-class accuracy and a confusion matrix, and a [`Classifier`] for
//! people's pictures.
//!
//! The crate reports progress through callbacks and never prints: the binary decides what goes
//! to stdout and stderr. Devices are chosen by the caller.

mod classifier;
mod error;
mod evaluate;
mod optim;
mod step;
mod trainer;

pub use classifier::{ranked, Classifier, CLASSIFY_BATCH_SIZE};
pub use error::TrainError;
pub use evaluate::{evaluate, EvalReport};
pub use optim::{Optimizer, OptimizerConfig, OptimizerKind};
pub use step::{new_step, AutogradStep, Backend, CpuStep, TrainStep};
pub use trainer::{EpochReport, StepProgress, TrainConfig, Trainer};

pub type Result<T> = std::result::Result<T, TrainError>;
