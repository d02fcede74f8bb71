//! Which network, its configuration, and a built network with its variables.

use std::{fmt, str::FromStr};

use candle_core::{DType, Device, ModuleT, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use crate::{
    init, ConvNet, ConvNetConfig, FastConfig, FastNet, ModelError, Result, SeedConfig, SeedNet,
};

/// An architecture together with its layer configuration: everything needed to rebuild the
/// exact tensor shapes of a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", content = "config", rename_all = "lowercase")]
pub enum Architecture {
    /// The Keras tutorial's CNN (~98.5% after 5 epochs).
    Seed(SeedConfig),
    /// Two conv blocks with batch norm (≥ 99.5% with augmentation).
    Convnet(ConvNetConfig),
    /// Two small conv layers: the time-to-99% recipe's network.
    Fast(FastConfig),
}

impl Architecture {
    pub const NAMES: [&'static str; 3] = ["seed", "convnet", "fast"];

    pub fn name(&self) -> &'static str {
        match self {
            Self::Seed(_) => "seed",
            Self::Convnet(_) => "convnet",
            Self::Fast(_) => "fast",
        }
    }

    /// Whether the network has batch-norm statistics (and so behaves differently in training).
    pub fn has_batch_norm(&self) -> bool {
        matches!(self, Self::Convnet(_))
    }

    /// Images per forward pass when evaluating (results do not depend on it). The layers with an
    /// im2col matrix (`fast`, `convnet`) run faster and far leaner in batches of 128; `seed`'s
    /// fc1 GEMM re-packs its 2.8 MB of weights once per batch and prefers 256. Measured with
    /// `mnist eval --batch-size` on a 2-core Intel Xeon: `seed` 0.20 s at 256 against 0.25 s at
    /// 128; `fast` 0.25 s and 108 MB peak at 128 against 0.27-0.35 s and 139 MB at 256; `convnet`
    /// 5.1 s and 234 MB at 128 against 6.1 s and 416 MB at 256.
    pub fn eval_batch_size(&self) -> usize {
        match self {
            Self::Seed(_) => 256,
            Self::Convnet(_) | Self::Fast(_) => 128,
        }
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Architecture {
    type Err = ModelError;

    /// The named architecture with its default configuration.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "seed" => Ok(Self::Seed(SeedConfig::default())),
            "convnet" => Ok(Self::Convnet(ConvNetConfig::default())),
            "fast" => Ok(Self::Fast(FastConfig::default())),
            _ => Err(ModelError::UnknownArchitecture {
                found: s.to_string(),
                expected: Self::NAMES.join(", "),
            }),
        }
    }
}

/// A built network of either architecture. (Layers hold reference-counted tensors, so the size
/// difference between variants is a few hundred bytes of handles, built once.)
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Model {
    Seed(SeedNet),
    Convnet(ConvNet),
    Fast(FastNet),
}

impl ModuleT for Model {
    fn forward_t(&self, xs: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        match self {
            Self::Seed(m) => m.forward_t(xs, train),
            Self::Convnet(m) => m.forward_t(xs, train),
            Self::Fast(m) => m.forward_t(xs, train),
        }
    }
}

/// A model plus the variables behind it. The `VarMap` is the single owner of the weights: the
/// optimizer updates its variables in place and checkpoints are written from it.
pub struct Network {
    pub architecture: Architecture,
    pub varmap: VarMap,
    pub model: Model,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("architecture", &self.architecture)
            .finish_non_exhaustive()
    }
}

impl Network {
    /// Builds `architecture` on `device` with weights drawn from `seed` (identical on every run
    /// and every device, since the values are drawn on the host).
    pub fn seeded(architecture: Architecture, seed: u64, device: &Device) -> Result<Self> {
        let network = Self::uninitialized(architecture, device)?;
        init::init_seeded(&network.varmap, seed)?;
        Ok(network)
    }

    /// Builds the variables with candle's (unseeded) initializers: only for loading.
    pub(crate) fn uninitialized(architecture: Architecture, device: &Device) -> Result<Self> {
        let varmap = VarMap::new();
        let model = build(
            &architecture,
            VarBuilder::from_varmap(&varmap, DType::F32, device),
        )?;
        Ok(Self {
            architecture,
            varmap,
            model,
        })
    }

    /// A copy of the model over detached weights, for inference. Results computed from
    /// variables carry the whole forward graph (every activation) until they are dropped; a
    /// frozen model's intermediates are freed as soon as the next layer has used them, which is
    /// what keeps batched evaluation small.
    pub fn frozen(&self) -> Result<Model> {
        let vars = self.named_vars();
        let device = vars
            .first()
            .map(|(_, v)| v.device().clone())
            .unwrap_or(Device::Cpu);
        let tensors = vars
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().detach()))
            .collect();
        build(
            &self.architecture,
            VarBuilder::from_tensors(tensors, DType::F32, &device),
        )
    }

    /// Variables sorted by name: the order that optimizers, checkpoints and tests rely on.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let vars = self.varmap.data().lock().unwrap_or_else(|e| e.into_inner());
        let mut named: Vec<(String, Var)> = vars
            .iter()
            .map(|(name, var)| (name.clone(), var.clone()))
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named
    }

    /// The variables gradient descent updates: all but batch-norm running statistics.
    pub fn trainable_vars(&self) -> Vec<(String, Var)> {
        self.named_vars()
            .into_iter()
            .filter(|(name, _)| !is_running_statistic(name))
            .collect()
    }

    /// Trainable parameters, counted as Keras' `model.summary()` counts them.
    pub fn parameter_count(&self) -> usize {
        self.trainable_vars()
            .iter()
            .map(|(_, v)| v.elem_count())
            .sum()
    }

    pub fn forward(&self, xs: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.model.forward_t(xs, train)
    }
}

fn build(architecture: &Architecture, vb: VarBuilder) -> Result<Model> {
    Ok(match architecture {
        Architecture::Seed(config) => Model::Seed(SeedNet::new(config, vb)?),
        Architecture::Convnet(config) => Model::Convnet(ConvNet::new(config, vb)?),
        Architecture::Fast(config) => Model::Fast(FastNet::new(config, vb)?),
    })
}

fn is_running_statistic(name: &str) -> bool {
    name.ends_with(".running_mean") || name.ends_with(".running_var")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_model_has_the_tutorial_shapes_and_parameter_count() {
        let net = Network::seeded("seed".parse().unwrap(), 0, &Device::Cpu).unwrap();
        let shapes: Vec<(String, Vec<usize>)> = net
            .named_vars()
            .into_iter()
            .map(|(n, v)| (n, v.dims().to_vec()))
            .collect();
        let expected = [
            ("conv1.bias", vec![32]),
            ("conv1.weight", vec![32, 1, 3, 3]),
            ("fc1.bias", vec![128]),
            ("fc1.weight", vec![128, 5408]),
            ("fc2.bias", vec![10]),
            ("fc2.weight", vec![10, 128]),
        ];
        let expected: Vec<(String, Vec<usize>)> = expected
            .into_iter()
            .map(|(n, s)| (n.to_string(), s))
            .collect();
        assert_eq!(shapes, expected);
        // Keras' model.summary() of the tutorial network: "Total params: 693,962".
        assert_eq!(net.parameter_count(), 693_962);
        let logits = net
            .forward(
                &Tensor::zeros((3, 1, 28, 28), DType::F32, &Device::Cpu).unwrap(),
                false,
            )
            .unwrap();
        assert_eq!(logits.dims(), &[3, 10]);
    }

    #[test]
    fn convnet_output_is_logits_per_image_in_both_modes() {
        let net = Network::seeded("convnet".parse().unwrap(), 0, &Device::Cpu).unwrap();
        let xs = Tensor::randn(0f32, 1., (4, 1, 28, 28), &Device::Cpu).unwrap();
        assert_eq!(net.forward(&xs, true).unwrap().dims(), &[4, 10]);
        assert_eq!(net.forward(&xs, false).unwrap().dims(), &[4, 10]);
        // conv 288+9216+18432+36864, bn 2*(32+32+64+64+256), fc1 1024*256, fc2 2570.
        assert_eq!(
            net.parameter_count(),
            288 + 9216 + 18432 + 36864 + 2 * 448 + 262_144 + 2570
        );
        assert!(net.named_vars().iter().any(|(n, _)| n == "bn5.running_var"));
    }

    #[test]
    fn fast_model_has_two_conv_layers_and_its_parameter_count() {
        let net = Network::seeded("fast".parse().unwrap(), 0, &Device::Cpu).unwrap();
        let shapes: Vec<(String, Vec<usize>)> = net
            .named_vars()
            .into_iter()
            .map(|(n, v)| (n, v.dims().to_vec()))
            .collect();
        let expected: Vec<(String, Vec<usize>)> = [
            ("conv1.bias", vec![16]),
            ("conv1.weight", vec![16, 1, 3, 3]),
            ("conv2.bias", vec![32]),
            ("conv2.weight", vec![32, 16, 3, 3]),
            ("fc1.bias", vec![128]),
            ("fc1.weight", vec![128, 800]),
            ("fc2.bias", vec![10]),
            ("fc2.weight", vec![10, 128]),
        ]
        .into_iter()
        .map(|(n, s)| (n.to_string(), s))
        .collect();
        assert_eq!(shapes, expected);
        assert_eq!(net.parameter_count(), 160 + 4640 + 102_528 + 1290);
        let xs = Tensor::randn(0f32, 1., (3, 1, 28, 28), &Device::Cpu).unwrap();
        assert_eq!(net.forward(&xs, true).unwrap().dims(), &[3, 10]);
    }

    #[test]
    fn same_seed_same_weights_different_seed_different_weights() {
        let flat = |seed| {
            let net = Network::seeded("seed".parse().unwrap(), seed, &Device::Cpu).unwrap();
            net.named_vars()
                .into_iter()
                .map(|(_, v)| v.flatten_all().unwrap().to_vec1::<f32>().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(flat(1), flat(1));
        assert_ne!(flat(1), flat(2));
    }

    #[test]
    fn unknown_architecture_names_the_choices() {
        let err = "resnet".parse::<Architecture>().unwrap_err().to_string();
        assert!(
            err.contains("resnet") && err.contains("seed, convnet, fast"),
            "{err}"
        );
    }
}
