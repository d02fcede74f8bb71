//! Errors of the model crate: every variant names the file or tensor involved.

use std::path::PathBuf;

/// What can go wrong building a network or reading/writing a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error("unknown architecture {found:?}; expected one of: {expected}")]
    UnknownArchitecture { found: String, expected: String },
    #[error(transparent)]
    Layers(#[from] crate::layers::LayerError),
    // The I/O error is part of the message, not a `source()`: printing the chain with `{:#}`
    // would otherwise say it twice.
    #[error("{path}: cannot {action}: {error}")]
    Io {
        path: PathBuf,
        action: &'static str,
        error: std::io::Error,
    },
    #[error("{path}: not written: tensor {name:?} holds {bad} NaN or infinite values (training diverged; lower --lr); the previous checkpoint is kept")]
    NonFiniteWeights {
        path: PathBuf,
        name: String,
        bad: usize,
    },
    #[error("{path}: not a safetensors file ({reason}); pass a checkpoint written by `mnist train` or PyTorch's safetensors.torch.save_file")]
    NotSafetensors { path: PathBuf, reason: String },
    #[error("{path}: tensor {name:?} {problem}; the file does not hold a {architecture} model")]
    TensorMismatch {
        path: PathBuf,
        name: String,
        problem: String,
        architecture: String,
    },
    #[error("{path}: {problem}")]
    BadMetadata { path: PathBuf, problem: String },
    #[error(
        "{path}: tensor {name:?} holds {bad} NaN or infinite values; the checkpoint is unusable"
    )]
    NonFinite {
        path: PathBuf,
        name: String,
        bad: usize,
    },
}
