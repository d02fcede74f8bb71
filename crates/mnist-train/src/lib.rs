//! Training and evaluation: optimizers whose state we own (so checkpoints can carry it and a
//! resumed run continues exactly), the epoch loop over a device-resident dataset, and batched
//! evaluation with per-class accuracy and a confusion matrix.
//!
//! The crate reports progress through callbacks and never prints: the binary decides what goes
//! to stdout and stderr. Devices are chosen by the caller.

mod error;
mod evaluate;
#[cfg(target_arch = "x86_64")]
mod fc1_avx512;
mod fused_adam;
mod fused_step;
mod optim;
mod trainer;

pub use error::TrainError;
pub use evaluate::{evaluate, EvalReport};
pub use fused_step::{FusedStep, StepOutcome};
pub use optim::{Optimizer, OptimizerConfig, OptimizerKind};
pub use trainer::{EpochReport, StepProgress, TrainConfig, Trainer};

pub type Result<T> = std::result::Result<T, TrainError>;
