//! Training-time augmentation: a small random affine warp per image (rotation, scale, shift),
//! the classic recipe that takes convnets past 99.5% on MNIST, and optionally, for a fraction of
//! the images, the strokes redrawn the way a photo's pen line is redrawn before a model reads it
//! ([`redraw_with_pen`]). Each epoch draws one [`Warp`] per image from the seeded augmentation
//! stream, so it is reproducible and resumable; the warps are applied on the host, to the whole
//! split at once ([`apply_warps`]) or to each batch as it is gathered ([`Warp::apply`]), with the
//! same pixels either way.

use rand::Rng;
use rayon::prelude::*;

use crate::stroke::{self, MNIST_STROKE_WIDTH};
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
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            max_rotation_degrees: 10.0,
            max_scale_change: 0.1,
            max_shift_pixels: 2.0,
            pen_fraction: 0.0,
        }
    }
}

/// One image's warp: rotation (radians), scale, and shift (pixels) about the centre, after its
/// strokes are redrawn with a pen when `pen`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Warp {
    angle: f32,
    scale: f32,
    dx: f32,
    dy: f32,
    pen: bool,
}

impl Warp {
    /// Draws a warp within `config`'s ranges (four draws from `rng`, a fifth when
    /// `config.pen_fraction` is above 0).
    pub fn draw(config: &AugmentConfig, rng: &mut impl Rng) -> Warp {
        let angle = rng.random_range(-1.0..=1.0) * config.max_rotation_degrees.to_radians();
        let scale = 1.0 + rng.random_range(-1.0..=1.0) * config.max_scale_change;
        let dx = rng.random_range(-1.0..=1.0) * config.max_shift_pixels;
        let dy = rng.random_range(-1.0..=1.0) * config.max_shift_pixels;
        let pen = config.pen_fraction > 0.0
            && rng.random_bool(f64::from(config.pen_fraction.clamp(0.0, 1.0)));
        Warp {
            angle,
            scale,
            dx,
            dy,
            pen,
        }
    }

    /// Writes the warped `src` (784 bytes) into `dst` (784 bytes).
    pub fn apply(&self, src: &[u8], dst: &mut [u8]) {
        assert!(
            src.len() == IMAGE_PIXELS && dst.len() == IMAGE_PIXELS,
            "a warp takes one 28x28 image"
        );
        if self.pen {
            let mut redrawn = [0u8; IMAGE_PIXELS];
            redraw_with_pen(src, &mut redrawn);
            warp(&redrawn, dst, self.angle, self.scale, self.dx, self.dy);
        } else {
            warp(src, dst, self.angle, self.scale, self.dx, self.dy);
        }
    }
}

/// [`redraw_with_pen`] works at this many times MNIST's resolution, for a centre line smoother
/// than the 28x28 grid's staircase.
const PEN_SCALE: usize = 2;
/// Ink at least this strong (of 255) is stroke when thinning, as `mnist_image` thins a glyph.
const PEN_STROKE_INK: f32 = 0.35 * 255.0;

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
            mask[y * n + x] = v >= PEN_STROKE_INK;
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

/// One warp per image of a split of `n`, drawn in image order.
pub fn draw_warps(n: usize, config: &AugmentConfig, rng: &mut impl Rng) -> Vec<Warp> {
    (0..n).map(|_| Warp::draw(config, rng)).collect()
}

/// `pixels` (`warps.len() * 784` bytes) with each image warped by its own warp.
pub fn apply_warps(pixels: &[u8], warps: &[Warp]) -> Vec<u8> {
    assert_eq!(
        pixels.len(),
        warps.len() * IMAGE_PIXELS,
        "one warp per image"
    );
    let mut out = vec![0u8; pixels.len()];
    pixels
        .par_chunks_exact(IMAGE_PIXELS)
        .zip(out.par_chunks_exact_mut(IMAGE_PIXELS))
        .zip(warps)
        .for_each(|((src, dst), warp)| warp.apply(src, dst));
    out
}

/// Inverse-maps each output pixel through rotation/scale about the centre plus a shift, with
/// bilinear sampling; outside the source is background (0).
fn warp(src: &[u8], dst: &mut [u8], angle: f32, scale: f32, dx: f32, dy: f32) {
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
            let sx = (cos * ox + sin * oy) / scale + c;
            let sy = (-sin * ox + cos * oy) / scale + c;
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
    use crate::rng::{seeded_rng, RngPurpose};

    fn dot_at(x: usize, y: usize) -> Vec<u8> {
        let mut img = vec![0u8; IMAGE_PIXELS];
        img[y * IMAGE_SIDE + x] = 255;
        img
    }

    #[test]
    fn identity_warp_is_exact() {
        let src: Vec<u8> = (0..IMAGE_PIXELS).map(|i| (i % 251) as u8).collect();
        let mut dst = vec![0u8; IMAGE_PIXELS];
        warp(&src, &mut dst, 0.0, 1.0, 0.0, 0.0);
        assert_eq!(src, dst);
    }

    #[test]
    fn integer_shift_moves_a_dot() {
        let mut dst = vec![0u8; IMAGE_PIXELS];
        warp(&dot_at(10, 12), &mut dst, 0.0, 1.0, 2.0, -1.0);
        assert_eq!(dst, dot_at(12, 11));
    }

    #[test]
    fn quarter_turn_rotates_about_the_centre() {
        // With angle 90°, output (x, y) samples source (c + (y - c), c - (x - c)), so a source dot
        // at (27, 13.5±) lands near the top or bottom edge; check the exact pixel mapping.
        let mut dst = vec![0u8; IMAGE_PIXELS];
        warp(
            &dot_at(20, 5),
            &mut dst,
            std::f32::consts::FRAC_PI_2,
            1.0,
            0.0,
            0.0,
        );
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
            apply_warps(&src, &warps)
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
}
