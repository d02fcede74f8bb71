//! A fully connected layer like candle-nn's `Linear` (same `weight [out, in]` / `bias [out]`
//! names and layout, so checkpoints are unchanged), whose weight gradient comes out contiguous on
//! the CPU (see [`crate::ops::dense`]).

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::ops::dense;

#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

/// A layer with a bias, initialized by `vb` like candle-nn's `linear`.
pub fn linear(inp: usize, out: usize, vb: VarBuilder) -> Result<Linear> {
    let weight = vb.get((out, inp), "weight")?;
    let bias = Some(vb.get(out, "bias")?);
    Ok(Linear { weight, bias })
}

/// A layer without a bias (one followed by batch norm needs none).
pub fn linear_no_bias(inp: usize, out: usize, vb: VarBuilder) -> Result<Linear> {
    let weight = vb.get((out, inp), "weight")?;
    Ok(Linear { weight, bias: None })
}

impl Module for Linear {
    /// `[b, in]` → `[b, out]`.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let ys = dense(xs, &self.weight)?;
        match &self.bias {
            Some(bias) => ys.broadcast_add(bias),
            None => Ok(ys),
        }
    }
}
