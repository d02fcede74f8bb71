//! The time-to-99% recipe's network: two small conv layers instead of the tutorial's one.
//! Conv2D(16, 3x3, relu) → MaxPool(2) → Conv2D(32, 3x3, relu) → MaxPool(2) → Flatten →
//! Dense(128, relu) → Dense(10). 108,618 parameters, about a sixth of the tutorial's, yet the
//! second conv layer is what takes it past 99% (the tutorial's network levels off near 98.8%).
//! It returns logits.

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use mnist_data::{IMAGE_SIDE, NUM_CLASSES};
use serde::{Deserialize, Serialize};

use crate::conv::Conv;
use crate::linear::{linear, Linear};

/// Layer widths, recorded in every checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FastConfig {
    pub conv1_channels: usize,
    pub conv2_channels: usize,
    pub hidden: usize,
}

impl Default for FastConfig {
    fn default() -> Self {
        Self {
            conv1_channels: 16,
            conv2_channels: 32,
            hidden: 128,
        }
    }
}

impl FastConfig {
    /// Side of the first pooled map: 28 → conv 3x3 → 26 → pool 2 → 13.
    pub const POOLED1_SIDE: usize = (IMAGE_SIDE - 2) / 2;
    /// Side of the second: 13 → conv 3x3 → 11 → pool 2 → 5 (the odd last row and column are
    /// dropped, as PyTorch's and ONNX's MaxPool do).
    pub const POOLED2_SIDE: usize = (Self::POOLED1_SIDE - 2) / 2;

    pub fn flat_features(&self) -> usize {
        self.conv2_channels * Self::POOLED2_SIDE * Self::POOLED2_SIDE
    }
}

#[derive(Debug, Clone)]
pub struct FastNet {
    conv1: Conv,
    conv2: Conv,
    fc1: Linear,
    fc2: Linear,
}

impl FastNet {
    pub fn new(config: &FastConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let conv1 = Conv::new(1, config.conv1_channels, 3, true, vb.pp("conv1"))?;
        let conv2 = Conv::new(
            config.conv1_channels,
            config.conv2_channels,
            3,
            true,
            vb.pp("conv2"),
        )?;
        let fc1 = linear(config.flat_features(), config.hidden, vb.pp("fc1"))?;
        let fc2 = linear(config.hidden, NUM_CLASSES, vb.pp("fc2"))?;
        Ok(Self {
            conv1,
            conv2,
            fc1,
            fc2,
        })
    }
}

impl Module for FastNet {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        self.conv1
            .relu_max_pool(xs)? // [B, 16, 13, 13]
            .apply(&|x: &Tensor| self.conv2.relu_max_pool(x))? // [B, 32, 5, 5]
            .flatten_from(1)? // [B, 800], (C, H, W) order like PyTorch
            .apply(&self.fc1)?
            .relu()?
            .apply(&self.fc2)
    }
}
