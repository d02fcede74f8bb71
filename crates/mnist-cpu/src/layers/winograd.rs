//! 3x3 convolution (stride 1, no padding) by Winograd's minimal filtering F(2x2, 3x3) (Lavin
//! and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016): each 2x2 block of
//! outputs comes from a 4x4 block of inputs with 16 multiplies per channel pair instead of 36,
//! so the three products of a training step (forward, input gradient, weight gradient) need
//! 2.25 times fewer multiply-adds than im2col's. The same interface as [`super::conv`], which
//! stays the reference (tested against each other, and both against candle's autograd).
//!
//! With `d` a 4x4 input tile, `g` a 3x3 kernel and `y` the 2x2 output tile,
//! `y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`. Summed over input channels, each of the 16 positions ξ of
//! the transformed tile is one GEMM: `M[ξ] [o, tiles] = U[ξ] [o, c] @ V[ξ] [c, tiles]`.
//!
//! * forward: transform the input tiles (V) and the kernels (U), 16 GEMMs, transform back;
//! * input gradient: the same on the output gradient padded by 2, with the kernels rotated and
//!   their channels swapped (a "full" convolution);
//! * weight gradient: `dU[ξ] = Σ (A dY Aᵀ)[ξ] ⊗ V[ξ]` over tiles, 16 GEMMs whose sums run over
//!   the batch's tiles, then `dW = Gᵀ dU G`.
//!
//! The transforms work a row of tiles at a time in whole vectors over the row.
//!
//! Images go in fixed chunks, as in [`super::conv`], and partial weight gradients are added in
//! chunk order, so results do not depend on the thread count.

use std::cell::RefCell;

use rayon::prelude::*;

use super::conv::ConvDims;
use crate::gemm::{matmul, matmul_rows};
use crate::simd::simd_kernel;
use crate::Level;

/// Transformed positions per tile.
const XI: usize = 16;
/// Tile columns a chunk's GEMMs aim for.
const MIN_TILES: usize = 144;

/// Whether a convolution runs here: 3x3 with enough input channels that the 16 GEMMs over them
/// are worth it (a single-channel first layer is im2col's or the direct kernel's).
pub fn applies(d: &ConvDims) -> bool {
    d.k == 3 && d.c >= 4 && d.side >= 3
}

/// Whether the backward runs here too. Its transforms cost more than the forward's (two inputs,
/// two outputs), and below 32 input channels im2col's backward was faster (measured on AVX-512,
/// batch 32: the fast network's 16-channel layer 0.71 ms against 0.97 ms, its step 1.45 ms
/// against 1.96 ms; at 32 channels Winograd's 4.43 ms against 4.75 ms).
pub fn applies_backward(d: &ConvDims) -> bool {
    applies(d) && d.c >= BACKWARD_MIN_CHANNELS
}

/// See [`applies_backward`].
const BACKWARD_MIN_CHANNELS: usize = 32;

/// Tiles per side for outputs of side `side`: 2x2 each, the last one cut off when odd.
fn tiles(side: usize) -> usize {
    side.div_ceil(2)
}

/// Images per chunk for output side `out_side`.
fn chunk(out_side: usize) -> usize {
    MIN_TILES.div_ceil(tiles(out_side) * tiles(out_side)).max(1)
}

/// Weight-gradient partial sums a batch of `b` needs, each `16 * c * o + o` floats.
pub fn chunks(d: &ConvDims, b: usize) -> usize {
    b.div_ceil(chunk(d.out_side()))
}

/// Floats of one chunk's weight-gradient partial sum.
pub fn partial_len(d: &ConvDims) -> usize {
    XI * d.c * d.o + d.o
}

thread_local! {
    /// Per-thread transformed inputs, products and transformed output gradients.
    static SCRATCH: RefCell<[Vec<f32>; 3]> = const { RefCell::new([Vec::new(), Vec::new(), Vec::new()]) };
}

fn with_scratch<R>(lens: [usize; 3], f: impl FnOnce(&mut [f32], &mut [f32], &mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut bufs = cell.borrow_mut();
        for (buf, &len) in bufs.iter_mut().zip(&lens) {
            super::grow(buf, len);
        }
        let [a, b, c] = &mut *bufs;
        f(&mut a[..lens[0]], &mut b[..lens[1]], &mut c[..lens[2]])
    })
}

thread_local! {
    /// Per-thread phase planes and transformed values of one channel, for the transforms (which
    /// run inside [`with_scratch`]). They hold the previous call's values: the transforms zero
    /// what they read and do not write.
    static PHASES: RefCell<[Vec<f32>; 2]> = const { RefCell::new([Vec::new(), Vec::new()]) };
}

/// This thread's [`PHASES`], taken out (give them back with [`return_phases`]) and grown to
/// `lens`. Taken rather than lent to a closure: the transform bodies must be called straight
/// from their SIMD dispatch, or the compiler may not inline them into the level's function.
fn take_phases(lens: [usize; 2]) -> [Vec<f32>; 2] {
    let mut bufs = PHASES.take();
    for (buf, &len) in bufs.iter_mut().zip(&lens) {
        super::grow(buf, len);
    }
    bufs
}

fn return_phases(bufs: [Vec<f32>; 2]) {
    PHASES.set(bufs);
}

/// `(g0, g1, g2) → G g`.
#[inline(always)]
fn g(k: [f32; 3]) -> [f32; 4] {
    [
        k[0],
        0.5 * (k[0] + k[1] + k[2]),
        0.5 * (k[0] - k[1] + k[2]),
        k[2],
    ]
}

/// `(u0, u1, u2, u3) → Gᵀ u`.
#[inline(always)]
fn gt(u: [f32; 4]) -> [f32; 3] {
    [
        u[0] + 0.5 * (u[1] + u[2]),
        0.5 * (u[1] - u[2]),
        0.5 * (u[1] + u[2]) + u[3],
    ]
}

/// The kernels transformed, `u [16, rows, cols]` with `rows x cols` the kernel's channel pair
/// (`[o, c]`; with `swap`, `[c, o]` and each kernel rotated by 180 degrees, for the input
/// gradient).
fn transform_kernels(d: &ConvDims, w: &[f32], swap: bool, u: &mut [f32]) {
    let (rows, cols) = if swap { (d.c, d.o) } else { (d.o, d.c) };
    for o in 0..d.o {
        for c in 0..d.c {
            let k = &w[(o * d.c + c) * 9..][..9];
            let tap = |i: usize, j: usize| {
                if swap {
                    k[(2 - i) * 3 + 2 - j]
                } else {
                    k[i * 3 + j]
                }
            };
            // G g Gᵀ: columns first, then rows.
            let cols3: [[f32; 4]; 3] =
                std::array::from_fn(|j| g([tap(0, j), tap(1, j), tap(2, j)]));
            let (r, s) = if swap { (c, o) } else { (o, c) };
            for i in 0..4 {
                let row = g([cols3[0][i], cols3[1][i], cols3[2][i]]);
                for (j, &v) in row.iter().enumerate() {
                    u[((i * 4 + j) * rows + r) * cols + s] = v;
                }
            }
        }
    }
}

/// The four phase planes of one map (`side`², shifted down and right by `shift` tiles), written
/// at row `row0` of planes `plane` floats apart: `phases[(2p + q) * plane + (row0 + Y) * stride +
/// K] = map[2(Y - shift) + p][2(K - shift) + q]`. Positions outside the map keep what they held
/// (the caller zeroes the planes once).
#[inline(always)]
fn split_phases(
    map: &[f32],
    side: usize,
    shift: usize,
    (plane, row0, stride): (usize, usize, usize),
    phases: &mut [f32],
) {
    let (even_rows, odd_rows) = phases.split_at_mut(2 * plane);
    for (y, row) in map.chunks_exact(side).enumerate() {
        let rows = if y % 2 == 0 {
            &mut *even_rows
        } else {
            &mut *odd_rows
        };
        let (even, odd) = rows.split_at_mut(plane);
        let at = (row0 + y / 2 + shift) * stride + shift;
        let (even, odd) = (
            &mut even[at..][..side.div_ceil(2)],
            &mut odd[at..][..side / 2],
        );
        deinterleave(row, even, odd);
    }
}

/// `even` and `odd` get `row`'s values at even and odd positions (`even` one more for an odd
/// length).
///
/// In blocks of pairs, which the compiler turns into a few shuffles: the widest block the row
/// holds, then the same block moved back to end at the last pair (writing some values twice)
/// instead of a scalar loop over the rest; the maps' rows are 8-26 values, so the rest was most
/// of the work.
#[inline(always)]
fn deinterleave(row: &[f32], even: &mut [f32], odd: &mut [f32]) {
    let pairs = row.len() / 2;
    match pairs {
        8.. => deinterleave_pairs::<8>(row, even, odd),
        4.. => deinterleave_pairs::<4>(row, even, odd),
        2.. => deinterleave_pairs::<2>(row, even, odd),
        1 => deinterleave_pairs::<1>(row, even, odd),
        0 => {}
    }
    if row.len() % 2 == 1 {
        even[pairs] = row[row.len() - 1];
    }
}

/// [`deinterleave`]'s pairs, `P` at a time (`row` holds at least `P` pairs).
#[inline(always)]
fn deinterleave_pairs<const P: usize>(row: &[f32], even: &mut [f32], odd: &mut [f32]) {
    let pairs = row.len() / 2;
    let mut j = 0;
    while j + P <= pairs {
        deinterleave_block::<P>(&row[2 * j..], &mut even[j..], &mut odd[j..]);
        j += P;
    }
    if j < pairs {
        let j = pairs - P;
        deinterleave_block::<P>(&row[2 * j..], &mut even[j..], &mut odd[j..]);
    }
}

/// The first `P` pairs of `src` into the first `P` values of `even` and `odd`.
#[inline(always)]
fn deinterleave_block<const P: usize>(src: &[f32], even: &mut [f32], odd: &mut [f32]) {
    let src = &src[..2 * P];
    let e: [f32; P] = std::array::from_fn(|i| src[2 * i]);
    let o: [f32; P] = std::array::from_fn(|i| src[2 * i + 1]);
    even[..P].copy_from_slice(&e);
    odd[..P].copy_from_slice(&o);
}

/// The inverse of [`deinterleave`]: `row` from its values at even and odd positions, in blocks
/// the same way.
#[inline(always)]
fn interleave(even: &[f32], odd: &[f32], row: &mut [f32]) {
    let pairs = row.len() / 2;
    match pairs {
        8.. => interleave_pairs::<8>(even, odd, row),
        4.. => interleave_pairs::<4>(even, odd, row),
        2.. => interleave_pairs::<2>(even, odd, row),
        1 => interleave_pairs::<1>(even, odd, row),
        0 => {}
    }
    if row.len() % 2 == 1 {
        row[2 * pairs] = even[pairs];
    }
}

/// [`interleave`]'s pairs, `P` at a time (`row` holds at least `P` pairs).
#[inline(always)]
fn interleave_pairs<const P: usize>(even: &[f32], odd: &[f32], row: &mut [f32]) {
    let pairs = row.len() / 2;
    let mut j = 0;
    while j + P <= pairs {
        interleave_block::<P>(&even[j..], &odd[j..], &mut row[2 * j..]);
        j += P;
    }
    if j < pairs {
        let j = pairs - P;
        interleave_block::<P>(&even[j..], &odd[j..], &mut row[2 * j..]);
    }
}

/// The first `P` values of `even` and `odd` into the first `P` pairs of `dst`.
#[inline(always)]
fn interleave_block<const P: usize>(even: &[f32], odd: &[f32], dst: &mut [f32]) {
    let e: &[f32; P] = even[..P].try_into().expect("P floats");
    let o: &[f32; P] = odd[..P].try_into().expect("P floats");
    let pairs: [[f32; 2]; P] = std::array::from_fn(|i| [e[i], o[i]]);
    dst[..2 * P].copy_from_slice(pairs.as_flattened());
}

/// Sixteen tiles' values of one position, one per lane: the transforms work on these, so the
/// compiler emits whole-register adds at every SIMD level.
#[derive(Clone, Copy)]
struct Lanes([f32; LANES]);

const LANES: usize = 16;

impl Lanes {
    #[inline(always)]
    fn load(src: &[f32], at: usize) -> Self {
        Lanes(src[at..at + LANES].try_into().expect("16 floats"))
    }

    #[inline(always)]
    fn store(self, dst: &mut [f32], at: usize) {
        dst[at..at + LANES].copy_from_slice(&self.0);
    }

    #[inline(always)]
    fn splat(x: f32) -> Self {
        Lanes([x; LANES])
    }

    /// `max(x, 0)` per lane, as `relu::forward` (NaN gives 0).
    #[inline(always)]
    fn relu(self) -> Self {
        Lanes(self.0.map(|x| x.max(0.0)))
    }
}

impl std::ops::Add for Lanes {
    type Output = Self;
    #[inline(always)]
    fn add(self, other: Self) -> Self {
        Lanes(std::array::from_fn(|l| self.0[l] + other.0[l]))
    }
}

impl std::ops::Sub for Lanes {
    type Output = Self;
    #[inline(always)]
    fn sub(self, other: Self) -> Self {
        Lanes(std::array::from_fn(|l| self.0[l] - other.0[l]))
    }
}

impl std::ops::Neg for Lanes {
    type Output = Self;
    #[inline(always)]
    fn neg(self) -> Self {
        Lanes(std::array::from_fn(|l| -self.0[l]))
    }
}

/// `Bᵀ (d0, d1, d2, d3) = (d0 - d2, d1 + d2, d2 - d1, d1 - d3)`.
#[inline(always)]
fn bt(d0: Lanes, d1: Lanes, d2: Lanes, d3: Lanes) -> [Lanes; 4] {
    [d0 - d2, d1 + d2, d2 - d1, d1 - d3]
}

/// `Aᵀ (m0, m1, m2, m3) = (m0 + m1 + m2, m1 - m2 - m3)`.
#[inline(always)]
fn at(m0: Lanes, m1: Lanes, m2: Lanes, m3: Lanes) -> [Lanes; 2] {
    [m0 + m1 + m2, m1 - m2 - m3]
}

/// `A (y0, y1) = (y0, y0 + y1, y0 - y1, -y1)`.
#[inline(always)]
fn a(y0: Lanes, y1: Lanes) -> [Lanes; 4] {
    [y0, y0 + y1, y0 - y1, -y1]
}

/// `Bᵀ d B` of 16 tiles at `k`: `d(r, s)` loads position (r, s), `out(r, s)` stores one.
#[inline(always)]
fn bt_d_b(d: impl Fn(usize, usize) -> Lanes, mut out: impl FnMut(usize, usize, Lanes)) {
    // Bᵀ down each column s.
    let [c00, c10, c20, c30] = bt(d(0, 0), d(1, 0), d(2, 0), d(3, 0));
    let [c01, c11, c21, c31] = bt(d(0, 1), d(1, 1), d(2, 1), d(3, 1));
    let [c02, c12, c22, c32] = bt(d(0, 2), d(1, 2), d(2, 2), d(3, 2));
    let [c03, c13, c23, c33] = bt(d(0, 3), d(1, 3), d(2, 3), d(3, 3));
    // B across each row r.
    for (r, row) in [
        [c00, c01, c02, c03],
        [c10, c11, c12, c13],
        [c20, c21, c22, c23],
        [c30, c31, c32, c33],
    ]
    .into_iter()
    .enumerate()
    {
        let [v0, v1, v2, v3] = bt(row[0], row[1], row[2], row[3]);
        out(r, 0, v0);
        out(r, 1, v1);
        out(r, 2, v2);
        out(r, 3, v3);
    }
}

/// `Aᵀ M A` of 16 tiles: `m(r, s)` loads position (r, s); returns the 2x2 outputs row-major.
#[inline(always)]
fn at_m_a(m: impl Fn(usize, usize) -> Lanes) -> [Lanes; 4] {
    let [r00, r01] = at(m(0, 0), m(0, 1), m(0, 2), m(0, 3));
    let [r10, r11] = at(m(1, 0), m(1, 1), m(1, 2), m(1, 3));
    let [r20, r21] = at(m(2, 0), m(2, 1), m(2, 2), m(2, 3));
    let [r30, r31] = at(m(3, 0), m(3, 1), m(3, 2), m(3, 3));
    let [y00, y10] = at(r00, r10, r20, r30);
    let [y01, y11] = at(r01, r11, r21, r31);
    [y00, y01, y10, y11]
}

/// `A dY Aᵀ` of 16 tiles' 2x2 output gradients (row-major): `out(r, s)` stores one position.
#[inline(always)]
fn a_dy_at(dy: [Lanes; 4], mut out: impl FnMut(usize, usize, Lanes)) {
    let [c00, c10, c20, c30] = a(dy[0], dy[2]);
    let [c01, c11, c21, c31] = a(dy[1], dy[3]);
    for (r, (c0, c1)) in [(c00, c01), (c10, c11), (c20, c21), (c30, c31)]
        .into_iter()
        .enumerate()
    {
        let [z0, z1, z2, z3] = a(c0, c1);
        out(r, 0, z0);
        out(r, 1, z1);
        out(r, 2, z2);
        out(r, 3, z3);
    }
}

/// The 16 consecutive `len`-long parts of `buf`.
fn split16(buf: &mut [f32], len: usize) -> [&mut [f32]; XI] {
    let mut parts = buf.chunks_exact_mut(len);
    std::array::from_fn(|_| parts.next().expect("16 parts"))
}

/// The input tiles of a chunk of `images`, transformed: `v [16, c, width]` for `c` maps of
/// `side`² in `x`, `t` tiles per side whose 4x4 windows start at `2t - pad` (`pad` even; values
/// outside the map are 0), image `i`'s tiles in columns `i * t²..`.
///
/// Each map is split into its four phase planes (even and odd rows and columns), where the 16
/// values of every tile are shifted views, so `Bᵀ d B` runs over all of a map's tiles at once in
/// long vectors (over a flat grid with one spare column per row of tiles, dropped at the end).
#[allow(clippy::too_many_arguments)]
fn transform_inputs(
    level: Level,
    x: &[f32],
    (c, side): (usize, usize),
    images: usize,
    t: usize,
    pad: usize,
    v: &mut [f32],
    width: usize,
) {
    // All of the chunk's maps of one channel at once: each image's phase planes take t + 1 rows
    // of t + 1 columns (the last row and column only feed the next tile), and the flat views run
    // over all of them; the spare row and column of tiles are dropped at the end.
    let grid = InputGrid::new(images, t);
    // The scratch is taken here, outside the SIMD body, so that the body compiles with its
    // level's features.
    let [mut phases, mut out] = take_phases([4 * grid.phase_len, XI * grid.flat]);
    transform_inputs_body(
        level,
        x,
        (c, side),
        images,
        t,
        pad,
        v,
        width,
        grid,
        &mut phases[..4 * grid.phase_len],
        &mut out[..XI * grid.flat],
    );
    return_phases([phases, out]);
}

/// Where [`transform_inputs`] lays out a chunk's phase planes.
#[derive(Clone, Copy)]
struct InputGrid {
    /// Columns (and rows per image) of each phase plane: the tiles plus a spare one.
    stride: usize,
    /// Positions the transform runs over, a whole number of vectors.
    flat: usize,
    /// Floats of one phase plane: `flat` plus slack for the views shifted by a row and a column.
    phase_len: usize,
}

impl InputGrid {
    fn new(images: usize, t: usize) -> Self {
        let stride = t + 1;
        let flat = (images * stride * stride).next_multiple_of(LANES);
        InputGrid {
            stride,
            flat,
            phase_len: flat + stride + 1,
        }
    }
}

simd_kernel! {
    fn transform_inputs_body(
        x: &[f32],
        dims: (usize, usize),
        images: usize,
        t: usize,
        pad: usize,
        v: &mut [f32],
        width: usize,
        grid: InputGrid,
        phases: &mut [f32],
        out: &mut [f32],
    ) {
        let InputGrid {
            stride,
            flat,
            phase_len,
        } = grid;
        let (c, side) = dims;
        let plane = side * side;
        // The planes hold the previous channel's (or call's) values. Without padding, an even map
        // writes all of each image's t + 1 rows and columns, and what lies past them feeds only the
        // spare tiles; otherwise positions outside the map must read 0.
        let covered = pad == 0 && side % 2 == 0;
        for ch in 0..c {
            if !covered {
                phases.fill(0.0);
            }
            for i in 0..images {
                let map = &x[(i * c + ch) * plane..][..plane];
                split_phases(map, side, pad / 2, (phase_len, i * stride, stride), phases);
            }
            // d[r][s] over the tiles: phase (r % 2, s % 2), shifted by (r / 2, s / 2) tiles; Bᵀ d B
            // for every tile in one pass.
            let views: [&[f32]; XI] = std::array::from_fn(|q| {
                let (r, s) = (q / 4, q % 4);
                let at = (2 * (r % 2) + s % 2) * phase_len + (r / 2) * stride + s / 2;
                &phases[at..][..flat]
            });
            let mut outs: [&mut [f32]; XI] = split16(&mut out[..XI * flat], flat);
            for k in (0..flat).step_by(LANES) {
                bt_d_b(
                    |r, s| Lanes::load(views[r * 4 + s], k),
                    |r, s, v| v.store(outs[r * 4 + s], k),
                );
            }
            // The tiles that exist, image after image: tile row ty of image i is row i * stride + ty
            // of the flat grid.
            for xi in 0..XI {
                let values = &out[xi * flat..][..flat];
                let dst = &mut v[(xi * c + ch) * width..][..images * t * t];
                for i in 0..images {
                    for ty in 0..t {
                        let src = &values[(i * stride + ty) * stride..][..t];
                        super::conv::copy_short(&mut dst[(i * t + ty) * t..][..t], src);
                    }
                }
            }
        }
    }
}

/// Back from the products `m [16, o, width]` to outputs `y [images, o, side, side]` (plus the
/// bias), keeping the part of each 2x2 tile inside the map: `Aᵀ M A` over all of a map's tiles at
/// once, then the four output phases interleaved into the map.
#[allow(clippy::too_many_arguments)]
fn transform_outputs(
    level: Level,
    m: &[f32],
    (o, side): (usize, usize),
    images: usize,
    t: usize,
    width: usize,
    bias: Option<&[f32]>,
    relu: bool,
    y: &mut [f32],
) {
    // Each channel's four output phases: every position is written before it is read.
    let len = (images * t * t).next_multiple_of(LANES);
    let [mut phases, out] = take_phases([4 * len, 0]);
    transform_outputs_body(
        level,
        m,
        (o, side),
        images,
        t,
        width,
        bias,
        relu,
        y,
        &mut phases[..4 * len],
    );
    return_phases([phases, out]);
}

simd_kernel! {
    fn transform_outputs_body(
        m: &[f32],
        dims: (usize, usize),
        images: usize,
        t: usize,
        width: usize,
        bias: Option<&[f32]>,
        relu: bool,
        y: &mut [f32],
        phases: &mut [f32],
    ) {
        let (o, side) = dims;
        let plane = side * side;
        let n = t * t;
        // Over all of the chunk's tiles at once, in one pass: phases[2a + j], output (2ty + a,
        // 2tx + j) of every tile.
        // In whole vectors: the products have a vector's slack past each row (see `forward`).
        let len = (images * n).next_multiple_of(LANES);
        for ch in 0..o {
            let mv = |xi: usize| &m[(xi * o + ch) * width..][..len];
            let b = bias.map_or(0.0, |b| b[ch]);
            let views: [&[f32]; XI] = std::array::from_fn(mv);
            let mut outs: [&mut [f32]; 4] = {
                let (a, rest) = phases.split_at_mut(len);
                let (b2, rest) = rest.split_at_mut(len);
                let (c2, d2) = rest.split_at_mut(len);
                [a, b2, c2, &mut d2[..len]]
            };
            let bias = Lanes::splat(b);
            for k in (0..len).step_by(LANES) {
                let y = at_m_a(|r, s| Lanes::load(views[r * 4 + s], k));
                for (o, y) in outs.iter_mut().zip(y) {
                    let y = y + bias;
                    if relu { y.relu() } else { y }.store(o, k);
                }
            }
            for i in 0..images {
                let map = &mut y[(i * o + ch) * plane..][..plane];
                for (yy, row) in map.chunks_exact_mut(side).enumerate() {
                    let (a, ty) = (yy % 2, yy / 2);
                    let at = i * n + ty * t;
                    let even = &phases[(2 * a) * len + at..][..t];
                    let odd = &phases[(2 * a + 1) * len + at..][..t];
                    interleave(even, odd, row);
                }
            }
        }
    }
}

/// `m[ξ] [rows, width] = u[ξ] [rows, k] @ v[ξ] [k, width]` for the 16 positions.
fn products(
    level: Level,
    u: &[f32],
    v: &[f32],
    m: &mut [f32],
    (rows, k, width): (usize, usize, usize),
) {
    for xi in 0..XI {
        // SAFETY: each slice holds its position's matrix, row-major (sizes fixed by callers);
        // the level is the caller's, available on this CPU.
        unsafe {
            matmul_rows(
                level,
                (rows, width, k),
                (m[xi * rows * width..].as_mut_ptr(), width),
                (u[xi * rows * k..].as_ptr(), k, 1),
                (v[xi * k * width..].as_ptr(), width),
            )
        };
    }
}

/// The kernels `w [o, c, 3, 3]` as [`forward`] multiplies them, `[16, o, c]`: a network whose
/// weights stay as they are (inference) makes them once instead of on every call.
pub fn transformed_kernels(d: &ConvDims, w: &[f32]) -> Vec<f32> {
    assert!(
        applies(d) && w.len() == d.o * d.patch_rows(),
        "winograd conv: kernel size does not match {d:?}"
    );
    let mut u = vec![0f32; XI * d.o * d.c];
    transform_kernels(d, w, false, &mut u);
    u
}

/// `y [b, o, area] = conv(x [b, c, s, s], w [o, c, 3, 3]) + bias`; `u` is `w` as
/// [`transformed_kernels`] gives it, when the caller keeps it.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    level: Level,
    d: &ConvDims,
    relu: bool,
    x: &[f32],
    w: &[f32],
    u: Option<&[f32]>,
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    let b = x.len() / d.in_len();
    assert!(
        applies(d)
            && x.len() == b * d.in_len()
            && y.len() == b * d.out_len()
            && w.len() == d.o * d.patch_rows()
            && u.is_none_or(|u| u.len() == XI * d.o * d.c),
        "winograd conv: slice sizes do not match {d:?}"
    );
    let so = d.out_side();
    let (t, n) = (tiles(so), chunk(so));
    // A whole chunk's width even for the last one, so each image's sums do not depend on where
    // the batch ends.
    let width = n * t * t;
    let made;
    let u = match u {
        Some(u) => u,
        None => {
            made = transformed_kernels(d, w);
            &made
        }
    };
    y.par_chunks_mut(n * d.out_len())
        .zip(x.par_chunks(n * d.in_len()))
        .for_each(|(y, x)| {
            let images = x.len() / d.in_len();
            // The products get a vector's slack: the output transform reads whole vectors.
            with_scratch(
                [XI * d.c * width, XI * d.o * width + LANES, 0],
                |v, m, _| {
                    if images < n {
                        v.fill(0.0);
                    }
                    transform_inputs(level, x, (d.c, d.side), images, t, 0, v, width);
                    products(level, u, v, m, (d.o, d.c, width));
                    transform_outputs(level, m, (d.o, so), images, t, width, bias, relu, y);
                },
            )
        });
}

/// The backward: `dw [o, c, 3, 3]` and `db [o]` (overwritten) from `dy [b, o, area]`, and `dx`
/// when given (overwritten). `partials` holds [`chunks`] per-chunk gradients of
/// [`partial_len`] floats.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    level: Level,
    d: &ConvDims,
    x: &[f32],
    dy: &[f32],
    w: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    dx: Option<&mut [f32]>,
    partials: &mut [f32],
) {
    let b = x.len() / d.in_len();
    let part = partial_len(d);
    assert!(
        applies(d)
            && x.len() == b * d.in_len()
            && dy.len() == b * d.out_len()
            && w.len() == d.o * d.patch_rows()
            && dw.len() == w.len()
            && partials.len() >= chunks(d, b) * part
            && dx.as_ref().is_none_or(|dx| dx.len() == x.len()),
        "winograd conv backward: slice sizes do not match {d:?}"
    );
    let so = d.out_side();
    let n = chunk(so);
    let partials = &mut partials[..chunks(d, b) * part];

    // The weight gradient: per chunk, dUᵀ[ξ] [c, o] = V[ξ] [c, tiles] @ Z[ξ] [tiles, o], with
    // Z = A dY Aᵀ over the output tiles.
    let t = tiles(so);
    let width = n * t * t;
    partials
        .par_chunks_mut(part)
        .zip(x.par_chunks(n * d.in_len()))
        .zip(dy.par_chunks(n * d.out_len()))
        .for_each(|((partial, x), dy)| {
            let images = x.len() / d.in_len();
            let (du, pb) = partial.split_at_mut(XI * d.c * d.o);
            for (ch, db) in pb.iter_mut().enumerate() {
                *db = dy
                    .chunks_exact(d.out_len())
                    .map(|dy| dy[ch * so * so..][..so * so].iter().sum::<f32>())
                    .sum();
            }
            with_scratch([XI * d.c * width, XI * width * d.o, 0], |v, z, _| {
                if images < n {
                    v.fill(0.0);
                    z.fill(0.0);
                }
                transform_inputs(level, x, (d.c, d.side), images, t, 0, v, width);
                transform_output_grads(level, dy, (d.o, so), images, t, z, width);
                for xi in 0..XI {
                    // dUᵀ[ξ] [c, o] = V[ξ] [c, width] @ Z[ξ]ᵀ [width, o], through gemm, which
                    // packs the transposed operand.
                    // SAFETY: each slice holds its position's row-major matrix.
                    unsafe {
                        matmul(
                            (d.c, d.o, width),
                            (du[xi * d.c * d.o..].as_mut_ptr(), d.o, 1),
                            (v[xi * d.c * width..].as_ptr(), width, 1),
                            (z[xi * d.o * width..].as_ptr(), 1, width),
                        )
                    };
                }
            })
        });
    let (first, rest) = partials.split_at_mut(part);
    for partial in rest.chunks_exact(part) {
        first.iter_mut().zip(partial).for_each(|(a, p)| *a += p);
    }
    let (du, pb) = first.split_at(XI * d.c * d.o);
    // dW = Gᵀ dU G for every channel pair.
    for o in 0..d.o {
        for c in 0..d.c {
            let value = |i: usize, j: usize| du[((i * 4 + j) * d.c + c) * d.o + o];
            let cols: [[f32; 3]; 4] =
                std::array::from_fn(|j| gt([value(0, j), value(1, j), value(2, j), value(3, j)]));
            let k = &mut dw[(o * d.c + c) * 9..][..9];
            for r in 0..3 {
                let row = gt([cols[0][r], cols[1][r], cols[2][r], cols[3][r]]);
                k[r * 3..r * 3 + 3].copy_from_slice(&row);
            }
        }
    }
    if let Some(db) = db {
        db.copy_from_slice(pb);
    }

    // The input gradient: a full convolution of dy (padded by 2) with the rotated kernels.
    let Some(dx) = dx else { return };
    let td = tiles(d.side);
    let nd = chunk(d.side);
    let width = nd * td * td;
    let mut u = vec![0f32; XI * d.c * d.o];
    transform_kernels(d, w, true, &mut u);
    dx.par_chunks_mut(nd * d.in_len())
        .zip(dy.par_chunks(nd * d.out_len()))
        .for_each(|(dx, dy)| {
            let images = dy.len() / d.out_len();
            with_scratch(
                [XI * d.o * width, XI * d.c * width + LANES, 0],
                |v, m, _| {
                    if images < nd {
                        v.fill(0.0);
                    }
                    transform_inputs(level, dy, (d.o, so), images, td, 2, v, width);
                    products(level, &u, v, m, (d.c, d.o, width));
                    transform_outputs(level, m, (d.c, d.side), images, td, width, None, false, dx);
                },
            )
        });
}

/// The output gradients' tiles of a chunk, transformed: `z [16, o, width]` with
/// `z[ξ][o][tile] = (A dY Aᵀ)[ξ]` of the tile's 2x2 outputs (0 past the map's edge), over all of
/// a map's tiles at once from its four phase planes.
fn transform_output_grads(
    level: Level,
    dy: &[f32],
    (o, side): (usize, usize),
    images: usize,
    t: usize,
    z: &mut [f32],
    width: usize,
) {
    let len = (images * t * t).next_multiple_of(LANES);
    let [mut phases, mut out] = take_phases([4 * len, XI * len]);
    transform_output_grads_body(
        level,
        dy,
        (o, side),
        images,
        t,
        z,
        width,
        &mut phases[..4 * len],
        &mut out[..XI * len],
    );
    return_phases([phases, out]);
}

simd_kernel! {
    fn transform_output_grads_body(
        dy: &[f32],
        dims: (usize, usize),
        images: usize,
        t: usize,
        z: &mut [f32],
        width: usize,
        phases: &mut [f32],
        out: &mut [f32],
    ) {
        let (o, side) = dims;
        let plane = side * side;
        let n = t * t;
        // Over all of the chunk's tiles at once: phases[2a + b], dY (2ty + a, 2tx + b) of every
        // tile, then A dY Aᵀ in one pass.
        let real = images * n;
        let len = real.next_multiple_of(LANES);
        for ch in 0..o {
            // The planes hold earlier values: an even map writes all of each image's t x t, and
            // what lies past the last image feeds no tile; an odd map leaves its odd phases' last
            // row and column, which must read 0.
            if side % 2 == 1 {
                phases.fill(0.0);
            }
            for i in 0..images {
                let map = &dy[(i * o + ch) * plane..][..plane];
                split_phases(map, side, 0, (len, i * t, t), phases);
            }
            let views: [&[f32]; 4] = std::array::from_fn(|q| &phases[q * len..][..len]);
            let mut outs: [&mut [f32]; XI] = split16(&mut out[..XI * len], len);
            for k in (0..len).step_by(LANES) {
                let dy = [0, 1, 2, 3].map(|q| Lanes::load(views[q], k));
                a_dy_at(dy, |r, s, v| v.store(outs[r * 4 + s], k));
            }
            for (xi, values) in out.chunks_exact(len).enumerate() {
                z[(xi * o + ch) * width..][..real].copy_from_slice(&values[..real]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, seeded_uniform};

    /// Every row length the maps can have, against the plain definition.
    #[test]
    fn deinterleave_and_interleave_every_length() {
        for len in 0..40usize {
            let row: Vec<f32> = (0..len).map(|i| i as f32 + 0.5).collect();
            let (ne, no) = (len.div_ceil(2), len / 2);
            // A sentinel past each part: nothing may be written there.
            let mut even = vec![-1.0; ne + 1];
            let mut odd = vec![-1.0; no + 1];
            deinterleave(&row, &mut even, &mut odd);
            let want_even: Vec<f32> = row.iter().step_by(2).copied().collect();
            let want_odd: Vec<f32> = row.iter().skip(1).step_by(2).copied().collect();
            assert_eq!(&even[..ne], &want_even[..], "len {len}");
            assert_eq!(&odd[..no], &want_odd[..], "len {len}");
            assert_eq!(
                (even[ne], odd[no]),
                (-1.0, -1.0),
                "len {len}: wrote past the end"
            );
            let mut back = vec![-1.0; len + 1];
            interleave(&even, &odd, &mut back[..len]);
            assert_eq!(&back[..len], &row[..], "len {len}");
            assert_eq!(back[len], -1.0, "len {len}: wrote past the end");
        }
    }

    /// Forward, weight, bias and input gradients against im2col's at every level, on even and
    /// odd maps and a batch that ends in a partial chunk.
    #[test]
    fn gives_im2col_results_to_rounding() {
        for d in [
            ConvDims {
                c: 8,
                side: 12,
                o: 5,
                k: 3,
            },
            ConvDims {
                c: 5,
                side: 11,
                o: 16,
                k: 3,
            },
            ConvDims {
                c: 32,
                side: 26,
                o: 32,
                k: 3,
            },
        ] {
            let b = 7;
            let x = seeded_uniform(b * d.in_len(), 1.0, 1);
            let w = seeded_uniform(d.o * d.patch_rows(), 0.3, 2);
            let bias = seeded_uniform(d.o, 0.3, 3);
            let dy = seeded_uniform(b * d.out_len(), 1.0, 4);
            let mut y_ref = vec![0f32; b * d.out_len()];
            super::super::conv::im2col_forward(
                Level::Portable,
                &d,
                false,
                &x,
                &w,
                Some(&bias),
                &mut y_ref,
            );
            let (mut dw_ref, mut db_ref, mut dx_ref) =
                (vec![0f32; w.len()], vec![0f32; d.o], vec![0f32; x.len()]);
            let mut partials = vec![0f32; d.chunks(b) * (d.o * d.patch_rows() + d.o)];
            super::super::conv::im2col_backward(
                Level::Portable,
                &d,
                &x,
                &dy,
                &w,
                &mut dw_ref,
                Some(&mut db_ref),
                Some(&mut dx_ref),
                &mut partials,
            );
            for level in Level::available() {
                let what = |w: &str| format!("{d:?} {level}: {w}");
                let mut y = vec![0f32; b * d.out_len()];
                forward(level, &d, false, &x, &w, None, Some(&bias), &mut y);
                assert_close(&y, &y_ref, 1e-5, &what("forward"));
                let u = transformed_kernels(&d, &w);
                let mut y_kept = vec![0f32; b * d.out_len()];
                forward(level, &d, false, &x, &w, Some(&u), Some(&bias), &mut y_kept);
                assert_eq!(y_kept, y, "{}", what("forward with kept kernels"));
                let (mut dw, mut db, mut dx) =
                    (vec![0f32; w.len()], vec![0f32; d.o], vec![0f32; x.len()]);
                let mut partials = vec![0f32; chunks(&d, b) * partial_len(&d)];
                backward(
                    level,
                    &d,
                    &x,
                    &dy,
                    &w,
                    &mut dw,
                    Some(&mut db),
                    Some(&mut dx),
                    &mut partials,
                );
                assert_close(&dw, &dw_ref, 1e-5, &what("weight gradient"));
                assert_close(&db, &db_ref, 1e-5, &what("bias gradient"));
                assert_close(&dx, &dx_ref, 1e-5, &what("input gradient"));
            }
        }
    }
}
