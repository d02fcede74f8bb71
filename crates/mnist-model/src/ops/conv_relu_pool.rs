//! The tutorial network's first layer as one CPU op: 3x3 convolution, bias, ReLU and 2x2
//! max-pool, `[b, c, h, w]` → `[b, o, (h-2)/2, (w-2)/2]`.
//!
//! Why fused: separately, these four steps write and re-read three `[b, 32, 26, 26]` activations
//! per step and their gradients, and candle's backward adds a zero tensor and a copy for each.
//! Fused, the forward keeps only the pooled output and each window's winner (one byte), and the
//! backward touches only the 169 winners per plane instead of 676 positions. ReLU commutes with
//! max, and the bias is constant over a window, so `relu(max(conv) + bias)` is the same function
//! as `max_pool(relu(conv + bias))`.
//!
//! The input gradient is computed only when the input needs one (it never does for images).
//! Gradient sums run over fixed chunks of the batch in a fixed order, so results do not depend on
//! the thread count or on scheduling: a resumed run still matches an uninterrupted one bit for bit.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::contiguous_f32;

const K: usize = 3;
const TAPS: usize = K * K;
/// Output columns computed together: one AVX2 register of f32.
const LANES: usize = 8;
/// Images per gradient partial sum. Fixed (not per thread) so that sums are reproducible.
const GRAD_CHUNK: usize = 4;
/// Marks a window whose ReLU is off (`max + bias <= 0`): no gradient flows through it.
const INACTIVE: u8 = 4;

/// Conv 3x3 (stride 1, no padding) + bias + ReLU + 2x2 max-pool. On the CPU this is one fused op;
/// elsewhere it is candle's conv2d, ReLU and max-pool (cuDNN where enabled).
pub fn conv3x3_relu_max_pool(xs: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    if xs.device().is_cpu() {
        let (_, c, h, w) = xs.dims4()?;
        let (o, wc, kh, kw) = weight.dims4()?;
        if (kh, kw) != (K, K) || wc != c || bias.dims1()? != o || h < K + 1 || w < K + 1 {
            candle_core::bail!(
                "conv3x3_relu_max_pool: weight {:?} and bias {:?} do not fit input {:?}",
                weight.dims(),
                bias.dims(),
                xs.dims()
            )
        }
        xs.contiguous()?.apply_op3(
            &weight.contiguous()?,
            &bias.contiguous()?,
            ConvReluPool {
                winners: Mutex::new(Vec::new()),
            },
        )
    } else {
        conv3x3_relu_max_pool_reference(xs, weight, bias)
    }
}

/// The same layer from candle's ops: the test reference, and the path off the CPU.
pub fn conv3x3_relu_max_pool_reference(
    xs: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
) -> Result<Tensor> {
    let o = bias.dims1()?;
    let ys = xs
        .conv2d(weight, 0, 1, 1, 1)?
        .broadcast_add(&bias.reshape((1, o, 1, 1))?)?
        .relu()?;
    super::max_pool2(&ys)
}

struct ConvReluPool {
    /// Per pooled output: which of the window's four positions won (0..4, row-major), or'ed with
    /// [`INACTIVE`], channel-last (`[b, hp * wp, o]`, see [`forward_slices`]). Written by the
    /// forward, read by the backward of the same call.
    winners: Mutex<Vec<u8>>,
}

/// Sizes of the fused layer: `c` input channels of `h`x`w`, `o` output channels.
#[derive(Debug, Clone, Copy)]
pub struct ConvPoolDims {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
}

impl ConvPoolDims {
    /// Rows and columns of the pooled output.
    pub fn pooled(&self) -> (usize, usize) {
        ((self.h - 2) / 2, (self.w - 2) / 2)
    }
    /// Conv columns computed, rounded up to whole SIMD blocks.
    fn conv_cols(&self) -> usize {
        (self.pooled().1 * 2).div_ceil(LANES) * LANES
    }
    /// Padded input row: wide enough for the last block's taps.
    fn padded_cols(&self) -> usize {
        self.conv_cols() + K - 1
    }
}

impl CustomOp3 for ConvReluPool {
    fn name(&self) -> &'static str {
        "conv3x3-relu-max-pool"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let xs = contiguous_f32(s1, l1, self.name())?;
        let weight = contiguous_f32(s2, l2, self.name())?;
        let bias = contiguous_f32(s3, l3, self.name())?;
        let (b, c, h, w) = l1.shape().dims4()?;
        let d = ConvPoolDims {
            c,
            h,
            w,
            o: bias.len(),
        };
        let (hp, wp) = d.pooled();
        let mut out = vec![0f32; b * d.o * hp * wp];
        let mut winners = vec![0u8; b * d.o * hp * wp];
        forward_slices(&d, xs, weight, bias, &mut out, &mut winners);
        *self.winners.lock().expect("winner buffer poisoned") = winners;
        Ok((CpuStorage::F32(out), Shape::from((b, d.o, hp, wp))))
    }

    fn bwd(
        &self,
        xs: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, c, h, w) = xs.dims4()?;
        let d = ConvPoolDims {
            c,
            h,
            w,
            o: bias.dims1()?,
        };
        let (hp, wp) = d.pooled();
        let plane = hp * wp;
        let pixels = xs.flatten_all()?.to_vec1::<f32>()?;
        let grad = grad.flatten_all()?.to_vec1::<f32>()?;
        let winners = self.winners.lock().expect("winner buffer poisoned");
        let want_input_grad = xs.track_op();
        let mut dw = vec![0f32; d.o * c * TAPS];
        let mut db = vec![0f32; d.o];
        weight_grad_slices(&d, &pixels, &grad, &winners, &mut dw, &mut db);
        let dx = if want_input_grad {
            let weights = weight.flatten_all()?.to_vec1::<f32>()?;
            let mut dx = vec![0f32; b * c * h * w];
            dx.par_chunks_mut(c * h * w)
                .enumerate()
                .for_each(|(n, dx)| {
                    let g = &grad[n * d.o * plane..][..d.o * plane];
                    let win = &winners[n * d.o * plane..][..d.o * plane];
                    input_grad_image(&d, &weights, g, win, dx);
                });
            Some(Tensor::from_vec(dx, (b, c, h, w), xs.device())?)
        } else {
            None
        };
        Ok((
            dx,
            Some(Tensor::from_vec(dw, weight.dims(), weight.device())?),
            Some(Tensor::from_vec(db, d.o, bias.device())?),
        ))
    }
}

/// The layer's forward over host slices, one image per parallel task: `xs [b, c, h, w]` into
/// `out [b, o, hp, wp]` and one winner byte per output, channel-last (`[b, hp * wp, o]`) so the
/// backward can read all channels of one window with one load. The op's forward and mnist-train's
/// fused training step both run it.
pub fn forward_slices(
    d: &ConvPoolDims,
    xs: &[f32],
    weight: &[f32],
    bias: &[f32],
    out: &mut [f32],
    winners: &mut [u8],
) {
    let (hp, wp) = d.pooled();
    let (image_len, out_len) = (d.c * d.h * d.w, d.o * hp * wp);
    assert!(
        weight.len() == d.o * d.c * TAPS
            && bias.len() == d.o
            && xs.len().is_multiple_of(image_len)
            && out.len() == xs.len() / image_len * out_len
            && winners.len() == out.len(),
        "conv3x3-relu-max-pool: slice sizes do not match {d:?}"
    );
    let avx2 = has_avx2();
    #[cfg(target_arch = "x86_64")]
    let avx512 = d.c == 1
        && (2 * wp).next_multiple_of(2 * 16) + K - 1 <= d.padded_cols()
        && std::arch::is_x86_feature_detected!("avx512f");
    out.par_chunks_mut(out_len)
        .zip(winners.par_chunks_mut(out_len))
        .zip(xs.par_chunks(image_len))
        .for_each(|((out, winners), image)| {
            #[cfg(target_arch = "x86_64")]
            if avx512 {
                // SAFETY: the CPU has AVX-512F, and the padded rows hold whole 32-column blocks
                // (checked above).
                return unsafe { forward_image_avx512(d, image, weight, bias, out, winners) };
            }
            #[cfg(target_arch = "x86_64")]
            if avx2 && d.c == 1 {
                // SAFETY: the CPU has AVX2 and FMA (checked above).
                return unsafe { forward_image_avx2(d, image, weight, bias, out, winners) };
            }
            forward_image(d, image, weight, bias, out, winners)
        });
}

/// The kernel and bias gradients over host slices, written to `dw [o, c, 3, 3]` and `db [o]`
/// (overwritten), from the pooled gradient `[b, o, hp, wp]` and the channel-last winners. Partial sums run per fixed chunk of images and are added in chunk order,
/// so the result does not depend on the thread count.
///
/// Only the winners carry gradient, a quarter of the conv positions, so the kernels walk the
/// pooled windows: each window's 4x4 input patch sits in one register, and every channel picks
/// its nine taps out of it with a permute at its own winner's offset.
pub fn weight_grad_slices(
    d: &ConvPoolDims,
    xs: &[f32],
    grad: &[f32],
    winners: &[u8],
    dw: &mut [f32],
    db: &mut [f32],
) {
    let (hp, wp) = d.pooled();
    let (image_len, out_len) = (d.c * d.h * d.w, d.o * hp * wp);
    let b = xs.len() / image_len;
    assert!(
        dw.len() == d.o * d.c * TAPS
            && db.len() == d.o
            && xs.len() == b * image_len
            && grad.len() == b * out_len
            && winners.len() == grad.len(),
        "conv3x3-relu-max-pool: gradient slice sizes do not match {d:?}"
    );
    let kernel = WeightGradKernel::best(d);
    let plane = hp * wp;
    let partials: Vec<(Vec<f32>, Vec<f32>)> = (0..b)
        .into_par_iter()
        .step_by(GRAD_CHUNK)
        .map(|first| {
            let mut dw = vec![0f32; d.o * d.c * TAPS];
            let mut db = vec![0f32; d.o];
            let mut channel_last = vec![0f32; out_len];
            for n in first..(first + GRAD_CHUNK).min(b) {
                let image = &xs[n * image_len..][..image_len];
                let g = &grad[n * out_len..][..out_len];
                for (oc, channel) in g.chunks_exact(plane).enumerate() {
                    for (window, &g) in channel.iter().enumerate() {
                        channel_last[window * d.o + oc] = g;
                    }
                }
                let win = &winners[n * out_len..][..out_len];
                kernel.run(d, image, &channel_last, win, &mut dw, &mut db);
            }
            (dw, db)
        })
        .collect();
    dw.fill(0.0);
    db.fill(0.0);
    for (pw, pb) in &partials {
        dw.iter_mut().zip(pw).for_each(|(a, p)| *a += p);
        db.iter_mut().zip(pb).for_each(|(a, p)| *a += p);
    }
}

/// Which weight-gradient kernel runs: SIMD over 16 or 8 channels where the CPU and the shape
/// allow (single-channel input, channels a multiple of the width), plain loops otherwise.
#[derive(Debug, Clone, Copy, PartialEq)]
enum WeightGradKernel {
    Avx512,
    Avx2,
    Portable,
}

impl WeightGradKernel {
    fn best(d: &ConvPoolDims) -> Self {
        #[cfg(target_arch = "x86_64")]
        if d.c == 1 {
            if d.o.is_multiple_of(16) && std::arch::is_x86_feature_detected!("avx512f") {
                return Self::Avx512;
            }
            if d.o.is_multiple_of(LANES) && has_avx2() {
                return Self::Avx2;
            }
        }
        Self::Portable
    }

    /// Adds one image's gradients to `dw` and `db`.
    fn run(
        self,
        d: &ConvPoolDims,
        image: &[f32],
        grad: &[f32],
        winners: &[u8],
        dw: &mut [f32],
        db: &mut [f32],
    ) {
        match self {
            // SAFETY: `best` chose these only on a CPU that has the features, for shapes they
            // handle (one input channel, whole groups of channels).
            #[cfg(target_arch = "x86_64")]
            Self::Avx512 => unsafe { weight_grad_image_avx512(d, image, grad, winners, dw, db) },
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => unsafe { weight_grad_image_avx2(d, image, grad, winners, dw, db) },
            _ => weight_grad_image(d, image, grad, winners, dw, db),
        }
    }
}

/// One image's gradients, for any shape: for each window and channel whose ReLU was on, the
/// gradient times the nine inputs under the winning position.
fn weight_grad_image(
    d: &ConvPoolDims,
    image: &[f32],
    grad: &[f32],
    winners: &[u8],
    dw: &mut [f32],
    db: &mut [f32],
) {
    let (hp, wp) = d.pooled();
    for py in 0..hp {
        for px in 0..wp {
            let at = (py * wp + px) * d.o;
            for oc in 0..d.o {
                let code = winners[at + oc];
                if code & INACTIVE != 0 {
                    continue;
                }
                let g = grad[at + oc];
                db[oc] += g;
                let (y, x) = winner_position(py, px, code);
                for ch in 0..d.c {
                    let src = &image[ch * d.h * d.w..];
                    let dst = &mut dw[(oc * d.c + ch) * TAPS..][..TAPS];
                    for i in 0..K {
                        for j in 0..K {
                            dst[i * K + j] += g * src[(y + i) * d.w + x + j];
                        }
                    }
                }
            }
        }
    }
}

/// [`weight_grad_image`] for one input channel, 16 channels at a time with AVX-512: the window's
/// 4x4 input patch is one register, and each tap is a permute of it by the channels' winner
/// offsets plus the tap's, then an FMA into that tap's accumulator.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn weight_grad_image_avx512(
    d: &ConvPoolDims,
    image: &[f32],
    grad: &[f32],
    winners: &[u8],
    dw: &mut [f32],
    db: &mut [f32],
) {
    use std::arch::x86_64::*;
    const GROUP: usize = 16;
    let (hp, wp) = d.pooled();
    assert!(d.c == 1 && d.o.is_multiple_of(GROUP) && image.len() == d.h * d.w);
    assert!(grad.len() == hp * wp * d.o && winners.len() == grad.len());
    // The bottom-right patch ends at row 2hp+1 and column 2wp+1, inside the image.
    assert!(2 * hp + 2 <= d.h && 2 * wp + 2 <= d.w);
    let (one, inactive) = (_mm512_set1_epi32(1), _mm512_set1_epi32(INACTIVE as i32));
    for group in (0..d.o).step_by(GROUP) {
        let mut acc = [_mm512_setzero_ps(); TAPS];
        let mut bias_acc = _mm512_setzero_ps();
        for py in 0..hp {
            for px in 0..wp {
                let top_left = 2 * py * d.w + 2 * px;
                let row = |r: usize| {
                    let row = &image[top_left + r * d.w..][..4];
                    // SAFETY: `row` holds 4 floats.
                    unsafe { _mm_loadu_ps(row.as_ptr()) }
                };
                let patch = _mm512_insertf32x4::<3>(
                    _mm512_insertf32x4::<2>(
                        _mm512_insertf32x4::<1>(_mm512_castps128_ps512(row(0)), row(1)),
                        row(2),
                    ),
                    row(3),
                );
                let at = (py * wp + px) * d.o + group;
                let (g, codes) = (&grad[at..][..GROUP], &winners[at..][..GROUP]);
                // SAFETY: `g` holds 16 floats and `codes` 16 bytes.
                let (g, codes) = unsafe {
                    (
                        _mm512_loadu_ps(g.as_ptr()),
                        _mm512_cvtepu8_epi32(_mm_loadu_si128(codes.as_ptr().cast())),
                    )
                };
                let g = _mm512_maskz_mov_ps(_mm512_testn_epi32_mask(codes, inactive), g);
                bias_acc = _mm512_add_ps(bias_acc, g);
                // Winner (dy, dx) starts at patch index 4 dy + dx.
                let dy = _mm512_and_si512(_mm512_srli_epi32::<1>(codes), one);
                let base =
                    _mm512_add_epi32(_mm512_slli_epi32::<2>(dy), _mm512_and_si512(codes, one));
                for i in 0..K {
                    for j in 0..K {
                        let index = _mm512_add_epi32(base, _mm512_set1_epi32((4 * i + j) as i32));
                        let inputs = _mm512_permutexvar_ps(index, patch);
                        acc[i * K + j] = _mm512_fmadd_ps(g, inputs, acc[i * K + j]);
                    }
                }
            }
        }
        let mut lanes = [0f32; GROUP];
        for (t, acc) in acc.iter().enumerate() {
            // SAFETY: `lanes` holds 16 floats.
            unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), *acc) };
            for (k, &v) in lanes.iter().enumerate() {
                dw[(group + k) * TAPS + t] += v;
            }
        }
        // SAFETY: as above.
        unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), bias_acc) };
        for (k, &v) in lanes.iter().enumerate() {
            db[group + k] += v;
        }
    }
}

/// [`weight_grad_image_avx512`] with AVX2: the 4x4 patch is two registers (rows 0-1 and 2-3),
/// each tap permutes both and blends by which half the index falls in; 8 channels at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn weight_grad_image_avx2(
    d: &ConvPoolDims,
    image: &[f32],
    grad: &[f32],
    winners: &[u8],
    dw: &mut [f32],
    db: &mut [f32],
) {
    use std::arch::x86_64::*;
    let (hp, wp) = d.pooled();
    assert!(d.c == 1 && d.o.is_multiple_of(LANES) && image.len() == d.h * d.w);
    assert!(grad.len() == hp * wp * d.o && winners.len() == grad.len());
    assert!(2 * hp + 2 <= d.h && 2 * wp + 2 <= d.w);
    let (one, seven) = (_mm256_set1_epi32(1), _mm256_set1_epi32(7));
    let inactive = _mm256_set1_epi32(INACTIVE as i32);
    for group in (0..d.o).step_by(LANES) {
        let mut acc = [_mm256_setzero_ps(); TAPS];
        let mut bias_acc = _mm256_setzero_ps();
        for py in 0..hp {
            for px in 0..wp {
                let top_left = 2 * py * d.w + 2 * px;
                let row = |r: usize| {
                    let row = &image[top_left + r * d.w..][..4];
                    // SAFETY: `row` holds 4 floats.
                    unsafe { _mm_loadu_ps(row.as_ptr()) }
                };
                let upper = _mm256_insertf128_ps::<1>(_mm256_castps128_ps256(row(0)), row(1));
                let lower = _mm256_insertf128_ps::<1>(_mm256_castps128_ps256(row(2)), row(3));
                let at = (py * wp + px) * d.o + group;
                let (g, codes) = (&grad[at..][..LANES], &winners[at..][..LANES]);
                // SAFETY: `g` holds 8 floats and `codes` 8 bytes.
                let (g, codes) = unsafe {
                    (
                        _mm256_loadu_ps(g.as_ptr()),
                        _mm256_cvtepu8_epi32(_mm_loadl_epi64(codes.as_ptr().cast())),
                    )
                };
                let on =
                    _mm256_cmpeq_epi32(_mm256_and_si256(codes, inactive), _mm256_setzero_si256());
                let g = _mm256_and_ps(g, _mm256_castsi256_ps(on));
                bias_acc = _mm256_add_ps(bias_acc, g);
                let dy = _mm256_and_si256(_mm256_srli_epi32::<1>(codes), one);
                let base =
                    _mm256_add_epi32(_mm256_slli_epi32::<2>(dy), _mm256_and_si256(codes, one));
                for i in 0..K {
                    for j in 0..K {
                        let index = _mm256_add_epi32(base, _mm256_set1_epi32((4 * i + j) as i32));
                        let in_lower = _mm256_castsi256_ps(_mm256_cmpgt_epi32(index, seven));
                        let inputs = _mm256_blendv_ps(
                            _mm256_permutevar8x32_ps(upper, index),
                            _mm256_permutevar8x32_ps(lower, index),
                            in_lower,
                        );
                        acc[i * K + j] = _mm256_fmadd_ps(g, inputs, acc[i * K + j]);
                    }
                }
            }
        }
        let mut lanes = [0f32; LANES];
        for (t, acc) in acc.iter().enumerate() {
            // SAFETY: `lanes` holds 8 floats.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), *acc) };
            for (k, &v) in lanes.iter().enumerate() {
                dw[(group + k) * TAPS + t] += v;
            }
        }
        // SAFETY: as above.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), bias_acc) };
        for (k, &v) in lanes.iter().enumerate() {
            db[group + k] += v;
        }
    }
}

/// Whether the AVX2 copies of the kernels can run. The default x86-64 target assumes only SSE2;
/// these loops run about twice as fast 8 lanes wide. Neither copy fuses multiply and add, so both
/// give the same bits.
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// [`forward_image`] for single-channel images (the tutorial's first layer), with AVX2
/// intrinsics: the nine weights of a channel stay in registers, each pair of conv rows shares its
/// input loads, and 16 conv columns are pooled at once into 8 outputs. LLVM's auto-vectorizer
/// turned the scalar version's pooling into 4-wide shuffles and dragged the convolution with it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn forward_image_avx2(
    d: &ConvPoolDims,
    image: &[f32],
    weight: &[f32],
    bias: &[f32],
    out: &mut [f32],
    winners: &mut [u8],
) {
    use std::arch::x86_64::*;
    const BLOCK: usize = 2 * LANES;
    debug_assert_eq!(d.c, 1);
    let (hp, wp) = d.pooled();
    let pcols = d.padded_cols();
    let padded = padded_image(d, image);
    let zero = _mm256_setzero_ps();
    let one = _mm256_set1_epi32(1);
    let inactive_code = _mm256_set1_epi32(INACTIVE as i32);
    for oc in 0..d.o {
        let taps = &weight[oc * TAPS..][..TAPS];
        let mut w = [zero; TAPS];
        for (w, &tap) in w.iter_mut().zip(taps) {
            *w = _mm256_set1_ps(tap);
        }
        let b = _mm256_set1_ps(bias[oc]);
        let out = &mut out[oc * hp * wp..][..hp * wp];
        for py in 0..hp {
            // Conv rows 2py and 2py+1 read input rows 2py..2py+4.
            let row = |r: usize| &padded[(2 * py + r) * pcols..][..pcols];
            let rows: [&[f32]; K + 1] = [row(0), row(1), row(2), row(3)];
            for x0 in (0..d.conv_cols()).step_by(BLOCK) {
                // [top, bottom] for columns x0..x0+8 and x0+8..x0+16.
                let mut acc = [[zero; 2]; 2];
                for (half, acc) in acc.iter_mut().enumerate() {
                    let x = x0 + half * LANES;
                    if x + LANES + K - 1 > pcols {
                        break; // past the last block: stays zero, never stored
                    }
                    for (r, row) in rows.iter().enumerate() {
                        for j in 0..K {
                            // SAFETY: x + j + 8 <= x + 10 <= pcols = row.len(), checked above.
                            let xs = unsafe { _mm256_loadu_ps(row.as_ptr().add(x + j)) };
                            if r < K {
                                acc[0] = _mm256_fmadd_ps(w[r * K + j], xs, acc[0]);
                            }
                            if r >= 1 {
                                acc[1] = _mm256_fmadd_ps(w[(r - 1) * K + j], xs, acc[1]);
                            }
                        }
                    }
                }
                // Even and odd columns of the 16, in order: lanes k hold pooled column x0/2 + k.
                let split = |lo: __m256, hi: __m256| {
                    let even = _mm256_shuffle_ps::<0b10_00_10_00>(lo, hi);
                    let odd = _mm256_shuffle_ps::<0b11_01_11_01>(lo, hi);
                    let order = |v: __m256| {
                        _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(
                            v,
                        )))
                    };
                    (order(even), order(odd))
                };
                let (a, bb) = split(acc[0][0], acc[1][0]);
                let (c, e) = split(acc[0][1], acc[1][1]);
                let max = _mm256_max_ps(_mm256_max_ps(a, bb), _mm256_max_ps(c, e));
                // First position holding the maximum: count the leading positions that do not.
                let na = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_NEQ_UQ>(a, max));
                let nab = _mm256_and_si256(
                    na,
                    _mm256_castps_si256(_mm256_cmp_ps::<_CMP_NEQ_UQ>(bb, max)),
                );
                let nabc = _mm256_and_si256(
                    nab,
                    _mm256_castps_si256(_mm256_cmp_ps::<_CMP_NEQ_UQ>(c, max)),
                );
                let best = _mm256_add_epi32(
                    _mm256_and_si256(na, one),
                    _mm256_add_epi32(_mm256_and_si256(nab, one), _mm256_and_si256(nabc, one)),
                );
                let v = _mm256_add_ps(max, b);
                let active = _mm256_cmp_ps::<_CMP_GT_OQ>(v, zero);
                let value = _mm256_and_ps(v, active);
                let winner = _mm256_or_si256(
                    best,
                    _mm256_andnot_si256(_mm256_castps_si256(active), inactive_code),
                );
                let mut values = [0f32; LANES];
                let mut codes = [0i32; LANES];
                // SAFETY: both arrays hold exactly LANES lanes.
                unsafe {
                    _mm256_storeu_ps(values.as_mut_ptr(), value);
                    _mm256_storeu_si256(codes.as_mut_ptr().cast(), winner);
                }
                let px = x0 / 2;
                let n = LANES.min(wp - px);
                out[py * wp + px..][..n].copy_from_slice(&values[..n]);
                for (k, &code) in codes[..n].iter().enumerate() {
                    winners[(py * wp + px + k) * d.o + oc] = code as u8;
                }
            }
        }
    }
}

/// [`forward_image_avx2`] with AVX-512: 16 conv columns per register, so one pass of two
/// registers per conv row covers the 26 columns of an MNIST row, and pooling is one permute per
/// register pair. The same multiply-adds in the same order, so the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn forward_image_avx512(
    d: &ConvPoolDims,
    image: &[f32],
    weight: &[f32],
    bias: &[f32],
    out: &mut [f32],
    winners: &mut [u8],
) {
    use std::arch::x86_64::*;
    const WIDE: usize = 16;
    const BLOCK: usize = 2 * WIDE;
    let (hp, wp) = d.pooled();
    let pcols = d.padded_cols();
    assert!(d.c == 1 && (2 * wp).next_multiple_of(BLOCK) + K - 1 <= pcols);
    let padded = padded_image(d, image);
    let zero = _mm512_setzero_ps();
    let one = _mm512_set1_epi32(1);
    let inactive_code = _mm512_set1_epi32(INACTIVE as i32);
    // Lanes 0..16 of [lo, hi] → the even and the odd columns of the 32, in order.
    let even_index = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd_index = _mm512_add_epi32(even_index, one);
    for oc in 0..d.o {
        let taps = &weight[oc * TAPS..][..TAPS];
        let w: [__m512; TAPS] = std::array::from_fn(|t| _mm512_set1_ps(taps[t]));
        let b = _mm512_set1_ps(bias[oc]);
        let out = &mut out[oc * hp * wp..][..hp * wp];
        for py in 0..hp {
            // Conv rows 2py and 2py+1 read input rows 2py..2py+4.
            let row = |r: usize| &padded[(2 * py + r) * pcols..][..pcols];
            let rows: [&[f32]; K + 1] = [row(0), row(1), row(2), row(3)];
            for x0 in (0..2 * wp).step_by(BLOCK) {
                // [top, bottom] for columns x0..x0+16 and x0+16..x0+32.
                let mut acc = [[zero; 2]; 2];
                for (half, acc) in acc.iter_mut().enumerate() {
                    let x = x0 + half * WIDE;
                    for (r, row) in rows.iter().enumerate() {
                        for j in 0..K {
                            // SAFETY: x + j + 16 <= x0 + 34 <= pcols = row.len() (asserted).
                            let xs = unsafe { _mm512_loadu_ps(row.as_ptr().add(x + j)) };
                            if r < K {
                                acc[0] = _mm512_fmadd_ps(w[r * K + j], xs, acc[0]);
                            }
                            if r >= 1 {
                                acc[1] = _mm512_fmadd_ps(w[(r - 1) * K + j], xs, acc[1]);
                            }
                        }
                    }
                }
                let split = |lo: __m512, hi: __m512| {
                    (
                        _mm512_permutex2var_ps(lo, even_index, hi),
                        _mm512_permutex2var_ps(lo, odd_index, hi),
                    )
                };
                let (a, bb) = split(acc[0][0], acc[1][0]);
                let (c, e) = split(acc[0][1], acc[1][1]);
                let max = _mm512_max_ps(_mm512_max_ps(a, bb), _mm512_max_ps(c, e));
                // First position holding the maximum: count the leading positions that do not.
                let na = _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(a, max);
                let nab = na & _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(bb, max);
                let nabc = nab & _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(c, max);
                let best = _mm512_add_epi32(
                    _mm512_maskz_mov_epi32(na, one),
                    _mm512_add_epi32(
                        _mm512_maskz_mov_epi32(nab, one),
                        _mm512_maskz_mov_epi32(nabc, one),
                    ),
                );
                let v = _mm512_add_ps(max, b);
                let active = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, zero);
                let value = _mm512_maskz_mov_ps(active, v);
                let winner = _mm512_mask_or_epi32(best, !active, best, inactive_code);
                let px = x0 / 2;
                let n = WIDE.min(wp - px);
                let lanes = ((1u32 << n) - 1) as __mmask16;
                let mut codes = [0i32; WIDE];
                // SAFETY: `out[py * wp + px..]` holds at least `n` floats (px + n <= wp), and
                // `codes` 16 lanes.
                unsafe {
                    _mm512_mask_storeu_ps(out[py * wp + px..].as_mut_ptr(), lanes, value);
                    _mm512_storeu_si512(codes.as_mut_ptr().cast(), winner);
                }
                for (k, &code) in codes[..n].iter().enumerate() {
                    winners[(py * wp + px + k) * d.o + oc] = code as u8;
                }
            }
        }
    }
}

/// The image with each row zero-padded to [`ConvPoolDims::padded_cols`], so every SIMD block reads whole
/// rows without bounds checks.
#[inline(always)]
fn padded_image(d: &ConvPoolDims, image: &[f32]) -> Vec<f32> {
    let pcols = d.padded_cols();
    let mut padded = vec![0f32; d.c * d.h * pcols];
    for (dst, src) in padded.chunks_exact_mut(pcols).zip(image.chunks_exact(d.w)) {
        dst[..d.w].copy_from_slice(src);
    }
    padded
}

/// Eight conv outputs `(y, x0..x0+8)` of output channel `oc`, summed tap by tap in a register.
#[inline(always)]
fn conv_block(
    d: &ConvPoolDims,
    padded: &[f32],
    weight: &[f32],
    oc: usize,
    y: usize,
    x0: usize,
) -> [f32; LANES] {
    let pcols = d.padded_cols();
    let mut acc = [0f32; LANES];
    for ch in 0..d.c {
        let taps = &weight[(oc * d.c + ch) * TAPS..][..TAPS];
        let src = &padded[ch * d.h * pcols..];
        for i in 0..K {
            let row = &src[(y + i) * pcols + x0..][..LANES + K - 1];
            for j in 0..K {
                let wt = taps[i * K + j];
                for l in 0..LANES {
                    acc[l] += wt * row[j + l];
                }
            }
        }
    }
    acc
}

/// One image: for each pooled row, two conv rows 8 columns at a time, pooled straight from
/// registers into 4 outputs with their winners, then bias and ReLU.
#[inline(always)]
fn forward_image(
    d: &ConvPoolDims,
    image: &[f32],
    weight: &[f32],
    bias: &[f32],
    out: &mut [f32],
    winners: &mut [u8],
) {
    const HALF: usize = LANES / 2;
    let (hp, wp) = d.pooled();
    let padded = padded_image(d, image);
    for oc in 0..d.o {
        let out = &mut out[oc * hp * wp..][..hp * wp];
        for py in 0..hp {
            for x0 in (0..d.conv_cols()).step_by(LANES) {
                let top = conv_block(d, &padded, weight, oc, 2 * py, x0);
                let bottom = conv_block(d, &padded, weight, oc, 2 * py + 1, x0);
                let mut value = [0f32; HALF];
                let mut winner = [0u8; HALF];
                for k in 0..HALF {
                    let (a, b) = (top[2 * k], top[2 * k + 1]);
                    let (c, e) = (bottom[2 * k], bottom[2 * k + 1]);
                    let max = a.max(b).max(c.max(e));
                    // The first position holding the maximum (PyTorch's rule), without branches:
                    // winners are unpredictable, so a branchy scan mispredicts constantly.
                    let (na, nb, nc) = (a != max, b != max, c != max);
                    let best = na as u8 + (na & nb) as u8 + (na & nb & nc) as u8;
                    let v = max + bias[oc];
                    let active = v > 0.0;
                    value[k] = if active { v } else { 0.0 };
                    winner[k] = best | if active { 0 } else { INACTIVE };
                }
                let px = x0 / 2;
                let n = HALF.min(wp - px);
                out[py * wp + px..][..n].copy_from_slice(&value[..n]);
                for (k, &code) in winner[..n].iter().enumerate() {
                    winners[(py * wp + px + k) * d.o + oc] = code;
                }
            }
        }
    }
}

/// Conv-row and -column of the window winner behind pooled output `(py, px)`.
fn winner_position(py: usize, px: usize, winner: u8) -> (usize, usize) {
    (
        2 * py + (winner as usize >> 1),
        2 * px + (winner as usize & 1),
    )
}

/// One image's input gradient (only for inputs that need one, e.g. in gradient checks).
fn input_grad_image(
    d: &ConvPoolDims,
    weight: &[f32],
    grad: &[f32],
    winners: &[u8],
    dx: &mut [f32],
) {
    let (hp, wp) = d.pooled();
    for oc in 0..d.o {
        for py in 0..hp {
            for px in 0..wp {
                let code = winners[(py * wp + px) * d.o + oc];
                if code & INACTIVE != 0 {
                    continue;
                }
                let g = grad[oc * hp * wp + py * wp + px];
                let (y, x) = winner_position(py, px, code);
                for ch in 0..d.c {
                    let taps = &weight[(oc * d.c + ch) * TAPS..][..TAPS];
                    let dst = &mut dx[ch * d.h * d.w..];
                    for i in 0..K {
                        for j in 0..K {
                            dst[(y + i) * d.w + x + j] += g * taps[i * K + j];
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{assert_gradients_match, max_diff, weighted_gradients};
    use candle_core::{Device, Var};

    fn grads_of(
        f: impl Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>,
        x: &Var,
        w: &Var,
        b: &Var,
        r: &Tensor,
    ) -> (Tensor, Vec<Tensor>) {
        let y = f(x.as_tensor(), w.as_tensor(), b.as_tensor()).unwrap();
        let grads = weighted_gradients(&y, r, &[x, w, b]);
        (y, grads)
    }

    #[test]
    fn matches_candle_ops_in_values_and_all_gradients() {
        let dev = Device::Cpu;
        // Odd sizes (9x8 → conv 7x6 → pool 3x3) exercise the dropped row and the padded block.
        for (b, c, h, w, o) in [(3, 1, 28, 28, 32), (2, 2, 9, 8, 5), (1, 3, 11, 13, 4)] {
            let x = Var::randn(0f32, 1., (b, c, h, w), &dev).unwrap();
            let wt = Var::randn(0f32, 0.5, (o, c, 3, 3), &dev).unwrap();
            let bias = Var::randn(0f32, 0.5, o, &dev).unwrap();
            let probe =
                conv3x3_relu_max_pool(x.as_tensor(), wt.as_tensor(), bias.as_tensor()).unwrap();
            let r = Tensor::randn(0f32, 1., probe.dims(), &dev).unwrap();
            let (ours, g_ours) = grads_of(conv3x3_relu_max_pool, &x, &wt, &bias, &r);
            let (reference, g_ref) = grads_of(conv3x3_relu_max_pool_reference, &x, &wt, &bias, &r);
            assert_eq!(ours.dims(), reference.dims());
            assert!(
                max_diff(&ours, &reference) < 1e-5,
                "values differ by {}",
                max_diff(&ours, &reference)
            );
            for (name, (a, e)) in ["input", "weight", "bias"]
                .iter()
                .zip(g_ours.iter().zip(&g_ref))
            {
                assert!(
                    max_diff(a, e) < 1e-3,
                    "{name} gradient differs by {}",
                    max_diff(a, e)
                );
            }
        }
    }

    /// Seeded uniform values in [-scale, scale): a finite-difference step that crosses a kink
    /// (a window's maximum changing, a ReLU switching) would fail the check, so the inputs are
    /// fixed rather than drawn afresh on every run.
    fn seeded(dims: &[usize], scale: f32, seed: u64) -> Var {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let n = dims.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.random_range(-scale..scale)).collect();
        Var::from_vec(v, dims, &Device::Cpu).unwrap()
    }

    #[test]
    fn gradients_pass_a_numerical_check() {
        // Seed 1 keeps every window's winner and every ReLU unchanged under the ±0.01 steps
        // (seed 4, for one, does not: a weight step switches a window there).
        let x = seeded(&[1, 2, 7, 6], 1.0, 1);
        let wt = seeded(&[2, 2, 3, 3], 0.5, 101);
        let bias = seeded(&[2], 0.5, 201);
        let f = conv3x3_relu_max_pool;
        assert_gradients_match(&wt, |t| f(x.as_tensor(), t, bias.as_tensor()));
        assert_gradients_match(&bias, |t| f(x.as_tensor(), wt.as_tensor(), t));
        assert_gradients_match(&x, |t| f(t, wt.as_tensor(), bias.as_tensor()));
    }

    #[test]
    fn an_image_input_gets_no_gradient_and_results_do_not_depend_on_threads() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1., (37, 1, 28, 28), &dev).unwrap();
        let wt = Var::randn(0f32, 0.5, (8, 1, 3, 3), &dev).unwrap();
        let bias = Var::randn(0f32, 0.5, 8, &dev).unwrap();
        let run = || {
            let y = conv3x3_relu_max_pool(&x, wt.as_tensor(), bias.as_tensor()).unwrap();
            let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
            assert!(g.get(&x).is_none());
            g.get(wt.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        let many = run();
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(run);
        assert_eq!(many, one);
    }

    /// Every weight-gradient kernel this CPU can run gives the portable loops' result, on
    /// pooled gradients with inactive windows and every winner position.
    #[test]
    fn simd_weight_gradient_kernels_match_the_portable_one() {
        let d = ConvPoolDims {
            c: 1,
            h: 28,
            w: 28,
            o: 32,
        };
        let (hp, wp) = d.pooled();
        let n = hp * wp * d.o;
        let image = seeded(&[28 * 28], 1.0, 5)
            .as_tensor()
            .to_vec1::<f32>()
            .unwrap();
        let grad = seeded(&[n], 1.0, 6).as_tensor().to_vec1::<f32>().unwrap();
        let winners: Vec<u8> = (0..n).map(|i| ((i * 7 + i / 5) % 8) as u8).collect();
        assert!(winners.iter().any(|&w| w & INACTIVE != 0));
        let run = |kernel: WeightGradKernel| {
            let (mut dw, mut db) = (vec![0f32; d.o * TAPS], vec![0f32; d.o]);
            kernel.run(&d, &image, &grad, &winners, &mut dw, &mut db);
            (dw, db)
        };
        let (dw, db) = run(WeightGradKernel::Portable);
        let mut kernels = vec![];
        #[cfg(target_arch = "x86_64")]
        {
            if has_avx2() {
                kernels.push(WeightGradKernel::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                kernels.push(WeightGradKernel::Avx512);
            }
        }
        for kernel in kernels {
            let (w2, b2) = run(kernel);
            let diff = |a: &[f32], b: &[f32]| {
                a.iter()
                    .zip(b)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0, f32::max)
            };
            assert!(
                diff(&dw, &w2) < 1e-4,
                "{kernel:?}: weights off by {}",
                diff(&dw, &w2)
            );
            assert!(
                diff(&db, &b2) < 1e-4,
                "{kernel:?}: bias off by {}",
                diff(&db, &b2)
            );
        }
    }

    /// The AVX-512 forward gives the AVX2 one's bits, values and winners, on images with ink
    /// and blank paper (blank windows tie, and the first maximum must win), biases that switch
    /// the ReLU off, and every MNIST-sized output column.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_forward_gives_the_avx2_bits() {
        if !(has_avx2() && std::arch::is_x86_feature_detected!("avx512f")) {
            eprintln!("skipped: this CPU lacks AVX2 or AVX-512F");
            return;
        }
        let d = ConvPoolDims {
            c: 1,
            h: 28,
            w: 28,
            o: 32,
        };
        let (hp, wp) = d.pooled();
        let noise = seeded(&[4 * 28 * 28], 1.0, 9)
            .as_tensor()
            .to_vec1::<f32>()
            .unwrap();
        // Left half of each image blank, right half noise.
        let images: Vec<f32> = noise
            .iter()
            .enumerate()
            .map(|(i, &x)| if i % 28 < 14 { 0.0 } else { x })
            .collect();
        let weight = seeded(&[d.o * TAPS], 0.5, 10)
            .as_tensor()
            .to_vec1::<f32>()
            .unwrap();
        let bias: Vec<f32> = (0..d.o).map(|o| (o as f32 - 16.0) / 16.0).collect();
        for image in images.chunks_exact(28 * 28) {
            let run = |avx512: bool| {
                let (mut out, mut winners) = (vec![0f32; d.o * hp * wp], vec![0u8; d.o * hp * wp]);
                // SAFETY: the CPU has both feature sets (checked above), and MNIST rows pad to
                // whole 32-column blocks.
                unsafe {
                    if avx512 {
                        forward_image_avx512(&d, image, &weight, &bias, &mut out, &mut winners);
                    } else {
                        forward_image_avx2(&d, image, &weight, &bias, &mut out, &mut winners);
                    }
                }
                (out.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), winners)
            };
            let (avx2, avx512) = (run(false), run(true));
            assert!(avx2.1.contains(&INACTIVE) && avx2.1.contains(&3));
            assert_eq!(avx512, avx2);
        }
    }

    #[test]
    fn mismatched_shapes_are_an_error_not_a_panic() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((1, 2, 28, 28), candle_core::DType::F32, &dev).unwrap();
        let wt = Tensor::zeros((4, 1, 3, 3), candle_core::DType::F32, &dev).unwrap();
        let bias = Tensor::zeros(4, candle_core::DType::F32, &dev).unwrap();
        let err = conv3x3_relu_max_pool(&x, &wt, &bias)
            .unwrap_err()
            .to_string();
        assert!(err.contains("do not fit"), "{err}");
    }
}
