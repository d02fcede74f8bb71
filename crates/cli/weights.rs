//! Turning `--weights` (or the built-in model) into a network and the normalization it was
//! trained with: one place for `eval`, `predict` and `read`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::Device;
use mnist_data::Normalization;
use mnist_model::{Architecture, Checkpoint, CheckpointMeta, Network};

use crate::cli::WeightsArgs;

/// A file of the repository as (its path, its bytes compiled into the binary).
macro_rules! built_in {
    ($file:literal) => {
        ($file, include_bytes!(concat!("../../", $file)))
    };
}

/// The strongest shipped model, built into the binary so that `predict` and `read` work straight
/// after a clone or a `cargo install`, wherever they run from.
static BUILT_IN: (&str, &[u8]) = built_in!("weights/convnet.safetensors");
/// The same network trained on MNIST's digits redrawn as pen lines (`--pen-strokes 1.0`), from
/// two seeds, built in too: they read the digits the image reader redraws (a thin pen line on a
/// photo) better than the convnet, and MNIST's own digits worse, so they only ever see redrawn
/// ones. Two runs of one recipe miss different pen lines, so together they miss fewer
/// (docs/photo-reader-notes.md). Each is its file in the repository and that file's bytes.
static BUILT_IN_PEN: [(&str, &[u8]); 2] = [
    built_in!("weights/pen.safetensors"),
    built_in!("weights/pen-7.safetensors"),
];

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
        None => Checkpoint::from_bytes(BUILT_IN.1, &built_in_name(BUILT_IN.0))
            .context("reading the built-in weights")?,
    };
    loaded(checkpoint, architecture, device)
}

/// The built-in models for redrawn pen strokes ([`BUILT_IN_PEN`]), in order.
pub fn load_pen(device: &Device) -> Result<Vec<LoadedWeights>> {
    BUILT_IN_PEN
        .iter()
        .map(|&(file, bytes)| {
            let checkpoint = Checkpoint::from_bytes(bytes, &built_in_name(file))
                .with_context(|| format!("reading the built-in pen-stroke weights {file}"))?;
            loaded(checkpoint, None, device)
        })
        .collect()
}

/// How a built-in model is named in logs and errors: its file, marked as built in.
fn built_in_name(file: &str) -> PathBuf {
    PathBuf::from(format!("{file} (built in)"))
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
        assert_eq!(loaded.source, built_in_name("weights/convnet.safetensors"));
        let on_disk = std::fs::read(format!("{}/{}", env!("CARGO_MANIFEST_DIR"), BUILT_IN.0));
        assert_eq!(BUILT_IN.1, &on_disk.unwrap()[..]);
    }

    #[test]
    fn the_built_in_pen_models_are_the_shipped_files_and_convnets_trained_on_pen_strokes() {
        let loaded = load_pen(&Device::Cpu).unwrap();
        assert_eq!(loaded.len(), BUILT_IN_PEN.len());
        let mut seeds = Vec::new();
        for (model, (file, bytes)) in loaded.iter().zip(BUILT_IN_PEN) {
            assert_eq!(model.source, built_in_name(file));
            assert_eq!(model.network.architecture.name(), "convnet", "{file}");
            assert_eq!(model.normalization, Normalization::mnist_mean_std());
            let training = model
                .meta
                .training
                .as_ref()
                .expect("the recipe in the metadata");
            assert_eq!(training["pen_strokes"], 1.0, "{file}: {training}");
            seeds.push(training["seed"].clone());
            let on_disk = std::fs::read(format!("{}/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
            assert_eq!(bytes, &on_disk[..], "{file}");
        }
        assert_eq!(seeds, [42, 7], "one recipe from two seeds");
    }
}
