//! Custom CPU ops for the layers where candle 0.11's built-ins are slow, each with its backward.
//! On other devices the same functions fall back to candle's own ops, so CUDA and Metal keep
//! candle's kernels (and cuDNN) while the CPU gets tight loops.
//!
//! * [`im2col`]: unfold `[b, c, h, w]` into patches `[c*k*k, b*ho*wo]` so a convolution of the
//!   whole batch is one GEMM; backward is col2im (a scatter-add), which also never computes a gradient for the input
//!   image because candle only calls it when the input needs one.
//! * [`max_pool2`]: 2x2 max-pool whose backward routes each gradient to its window's maximum in
//!   one pass, instead of candle's compare/upsample/multiply chain (which also scales gradients by
//!   1/4 and misroutes them for odd input sizes). Off the CPU it is built from reshape and `max`,
//!   whose gradient is right.
//! * [`conv3x3_relu_max_pool`]: the tutorial's whole first layer fused (see its module).
//! * [`dense`]: `x @ wᵀ` whose weight gradient comes out contiguous (see its module).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

mod conv_relu_pool;
mod dense;
#[cfg(target_arch = "x86_64")]
pub mod unpacked;
pub use conv_relu_pool::{
    conv3x3_relu_max_pool, conv3x3_relu_max_pool_reference,
    forward_slices as conv3x3_relu_max_pool_slices,
    weight_grad_slices as conv3x3_relu_max_pool_weight_grad_slices, ConvPoolDims,
};
pub use dense::{dense, dense_reference};

/// The f32 values of a contiguous CPU tensor's storage, or an error naming `op`: what every
/// custom CPU op reads its inputs with (here and in mnist-train's fused Adam).
pub fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let data = match storage {
        CpuStorage::F32(data) => data.as_slice(),
        other => candle_core::bail!("{op}: only f32 is supported, got {:?}", other.dtype()),
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: input must be contiguous"),
    }
}

/// `dst [m, n] = lhs [m, k] @ rhs [k, n]` through the `gemm` crate, each matrix given as
/// (pointer, row stride, column stride) in elements, so a transpose is a swap of strides. The one
/// place the custom ops and mnist-train's fused training step call the GEMM.
///
/// # Safety
/// Every element the strides address must lie inside its allocation, and `dst` must not overlap
/// either input.
pub unsafe fn matmul(
    (m, n, k): (usize, usize, usize),
    (dst, dst_rs, dst_cs): (*mut f32, usize, usize),
    (lhs, lhs_rs, lhs_cs): (*const f32, usize, usize),
    (rhs, rhs_rs, rhs_cs): (*const f32, usize, usize),
    parallelism: gemm::Parallelism,
) {
    gemm::gemm(
        m,
        n,
        k,
        dst,
        dst_cs as isize,
        dst_rs as isize,
        false,
        lhs,
        lhs_cs as isize,
        lhs_rs as isize,
        rhs,
        rhs_cs as isize,
        rhs_rs as isize,
        0.0,
        1.0,
        false,
        false,
        false,
        parallelism,
    )
}

/// [`matmul`] where `rhs` and `dst` have contiguous rows (given as pointer and row stride): on a
/// CPU with AVX-512 through [`unpacked::matmul`], which skips gemm's packing and gives the same
/// bits; elsewhere through gemm.
///
/// # Safety
/// As for [`matmul`].
pub unsafe fn matmul_rows(
    (m, n, k): (usize, usize, usize),
    (dst, dst_rs): (*mut f32, usize),
    (lhs, lhs_rs, lhs_cs): (*const f32, usize, usize),
    (rhs, rhs_rs): (*const f32, usize),
) {
    #[cfg(target_arch = "x86_64")]
    if unpacked::available() {
        // SAFETY: the CPU has AVX-512F; the rest is the caller's contract.
        return unsafe {
            unpacked::matmul(
                (m, n, k),
                (dst, dst_rs),
                (lhs, lhs_rs, lhs_cs),
                (rhs, rhs_rs),
            )
        };
    }
    // SAFETY: the caller's contract.
    unsafe {
        matmul(
            (m, n, k),
            (dst, dst_rs, 1),
            (lhs, lhs_rs, lhs_cs),
            (rhs, rhs_rs, 1),
            gemm::Parallelism::None,
        )
    }
}

/// Patches of a `[b, c, h, w]` tensor for a `k`x`k` kernel, stride 1, no padding:
/// `[c*k*k, b*(h-k+1)*(w-k+1)]`. Rows are ordered (channel, kernel row, kernel column) to match
/// a PyTorch-layout weight flattened to `[out, c*k*k]`; columns are (image, row, column), so one
/// GEMM convolves the whole batch.
pub fn im2col(xs: &Tensor, k: usize) -> Result<Tensor> {
    if xs.device().is_cpu() {
        xs.contiguous()?.apply_op1(Im2Col { k })
    } else {
        im2col_reference(xs, k)
    }
}

/// The same unfold from candle's tensor ops (used off the CPU and as the test reference).
pub fn im2col_reference(xs: &Tensor, k: usize) -> Result<Tensor> {
    let (b, c, h, w) = xs.dims4()?;
    let (ho, wo) = (h + 1 - k, w + 1 - k);
    let mut shifted = Vec::with_capacity(k * k);
    for i in 0..k {
        let rows = xs.narrow(2, i, ho)?;
        for j in 0..k {
            shifted.push(rows.narrow(3, j, wo)?);
        }
    }
    // [b, c, k*k, ho, wo] → [c*k*k, b*ho*wo]
    Tensor::stack(&shifted, 2)?
        .reshape((b, c * k * k, ho * wo))?
        .transpose(0, 1)?
        .reshape((c * k * k, b * ho * wo))
}

/// 2x2 max-pool with stride 2 (odd trailing rows/columns are dropped, as in PyTorch).
pub fn max_pool2(xs: &Tensor) -> Result<Tensor> {
    if xs.device().is_cpu() {
        xs.contiguous()?.apply_op1(MaxPool2)
    } else {
        max_pool2_reference(xs)
    }
}

/// The same pooling from candle's reshape and `max` ops: the path off the CPU and the test
/// reference. Not candle's `max_pool2d`, whose backward scales every gradient by 1/4 (see the
/// test below): `max`'s backward routes the gradient to the window's maximum at full size.
pub fn max_pool2_reference(xs: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = xs.dims4()?;
    let (ho, wo) = (h / 2, w / 2);
    xs.narrow(2, 0, 2 * ho)?
        .narrow(3, 0, 2 * wo)?
        .reshape((b, c, ho, 2, wo, 2))?
        .permute((0, 1, 2, 4, 3, 5))?
        .reshape((b, c, ho, wo, 4))?
        .max(4)
}

/// [`im2col`] of one image on host slices: `src [c, h, w]`'s patch row `r` (channel, kernel row,
/// kernel column) goes to `dst[r * row_stride..][..ho * wo]`. For callers that keep their own
/// buffers (mnist-train's fused training step).
pub fn im2col_image(
    src: &[f32],
    (c, h, w): (usize, usize, usize),
    k: usize,
    dst: &mut [f32],
    row_stride: usize,
) {
    let (ho, wo) = (h + 1 - k, w + 1 - k);
    for r in 0..c * k * k {
        let (ch, ki, kj) = (r / (k * k), (r / k) % k, r % k);
        let plane = &src[ch * h * w..][..h * w];
        copy_patch_row(
            plane,
            w,
            (ki, kj),
            (ho, wo),
            &mut dst[r * row_stride..][..ho * wo],
        );
    }
}

/// The adjoint of [`im2col_image`]: adds patch gradients (rows as there) into `dst [c, h, w]`.
pub fn col2im_image(
    src: &[f32],
    row_stride: usize,
    (c, h, w): (usize, usize, usize),
    k: usize,
    dst: &mut [f32],
) {
    let (ho, wo) = (h + 1 - k, w + 1 - k);
    for r in 0..c * k * k {
        let (ch, ki, kj) = (r / (k * k), (r / k) % k, r % k);
        let plane = &mut dst[ch * h * w..][..h * w];
        add_patch_row(
            &src[r * row_stride..][..ho * wo],
            w,
            (ki, kj),
            (ho, wo),
            plane,
        );
    }
}

/// One patch row: tap `(ki, kj)` of every output pixel of a `w`-wide plane.
#[inline]
fn copy_patch_row(
    plane: &[f32],
    w: usize,
    (ki, kj): (usize, usize),
    (ho, wo): (usize, usize),
    out: &mut [f32],
) {
    for y in 0..ho {
        out[y * wo..(y + 1) * wo].copy_from_slice(&plane[(y + ki) * w + kj..][..wo]);
    }
}

/// The adjoint of [`copy_patch_row`]: adds the row back into the plane.
#[inline]
fn add_patch_row(
    taps: &[f32],
    w: usize,
    (ki, kj): (usize, usize),
    (ho, wo): (usize, usize),
    plane: &mut [f32],
) {
    for y in 0..ho {
        let out = &mut plane[(y + ki) * w + kj..][..wo];
        for (o, g) in out.iter_mut().zip(&taps[y * wo..(y + 1) * wo]) {
            *o += g;
        }
    }
}

struct Im2Col {
    k: usize,
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "im2col"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(storage, layout, "im2col")?;
        let (b, c, h, w) = layout.shape().dims4()?;
        let k = self.k;
        if h < k || w < k {
            candle_core::bail!("im2col: kernel {k} larger than input {h}x{w}")
        }
        let (ho, wo) = (h + 1 - k, w + 1 - k);
        let (rows, cols) = (c * k * k, b * ho * wo);
        let mut dst = vec![0f32; rows * cols];
        // One output row per (channel, kernel row, kernel column), holding that tap for every
        // output pixel of every image: the whole batch becomes one wide GEMM.
        dst.par_chunks_mut(cols).enumerate().for_each(|(r, row)| {
            let (ch, ki, kj) = (r / (k * k), (r / k) % k, r % k);
            for n in 0..b {
                let plane = &src[(n * c + ch) * h * w..][..h * w];
                copy_patch_row(
                    plane,
                    w,
                    (ki, kj),
                    (ho, wo),
                    &mut row[n * ho * wo..][..ho * wo],
                );
            }
        });
        Ok((CpuStorage::F32(dst), Shape::from((rows, cols))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (b, _, h, w) = arg.dims4()?;
        Ok(Some(grad.contiguous()?.apply_op1(Col2Im {
            k: self.k,
            b,
            h,
            w,
        })?))
    }
}

/// The adjoint of [`Im2Col`]: sums each patch entry back into its pixel.
struct Col2Im {
    k: usize,
    b: usize,
    h: usize,
    w: usize,
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "col2im"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(storage, layout, "col2im")?;
        let (rows, cols) = layout.shape().dims2()?;
        let Self { k, b, h, w } = *self;
        let (ho, wo) = (h + 1 - k, w + 1 - k);
        if cols != b * ho * wo || rows % (k * k) != 0 {
            candle_core::bail!(
                "col2im: shape {:?} does not match a {k}x{k} kernel over {b}x{h}x{w}",
                layout.shape()
            )
        }
        let c = rows / (k * k);
        let mut dst = vec![0f32; b * c * h * w];
        dst.par_chunks_mut(c * h * w)
            .enumerate()
            .for_each(|(n, img)| {
                for r in 0..rows {
                    let (ch, ki, kj) = (r / (k * k), (r / k) % k, r % k);
                    let plane = &mut img[ch * h * w..(ch + 1) * h * w];
                    let taps = &src[r * cols + n * ho * wo..][..ho * wo];
                    add_patch_row(taps, w, (ki, kj), (ho, wo), plane);
                }
            });
        Ok((CpuStorage::F32(dst), Shape::from((b, c, h, w))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1(Im2Col { k: self.k })?))
    }
}

struct MaxPool2;

impl CustomOp1 for MaxPool2 {
    fn name(&self) -> &'static str {
        "max-pool-2x2"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(storage, layout, "max_pool2")?;
        let (b, c, h, w) = layout.shape().dims4()?;
        let (ho, wo) = (h / 2, w / 2);
        let mut dst = vec![0f32; b * c * ho * wo];
        dst.par_chunks_mut(ho * wo)
            .zip(src.par_chunks(h * w))
            .for_each(|(out, plane)| {
                for y in 0..ho {
                    let (r0, r1) = (&plane[2 * y * w..], &plane[(2 * y + 1) * w..]);
                    for x in 0..wo {
                        out[y * wo + x] = r0[2 * x]
                            .max(r0[2 * x + 1])
                            .max(r1[2 * x])
                            .max(r1[2 * x + 1]);
                    }
                }
            });
        Ok((CpuStorage::F32(dst), Shape::from((b, c, ho, wo))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            arg.contiguous()?
                .apply_op2_no_bwd(&grad.contiguous()?, &MaxPool2Bwd)?,
        ))
    }
}

/// Gradient of [`MaxPool2`]: each window's gradient goes to its first maximum (PyTorch's rule).
struct MaxPool2Bwd;

impl CustomOp2 for MaxPool2Bwd {
    fn name(&self) -> &'static str {
        "max-pool-2x2-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(s1, l1, "max_pool2 backward")?;
        let grad = contiguous_f32(s2, l2, "max_pool2 backward")?;
        let (b, c, h, w) = l1.shape().dims4()?;
        let (ho, wo) = (h / 2, w / 2);
        let mut dst = vec![0f32; b * c * h * w];
        dst.par_chunks_mut(h * w)
            .zip(src.par_chunks(h * w))
            .zip(grad.par_chunks(ho * wo))
            .for_each(|((out, plane), g)| {
                for y in 0..ho {
                    for x in 0..wo {
                        let candidates = [
                            (2 * y) * w + 2 * x,
                            (2 * y) * w + 2 * x + 1,
                            (2 * y + 1) * w + 2 * x,
                            (2 * y + 1) * w + 2 * x + 1,
                        ];
                        let mut best = candidates[0];
                        for &i in &candidates[1..] {
                            if plane[i] > plane[best] {
                                best = i;
                            }
                        }
                        out[best] = g[y * wo + x];
                    }
                }
            });
        Ok((CpuStorage::F32(dst), Shape::from((b, c, h, w))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{max_diff, weighted_gradients};
    use candle_core::{Device, Var};

    #[test]
    fn im2col_matches_the_tensor_op_reference_in_values_and_gradients() {
        let x = Var::randn(0f32, 1., (2, 3, 7, 6), &Device::Cpu).unwrap();
        let ours = im2col(x.as_tensor(), 3).unwrap();
        let reference = im2col_reference(x.as_tensor(), 3).unwrap();
        assert_eq!(ours.dims(), &[27, 40]);
        assert_eq!(max_diff(&ours, &reference), 0.0);
        let r = Tensor::randn(0f32, 1., ours.dims(), &Device::Cpu).unwrap();
        let g1 = weighted_gradients(&ours, &r, &[&x]);
        let g2 = weighted_gradients(&reference, &r, &[&x]);
        assert!(max_diff(&g1[0], &g2[0]) < 1e-5);
    }

    #[test]
    fn max_pool_matches_candle_forward_and_passes_a_numerical_gradient_check() {
        // Distinct values 0.1 apart, so a finite-difference step (0.01) never changes a window's
        // maximum: 216 entries, 37 coprime with 216.
        let v: Vec<f32> = (0..216).map(|i| ((i * 37) % 216) as f32 * 0.1).collect();
        let x = Var::from_vec(v, (2, 3, 6, 6), &Device::Cpu).unwrap();
        let ours = max_pool2(x.as_tensor()).unwrap();
        assert_eq!(max_diff(&ours, &x.as_tensor().max_pool2d(2).unwrap()), 0.0);
        crate::gradcheck::assert_gradients_match(&x, max_pool2);
    }

    #[test]
    fn max_pool_reference_matches_ours_in_values_and_gradients_for_odd_sizes_too() {
        for dims in [(2, 3, 6, 6), (1, 2, 7, 5)] {
            let n = dims.0 * dims.1 * dims.2 * dims.3;
            // Distinct values, so every window has one maximum.
            let v: Vec<f32> = (0..n).map(|i| ((i * 37) % n) as f32 * 0.1).collect();
            let x = Var::from_vec(v, dims, &Device::Cpu).unwrap();
            let ours = max_pool2(x.as_tensor()).unwrap();
            let reference = max_pool2_reference(x.as_tensor()).unwrap();
            assert_eq!(max_diff(&ours, &reference), 0.0);
            let r = Tensor::randn(0f32, 1., ours.dims(), &Device::Cpu).unwrap();
            let g1 = weighted_gradients(&ours, &r, &[&x]);
            let g2 = weighted_gradients(&reference, &r, &[&x]);
            assert_eq!(max_diff(&g1[0], &g2[0]), 0.0);
        }
    }

    #[test]
    fn candle_max_pool_gradient_is_a_quarter_of_the_true_one() {
        // Why max_pool2 exists: candle 0.11.1 scales the gradient by avg_pool(mask) = 1/4 for a
        // unique maximum (backprop.rs, Op::MaxPool2D). If this starts failing, candle was fixed.
        let x = Var::from_vec(vec![0f32, 1., 2., 3.], (1, 1, 2, 2), &Device::Cpu).unwrap();
        let g = x
            .as_tensor()
            .max_pool2d(2)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g = g
            .get(x.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(g, vec![0., 0., 0., 0.25]);
    }

    #[test]
    fn max_pool_backward_is_right_for_odd_sizes_where_candle_is_not() {
        // 5x5 → 2x2: row/column 4 is dropped and must get zero gradient. By hand: window (0,0)
        // of plane [[1,2],[3,4]...] has its maximum at (1,1).
        let v: Vec<f32> = (0..25).map(|i| i as f32).collect();
        let x = Var::from_vec(v, (1, 1, 5, 5), &Device::Cpu).unwrap();
        let y = max_pool2(x.as_tensor()).unwrap();
        assert_eq!(
            y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            vec![6., 8., 16., 18.]
        );
        let g = y.sum_all().unwrap().backward().unwrap();
        let g = g
            .get(x.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let mut expected = vec![0f32; 25];
        for i in [6, 8, 16, 18] {
            expected[i] = 1.0;
        }
        assert_eq!(g, expected);
    }
}
