//! The Keras tutorial's network, layer for layer:
//! Conv2D(32, 3x3, relu) → MaxPool(2) → Flatten → Dense(128, relu) → Dense(10).
//! 693,962 parameters. It returns logits; softmax belongs to inference.

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use mnist_data::{IMAGE_SIDE, NUM_CLASSES};
use serde::{Deserialize, Serialize};

use crate::conv::Conv;
use crate::linear::{linear, Linear};

/// Layer widths. The defaults are the tutorial's; they are recorded in every checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedConfig {
    pub conv_channels: usize,
    pub hidden: usize,
}

impl Default for SeedConfig {
    fn default() -> Self {
        Self {
            conv_channels: 32,
            hidden: 128,
        }
    }
}

impl SeedConfig {
    /// Side of the pooled feature map: 28 → conv 3x3 → 26 → pool 2 → 13.
    pub const POOLED_SIDE: usize = (IMAGE_SIDE - 2) / 2;

    fn flat_features(&self) -> usize {
        self.conv_channels * Self::POOLED_SIDE * Self::POOLED_SIDE
    }
}

#[derive(Debug, Clone)]
pub struct SeedNet {
    conv1: Conv,
    fc1: Linear,
    fc2: Linear,
}

impl SeedNet {
    pub fn new(config: &SeedConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let conv1 = Conv::new(1, config.conv_channels, 3, true, vb.pp("conv1"))?;
        let fc1 = linear(config.flat_features(), config.hidden, vb.pp("fc1"))?;
        let fc2 = linear(config.hidden, NUM_CLASSES, vb.pp("fc2"))?;
        Ok(Self { conv1, fc1, fc2 })
    }
}

impl Module for SeedNet {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        // conv [B, 32, 26, 26] → relu → max-pool [B, 32, 13, 13], fused
        self.conv1
            .relu_max_pool(xs)?
            .flatten_from(1)? // [B, 5408], (C, H, W) order like PyTorch
            .apply(&self.fc1)? // [B, 128]
            .relu()?
            .apply(&self.fc2) // [B, 10]
    }
}
