//! A network as a list of layers: the one definition from which everything else is derived (the
//! candle model, parameter names and shapes, the checkpoint check, the CPU backend's plan, the
//! ONNX graph and the PyTorch module), as Keras' `Sequential` gave the tutorial's readers.
//!
//! The text form is a comma-separated list, for example the tutorial's network:
//! `conv32x3,relu,pool2,flatten,dense128,relu,dense10`.
//!
//! | token | layer | PyTorch |
//! | --- | --- | --- |
//! | `conv<N>x<K>` | `K`x`K` convolution to `N` channels, stride 1, no padding | `nn.Conv2d(in, N, K)` |
//! | `bn` | batch normalization of the conv or dense layer just before | `nn.BatchNorm2d` / `nn.BatchNorm1d` |
//! | `relu` | ReLU | `nn.ReLU()` |
//! | `pool2` | 2x2 max-pool, stride 2 (an odd last row or column is dropped) | `nn.MaxPool2d(2)` |
//! | `flatten` | maps to a vector, in (channel, row, column) order | `nn.Flatten()` |
//! | `dense<N>` | fully connected layer to `N` outputs | `nn.Linear(in, N)` |
//!
//! Conv and dense layers carry a bias unless `bn` follows them (it would cancel the bias). The
//! input is one 28x28 channel; the last layer must be `dense10`, whose outputs are the logits.
//! Parameters are named by kind and position, PyTorch's way: `conv1`, `conv2`, …, `bn1`, …,
//! `fc1`, … (so `conv1.weight`, `bn1.running_var`, `fc2.bias`).

use std::fmt;
use std::str::FromStr;

use mnist_data::{IMAGE_SIDE, NUM_CLASSES};
use serde::{Deserialize, Serialize};

/// One layer, as written in a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// `conv<out>x<kernel>`.
    Conv { out: usize, kernel: usize },
    /// `bn`.
    BatchNorm,
    /// `relu`.
    Relu,
    /// `pool2`.
    MaxPool2,
    /// `flatten`.
    Flatten,
    /// `dense<out>`.
    Dense { out: usize },
}

/// The most channels or units one layer may have, and the largest kernel.
pub const MAX_WIDTH: usize = 4096;
/// The most trainable parameters a network may have (400 MB of weights, 1.6 GB with Adam's
/// moments and the gradient): anything larger is a typo, not an MNIST model.
pub const MAX_PARAMETERS: usize = 100_000_000;
/// The most activation values one image may produce across all layers (16 MB per image in f32;
/// a batch of 32 would need 0.5 GB for the forward pass alone). The tutorial's network produces
/// 27,000, the convnet 130,000.
pub const MAX_ACTIVATIONS_PER_IMAGE: usize = 4_000_000;

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layer::Conv { out, kernel } => write!(f, "conv{out}x{kernel}"),
            Layer::BatchNorm => f.write_str("bn"),
            Layer::Relu => f.write_str("relu"),
            Layer::MaxPool2 => f.write_str("pool2"),
            Layer::Flatten => f.write_str("flatten"),
            Layer::Dense { out } => write!(f, "dense{out}"),
        }
    }
}

/// The tokens a list may hold, for error messages.
const TOKENS: &str = "conv<N>x<K>, bn, relu, pool2, flatten, dense<N>";

impl FromStr for Layer {
    type Err = String;

    fn from_str(token: &str) -> Result<Self, String> {
        let number = |digits: &str| -> Option<usize> {
            (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| digits.parse().ok())
                .flatten()
        };
        let layer = match token {
            "bn" => Some(Layer::BatchNorm),
            "relu" => Some(Layer::Relu),
            "pool2" => Some(Layer::MaxPool2),
            "flatten" => Some(Layer::Flatten),
            _ => {
                if let Some(rest) = token.strip_prefix("conv") {
                    rest.split_once('x').and_then(|(out, kernel)| {
                        Some(Layer::Conv {
                            out: number(out)?,
                            kernel: number(kernel)?,
                        })
                    })
                } else if let Some(out) = token.strip_prefix("dense") {
                    number(out).map(|out| Layer::Dense { out })
                } else {
                    None
                }
            }
        };
        layer.ok_or_else(|| format!("unknown layer {token:?}; layers are {TOKENS}"))
    }
}

/// What flows between layers for one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `channels` maps of `side` x `side` (MNIST's are square, and every layer keeps them so).
    Map { channels: usize, side: usize },
    /// A vector of `n` features.
    Flat(usize),
}

impl Shape {
    /// The network's input: one 28x28 channel.
    pub const INPUT: Shape = Shape::Map {
        channels: 1,
        side: IMAGE_SIDE,
    };

    /// Values per image.
    pub fn len(&self) -> usize {
        match *self {
            Shape::Map { channels, side } => channels * side * side,
            Shape::Flat(n) => n,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Channels of a map, or features of a vector: what a batch norm normalizes over.
    pub fn channels(&self) -> usize {
        match *self {
            Shape::Map { channels, .. } => channels,
            Shape::Flat(n) => n,
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Map { channels, side } => write!(f, "[{channels}, {side}, {side}]"),
            Shape::Flat(n) => write!(f, "[{n}]"),
        }
    }
}

/// A layer placed in a network: its shapes, its parameters' name and whether it has a bias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub layer: Layer,
    pub input: Shape,
    pub output: Shape,
    /// Prefix of the layer's parameters (`conv1`, `bn2`, `fc1`); `None` for layers without any.
    pub name: Option<String>,
    /// Conv and dense layers: whether they add a bias (not when batch norm follows).
    pub bias: bool,
}

/// How a parameter is initialized (Keras' defaults, as the tutorial uses them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// Glorot/Xavier uniform (conv and dense weights).
    GlorotUniform,
    Zeros,
    Ones,
}

/// One tensor of a network: a trainable parameter or a batch-norm running statistic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSpec {
    /// PyTorch's name, for example `fc1.weight`.
    pub name: String,
    /// PyTorch's shape: conv `[out, in, k, k]`, dense `[out, in]`, vectors `[n]`.
    pub dims: Vec<usize>,
    pub init: Init,
    /// False for batch norm's running mean and variance, which training updates by averaging.
    pub trainable: bool,
}

impl ParamSpec {
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Placed {
    /// The layer's tensors, in PyTorch's `state_dict` order.
    pub fn params(&self) -> Vec<ParamSpec> {
        let Some(name) = &self.name else {
            return Vec::new();
        };
        let spec = |suffix: &str, dims: Vec<usize>, init, trainable| ParamSpec {
            name: format!("{name}.{suffix}"),
            dims,
            init,
            trainable,
        };
        let mut out = Vec::new();
        match self.layer {
            Layer::Conv { out: o, kernel } => {
                let c = self.input.channels();
                out.push(spec(
                    "weight",
                    vec![o, c, kernel, kernel],
                    Init::GlorotUniform,
                    true,
                ));
                if self.bias {
                    out.push(spec("bias", vec![o], Init::Zeros, true));
                }
            }
            Layer::Dense { out: o } => {
                out.push(spec(
                    "weight",
                    vec![o, self.input.len()],
                    Init::GlorotUniform,
                    true,
                ));
                if self.bias {
                    out.push(spec("bias", vec![o], Init::Zeros, true));
                }
            }
            Layer::BatchNorm => {
                let c = self.input.channels();
                out.push(spec("weight", vec![c], Init::Ones, true));
                out.push(spec("bias", vec![c], Init::Zeros, true));
                out.push(spec("running_mean", vec![c], Init::Zeros, false));
                out.push(spec("running_var", vec![c], Init::Ones, false));
            }
            Layer::Relu | Layer::MaxPool2 | Layer::Flatten => {}
        }
        out
    }

    /// Multiply-adds times two for one image's forward pass (convolutions and dense layers; the
    /// elementwise layers are a rounding error beside them).
    pub fn forward_flops(&self) -> u64 {
        match (self.layer, self.output) {
            (Layer::Conv { kernel, .. }, Shape::Map { channels, side }) => {
                2 * (channels * self.input.channels() * kernel * kernel * side * side) as u64
            }
            (Layer::Dense { out }, _) => 2 * (out * self.input.len()) as u64,
            _ => 0,
        }
    }
}

/// Why a layer list cannot be built: one line naming the layer (1-based position and token)
/// and the shapes involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LayerError(pub String);

/// Parses the text form: tokens separated by commas, spaces or newlines; `#` starts a comment
/// that runs to the end of the line.
pub fn parse_list(text: &str) -> Result<Vec<Layer>, LayerError> {
    let tokens = text
        .lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .flat_map(|line| line.split(|c: char| c == ',' || c.is_whitespace()))
        .filter(|t| !t.is_empty());
    let mut layers = Vec::new();
    for (i, token) in tokens.enumerate() {
        let layer = token
            .parse()
            .map_err(|e| LayerError(format!("layer {}: {e}", i + 1)))?;
        layers.push(layer);
    }
    if layers.is_empty() {
        return Err(LayerError(format!(
            "the layer list is empty; write it as comma-separated layers ({TOKENS}), for example {}",
            crate::Architecture::tutorial().layers_text()
        )));
    }
    Ok(layers)
}

/// The text form of `layers`, which [`parse_list`] reads back.
pub fn list_text(layers: &[Layer]) -> String {
    layers
        .iter()
        .map(|l| l.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Walks `layers` from the 28x28 input, checking that each fits what comes before it, and
/// places each: its shapes, its name and its bias. Every problem is one line naming the layer.
pub fn place(layers: &[Layer]) -> Result<Vec<Placed>, LayerError> {
    let mut shape = Shape::INPUT;
    let mut placed: Vec<Placed> = Vec::with_capacity(layers.len());
    let (mut convs, mut norms, mut denses) = (0, 0, 0);
    let mut activations = 0usize;
    let mut parameters = 0usize;
    for (i, &layer) in layers.iter().enumerate() {
        let at = |problem: String| LayerError(format!("layer {} ({layer}): {problem}", i + 1));
        let width = |n: usize, what: &str| {
            if n == 0 || n > MAX_WIDTH {
                Err(at(format!("{n} {what} is out of range: 1 to {MAX_WIDTH}")))
            } else {
                Ok(())
            }
        };
        let (output, name) = match (layer, shape) {
            (Layer::Conv { out, kernel }, Shape::Map { channels, side }) => {
                width(out, "channels")?;
                if kernel == 0 || kernel > side {
                    return Err(at(format!(
                        "a {kernel}x{kernel} kernel does not fit the {side}x{side} maps it gets ({shape})"
                    )));
                }
                let _ = channels;
                convs += 1;
                (
                    Shape::Map {
                        channels: out,
                        side: side + 1 - kernel,
                    },
                    Some(format!("conv{convs}")),
                )
            }
            (Layer::Conv { .. }, Shape::Flat(_)) => {
                return Err(at(format!(
                "a convolution needs maps, but it gets the flat {shape} of a layer after flatten"
            )))
            }
            (Layer::MaxPool2, Shape::Map { channels, side }) => {
                if side < 2 {
                    return Err(at(format!(
                        "pooling would shrink the {side}x{side} maps ({shape}) below 1x1"
                    )));
                }
                (
                    Shape::Map {
                        channels,
                        side: side / 2,
                    },
                    None,
                )
            }
            (Layer::MaxPool2, Shape::Flat(_)) => {
                return Err(at(format!(
                    "pooling needs maps, but it gets the flat {shape} of a layer after flatten"
                )))
            }
            (Layer::Flatten, Shape::Map { .. }) => (Shape::Flat(shape.len()), None),
            (Layer::Flatten, Shape::Flat(_)) => {
                return Err(at("the input is flat already: flatten once".into()))
            }
            (Layer::Dense { out }, Shape::Flat(_)) => {
                width(out, "units")?;
                denses += 1;
                (Shape::Flat(out), Some(format!("fc{denses}")))
            }
            (Layer::Dense { .. }, Shape::Map { .. }) => {
                return Err(at(format!(
                "a dense layer needs a flat input, but it gets maps {shape}; put flatten before it"
            )))
            }
            (Layer::BatchNorm, _) => {
                let after = placed.last().map(|p| p.layer);
                if !matches!(after, Some(Layer::Conv { .. } | Layer::Dense { .. })) {
                    return Err(at(
                        "batch norm must directly follow a conv or dense layer".into()
                    ));
                }
                norms += 1;
                (shape, Some(format!("bn{norms}")))
            }
            (Layer::Relu, _) => (shape, None),
        };
        // A conv or dense layer followed by batch norm needs no bias.
        if layer == Layer::BatchNorm {
            if let Some(previous) = placed.last_mut() {
                previous.bias = false;
            }
        }
        activations = activations.saturating_add(output.len());
        if activations > MAX_ACTIVATIONS_PER_IMAGE {
            return Err(at(format!(
                "the layers up to here produce {activations} values per image, more than the \
                 {MAX_ACTIVATIONS_PER_IMAGE} allowed (a batch of 32 would need {} MB); use fewer \
                 or narrower layers",
                activations.saturating_mul(32 * 4) >> 20
            )));
        }
        let node = Placed {
            layer,
            input: shape,
            output,
            name,
            bias: matches!(layer, Layer::Conv { .. } | Layer::Dense { .. }),
        };
        parameters = parameters.saturating_add(node.params().iter().map(ParamSpec::len).sum());
        if parameters > MAX_PARAMETERS {
            return Err(at(format!(
                "the network has {parameters} parameters up to here, more than the \
                 {MAX_PARAMETERS} allowed ({} MB of weights); use fewer or narrower layers",
                parameters.saturating_mul(4) >> 20
            )));
        }
        placed.push(node);
        shape = output;
    }
    match placed.last() {
        Some(Placed {
            layer: Layer::Dense { out: NUM_CLASSES },
            ..
        }) => Ok(placed),
        Some(last) => Err(LayerError(format!(
            "the last layer must be dense{NUM_CLASSES} (one output per digit), not {} (output {})",
            last.layer, last.output
        ))),
        None => Err(LayerError("the layer list is empty".into())),
    }
}

/// Serialized as the text form, so checkpoints and `--layers` files read the same.
impl Serialize for Layer {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Layer {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let token = String::deserialize(deserializer)?;
        token.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(list: &str) -> String {
        match parse_list(list)
            .map_err(|e| e.0)
            .and_then(|l| place(&l).map_err(|e| e.0))
        {
            Ok(_) => panic!("{list} was accepted"),
            Err(e) => e,
        }
    }

    #[test]
    fn the_text_form_round_trips() {
        let text = "conv32x3,bn,relu,pool2,flatten,dense128,relu,dense10";
        let layers = parse_list(text).unwrap();
        assert_eq!(list_text(&layers), text);
        assert_eq!(
            parse_list("conv32x3, bn relu\n# a comment\npool2,flatten\ndense128 relu,dense10")
                .unwrap(),
            layers
        );
    }

    #[test]
    fn shapes_names_and_biases_follow_the_list() {
        let layers =
            parse_list("conv8x3,bn,relu,conv4x5,relu,pool2,flatten,dense20,bn,relu,dense10")
                .unwrap();
        let placed = place(&layers).unwrap();
        let outputs: Vec<String> = placed.iter().map(|p| p.output.to_string()).collect();
        assert_eq!(
            outputs,
            [
                "[8, 26, 26]",
                "[8, 26, 26]",
                "[8, 26, 26]",
                "[4, 22, 22]",
                "[4, 22, 22]",
                "[4, 11, 11]",
                "[484]",
                "[20]",
                "[20]",
                "[20]",
                "[10]"
            ]
        );
        let names: Vec<String> = placed
            .iter()
            .flat_map(|p| p.params())
            .map(|p| format!("{} {:?}", p.name, p.dims))
            .collect();
        assert_eq!(
            names,
            [
                "conv1.weight [8, 1, 3, 3]",
                "bn1.weight [8]",
                "bn1.bias [8]",
                "bn1.running_mean [8]",
                "bn1.running_var [8]",
                "conv2.weight [4, 8, 5, 5]",
                "conv2.bias [4]",
                "fc1.weight [20, 484]",
                "bn2.weight [20]",
                "bn2.bias [20]",
                "bn2.running_mean [20]",
                "bn2.running_var [20]",
                "fc2.weight [10, 20]",
                "fc2.bias [10]",
            ]
        );
        // conv1: 2*8*9*676, conv2: 2*4*200*484, fc1: 2*484*20, fc2: 2*20*10.
        let flops: u64 = placed.iter().map(Placed::forward_flops).sum();
        assert_eq!(
            flops,
            2 * (8 * 9 * 676 + 4 * 200 * 484 + 484 * 20 + 20 * 10)
        );
    }

    #[test]
    fn bad_lists_get_one_line_naming_the_layer() {
        let e = err("conv32x3,relu,pool,flatten,dense10");
        assert!(
            e.contains("layer 3") && e.contains("\"pool\"") && e.contains("pool2"),
            "{e}"
        );
        let e = err("conv32x3,dense128,dense10");
        assert!(
            e.contains("layer 2 (dense128)") && e.contains("[32, 26, 26]"),
            "{e}"
        );
        assert!(e.contains("flatten"), "{e}");
        let e = err("conv8x3,pool2,pool2,pool2,pool2,pool2,flatten,dense10");
        assert!(e.contains("layer 6 (pool2)") && e.contains("1x1"), "{e}");
        let e = err("conv8x3,relu,flatten,dense12");
        assert!(
            e.contains("last layer must be dense10") && e.contains("dense12"),
            "{e}"
        );
        let e = err("conv8x3,relu,flatten");
        assert!(e.contains("last layer must be dense10"), "{e}");
        let e = err("relu,bn,flatten,dense10");
        assert!(
            e.contains("layer 2 (bn)") && e.contains("conv or dense"),
            "{e}"
        );
        let e = err("conv8x30,flatten,dense10");
        assert!(
            e.contains("layer 1 (conv8x30)") && e.contains("28x28"),
            "{e}"
        );
        let e = err("flatten,conv8x3,flatten,dense10");
        assert!(
            e.contains("layer 2 (conv8x3)") && e.contains("[784]"),
            "{e}"
        );
        let e = err("conv4096x3,relu,flatten,dense10");
        assert!(
            e.contains("layer 2 (relu)") && e.contains("values per image"),
            "{e}"
        );
        let e = err("conv2048x5,conv2048x5,flatten,dense10");
        assert!(
            e.contains("layer 2 (conv2048x5)") && e.contains("parameters"),
            "{e}"
        );
        let e = err(
            "flatten,dense4096,dense4096,dense4096,dense4096,dense4096,dense4096,dense4096,dense10",
        );
        assert!(e.contains("parameters") && e.contains("layer"), "{e}");
        let e = err("conv0x3,flatten,dense10");
        assert!(e.contains("0 channels"), "{e}");
        let e = err("flatten,flatten,dense10");
        assert!(e.contains("layer 2 (flatten)"), "{e}");
        let e = err(" , \n# nothing\n");
        assert!(e.contains("empty") && e.contains("conv32x3"), "{e}");
        let e = err("conv32x3x3,flatten,dense10");
        assert!(e.contains("\"conv32x3x3\""), "{e}");
    }
}
