//! A named, checked layer list: the shipped networks and users' own.

use std::fmt;
use std::str::FromStr;

use mnist_data::Normalization;
use serde::{Deserialize, Serialize};

use crate::layers::{list_text, parse_list, place, Layer, LayerError, ParamSpec, Placed};
use crate::{ModelError, Result};

/// The shipped networks, each defined here once as its layer list.
pub const BUILT_IN: [(&str, &str); 3] = [
    // The Keras tutorial's CNN (693,962 parameters, ~98.5% after 5 epochs).
    (
        "tutorial",
        "conv32x3,relu,pool2,flatten,dense128,relu,dense10",
    ),
    // Two small conv layers: the time-to-99% recipe's network (108,618 parameters).
    (
        "fast",
        "conv16x3,relu,pool2,conv32x3,relu,pool2,flatten,dense128,relu,dense10",
    ),
    // Two VGG-style blocks with batch norm, then a batch-normed hidden layer (≥ 99.5% with
    // augmentation).
    (
        "convnet",
        "conv32x3,bn,relu,conv32x3,bn,relu,pool2,conv64x3,bn,relu,conv64x3,bn,relu,pool2,\
         flatten,dense256,bn,relu,dense10",
    ),
];

/// What a network of a user's own list is called.
pub const CUSTOM: &str = "custom";

/// An old name still read from checkpoints and accepted on the command line: the tutorial's
/// network was once called `seed` (a word that also means the random seed).
const ALIASES: [(&str, &str); 1] = [("seed", "tutorial")];

/// A network: its name and its layers, checked and placed (shapes, parameter names, biases).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Architecture {
    name: String,
    placed: Vec<Placed>,
}

impl Architecture {
    /// The network `layers` describe, named after the shipped network it equals, else
    /// [`CUSTOM`].
    pub fn from_layers(layers: &[Layer]) -> std::result::Result<Self, LayerError> {
        let placed = place(layers)?;
        let text = list_text(layers);
        let name = BUILT_IN
            .iter()
            .find(|(_, list)| *list == text)
            .map_or(CUSTOM, |(name, _)| name);
        Ok(Self {
            name: name.to_string(),
            placed,
        })
    }

    /// Parses and checks a layer list in its text form (see [`crate::layers`]).
    pub fn from_text(text: &str) -> std::result::Result<Self, LayerError> {
        Self::from_layers(&parse_list(text)?)
    }

    /// A shipped network by name (`seed` is read as `tutorial`).
    pub fn built_in(name: &str) -> Option<Self> {
        let name = ALIASES
            .iter()
            .find(|(old, _)| *old == name)
            .map_or(name, |(_, new)| new);
        let (_, list) = BUILT_IN.iter().find(|(n, _)| *n == name)?;
        Some(Self::from_text(list).expect("the shipped layer lists are valid (tested)"))
    }

    pub fn tutorial() -> Self {
        Self::built_in("tutorial").expect("built in")
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn layers(&self) -> impl Iterator<Item = Layer> + '_ {
        self.placed.iter().map(|p| p.layer)
    }

    /// The layer list in its text form.
    pub fn layers_text(&self) -> String {
        list_text(&self.layers().collect::<Vec<_>>())
    }

    /// Each layer with its shapes, parameter name and bias.
    pub fn placed(&self) -> &[Placed] {
        &self.placed
    }

    /// Every tensor of the network, layer by layer.
    pub fn params(&self) -> Vec<ParamSpec> {
        self.placed.iter().flat_map(Placed::params).collect()
    }

    /// Trainable parameters, counted as Keras' `model.summary()` counts them.
    pub fn parameter_count(&self) -> usize {
        self.params()
            .iter()
            .filter(|p| p.trainable)
            .map(ParamSpec::len)
            .sum()
    }

    /// Whether the network has batch-norm statistics (and so behaves differently in training).
    pub fn has_batch_norm(&self) -> bool {
        self.layers().any(|l| l == Layer::BatchNorm)
    }

    /// How `mnist train` scales pixels unless told otherwise: the tutorial's x/255 for networks
    /// without batch norm, PyTorch's usual mean/std for those with it (the convnet's recipe).
    pub fn default_normalization(&self) -> Normalization {
        if self.has_batch_norm() {
            Normalization::mnist_mean_std()
        } else {
            Normalization::Unit
        }
    }

    /// Multiply-adds times two for one image's forward pass.
    pub fn forward_flops(&self) -> u64 {
        self.placed.iter().map(Placed::forward_flops).sum()
    }

    /// The same for one image's training step: the forward pass, every weight gradient, and the
    /// input gradient of every conv or dense layer but the first (nothing before it learns).
    pub fn training_flops(&self) -> u64 {
        let mut first = true;
        let mut total = 0;
        for p in &self.placed {
            let f = p.forward_flops();
            if f > 0 {
                total += if first { 2 * f } else { 3 * f };
                first = false;
            }
        }
        total
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl FromStr for Architecture {
    type Err = ModelError;

    /// A shipped network by name.
    fn from_str(s: &str) -> Result<Self> {
        Self::built_in(s).ok_or_else(|| ModelError::UnknownArchitecture {
            found: s.to_string(),
            expected: BUILT_IN.map(|(n, _)| n).join(", "),
        })
    }
}

/// How an architecture is recorded (checkpoint metadata, training configurations):
/// `{"name": "convnet", "layers": ["conv32x3", "bn", …]}`. Older files recorded a named network
/// with its widths (`{"name": "seed", "config": {"conv_channels": 32, "hidden": 128}}`); those
/// are read into the same layer lists.
#[derive(Serialize, Deserialize)]
struct Recorded {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    layers: Option<Vec<Layer>>,
    #[serde(default, skip_serializing)]
    config: Option<serde_json::Value>,
}

impl Serialize for Architecture {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        Recorded {
            name: self.name.clone(),
            layers: Some(self.layers().collect()),
            config: None,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Architecture {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let recorded = Recorded::deserialize(deserializer)?;
        let layers = match (recorded.layers, recorded.config) {
            (Some(layers), _) => layers,
            (None, Some(config)) => {
                legacy_layers(&recorded.name, &config).map_err(serde::de::Error::custom)?
            }
            (None, None) => {
                return Err(serde::de::Error::custom(format!(
                    "architecture {:?} records neither its layers nor its config",
                    recorded.name
                )))
            }
        };
        Architecture::from_layers(&layers).map_err(serde::de::Error::custom)
    }
}

/// The layer list of a network recorded by name and widths (format version 1).
fn legacy_layers(
    name: &str,
    config: &serde_json::Value,
) -> std::result::Result<Vec<Layer>, String> {
    let width = |key: &str| -> std::result::Result<usize, String> {
        config
            .get(key)
            .and_then(|v| v.as_u64())
            .map(|v| v as usize)
            .ok_or_else(|| format!("the {name} config has no width {key:?}"))
    };
    let text = match name {
        "seed" => format!(
            "conv{}x3,relu,pool2,flatten,dense{},relu,dense10",
            width("conv_channels")?,
            width("hidden")?
        ),
        "fast" => format!(
            "conv{}x3,relu,pool2,conv{}x3,relu,pool2,flatten,dense{},relu,dense10",
            width("conv1_channels")?,
            width("conv2_channels")?,
            width("hidden")?
        ),
        "convnet" => {
            let (c1, c2) = (width("block1_channels")?, width("block2_channels")?);
            format!(
                "conv{c1}x3,bn,relu,conv{c1}x3,bn,relu,pool2,conv{c2}x3,bn,relu,conv{c2}x3,bn,relu,\
                 pool2,flatten,dense{},bn,relu,dense10",
                width("hidden")?
            )
        }
        other => return Err(format!("unknown architecture {other:?}")),
    };
    parse_list(&text).map_err(|e| e.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shapes(arch: &Architecture) -> Vec<(String, Vec<usize>)> {
        arch.params()
            .into_iter()
            .map(|p| (p.name, p.dims))
            .collect()
    }

    fn named(pairs: &[(&str, &[usize])]) -> Vec<(String, Vec<usize>)> {
        pairs
            .iter()
            .map(|(n, d)| (n.to_string(), d.to_vec()))
            .collect()
    }

    #[test]
    fn the_tutorial_has_keras_shapes_and_parameter_count() {
        let arch: Architecture = "tutorial".parse().unwrap();
        assert_eq!(
            shapes(&arch),
            named(&[
                ("conv1.weight", &[32, 1, 3, 3]),
                ("conv1.bias", &[32]),
                ("fc1.weight", &[128, 5408]),
                ("fc1.bias", &[128]),
                ("fc2.weight", &[10, 128]),
                ("fc2.bias", &[10]),
            ])
        );
        // Keras' model.summary() of the tutorial network: "Total params: 693,962".
        assert_eq!(arch.parameter_count(), 693_962);
        assert!(!arch.has_batch_norm());
        assert_eq!(arch.default_normalization(), Normalization::Unit);
    }

    #[test]
    fn fast_and_convnet_have_their_shapes_and_counts() {
        let fast: Architecture = "fast".parse().unwrap();
        assert_eq!(
            shapes(&fast),
            named(&[
                ("conv1.weight", &[16, 1, 3, 3]),
                ("conv1.bias", &[16]),
                ("conv2.weight", &[32, 16, 3, 3]),
                ("conv2.bias", &[32]),
                ("fc1.weight", &[128, 800]),
                ("fc1.bias", &[128]),
                ("fc2.weight", &[10, 128]),
                ("fc2.bias", &[10]),
            ])
        );
        assert_eq!(fast.parameter_count(), 160 + 4640 + 102_528 + 1290);
        let convnet: Architecture = "convnet".parse().unwrap();
        // conv 288+9216+18432+36864, bn 2*(32+32+64+64+256), fc1 1024*256, fc2 2570.
        assert_eq!(
            convnet.parameter_count(),
            288 + 9216 + 18432 + 36864 + 2 * 448 + 262_144 + 2570
        );
        let names: Vec<String> = convnet.params().into_iter().map(|p| p.name).collect();
        assert!(names.contains(&"bn5.running_var".to_string()));
        assert!(!names
            .iter()
            .any(|n| n.starts_with("conv") && n.ends_with(".bias")));
        assert!(!names.contains(&"fc1.bias".to_string()));
        assert!(names.contains(&"fc2.bias".to_string()));
        assert_eq!(
            convnet.default_normalization(),
            Normalization::mnist_mean_std()
        );
        // About 20 MFLOP per image forward, over half of it in the second conv layer.
        assert_eq!(convnet.forward_flops(), 19_940_608);
    }

    #[test]
    fn names_aliases_and_custom_lists() {
        assert_eq!(Architecture::built_in("seed").unwrap().name(), "tutorial");
        let err = "resnet".parse::<Architecture>().unwrap_err().to_string();
        assert!(
            err.contains("resnet") && err.contains("tutorial, fast, convnet"),
            "{err}"
        );
        let same = Architecture::from_text("conv32x3 relu pool2 flatten dense128 relu dense10");
        assert_eq!(same.unwrap().name(), "tutorial");
        let own = Architecture::from_text("conv8x5,relu,pool2,flatten,dense10").unwrap();
        assert_eq!(own.name(), CUSTOM);
        assert_eq!(own.layers_text(), "conv8x5,relu,pool2,flatten,dense10");
    }

    #[test]
    fn records_round_trip_and_old_records_still_load() {
        for (name, _) in BUILT_IN {
            let arch: Architecture = name.parse().unwrap();
            let json = serde_json::to_string(&arch).unwrap();
            assert_eq!(serde_json::from_str::<Architecture>(&json).unwrap(), arch);
        }
        let own = Architecture::from_text("conv8x5,bn,relu,pool2,flatten,dense10").unwrap();
        let json = serde_json::to_string(&own).unwrap();
        assert_eq!(
            json,
            r#"{"name":"custom","layers":["conv8x5","bn","relu","pool2","flatten","dense10"]}"#
        );
        let old = [
            (
                r#"{"name":"seed","config":{"conv_channels":32,"hidden":128}}"#,
                "tutorial",
            ),
            (
                r#"{"name":"fast","config":{"conv1_channels":16,"conv2_channels":32,"hidden":128}}"#,
                "fast",
            ),
            (
                r#"{"name":"convnet","config":{"block1_channels":32,"block2_channels":64,"hidden":256}}"#,
                "convnet",
            ),
        ];
        for (json, name) in old {
            let arch: Architecture = serde_json::from_str(json).unwrap();
            assert_eq!(arch, name.parse().unwrap(), "{json}");
        }
        let narrow: Architecture =
            serde_json::from_str(r#"{"name":"seed","config":{"conv_channels":4,"hidden":16}}"#)
                .unwrap();
        assert_eq!(
            narrow.layers_text(),
            "conv4x3,relu,pool2,flatten,dense16,relu,dense10"
        );
        let bad = serde_json::from_str::<Architecture>(r#"{"name":"x","layers":["conv8x3"]}"#);
        assert!(bad.unwrap_err().to_string().contains("dense10"));
    }
}
