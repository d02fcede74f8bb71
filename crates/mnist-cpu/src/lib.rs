//! The CPU backend: runs any layer list of `mnist-model` forward (inference), and forward,
//! backward and through its optimizer (training), fast on any network rather than on a few
//! hand-written ones.
//!
//! * [`plan`]: the layer list turned into kernels, with the fused pairs that pay.
//! * [`layers`]: each kernel's forward and backward over slices, with SIMD variants chosen at
//!   run time ([`Level`]) and a portable fallback.
//! * [`CpuNetwork`]: the weights and the forward pass; [`CpuTrainer`]: a training step as a
//!   straight sequence of layer calls over buffers allocated once, then the update ([`optim`]).
//!
//! Every sum runs in an order fixed by the shapes (fixed chunks of the batch, partial sums added
//! in order), so results do not depend on the thread count, and a resumed run repeats an
//! uninterrupted one bit for bit. Nothing here knows about candle, devices or files.

pub mod gemm;
pub mod layers;
pub mod loss;
mod network;
pub mod optim;
pub mod plan;
#[cfg(feature = "profile")]
pub mod profile;
mod simd;
#[cfg(test)]
mod testing;
mod train;

pub use loss::BatchScore;
pub use network::{normalize_table, CpuNetwork, Workspace};
pub use optim::{AdamScalars, Rule};
pub use simd::{Level, SIMD_ENV};
pub use train::CpuTrainer;
#[cfg(test)]
mod tests;
