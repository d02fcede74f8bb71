//! What a network is: a layer list ([`layers`], [`Architecture`]) from which the candle model
//! ([`Network`]), the parameter names and shapes, the seeded initialization and the checkpoint
//! format ([`checkpoint`]) are derived.
//!
//! Parameters carry PyTorch's names (`conv1.weight`, `fc1.bias`, …), so a PyTorch module built
//! from the same list loads our files unchanged. Nothing here knows about optimizers, command
//! lines or how the CPU runs a network fast (that is `mnist-cpu`).

mod architecture;
pub mod checkpoint;
mod error;
#[cfg(test)]
mod gradcheck;
mod init;
pub mod layers;
mod network;

pub use architecture::{Architecture, BUILT_IN, CUSTOM};
pub use checkpoint::{Checkpoint, CheckpointMeta, FORMAT_VERSION};
pub use error::ModelError;
pub use init::glorot_bound;
pub use layers::{Layer, LayerError, ParamSpec, Placed, Shape};
pub use network::{max_pool2, relu, Network, Sequential, BATCH_NORM_EPS, BATCH_NORM_MOMENTUM};

/// The model crate's result type.
pub type Result<T> = std::result::Result<T, ModelError>;
