//! Turning `--weights` (or the built-in model) into a network and the normalization it was
//! trained with: one place for `eval`, `predict` and `read`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::Device;
use mnist_data::Normalization;
use mnist_model::{Architecture, Checkpoint, CheckpointMeta, Network};

use crate::cli::WeightsArgs;

/// The strongest shipped model, built into the binary so that `predict` and `read` work straight
/// after a clone or a `cargo install`, wherever they run from.
static BUILT_IN: &[u8] = include_bytes!("../../weights/convnet.safetensors");
/// How the built-in model is named in logs and errors.
pub const BUILT_IN_NAME: &str = "weights/convnet.safetensors (built in)";
/// The same network trained on MNIST's digits redrawn as pen lines (`--pen-strokes 1.0`), built
/// in too: it reads the digits the image reader redraws (a thin pen line on a photo) better than
/// the convnet, and MNIST's own digits worse, so it only ever sees redrawn ones.
static BUILT_IN_PEN: &[u8] = include_bytes!("../../weights/pen.safetensors");
const BUILT_IN_PEN_NAME: &str = "weights/pen.safetensors (built in)";

/// A loaded model and where it came from.
pub struct LoadedWeights {
    pub network: Network,
    pub normalization: Normalization,
    pub source: PathBuf,
    /// The file's own description, or a minimal one (architecture and normalization) for a
    /// file without our metadata.
    pub meta: CheckpointMeta,
}

/// Loads `path`, or the built-in model when `None`. `architecture` is the network of a file
/// without our metadata (for example a PyTorch state_dict); its input is then normalized the way
/// `mnist train` would for that network.
pub fn load(
    path: Option<&Path>,
    architecture: Option<Architecture>,
    device: &Device,
) -> Result<LoadedWeights> {
    let checkpoint = match path {
        Some(path) => Checkpoint::read(path).context("reading --weights")?,
        None => Checkpoint::from_bytes(BUILT_IN, Path::new(BUILT_IN_NAME))
            .context("reading the built-in weights")?,
    };
    loaded(checkpoint, architecture, device)
}

/// The built-in model for redrawn pen strokes ([`BUILT_IN_PEN`]).
pub fn load_pen(device: &Device) -> Result<LoadedWeights> {
    let checkpoint = Checkpoint::from_bytes(BUILT_IN_PEN, Path::new(BUILT_IN_PEN_NAME))
        .context("reading the built-in pen-stroke weights")?;
    loaded(checkpoint, None, device)
}

fn loaded(
    checkpoint: Checkpoint,
    architecture: Option<Architecture>,
    device: &Device,
) -> Result<LoadedWeights> {
    let network = checkpoint
        .to_network(architecture, device)
        .context("loading --weights")?;
    // A file without metadata only gets this far with --model or --layers (to_network refuses
    // it otherwise).
    let normalization = match &checkpoint.meta {
        Some(meta) => meta.normalization,
        None => network.architecture.default_normalization(),
    };
    let meta = checkpoint
        .meta
        .clone()
        .unwrap_or_else(|| CheckpointMeta::new(network.architecture.clone(), normalization));
    Ok(LoadedWeights {
        network,
        normalization,
        source: checkpoint.path,
        meta,
    })
}

impl WeightsArgs {
    /// Loads what `--weights` and `--model` name.
    pub fn load(&self, device: &Device) -> Result<LoadedWeights> {
        if self.weights.is_none() && self.network.architecture().is_some() {
            anyhow::bail!("--model and --layers describe a --weights file; give one");
        }
        load(self.weights.as_deref(), self.network.architecture(), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_model_is_the_shipped_convnet() {
        let no_flags = WeightsArgs {
            weights: None,
            network: crate::cli::NetworkArgs {
                model: None,
                layers: None,
            },
        };
        let loaded = no_flags.load(&Device::Cpu).unwrap();
        assert_eq!(loaded.network.architecture.name(), "convnet");
        assert_eq!(loaded.normalization, Normalization::mnist_mean_std());
        let on_disk = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/weights/convnet.safetensors"
        ))
        .unwrap();
        assert_eq!(BUILT_IN, &on_disk[..]);
    }

    #[test]
    fn the_built_in_pen_model_is_the_shipped_file_and_a_convnet_trained_on_pen_strokes() {
        let loaded = load_pen(&Device::Cpu).unwrap();
        assert_eq!(loaded.network.architecture.name(), "convnet");
        assert_eq!(loaded.normalization, Normalization::mnist_mean_std());
        let training = loaded
            .meta
            .training
            .as_ref()
            .expect("the recipe in the metadata");
        assert_eq!(training["pen_strokes"], 1.0, "{training}");
        let on_disk = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/weights/pen.safetensors"
        ))
        .unwrap();
        assert_eq!(BUILT_IN_PEN, &on_disk[..]);
    }
}
