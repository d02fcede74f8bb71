//! `x @ wᵀ` for a PyTorch-layout weight `[out, in]`, with a backward that hands the weight its
//! gradient already in `[out, in]` layout.
//!
//! Why: candle computes `x.matmul(&w.t())`, so the weight's gradient arrives as the transpose of
//! a contiguous `[in, out]` matrix and is added into the accumulator element by element through
//! strides. For the tutorial's 5408x128 layer that strided add was 19% of a training step. Here
//! the gradient is one GEMM, `gᵀ @ x`, written straight into `[out, in]`.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use super::contiguous_f32;

/// `x [b, in] @ weight [out, in]ᵀ` → `[b, out]`. A custom op on the CPU, candle's matmul elsewhere.
pub fn dense(xs: &Tensor, weight: &Tensor) -> Result<Tensor> {
    if xs.device().is_cpu() {
        let (_, inp) = xs.dims2()?;
        let (_, w_in) = weight.dims2()?;
        if inp != w_in {
            candle_core::bail!(
                "dense: input {:?} does not fit weight {:?}",
                xs.dims(),
                weight.dims()
            )
        }
        xs.contiguous()?.apply_op2(&weight.contiguous()?, Dense)
    } else {
        dense_reference(xs, weight)
    }
}

/// candle's own formulation (candle-nn's `Linear` without the bias): the test reference.
pub fn dense_reference(xs: &Tensor, weight: &Tensor) -> Result<Tensor> {
    xs.matmul(&weight.t()?)
}

struct Dense;

impl CustomOp2 for Dense {
    fn name(&self) -> &'static str {
        "dense"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let xs = contiguous_f32(s1, l1, self.name())?;
        let weight = contiguous_f32(s2, l2, self.name())?;
        let (b, inp) = l1.shape().dims2()?;
        let (out, _) = l2.shape().dims2()?;
        let mut dst = vec![0f32; b * out];
        // The pool this runs in (a half-batch's single-threaded pool, say), not the machine's.
        let threads = rayon::current_num_threads();
        let parallelism = if threads > 1 {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        };
        // SAFETY: every pointer covers exactly the extents given with its strides (row-major
        // x [b, in], weight read as its transpose [in, out] via swapped strides, dst [b, out]),
        // the slices outlive the call, and dst does not alias either input.
        unsafe {
            super::matmul(
                (b, out, inp),
                (dst.as_mut_ptr(), out, 1),
                (xs.as_ptr(), inp, 1),
                (weight.as_ptr(), 1, inp),
                parallelism,
            )
        }
        Ok((CpuStorage::F32(dst), Shape::from((b, out))))
    }

    fn bwd(
        &self,
        xs: &Tensor,
        weight: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let dx = if xs.track_op() {
            Some(grad.matmul(weight)?) // [b, out] @ [out, in]
        } else {
            None
        };
        let dw = if weight.track_op() {
            Some(grad.t()?.matmul(xs)?) // [out, b] @ [b, in], contiguous [out, in]
        } else {
            None
        };
        Ok((dx, dw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{assert_gradients_match, max_diff, weighted_gradients};
    use candle_core::{Device, Var};

    #[test]
    fn matches_candle_matmul_in_values_and_gradients() {
        let dev = Device::Cpu;
        for (b, inp, out) in [(32, 5408, 128), (3, 7, 5), (1, 1, 1)] {
            let x = Var::randn(0f32, 1., (b, inp), &dev).unwrap();
            let w = Var::randn(0f32, 1., (out, inp), &dev).unwrap();
            let ours = dense(x.as_tensor(), w.as_tensor()).unwrap();
            let reference = dense_reference(x.as_tensor(), w.as_tensor()).unwrap();
            let scale = (inp as f32).sqrt();
            assert!(max_diff(&ours, &reference) < 1e-5 * scale);
            let r = Tensor::randn(0f32, 1., (b, out), &dev).unwrap();
            let g1 = weighted_gradients(&ours, &r, &[&x, &w]);
            let g2 = weighted_gradients(&reference, &r, &[&x, &w]);
            for (a, e) in g1.iter().zip(&g2) {
                assert!(a.is_contiguous());
                assert!(max_diff(a, e) < 1e-4 * scale, "{}", max_diff(a, e));
            }
        }
    }

    #[test]
    fn gradients_pass_a_numerical_check() {
        let dev = Device::Cpu;
        let x = Var::randn(0f32, 1., (3, 4), &dev).unwrap();
        let w = Var::randn(0f32, 1., (2, 4), &dev).unwrap();
        assert_gradients_match(&x, |t| dense(t, w.as_tensor()));
        assert_gradients_match(&w, |t| dense(x.as_tensor(), t));
    }

    #[test]
    fn mismatched_shapes_are_an_error() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((2, 3), candle_core::DType::F32, &dev).unwrap();
        let w = Tensor::zeros((4, 5), candle_core::DType::F32, &dev).unwrap();
        assert!(dense(&x, &w)
            .unwrap_err()
            .to_string()
            .contains("does not fit"));
    }
}
