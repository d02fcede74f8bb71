//! Training-time augmentation: a small random affine warp per image (rotation, scale, shift),
//! the classic recipe that takes convnets past 99.5% on MNIST, optionally an elastic distortion
//! on top (Simard, Steinkraus and Platt, 2003: the wobble of a hand rather than of a page), and
//! optionally, for a fraction of the images, the strokes redrawn the way a photo's pen line is
//! redrawn before a model reads it ([`redraw_with_pen`]). Each epoch draws one [`Warp`] per image
//! from the seeded augmentation stream, so it is reproducible and resumable; the warps are applied
//! on the host, to the whole split at once ([`apply_warps`]) or to each batch as it is gathered
//! ([`Warp::apply_with`]), with the same pixels either way.

use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::stroke::{self, MNIST_STROKE_WIDTH, PEN_STROKE_INK};
use crate::{IMAGE_PIXELS, IMAGE_SIDE};

/// Ranges of the random warp.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AugmentConfig {
    pub max_rotation_degrees: f32,
    pub max_scale_change: f32,
    pub max_shift_pixels: f32,
    /// Fraction of the images (0-1) whose strokes are redrawn with a pen ([`redraw_with_pen`])
    /// before they are warped. At 0 no draw is spent on it, so the warps are those of a
    /// configuration without it.
    pub pen_fraction: f32,
    /// Strength of the elastic distortion ([`ELASTIC_SIGMA`]): the scale, in pixels, of a
    /// random displacement field smoothed by a Gaussian; Simard et al. use 34. At 0 there is
    /// none and no draw is spent on it.
    pub elastic: f32,
}

/// Width (pixels) of the Gaussian that smooths the elastic displacement field: strokes bend
/// over a few pixels rather than jitter pixel by pixel (Simard et al.'s 4).
pub const ELASTIC_SIGMA: f32 = 4.0;

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            max_rotation_degrees: 10.0,
            max_scale_change: 0.1,
            max_shift_pixels: 2.0,
            pen_fraction: 0.0,
            elastic: 0.0,
        }
    }
}

/// One image's warp: rotation (radians), scale, and shift (pixels) about the centre, plus an
/// elastic distortion of strength `elastic.0` drawn from seed `elastic.1`, after its strokes are
/// redrawn with a pen when `pen`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Warp {
    affine: Affine,
    pen: bool,
    elastic: Option<(f32, u64)>,
}

impl Warp {
    /// Draws a warp within `config`'s ranges (four draws from `rng`, a fifth when
    /// `config.pen_fraction` is above 0, and then one more when `config.elastic` is).
    pub fn draw(config: &AugmentConfig, rng: &mut impl Rng) -> Warp {
        let angle = rng.random_range(-1.0..=1.0) * config.max_rotation_degrees.to_radians();
        let scale = 1.0 + rng.random_range(-1.0..=1.0) * config.max_scale_change;
        let dx = rng.random_range(-1.0..=1.0) * config.max_shift_pixels;
        let dy = rng.random_range(-1.0..=1.0) * config.max_shift_pixels;
        let pen = config.pen_fraction > 0.0
            && rng.random_bool(f64::from(config.pen_fraction.clamp(0.0, 1.0)));
        let elastic = (config.elastic > 0.0).then(|| (config.elastic, rng.random::<u64>()));
        Warp {
            affine: Affine {
                angle,
                scale,
                dx,
                dy,
            },
            pen,
            elastic,
        }
    }

    /// Writes the warped `src` (784 bytes) into `dst` (784 bytes), with `src` redrawn with a pen
    /// first when the warp says so: the redraw taken from `redrawn` where it was made ahead
    /// ([`PenRedraws`]), else made here.
    pub fn apply_with(&self, src: &[u8], redrawn: Option<&[u8]>, dst: &mut [u8]) {
        assert!(
            src.len() == IMAGE_PIXELS && dst.len() == IMAGE_PIXELS,
            "a warp takes one 28x28 image"
        );
        let field = self.elastic.map(|(alpha, seed)| elastic_field(alpha, seed));
        match (self.pen, redrawn) {
            (false, _) => warp(src, dst, self.affine, field.as_ref()),
            (true, Some(redrawn)) => warp(redrawn, dst, self.affine, field.as_ref()),
            (true, None) => {
                let mut redrawn = [0u8; IMAGE_PIXELS];
                redraw_with_pen(src, &mut redrawn);
                warp(&redrawn, dst, self.affine, field.as_ref());
            }
        }
    }
}

/// Every image of a split redrawn with a pen ([`redraw_with_pen`]), made once for a whole
/// training run: a redraw depends only on the image, not on the epoch's warp, so remaking it
/// every epoch only cost time (about 0.1 ms an image). Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct PenRedraws(Arc<Vec<u8>>);

impl PenRedraws {
    /// Redraws each 784-byte image of `pixels`, in parallel.
    pub fn of(pixels: &[u8]) -> Self {
        let mut out = vec![0u8; pixels.len()];
        pixels
            .par_chunks_exact(IMAGE_PIXELS)
            .zip(out.par_chunks_exact_mut(IMAGE_PIXELS))
            .for_each(|(src, dst)| redraw_with_pen(src, dst));
        Self(Arc::new(out))
    }

    /// Image `i`'s redraw.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.0[i * IMAGE_PIXELS..][..IMAGE_PIXELS]
    }

    /// How many images it holds.
    pub fn len(&self) -> usize {
        self.0.len() / IMAGE_PIXELS
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// [`redraw_with_pen`] works at this many times MNIST's resolution, for a centre line smoother than
/// the 28x28 grid's staircase. The reader works at 8 times; training at 8 times too was measured
/// not to read photos better (docs/photo-reader-notes.md), and 2 keeps the shipped pen model's
/// recipe.
const PEN_SCALE: usize = 2;

/// Writes into `dst` the MNIST image `src` (784 bytes each) as `mnist_image` shows a model a
/// digit written with a thin pen: its strokes thinned to their centre line and drawn again with
/// a round pen [`MNIST_STROKE_WIDTH`] wide (in pixels of the 20-pixel box that the digit's
/// longer side fills), brightest pixel 255. Trained on some of these, a model reads the
/// uniform, loop-closing strokes of pen-written photos (a small loop filled with ink in MNIST
/// is a line once thinned) as well as MNIST's own.
pub fn redraw_with_pen(src: &[u8], dst: &mut [u8]) {
    assert!(
        src.len() == IMAGE_PIXELS && dst.len() == IMAGE_PIXELS,
        "a pen redraw takes one 28x28 image"
    );
    let inked = |i: usize| src[i] > 0;
    let rows: Vec<usize> = (0..IMAGE_SIDE)
        .filter(|&y| (0..IMAGE_SIDE).any(|x| inked(y * IMAGE_SIDE + x)))
        .collect();
    let cols: Vec<usize> = (0..IMAGE_SIDE)
        .filter(|&x| (0..IMAGE_SIDE).any(|y| inked(y * IMAGE_SIDE + x)))
        .collect();
    let (Some(&y0), Some(&y1), Some(&x0), Some(&x1)) =
        (rows.first(), rows.last(), cols.first(), cols.last())
    else {
        dst.fill(0);
        return;
    };
    let extent = (y1 - y0).max(x1 - x0) + 1;
    let pen = MNIST_STROKE_WIDTH * extent as f32 / 20.0 * PEN_SCALE as f32;
    // Bilinear upsampling, pixel centres aligned.
    let n = IMAGE_SIDE * PEN_SCALE;
    let at = |x: isize, y: isize| -> f32 {
        let c = |v: isize| v.clamp(0, IMAGE_SIDE as isize - 1) as usize;
        src[c(y) * IMAGE_SIDE + c(x)] as f32
    };
    let mut mask = vec![false; n * n];
    for y in 0..n {
        let sy = (y as f32 + 0.5) / PEN_SCALE as f32 - 0.5;
        let (y0, fy) = (sy.floor(), sy - sy.floor());
        for x in 0..n {
            let sx = (x as f32 + 0.5) / PEN_SCALE as f32 - 0.5;
            let (x0, fx) = (sx.floor(), sx - sx.floor());
            let (x0, y0) = (x0 as isize, y0 as isize);
            let v = at(x0, y0) * (1.0 - fx) * (1.0 - fy)
                + at(x0 + 1, y0) * fx * (1.0 - fy)
                + at(x0, y0 + 1) * (1.0 - fx) * fy
                + at(x0 + 1, y0 + 1) * fx * fy;
            mask[y * n + x] = v >= PEN_STROKE_INK * 255.0;
        }
    }
    let skeleton = stroke::thin(&mask, n, n);
    let drawn = stroke::redraw(&skeleton, n, n, pen);
    // Back to 28x28: the mean of each cell's PEN_SCALE x PEN_SCALE block, then the peak to 255.
    let mut cells = [0.0f32; IMAGE_PIXELS];
    for (i, cell) in cells.iter_mut().enumerate() {
        let (cx, cy) = (i % IMAGE_SIDE, i / IMAGE_SIDE);
        let mut sum = 0.0;
        for y in cy * PEN_SCALE..(cy + 1) * PEN_SCALE {
            sum += drawn[y * n + cx * PEN_SCALE..][..PEN_SCALE]
                .iter()
                .sum::<f32>();
        }
        *cell = sum / (PEN_SCALE * PEN_SCALE) as f32;
    }
    let peak = cells.iter().copied().fold(0.0f32, f32::max);
    if peak <= 0.0 {
        // Ink too faint to thin: nothing to redraw.
        dst.copy_from_slice(src);
        return;
    }
    for (d, &c) in dst.iter_mut().zip(&cells) {
        *d = (c / peak * 255.0).round() as u8;
    }
}

/// A flag is drawn on a 1 ([`flag_ones`]) falling this many degrees below the horizontal, to
/// the left: between a serif and the long flag of a European 1, whose top an American reads as
/// a 7's bar.
const FLAG_DROP_DEGREES: std::ops::Range<f32> = 15.0..50.0;
/// Its length, as a share of the 1's height.
const FLAG_LENGTH: std::ops::Range<f32> = 0.25..0.5;
/// No flag is drawn closer than this to the 1's own stroke (degrees): on a 1 leaning far to the
/// left it would only thicken the stroke.
const FLAG_MIN_SPREAD_DEGREES: f32 = 30.0;

/// Draws a flag on about `fraction` of the 1s among `images` (784 bytes each; `labels`, one
/// per image), chosen and drawn from `rng`: a stroke from the top of the 1 down to the left,
/// as wide as the 1's own, the way much of Europe writes a 1. MNIST's writers were American
/// and wrote a bare stroke, so a model trained on MNIST alone reads a flagged 1 as a 7. Returns
/// how many were drawn.
pub fn flag_ones(images: &mut [u8], labels: &[u8], fraction: f32, rng: &mut impl Rng) -> usize {
    assert_eq!(
        images.len(),
        labels.len() * IMAGE_PIXELS,
        "one label per image"
    );
    let mut drawn = 0;
    for (image, &label) in images.chunks_exact_mut(IMAGE_PIXELS).zip(labels) {
        // Every image takes its draws, so each one's flag depends only on the stream's start.
        let (chosen, drop, length) = (
            rng.random_bool(f64::from(fraction.clamp(0.0, 1.0))),
            rng.random_range(FLAG_DROP_DEGREES),
            rng.random_range(FLAG_LENGTH),
        );
        if label == 1 && chosen && draw_flag(image, drop, length) {
            drawn += 1;
        }
    }
    drawn
}

/// Draws on the 1 in `image` a flag `drop` degrees below the horizontal and `length` times the
/// 1's height long, from its top; false (and `image` unchanged) when the 1 is too short to
/// tell its top or the flag would run along it.
fn draw_flag(image: &mut [u8], drop: f32, length: f32) -> bool {
    let side = IMAGE_SIDE;
    let ink = |x: usize, y: usize| image[y * side + x] > 64;
    let rows: Vec<usize> = (0..side)
        .filter(|&y| (0..side).any(|x| ink(x, y)))
        .collect();
    let (Some(&top), Some(&bottom)) = (rows.first(), rows.last()) else {
        return false;
    };
    if bottom - top < 7 {
        return false;
    }
    // Where the stroke crosses its first two and last two rows.
    let middle = |ys: [usize; 2]| {
        let xs: Vec<usize> = ys
            .iter()
            .flat_map(|&y| (0..side).filter(move |&x| ink(x, y)))
            .collect();
        xs.iter().sum::<usize>() as f32 / xs.len() as f32 + 0.5
    };
    let start = (middle([top, top + 1]), top as f32 + 0.5);
    let end = (middle([bottom - 1, bottom]), bottom as f32 + 0.5);
    let (dx, dy) = (end.0 - start.0, end.1 - start.1);
    let height = dx.hypot(dy);
    let (cos, sin) = (drop.to_radians().cos(), drop.to_radians().sin());
    let flag = (-cos, sin);
    let spread = ((flag.0 * dx + flag.1 * dy) / height)
        .clamp(-1.0, 1.0)
        .acos();
    if spread.to_degrees() < FLAG_MIN_SPREAD_DEGREES {
        return false;
    }
    let core: Vec<bool> = image.iter().map(|&v| v > 128).collect();
    let pen = stroke::width(&core, side, side).unwrap_or(MNIST_STROKE_WIDTH);
    let pen = pen.clamp(1.5, 4.0);
    let tip = (
        start.0 + flag.0 * length * height,
        start.1 + flag.1 * length * height,
    );
    for y in 0..side {
        for x in 0..side {
            let p = (x as f32 + 0.5, y as f32 + 0.5);
            let d = stroke::segment_distance(p, start, tip);
            let cover = (pen / 2.0 + 0.5 - d).clamp(0.0, 1.0);
            let v = &mut image[y * side + x];
            *v = (*v).max((cover * 255.0).round() as u8);
        }
    }
    true
}

/// One warp per image of a split of `n`, drawn in image order.
pub fn draw_warps(n: usize, config: &AugmentConfig, rng: &mut impl Rng) -> Vec<Warp> {
    (0..n).map(|_| Warp::draw(config, rng)).collect()
}

/// `pixels` (`warps.len() * 784` bytes) with each image warped by its own warp, pen redraws
/// taken from `redrawn` when given.
pub fn apply_warps(pixels: &[u8], redrawn: Option<&PenRedraws>, warps: &[Warp]) -> Vec<u8> {
    assert_eq!(
        pixels.len(),
        warps.len() * IMAGE_PIXELS,
        "one warp per image"
    );
    if let Some(redrawn) = redrawn {
        assert_eq!(redrawn.len(), warps.len(), "one pen redraw per image");
    }
    let mut out = vec![0u8; pixels.len()];
    pixels
        .par_chunks_exact(IMAGE_PIXELS)
        .zip(out.par_chunks_exact_mut(IMAGE_PIXELS))
        .zip(warps)
        .enumerate()
        .for_each(|(i, ((src, dst), warp))| warp.apply_with(src, redrawn.map(|r| r.image(i)), dst));
    out
}

/// Rotation (radians) and scale about the centre, then a shift (pixels).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Affine {
    angle: f32,
    scale: f32,
    dx: f32,
    dy: f32,
}

/// An elastic displacement field: for every output pixel, how far (x, y) to move the point it
/// samples.
type Field = ([f32; IMAGE_PIXELS], [f32; IMAGE_PIXELS]);

/// The displacement field of strength `alpha` drawn from `seed`: uniform noise in -1..1 for
/// each pixel and axis, smoothed by a Gaussian [`ELASTIC_SIGMA`] wide (zero beyond the image)
/// and scaled by `alpha`.
fn elastic_field(alpha: f32, seed: u64) -> Field {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let radius = (3.0 * ELASTIC_SIGMA).ceil() as isize;
    let kernel: Vec<f32> = (-radius..=radius)
        .map(|d| (-(d * d) as f32 / (2.0 * ELASTIC_SIGMA * ELASTIC_SIGMA)).exp())
        .collect();
    let total: f32 = kernel.iter().sum();
    let side = IMAGE_SIDE as isize;
    let mut smooth = || {
        let noise: Vec<f32> = (0..IMAGE_PIXELS)
            .map(|_| rng.random_range(-1.0f32..=1.0))
            .collect();
        // Separable: along rows, then along columns.
        let blur = |src: &[f32], step: (isize, isize)| -> Vec<f32> {
            (0..IMAGE_PIXELS)
                .map(|i| {
                    let (x, y) = ((i % IMAGE_SIDE) as isize, (i / IMAGE_SIDE) as isize);
                    (-radius..=radius)
                        .map(|d| {
                            (
                                x + d * step.0,
                                y + d * step.1,
                                kernel[(d + radius) as usize],
                            )
                        })
                        .filter(|&(x, y, _)| x >= 0 && y >= 0 && x < side && y < side)
                        .map(|(x, y, k)| k * src[(y * side + x) as usize])
                        .sum::<f32>()
                        / total
                })
                .collect()
        };
        let out = blur(&blur(&noise, (1, 0)), (0, 1));
        std::array::from_fn(|i| alpha * out[i])
    };
    let fx = smooth();
    (fx, smooth())
}

/// Inverse-maps each output pixel through rotation/scale about the centre plus a shift, then
/// moves it by `field` when there is one, with bilinear sampling; outside the source is
/// background (0).
fn warp(src: &[u8], dst: &mut [u8], affine: Affine, field: Option<&Field>) {
    let Affine {
        angle,
        scale,
        dx,
        dy,
    } = affine;
    let c = (IMAGE_SIDE as f32 - 1.0) / 2.0;
    let (sin, cos) = angle.sin_cos();
    let side = IMAGE_SIDE as isize;
    let at = |x: isize, y: isize| -> f32 {
        if x < 0 || y < 0 || x >= side || y >= side {
            0.0
        } else {
            src[(y * side + x) as usize] as f32
        }
    };
    for y in 0..IMAGE_SIDE {
        for x in 0..IMAGE_SIDE {
            let (ox, oy) = (x as f32 - c - dx, y as f32 - c - dy);
            let mut sx = (cos * ox + sin * oy) / scale + c;
            let mut sy = (-sin * ox + cos * oy) / scale + c;
            if let Some((fx, fy)) = field {
                sx += fx[y * IMAGE_SIDE + x];
                sy += fy[y * IMAGE_SIDE + x];
            }
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = (sx - x0, sy - y0);
            let (x0, y0) = (x0 as isize, y0 as isize);
            let v = at(x0, y0) * (1.0 - fx) * (1.0 - fy)
                + at(x0 + 1, y0) * fx * (1.0 - fy)
                + at(x0, y0 + 1) * (1.0 - fx) * fy
                + at(x0 + 1, y0 + 1) * fx * fy;
            dst[y * IMAGE_SIDE + x] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 28x28 image of a straight stroke 3 px wide from `(x0, y0)` to `(x1, y1)`.
    fn stroke_image(a: (f32, f32), b: (f32, f32)) -> Vec<u8> {
        (0..IMAGE_PIXELS)
            .map(|i| {
                let p = ((i % IMAGE_SIDE) as f32 + 0.5, (i / IMAGE_SIDE) as f32 + 0.5);
                if stroke::segment_distance(p, a, b) <= 1.5 {
                    255
                } else {
                    0
                }
            })
            .collect()
    }

    #[test]
    fn a_flag_runs_from_the_top_of_a_one_down_to_the_left() {
        let one = stroke_image((14.0, 4.5), (14.0, 23.5));
        let mut flagged = one.clone();
        assert!(draw_flag(&mut flagged, 30.0, 0.4));
        let added: Vec<(usize, usize)> = (0..IMAGE_PIXELS)
            .filter(|&i| flagged[i] > 128 && one[i] == 0)
            .map(|i| (i % IMAGE_SIDE, i / IMAGE_SIDE))
            .collect();
        // 0.4 of a 19-px stroke at 30 degrees: 6.6 px to the left, 3.8 px down.
        assert!(added.len() >= 10, "{added:?}");
        // All of it above the middle of the 1 and, but for the round pen's end at the top, left
        // of it; its tip far left.
        assert!(added.iter().all(|&(x, y)| x <= 15 && y <= 10), "{added:?}");
        let left = added.iter().filter(|&&(x, _)| x < 12).count();
        assert!(left * 4 >= added.len() * 3, "{added:?}");
        assert!(added.iter().any(|&(x, _)| x <= 6), "{added:?}");
        // Nothing of the 1 is lost.
        assert!(one.iter().zip(&flagged).all(|(a, b)| b >= a));
    }

    #[test]
    fn no_flag_is_drawn_along_a_one_that_leans_its_way_or_on_a_speck() {
        let leaning = stroke_image((21.0, 4.5), (7.0, 21.5));
        let mut copy = leaning.clone();
        assert!(!draw_flag(&mut copy, 50.0, 0.4));
        assert_eq!(copy, leaning);
        let speck = stroke_image((14.0, 12.5), (14.0, 15.5));
        let mut copy = speck.clone();
        assert!(!draw_flag(&mut copy, 30.0, 0.4));
        assert_eq!(copy, speck);
    }

    #[test]
    fn flags_go_on_the_chosen_share_of_ones_only_and_follow_the_stream() {
        let one = stroke_image((14.0, 4.5), (14.0, 23.5));
        let seven: Vec<u8> = stroke_image((9.0, 5.5), (19.0, 5.5))
            .iter()
            .zip(stroke_image((19.0, 5.5), (12.0, 23.5)))
            .map(|(&a, b)| a.max(b))
            .collect();
        let labels: Vec<u8> = (0..400).map(|i| if i % 2 == 0 { 1 } else { 7 }).collect();
        let images: Vec<u8> = labels
            .iter()
            .flat_map(|&l| if l == 1 { one.clone() } else { seven.clone() })
            .collect();
        let flagged = |fraction: f32, seed: u64| {
            let mut out = images.clone();
            let n = flag_ones(
                &mut out,
                &labels,
                fraction,
                &mut ChaCha8Rng::seed_from_u64(seed),
            );
            (out, n)
        };
        let (half, n) = flagged(0.5, 1);
        assert!((70..=130).contains(&n), "{n} of 200 ones flagged at 0.5");
        let changed: Vec<usize> = (0..labels.len())
            .filter(|&k| {
                half[k * IMAGE_PIXELS..][..IMAGE_PIXELS]
                    != images[k * IMAGE_PIXELS..][..IMAGE_PIXELS]
            })
            .collect();
        assert_eq!(changed.len(), n);
        assert!(changed.iter().all(|&k| labels[k] == 1));
        assert_eq!(flagged(0.5, 1), (half.clone(), n));
        assert_ne!(flagged(0.5, 2).0, half);
        assert_eq!(flagged(0.0, 1), (images.clone(), 0));
        assert_eq!(flagged(1.0, 1).1, 200);
    }
    use crate::rng::{seeded_rng, RngPurpose};

    fn dot_at(x: usize, y: usize) -> Vec<u8> {
        let mut img = vec![0u8; IMAGE_PIXELS];
        img[y * IMAGE_SIDE + x] = 255;
        img
    }

    fn affine(angle: f32, scale: f32, dx: f32, dy: f32) -> Affine {
        Affine {
            angle,
            scale,
            dx,
            dy,
        }
    }

    #[test]
    fn identity_warp_is_exact() {
        let src: Vec<u8> = (0..IMAGE_PIXELS).map(|i| (i % 251) as u8).collect();
        let mut dst = vec![0u8; IMAGE_PIXELS];
        warp(&src, &mut dst, affine(0.0, 1.0, 0.0, 0.0), None);
        assert_eq!(src, dst);
    }

    #[test]
    fn integer_shift_moves_a_dot() {
        let mut dst = vec![0u8; IMAGE_PIXELS];
        warp(&dot_at(10, 12), &mut dst, affine(0.0, 1.0, 2.0, -1.0), None);
        assert_eq!(dst, dot_at(12, 11));
    }

    #[test]
    fn quarter_turn_rotates_about_the_centre() {
        // With angle 90°, output (x, y) samples source (c + (y - c), c - (x - c)), so a source dot
        // at (27, 13.5±) lands near the top or bottom edge; check the exact pixel mapping.
        let mut dst = vec![0u8; IMAGE_PIXELS];
        let quarter = affine(std::f32::consts::FRAC_PI_2, 1.0, 0.0, 0.0);
        warp(&dot_at(20, 5), &mut dst, quarter, None);
        // source (sx, sy) = (20, 5) ← output with oy = sx - c = 6.5, ox = -(sy - c) = 8.5.
        let bright: Vec<usize> = (0..IMAGE_PIXELS).filter(|&i| dst[i] > 200).collect();
        assert_eq!(
            bright,
            vec![(13.5 + 6.5) as usize * IMAGE_SIDE + (13.5 + 8.5) as usize]
        );
    }

    #[test]
    fn augmentation_is_seeded_and_keeps_ink() {
        let src = dot_at(14, 14).repeat(3);
        let warped = |seed| {
            let warps = draw_warps(
                3,
                &AugmentConfig::default(),
                &mut seeded_rng(seed, RngPurpose::Augment, 0),
            );
            apply_warps(&src, None, &warps)
        };
        let (a, b) = (warped(1), warped(1));
        assert_eq!(a, b);
        assert_eq!(a.len(), src.len());
        for img in a.chunks_exact(IMAGE_PIXELS) {
            let ink: u32 = img.iter().map(|&p| p as u32).sum();
            assert!(ink > 100, "the dot should survive a small warp, ink {ink}");
        }
    }

    /// A 28x28 image with ink 255 in the rectangle `[x, y, w, h]`.
    fn block(x: usize, y: usize, w: usize, h: usize) -> Vec<u8> {
        let mut img = vec![0u8; IMAGE_PIXELS];
        for yy in y..y + h {
            img[yy * IMAGE_SIDE + x..][..w].fill(255);
        }
        img
    }

    #[test]
    fn a_pen_redraw_gives_any_stroke_mnists_width() {
        // A bar 20 high (a "1" filling the box), drawn 5 px thick and 1 px thin: both come back
        // as one stroke of MNIST's median width, brightest pixel 255, in the same place.
        for thickness in [5, 1] {
            let src = block(14 - thickness / 2, 4, thickness, 20);
            let mut dst = vec![0u8; IMAGE_PIXELS];
            redraw_with_pen(&src, &mut dst);
            assert_eq!(dst.iter().max(), Some(&255));
            // Across the middle: the pen's coverage sums to its width.
            let row = &dst[14 * IMAGE_SIDE..][..IMAGE_SIDE];
            let width = row.iter().map(|&v| v as f32 / 255.0).sum::<f32>();
            assert!(
                (width - MNIST_STROKE_WIDTH).abs() < 0.5,
                "a {thickness}-px bar redrawn {width:.2} px wide: {row:?}"
            );
            let inked: Vec<usize> = (0..IMAGE_SIDE).filter(|&x| row[x] >= 128).collect();
            assert!(
                inked.contains(&14) && inked.len() <= 4,
                "row 14 inked at {inked:?}"
            );
            // Still 20 high, give or take the ends: thinning shortens a stroke by half its
            // width at each, the round pen lengthens it by half its own.
            let rows = (0..IMAGE_SIDE)
                .filter(|&y| {
                    dst[y * IMAGE_SIDE..][..IMAGE_SIDE]
                        .iter()
                        .any(|&v| v >= 128)
                })
                .count();
            assert!((18..=22).contains(&rows), "{rows} rows inked");
        }
    }

    #[test]
    fn a_pen_redraw_of_nothing_or_faint_ink_changes_nothing() {
        let mut dst = vec![7u8; IMAGE_PIXELS];
        redraw_with_pen(&[0; IMAGE_PIXELS], &mut dst);
        assert!(dst.iter().all(|&v| v == 0));
        // Ink below the stroke threshold everywhere has no centre line to redraw.
        let faint = vec![40u8; IMAGE_PIXELS];
        redraw_with_pen(&faint, &mut dst);
        assert_eq!(dst, faint);
    }

    #[test]
    fn the_pen_fraction_is_drawn_per_image_and_zero_draws_nothing() {
        let config = |pen_fraction| AugmentConfig {
            pen_fraction,
            ..AugmentConfig::default()
        };
        let pens = |fraction| {
            draw_warps(
                10_000,
                &config(fraction),
                &mut seeded_rng(9, RngPurpose::Augment, 0),
            )
            .iter()
            .filter(|w| w.pen)
            .count()
        };
        assert_eq!(pens(0.0), 0);
        assert!((2800..3200).contains(&pens(0.3)), "{}", pens(0.3));
        assert_eq!(pens(1.0), 10_000);
        // Without pens, the warps are the same draws as before pens existed: four per image.
        let mut a = seeded_rng(9, RngPurpose::Augment, 0);
        let mut b = seeded_rng(9, RngPurpose::Augment, 0);
        let _ = Warp::draw(&config(0.0), &mut a);
        for _ in 0..4 {
            let _: f32 = b.random_range(-1.0..=1.0);
        }
        assert_eq!(a.random::<u64>(), b.random::<u64>());
    }

    #[test]
    fn pen_redraws_made_ahead_warp_as_redraws_made_on_the_way() {
        let strokes: Vec<u8> = [block(13, 4, 3, 20), block(6, 12, 16, 3), dot_at(9, 9)].concat();
        let config = AugmentConfig {
            pen_fraction: 0.5,
            ..AugmentConfig::default()
        };
        let warps = draw_warps(3, &config, &mut seeded_rng(2, RngPurpose::Augment, 0));
        assert!(warps.iter().any(|w| w.pen) && warps.iter().any(|w| !w.pen));
        let ahead = PenRedraws::of(&strokes);
        assert_eq!(ahead.len(), 3);
        assert_eq!(
            apply_warps(&strokes, Some(&ahead), &warps),
            apply_warps(&strokes, None, &warps)
        );
    }

    #[test]
    fn the_elastic_field_is_seeded_smooth_and_as_strong_as_asked() {
        let (fx, fy) = elastic_field(34.0, 7);
        assert_eq!(elastic_field(34.0, 7), (fx, fy));
        assert_ne!(elastic_field(34.0, 8).0, fx);
        let rms = |f: &[f32]| (f.iter().map(|v| v * v).sum::<f32>() / f.len() as f32).sqrt();
        // Uniform noise (variance 1/3) smoothed by a normalized Gaussian of width 4 keeps about
        // 1/(4 pi 4^2) of its variance: 34 * sqrt(1/3 / 201) = 1.38 pixels inside the image, less
        // near its edges.
        // Seed 7 gives 1.24 (x) and 1.32 (y).
        for f in [&fx, &fy] {
            assert!((1.15..1.45).contains(&rms(f)), "rms {}", rms(f));
            // Smooth: a pixel moves almost as its neighbour does.
            let step: Vec<f32> = (0..IMAGE_PIXELS - 1)
                .filter(|i| (i + 1) % IMAGE_SIDE != 0)
                .map(|i| f[i + 1] - f[i])
                .collect();
            assert!(rms(&step) < 0.25 * rms(f), "{} vs {}", rms(&step), rms(f));
        }
        let scaled = elastic_field(17.0, 7).0;
        assert!(scaled
            .iter()
            .zip(&fx)
            .all(|(a, b)| (2.0 * a - b).abs() < 1e-5));
    }

    #[test]
    fn an_elastic_warp_bends_strokes_and_keeps_their_ink() {
        let bar = block(13, 4, 3, 20);
        let config = AugmentConfig {
            max_rotation_degrees: 0.0,
            max_scale_change: 0.0,
            max_shift_pixels: 0.0,
            pen_fraction: 0.0,
            elastic: 34.0,
        };
        let warps = draw_warps(20, &config, &mut seeded_rng(4, RngPurpose::Augment, 0));
        let bent = apply_warps(&bar.repeat(20), None, &warps);
        let ink = |img: &[u8]| img.iter().map(|&v| f32::from(v)).sum::<f32>();
        // Stretched here and squeezed there, a stroke keeps about its ink.
        let ratios: Vec<f32> = bent
            .chunks_exact(IMAGE_PIXELS)
            .map(|img| ink(img) / ink(&bar))
            .collect();
        let mean = ratios.iter().sum::<f32>() / ratios.len() as f32;
        assert!((0.9..1.1).contains(&mean), "{ratios:?}");
        // Seed 4 gives 0.74 to 1.48.
        assert!(ratios.iter().all(|r| (0.7..1.55).contains(r)), "{ratios:?}");
        assert!(bent.chunks_exact(IMAGE_PIXELS).all(|img| img != &bar[..]));
        // Without it, the same warp is the identity.
        let none = AugmentConfig {
            elastic: 0.0,
            ..config
        };
        let warps = draw_warps(1, &none, &mut seeded_rng(4, RngPurpose::Augment, 0));
        assert_eq!(apply_warps(&bar, None, &warps), bar);
    }

    #[test]
    fn the_elastic_seed_is_drawn_after_the_others() {
        let with = AugmentConfig {
            pen_fraction: 0.5,
            elastic: 10.0,
            ..AugmentConfig::default()
        };
        let without = AugmentConfig {
            elastic: 0.0,
            ..with
        };
        let mut a = seeded_rng(2, RngPurpose::Augment, 0);
        let mut b = seeded_rng(2, RngPurpose::Augment, 0);
        let (w, o) = (Warp::draw(&with, &mut a), Warp::draw(&without, &mut b));
        assert_eq!(Warp { elastic: None, ..w }, o);
        assert_eq!(w.elastic, Some((10.0, b.random::<u64>())));
    }
}
