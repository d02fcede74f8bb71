//! The first layer of the tutorial and fast networks as one kernel: 3x3 convolution of the
//! single-channel image, bias, ReLU and 2x2 max-pool, `[b, 1, h, w]` → `[b, o, (h-2)/2,
//! (w-2)/2]`. The plan uses it for `conv<N>x3,relu,pool2` at the start of a list.
//!
//! Why fused: separately, these steps write and re-read three `[b, o, 26, 26]` activations per
//! step and their gradients. Fused, the forward keeps only the pooled output and each window's
//! winner (one byte), and the backward touches only the 169 winners per plane instead of 676
//! positions. ReLU commutes with max, and the bias is constant over a window, so
//! `relu(max(conv) + bias)` is the same function as `max_pool(relu(conv + bias))`. With one input
//! channel, im2col would make a 9-row GEMM that is all memory traffic; direct loops with the nine
//! weights in registers run at the arithmetic's speed.
//!
//! No input gradient: the input is the image. Gradient sums run over fixed chunks of the batch
//! in a fixed order, so results do not depend on the thread count.

use rayon::prelude::*;

use crate::Level;

const K: usize = 3;
const TAPS: usize = K * K;
/// Output columns computed together: one AVX2 register of f32.
const LANES: usize = 8;
/// Images per gradient partial sum. Fixed (not per thread) so that sums are reproducible.
const GRAD_CHUNK: usize = 4;
/// Marks a window whose ReLU is off (`max + bias <= 0`): no gradient flows through it.
pub const INACTIVE: u8 = 4;

/// Sizes of the fused layer: `c` input channels of `h`x`w`, `o` output channels (the plan uses
/// it with `c = 1`; the portable kernels take any `c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// Padded input row: wide enough for the last block's taps, and for the whole row.
    fn padded_cols(&self) -> usize {
        (self.conv_cols() + K - 1).max(self.w)
    }
}

/// The layer's forward, one image per parallel task: `xs [b, c, h, w]` into `out [b, o, hp, wp]`
/// and one winner byte per output, channel-last (`[b, hp * wp, o]`) so the backward can read all
/// channels of one window with one load.
pub fn forward(
    level: Level,
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
    #[cfg(target_arch = "x86_64")]
    let avx512 = level == Level::Avx512
        && d.c == 1
        && (2 * wp).next_multiple_of(2 * 16) + K - 1 <= d.padded_cols();
    #[cfg(target_arch = "x86_64")]
    let avx2 = level >= Level::Avx2 && d.c == 1;
    let _ = level;
    out.par_chunks_mut(out_len)
        .zip(winners.par_chunks_mut(out_len))
        .zip(xs.par_chunks(image_len))
        .for_each(|((out, winners), image)| {
            #[cfg(target_arch = "x86_64")]
            if avx512 {
                // SAFETY: the CPU has AVX-512F (the caller's level), and the padded rows hold
                // whole 32-column blocks (checked above).
                return unsafe { forward_image_avx512(d, image, weight, bias, out, winners) };
            }
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: the CPU has AVX2 and FMA (the caller's level).
                return unsafe { forward_image_avx2(d, image, weight, bias, out, winners) };
            }
            forward_image(d, image, weight, bias, out, winners)
        });
}

/// The kernel and bias gradients, written to `dw [o, c, 3, 3]` and `db [o]` (overwritten), from
/// the pooled gradient `[b, o, hp, wp]` and the channel-last winners. Partial sums run per fixed
/// chunk of images and are added in chunk order, so the result does not depend on the thread
/// count.
///
/// Only the winners carry gradient, a quarter of the conv positions, so the kernels walk the
/// pooled windows: each window's 4x4 input patch sits in one register, and every channel picks
/// its nine taps out of it with a permute at its own winner's offset.
pub fn weight_grad(
    level: Level,
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
    let kernel = WeightGradKernel::best(level, d);
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
    fn best(level: Level, d: &ConvPoolDims) -> Self {
        #[cfg(target_arch = "x86_64")]
        if d.c == 1 {
            if d.o.is_multiple_of(16) && level == Level::Avx512 {
                return Self::Avx512;
            }
            if d.o.is_multiple_of(LANES) && level >= Level::Avx2 {
                return Self::Avx2;
            }
        }
        let _ = (level, d);
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
            // SAFETY: `best` chose these only at a level the CPU has, for shapes they handle (one
            // input channel, whole groups of channels).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, seeded_uniform};

    const MNIST: ConvPoolDims = ConvPoolDims {
        c: 1,
        h: 28,
        w: 28,
        o: 32,
    };

    /// Images with ink and blank paper (blank windows tie, and the first maximum must win),
    /// biases that switch the ReLU off.
    fn inputs(d: &ConvPoolDims, b: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let noise = seeded_uniform(b * d.c * d.h * d.w, 1.0, 9);
        let images = noise
            .iter()
            .enumerate()
            .map(|(i, &x)| if i % d.w < d.w / 2 { 0.0 } else { x })
            .collect();
        let weight = seeded_uniform(d.o * d.c * TAPS, 0.5, 10);
        let bias = (0..d.o).map(|o| (o as f32 - 16.0) / 16.0).collect();
        (images, weight, bias)
    }

    /// Every forward kernel this CPU runs gives the portable loops' values to rounding (the
    /// SIMD ones fuse multiply and add), and the AVX2 and AVX-512 kernels give each other's bits,
    /// winners included.
    #[test]
    fn every_level_gives_the_portable_forward() {
        for d in [
            MNIST,
            ConvPoolDims {
                c: 1,
                h: 13,
                w: 11,
                o: 16,
            },
        ] {
            let (hp, wp) = d.pooled();
            let b = 3;
            let (images, weight, bias) = inputs(&d, b);
            let run = |level: Level| {
                let n = b * d.o * hp * wp;
                let (mut out, mut winners) = (vec![0f32; n], vec![0u8; n]);
                forward(level, &d, &images, &weight, &bias, &mut out, &mut winners);
                (out, winners)
            };
            let portable = run(Level::Portable);
            assert!(portable.1.contains(&INACTIVE) && portable.1.contains(&3));
            let mut simd = Vec::new();
            for level in Level::available() {
                let (out, winners) = run(level);
                assert_close(&out, &portable.0, 1e-6, &format!("{level} on {d:?}"));
                if level > Level::Portable {
                    simd.push((out.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), winners));
                }
            }
            assert!(
                simd.windows(2).all(|w| w[0] == w[1]),
                "AVX2 and AVX-512 differ on {d:?}"
            );
        }
    }

    /// Every weight-gradient kernel this CPU runs gives the portable loops' result to rounding
    /// (they sum in another order), on gradients with inactive windows and every winner.
    #[test]
    fn every_level_gives_the_portable_weight_gradient() {
        let d = MNIST;
        let (hp, wp) = d.pooled();
        let b = 5;
        let n = b * hp * wp * d.o;
        let (images, _, _) = inputs(&d, b);
        let grad = seeded_uniform(n, 1.0, 6);
        let winners: Vec<u8> = (0..n).map(|i| ((i * 7 + i / 5) % 8) as u8).collect();
        let run = |level: Level| {
            let (mut dw, mut db) = (vec![0f32; d.o * TAPS], vec![0f32; d.o]);
            weight_grad(level, &d, &images, &grad, &winners, &mut dw, &mut db);
            (dw, db)
        };
        let (dw, db) = run(Level::Portable);
        for level in Level::available() {
            let (w2, b2) = run(level);
            assert_close(&w2, &dw, 1e-5, &format!("{level} kernel gradient"));
            assert_close(&b2, &db, 1e-5, &format!("{level} bias gradient"));
        }
    }
}
