//! A stronger network for ≥ 99.5%: two VGG-style blocks of two 3x3 convolutions with batch norm,
//! then a batch-normed hidden layer. Pooled sizes are even (24 → 12, 8 → 4) because candle 0.11's
//! max-pool backward misroutes gradients for odd sizes.
//!
//! PyTorch equivalent (bias-free convolutions, since batch norm cancels a bias):
//! `conv1(1→c1) bn1 relu, conv2(c1→c1) bn2 relu, pool, conv3(c1→c2) bn3 relu, conv4(c2→c2) bn4
//! relu, pool, flatten, fc1(c2*16→hidden) bn5 relu, fc2(hidden→10)`.

use candle_core::{ModuleT, Tensor};
use candle_nn::{BatchNorm, BatchNormConfig, VarBuilder};

use crate::conv::Conv;
use crate::linear::{linear, linear_no_bias, Linear};
use crate::ops::max_pool2;
use mnist_data::NUM_CLASSES;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvNetConfig {
    /// Channels of the first block's two convolutions.
    pub block1_channels: usize,
    /// Channels of the second block's two convolutions.
    pub block2_channels: usize,
    pub hidden: usize,
}

impl Default for ConvNetConfig {
    fn default() -> Self {
        Self {
            block1_channels: 32,
            block2_channels: 64,
            hidden: 256,
        }
    }
}

impl ConvNetConfig {
    /// 28 → 26 → 24 → pool 12 → 10 → 8 → pool 4.
    pub const FINAL_SIDE: usize = 4;
}

#[derive(Debug, Clone)]
pub struct ConvNet {
    conv1: Conv,
    bn1: BatchNorm,
    conv2: Conv,
    bn2: BatchNorm,
    conv3: Conv,
    bn3: BatchNorm,
    conv4: Conv,
    bn4: BatchNorm,
    fc1: Linear,
    bn5: BatchNorm,
    fc2: Linear,
}

/// PyTorch's BatchNorm defaults (eps 1e-5, momentum 0.1), so exported running statistics mean
/// the same thing on both sides.
/// Batch norm's variance epsilon (PyTorch's default); exporters need it too.
pub const BATCH_NORM_EPS: f64 = 1e-5;

fn bn(features: usize, vb: VarBuilder) -> candle_core::Result<BatchNorm> {
    let config = BatchNormConfig {
        eps: BATCH_NORM_EPS,
        remove_mean: true,
        affine: true,
        momentum: 0.1,
    };
    candle_nn::batch_norm(features, config, vb)
}

fn conv3x3(inp: usize, out: usize, vb: VarBuilder) -> candle_core::Result<Conv> {
    Conv::new(inp, out, 3, false, vb)
}

impl ConvNet {
    pub fn new(config: &ConvNetConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let (c1, c2) = (config.block1_channels, config.block2_channels);
        let flat = c2 * ConvNetConfig::FINAL_SIDE * ConvNetConfig::FINAL_SIDE;
        Ok(Self {
            conv1: conv3x3(1, c1, vb.pp("conv1"))?,
            bn1: bn(c1, vb.pp("bn1"))?,
            conv2: conv3x3(c1, c1, vb.pp("conv2"))?,
            bn2: bn(c1, vb.pp("bn2"))?,
            conv3: conv3x3(c1, c2, vb.pp("conv3"))?,
            bn3: bn(c2, vb.pp("bn3"))?,
            conv4: conv3x3(c2, c2, vb.pp("conv4"))?,
            bn4: bn(c2, vb.pp("bn4"))?,
            fc1: linear_no_bias(flat, config.hidden, vb.pp("fc1"))?,
            bn5: bn(config.hidden, vb.pp("bn5"))?,
            fc2: linear(config.hidden, NUM_CLASSES, vb.pp("fc2"))?,
        })
    }
}

impl ModuleT for ConvNet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        xs.apply(&self.conv1)? // [B, c1, 26, 26]
            .apply_t(&self.bn1, train)?
            .relu()?
            .apply(&self.conv2)? // [B, c1, 24, 24]
            .apply_t(&self.bn2, train)?
            .relu()?
            .apply(&max_pool2)? // [B, c1, 12, 12]
            .apply(&self.conv3)? // [B, c2, 10, 10]
            .apply_t(&self.bn3, train)?
            .relu()?
            .apply(&self.conv4)? // [B, c2, 8, 8]
            .apply_t(&self.bn4, train)?
            .relu()?
            .apply(&max_pool2)? // [B, c2, 4, 4]
            .flatten_from(1)? // [B, c2*16]
            .apply(&self.fc1)? // [B, hidden]
            .apply_t(&self.bn5, train)?
            .relu()?
            .apply(&self.fc2) // [B, 10]
    }
}
