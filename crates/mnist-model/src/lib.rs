//! The network architectures, their seeded initialization and their checkpoint format.
//!
//! Every layer is built from a [`candle_nn::VarBuilder`] whose prefixes are the struct's field
//! names, so the tensor names in a checkpoint are PyTorch's (`conv1.weight`, `fc1.bias`, …) and a
//! PyTorch module with the same field names loads our files unchanged. Nothing here knows about
//! devices, optimizers or command lines.

mod architecture;
pub mod checkpoint;
mod classifier;
pub mod conv;
mod convnet;
mod error;
mod fast;
#[cfg(test)]
mod gradcheck;
mod init;
pub mod linear;
pub mod ops;
mod seed;

pub use architecture::{Architecture, Model, Network};
pub use checkpoint::{Checkpoint, CheckpointMeta, FORMAT_VERSION};
pub use classifier::{ranked, Classifier, CLASSIFY_BATCH_SIZE};
pub use convnet::{ConvNet, ConvNetConfig, BATCH_NORM_EPS};
pub use error::ModelError;
pub use fast::{FastConfig, FastNet};
pub use init::glorot_bound;
pub use seed::{SeedConfig, SeedNet};

/// The model crate's result type.
pub type Result<T> = std::result::Result<T, ModelError>;
