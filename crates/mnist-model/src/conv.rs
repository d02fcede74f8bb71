//! A 3x3 (any size, stride 1, no padding) convolution as im2col + one matrix multiply, built
//! from candle tensor ops so that autograd, CUDA and Metal all work unchanged.
//!
//! Why: candle 0.11's CPU conv2d is slow at these sizes (its kernel gradient is a convolution
//! with a 24x24 "kernel" over the batch), while its matmul runs near the GEMM peak. The weights
//! keep PyTorch's layout (out, in, kh, kw), so checkpoints are unchanged.

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

use crate::ops::{conv3x3_relu_max_pool, im2col, max_pool2};

#[derive(Debug, Clone)]
pub struct Conv {
    weight: Tensor,
    bias: Option<Tensor>,
    kernel: usize,
}

impl Conv {
    pub fn new(
        inp: usize,
        out: usize,
        kernel: usize,
        bias: bool,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let weight = vb.get((out, inp, kernel, kernel), "weight")?;
        let bias = if bias {
            Some(vb.get(out, "bias")?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            kernel,
        })
    }
}

impl Conv {
    /// This convolution, then ReLU and a 2x2 max-pool: one fused op on the CPU for a 3x3 kernel
    /// with a bias over a single-channel image (a first layer), the three steps in turn otherwise
    /// (for wider inputs im2col plus one GEMM is faster than the fused op's direct loops).
    pub fn relu_max_pool(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        match &self.bias {
            Some(bias) if self.kernel == 3 && self.weight.dim(1)? == 1 => {
                conv3x3_relu_max_pool(xs, &self.weight, bias)
            }
            _ => max_pool2(&self.forward(xs)?.relu()?),
        }
    }
}

impl Module for Conv {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let (b, _, h, w) = xs.dims4()?;
        let k = self.kernel;
        let (ho, wo) = (h + 1 - k, w + 1 - k);
        let out = self.weight.dim(0)?;
        let weight = self.weight.flatten_from(1)?; // [out, c*k*k]
        let ys = weight.matmul(&im2col(xs, k)?)?; // [out, b*ho*wo]
        let ys = match &self.bias {
            Some(bias) => ys.broadcast_add(&bias.reshape((out, 1))?)?,
            None => ys,
        };
        // [out, b, ho, wo] → [b, out, ho, wo]; the copy happens where a consumer needs it.
        ys.reshape((out, b, ho, wo))?.transpose(0, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{max_diff, weighted_gradients};
    use candle_core::{Device, Var};

    #[test]
    fn matches_candle_conv2d_in_values_and_gradients() {
        let dev = Device::Cpu;
        let x = Var::randn(0f32, 1., (3, 4, 9, 8), &dev).unwrap();
        let w = Var::randn(0f32, 1., (5, 4, 3, 3), &dev).unwrap();
        let bias = Var::randn(0f32, 1., 5, &dev).unwrap();
        let conv = Conv {
            weight: w.as_tensor().clone(),
            bias: Some(bias.as_tensor().clone()),
            kernel: 3,
        };
        let ours = conv.forward(x.as_tensor()).unwrap();
        let reference = x
            .as_tensor()
            .conv2d(w.as_tensor(), 0, 1, 1, 1)
            .unwrap()
            .broadcast_add(&bias.as_tensor().reshape((1, 5, 1, 1)).unwrap())
            .unwrap();
        assert_eq!(ours.dims(), reference.dims());
        assert!(max_diff(&ours, &reference) < 1e-4);
        let r = Tensor::randn(0f32, 1., ours.dims(), &dev).unwrap();
        let g_ours = weighted_gradients(&ours, &r, &[&x, &w, &bias]);
        let g_ref = weighted_gradients(&reference, &r, &[&x, &w, &bias]);
        for (a, b) in g_ours.iter().zip(&g_ref) {
            assert!(
                max_diff(a, b) < 1e-3,
                "gradient mismatch {}",
                max_diff(a, b)
            );
        }
    }

    #[test]
    fn gradients_pass_a_numerical_check() {
        let dev = Device::Cpu;
        let x = Var::randn(0f32, 1., (2, 2, 6, 5), &dev).unwrap();
        let w = Var::randn(0f32, 1., (3, 2, 3, 3), &dev).unwrap();
        let bias = Var::randn(0f32, 1., 3, &dev).unwrap();
        let conv = |x: &Tensor, w: &Tensor, b: &Tensor| {
            Conv {
                weight: w.clone(),
                bias: Some(b.clone()),
                kernel: 3,
            }
            .forward(x)
        };
        crate::gradcheck::assert_gradients_match(&x, |t| conv(t, w.as_tensor(), bias.as_tensor()));
        crate::gradcheck::assert_gradients_match(&w, |t| conv(x.as_tensor(), t, bias.as_tensor()));
        crate::gradcheck::assert_gradients_match(&bias, |t| conv(x.as_tensor(), w.as_tensor(), t));
    }
}
