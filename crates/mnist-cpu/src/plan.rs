//! From a layer list to the kernels that run it: one [`Node`] per layer, except where a fused
//! pair pays (the plan decides, not the network):
//!
//! * `conv<N>x3,relu,pool2` at the start of a list → [`Op::FirstConvReluPool`], one direct kernel
//!   over the image (see `layers::first_conv`);
//! * `relu,pool2` → [`Op::Pool`] with `relu`, one pass that keeps only the pooled values;
//! * `bn,relu` → [`Op::BatchNorm`] with `relu`: the ReLU applied in the normalizing pass, its
//!   mask in the backward's;
//! * `conv,relu` → [`Op::Conv`] with `relu`: the ReLU applied as the convolution writes its
//!   output (what a batch-norm-folded network runs for inference), its mask applied to the
//!   incoming gradient before the convolution's backward;
//! * `flatten` → nothing: activations are `[b, c, h, w]` row-major, already flat per image.
//!
//! Dense weights trained with Adam get their update inside their backward (see
//! `layers::dense`), which the training step arranges.

use mnist_model::layers::{Layer, ParamSpec, Placed, Shape};
use mnist_model::{Architecture, BATCH_NORM_EPS, BATCH_NORM_MOMENTUM};

use crate::layers::batchnorm::NormDims;
use crate::layers::conv::ConvDims;
use crate::layers::dense::DenseDims;
use crate::layers::first_conv::ConvPoolDims;
use crate::layers::pool::PoolDims;

/// A kernel and its sizes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    /// 3x3 convolution of the one-channel image, bias, ReLU and 2x2 max-pool.
    FirstConvReluPool(ConvPoolDims),
    /// Convolution, with the ReLU after it when `relu` is set.
    Conv {
        dims: ConvDims,
        relu: bool,
    },
    /// Batch norm, with the ReLU after it when `relu` is set.
    BatchNorm {
        dims: NormDims,
        relu: bool,
    },
    Relu,
    /// 2x2 max-pool, with the ReLU before it when `relu` is set.
    Pool {
        dims: PoolDims,
        relu: bool,
    },
    Dense(DenseDims),
}

impl Op {
    /// A short name for logs and profiles.
    pub fn name(&self) -> &'static str {
        match self {
            Op::FirstConvReluPool(_) => "first-conv-relu-pool",
            Op::Conv { relu: true, .. } => "conv-relu",
            Op::Conv { relu: false, .. } => "conv",
            Op::BatchNorm { relu: true, .. } => "bn-relu",
            Op::BatchNorm { relu: false, .. } => "bn",
            Op::Relu => "relu",
            Op::Pool { relu: true, .. } => "relu-pool",
            Op::Pool { relu: false, .. } => "pool",
            Op::Dense(_) => "dense",
        }
    }
}

/// One step of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub op: Op,
    /// Indices into the network's tensors ([`Plan::specs`]): weight then bias for conv and
    /// dense layers (bias absent when the layer has none), gamma, beta, running mean and running
    /// variance for batch norm.
    pub params: Vec<usize>,
    /// Values per image going in and coming out.
    pub in_len: usize,
    pub out_len: usize,
    /// Whether the bias is the second of `params`.
    pub bias: bool,
}

/// The nodes of a network, in order, and its tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub nodes: Vec<Node>,
    /// Every tensor of the network, in the layer list's order.
    pub specs: Vec<ParamSpec>,
}

impl Plan {
    pub fn new(architecture: &Architecture) -> Plan {
        let placed = architecture.placed();
        let mut nodes = Vec::new();
        let mut first_param = 0;
        let mut i = 0;
        while i < placed.len() {
            let p = &placed[i];
            let next = |k: usize| placed.get(i + k).map(|p| p.layer);
            let (op, consumed) = match (p.layer, p.input) {
                (Layer::Conv { out, kernel: 3 }, Shape::Map { channels: 1, side })
                    if i == 0
                        && p.bias
                        && side >= 4
                        && next(1) == Some(Layer::Relu)
                        && next(2) == Some(Layer::MaxPool2) =>
                {
                    let dims = ConvPoolDims {
                        c: 1,
                        h: side,
                        w: side,
                        o: out,
                    };
                    (Op::FirstConvReluPool(dims), 3)
                }
                (Layer::Conv { out, kernel }, Shape::Map { channels, side }) => {
                    let dims = ConvDims {
                        c: channels,
                        side,
                        o: out,
                        k: kernel,
                    };
                    // As for batch norm: a ReLU right after is fused in, unless a pool follows.
                    let relu = next(1) == Some(Layer::Relu) && next(2) != Some(Layer::MaxPool2);
                    (Op::Conv { dims, relu }, if relu { 2 } else { 1 })
                }
                (Layer::BatchNorm, shape) => {
                    let plane = shape.len() / shape.channels();
                    let dims = NormDims {
                        c: shape.channels(),
                        plane,
                        eps: BATCH_NORM_EPS,
                        momentum: BATCH_NORM_MOMENTUM,
                    };
                    // A ReLU right after is fused in, unless a pool follows it (relu,pool2
                    // fuse better: the pool keeps only a quarter of the values).
                    let relu = next(1) == Some(Layer::Relu) && next(2) != Some(Layer::MaxPool2);
                    (Op::BatchNorm { dims, relu }, if relu { 2 } else { 1 })
                }
                (Layer::Relu, Shape::Map { channels, side })
                    if next(1) == Some(Layer::MaxPool2) =>
                {
                    let dims = PoolDims { c: channels, side };
                    (Op::Pool { dims, relu: true }, 2)
                }
                (Layer::Relu, _) => (Op::Relu, 1),
                (Layer::MaxPool2, Shape::Map { channels, side }) => {
                    let dims = PoolDims { c: channels, side };
                    (Op::Pool { dims, relu: false }, 1)
                }
                (Layer::Flatten, _) => {
                    i += 1;
                    continue;
                }
                (Layer::Dense { out }, shape) => {
                    let dims = DenseDims {
                        inp: shape.len(),
                        out,
                    };
                    (Op::Dense(dims), 1)
                }
                (layer, shape) => unreachable!("{layer} on {shape} passed the list's checks"),
            };
            let fused = &placed[i..i + consumed];
            let out_len = fused.last().map_or(0, |p: &Placed| p.output.len());
            let count: usize = fused.iter().map(|p| p.params().len()).sum();
            let params = (first_param..first_param + count).collect();
            first_param += count;
            nodes.push(Node {
                op,
                params,
                in_len: p.input.len(),
                out_len,
                bias: p.bias && matches!(p.layer, Layer::Conv { .. } | Layer::Dense { .. }),
            });
            i += consumed;
        }
        Plan {
            nodes,
            specs: architecture.params(),
        }
    }

    /// The first node with parameters: nothing before it learns, so the backward stops there
    /// and never computes its input gradient.
    pub fn first_learning_node(&self) -> usize {
        self.nodes
            .iter()
            .position(|n| !n.params.is_empty())
            .unwrap_or(0)
    }

    /// The largest activation per image, for sizing the gradient buffers.
    pub fn widest(&self) -> usize {
        self.nodes
            .iter()
            .map(|n| n.in_len.max(n.out_len))
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(list: &str) -> Vec<String> {
        let arch = Architecture::from_text(list).unwrap();
        Plan::new(&arch)
            .nodes
            .iter()
            .map(|n| format!("{}{:?}", n.op.name(), n.params))
            .collect()
    }

    #[test]
    fn fused_pairs_are_chosen_by_the_plan_for_any_list() {
        assert_eq!(
            ops("conv32x3,relu,pool2,flatten,dense128,relu,dense10"),
            [
                "first-conv-relu-pool[0, 1]",
                "dense[2, 3]",
                "relu[]",
                "dense[4, 5]"
            ]
        );
        assert_eq!(
            ops("conv8x3,bn,relu,conv8x5,relu,pool2,pool2,flatten,dense16,bn,relu,dense10"),
            [
                "conv[0]",
                "bn-relu[1, 2, 3, 4]",
                "conv[5, 6]",
                "relu-pool[]",
                "pool[]",
                "dense[7]",
                "bn-relu[8, 9, 10, 11]",
                "dense[12, 13]"
            ]
        );
        // Not first, or not followed by relu and pool: the general kernel.
        assert_eq!(
            ops("conv4x3,conv4x3,relu,pool2,flatten,dense10"),
            ["conv[0, 1]", "conv[2, 3]", "relu-pool[]", "dense[4, 5]"]
        );
        // A ReLU after a conv fuses into it, unless a pool follows (then relu,pool2 fuse).
        assert_eq!(
            ops("conv4x3,relu,conv4x3,relu,pool2,conv4x3,relu,flatten,dense10"),
            [
                "conv-relu[0, 1]",
                "conv[2, 3]",
                "relu-pool[]",
                "conv-relu[4, 5]",
                "dense[6, 7]"
            ]
        );
        let arch = Architecture::from_text("flatten,dense10").unwrap();
        assert_eq!(Plan::new(&arch).first_learning_node(), 0);
    }
}
