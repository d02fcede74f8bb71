//! MNIST's own preprocessing, applied to a glyph: the digit's box scaled so its longer side is
//! 20 pixels (aspect kept, anti-aliased), pasted into a 28x28 field so that its centre of mass
//! lands where MNIST's do. LeCun et al. describe it on the MNIST page; measured on the training
//! set, the centre of mass sits at pixel (14.0, 14.0) (mean over 20,000 images, std 0.29).
//!
//! Before that, a glyph drawn with a pen much thinner than MNIST's (a ballpoint line on a
//! photo) is thinned to its centre line and drawn again at MNIST's typical stroke width, so
//! the model sees strokes like the ones it was trained on rather than a faint trace.

use image::imageops::{self, FilterType};
use image::{ImageBuffer, Luma};
use mnist_data::{IMAGE_PIXELS, IMAGE_SIDE};

use crate::segment::Glyph;
use crate::stroke::{self, PEN_STROKE_INK};

/// Longer side of the digit's box inside the 28x28 field.
pub const DIGIT_BOX: u32 = 20;
/// Where the centre of mass goes, in pixel indices (x = Σ i·v / Σ v).
const CENTRE_OF_MASS: f32 = 14.0;
/// Stroke widths are measured, and a pen line redrawn, with the digit's box at this many times
/// its MNIST size.
pub const WORK_SCALE: u32 = 8;
pub use crate::stroke::MNIST_STROKE_WIDTH;
/// A glyph thinner than this ([`MNIST_STROKE_WIDTH`] halved: a pen line on a photo) is drawn
/// again at MNIST's width; one within or near MNIST's range is left as it is (redrawn, a thin
/// digit's small loops close up: a 6 becomes a 1, a 9 a 4).
pub const MNIST_THIN_WIDTH: f32 = MNIST_STROKE_WIDTH / 2.0;

/// A 28x28 MNIST-style image, row-major, 0 = paper, 255 = full stroke.
pub type MnistPixels = [u8; IMAGE_PIXELS];

/// Mean stroke width of `ink` (`w` x `h`, 0-1) in pixels of the 20-pixel MNIST box its longer
/// side will be scaled to; `None` when it has no stroke.
pub fn stroke_width(ink: &[f32], w: usize, h: usize) -> Option<f32> {
    let mask: Vec<bool> = ink.iter().map(|&v| v >= PEN_STROKE_INK).collect();
    stroke::width(&mask, w, h).map(|width| width * DIGIT_BOX as f32 / w.max(h) as f32)
}

/// A digit redrawn at MNIST's width is also drawn with pens these many times as wide. The
/// width a thin line stands for is a guess: a small loop that MNIST's pen fills (a 9's, a 6's)
/// stays open with a thinner one, a broken stroke joins up with a wider one. The models read
/// every drawing and their probabilities are averaged (docs/photo-reader-notes.md).
pub const OTHER_PEN_WIDTHS: [f32; 2] = [0.75, 1.3];

/// Ink `w` x `h` pixels, 0-1, row-major.
pub(crate) type Drawing = (Vec<f32>, usize, usize);

/// `glyph` with thin strokes brought to MNIST's width: at a working size of [`WORK_SCALE`]
/// times the 20-pixel box (each cell the strongest ink it covers, so no thin line fades), a
/// glyph thinner than [`MNIST_THIN_WIDTH`] is thinned to its centre line and drawn again with a
/// round pen [`MNIST_STROKE_WIDTH`] wide, then with the pens of [`OTHER_PEN_WIDTHS`]. Other
/// glyphs come back as they were, alone.
fn with_mnist_strokes(glyph: &Glyph) -> Vec<Drawing> {
    let (w, h) = (glyph.bbox.w.max(1) as usize, glyph.bbox.h.max(1) as usize);
    let original = || vec![(glyph.ink.clone(), w, h)];
    if glyph.ink.len() != w * h {
        return original();
    }
    let work = (DIGIT_BOX * WORK_SCALE) as usize;
    let pool = w.max(h).div_ceil(work).max(1);
    let (pw, ph) = (w.div_ceil(pool), h.div_ceil(pool));
    let mut pooled = vec![0.0f32; pw * ph];
    for y in 0..h {
        for x in 0..w {
            let cell = &mut pooled[(y / pool) * pw + x / pool];
            *cell = cell.max(glyph.ink[y * w + x]);
        }
    }
    match stroke_width(&pooled, pw, ph) {
        Some(width) if width < MNIST_THIN_WIDTH => {}
        _ => return original(),
    }
    // Redraw on a grid with room for the widest pen around the centre line, then crop each
    // drawing to its ink.
    let pens: Vec<f32> = std::iter::once(1.0)
        .chain(OTHER_PEN_WIDTHS)
        .map(|times| times * MNIST_STROKE_WIDTH * pw.max(ph) as f32 / DIGIT_BOX as f32)
        .collect();
    let widest = pens.iter().copied().fold(0.0f32, f32::max);
    let pad = (widest / 2.0).ceil() as usize + 1;
    let (gw, gh) = (pw + 2 * pad, ph + 2 * pad);
    let mut mask = vec![false; gw * gh];
    for y in 0..ph {
        for x in 0..pw {
            mask[(y + pad) * gw + x + pad] = pooled[y * pw + x] >= PEN_STROKE_INK;
        }
    }
    let skeleton = stroke::thin(&mask, gw, gh);
    pens.iter()
        .map(|&pen| cropped(stroke::redraw(&skeleton, gw, gh, pen), gw, gh))
        .collect::<Option<Vec<Drawing>>>()
        .unwrap_or_else(original)
}

/// `drawn` (`w` x `h`) cropped to its ink; `None` when it has none.
pub(crate) fn cropped(drawn: Vec<f32>, w: usize, h: usize) -> Option<Drawing> {
    let on = |x: usize, y: usize| drawn[y * w + x] > 0.0;
    let cols: Vec<usize> = (0..w).filter(|&x| (0..h).any(|y| on(x, y))).collect();
    let rows: Vec<usize> = (0..h).filter(|&y| (0..w).any(|x| on(x, y))).collect();
    let (&x0, &x1, &y0, &y1) = (cols.first()?, cols.last()?, rows.first()?, rows.last()?);
    let ink = (y0..=y1)
        .flat_map(|y| drawn[y * w + x0..=y * w + x1].iter().copied())
        .collect();
    Some((ink, x1 - x0 + 1, y1 - y0 + 1))
}

/// A glyph as an MNIST model sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Styled {
    pub pixels: MnistPixels,
    /// When redrawn ([`Styled::redrawn`]), the same digit drawn with the pens of
    /// [`OTHER_PEN_WIDTHS`]; else empty.
    pub other_pens: Vec<MnistPixels>,
}

impl Styled {
    /// Its strokes were a pen line thinner than MNIST's, thinned and drawn again with a round
    /// pen: a model trained on such strokes (`mnist train --pen-strokes`) reads it better than
    /// one trained on MNIST's own. Exactly the glyphs drawn with other pens too.
    pub fn redrawn(&self) -> bool {
        !self.other_pens.is_empty()
    }

    /// Every drawing of the digit, [`Styled::pixels`] first: the models read each and average.
    pub fn drawings(&self) -> impl Iterator<Item = MnistPixels> + '_ {
        std::iter::once(self.pixels).chain(self.other_pens.iter().copied())
    }
}

// A redrawn glyph is known by its other drawings.
const _: () = assert!(!OTHER_PEN_WIDTHS.is_empty());

/// Scales, centres and quantizes `glyph` the way MNIST's digits were made, with its strokes
/// redrawn on the way when they are a thin pen line.
pub fn style(glyph: &Glyph) -> Styled {
    let mut styled = with_mnist_strokes(glyph)
        .into_iter()
        .map(|(ink, w, h)| scaled_and_centred(ink, w as u32, h as u32));
    let pixels = styled.next().unwrap_or([0; IMAGE_PIXELS]);
    Styled {
        pixels,
        other_pens: styled.collect(),
    }
}

/// `ink` (`w` x `h`, 0-1) with its longer side scaled to [`DIGIT_BOX`], its centre of mass at
/// MNIST's, quantized to `u8`.
pub(crate) fn scaled_and_centred(ink: Vec<f32>, w: u32, h: u32) -> MnistPixels {
    let scale = DIGIT_BOX as f32 / w.max(h) as f32;
    let (new_w, new_h) = (
        ((w as f32 * scale).round() as u32).clamp(1, DIGIT_BOX),
        ((h as f32 * scale).round() as u32).clamp(1, DIGIT_BOX),
    );
    let source: ImageBuffer<Luma<f32>, Vec<f32>> =
        ImageBuffer::from_raw(w, h, ink).unwrap_or_else(|| ImageBuffer::new(w, h));
    // Triangle widens its support when shrinking, so this is a true area filter downwards and
    // bilinear upwards: the anti-aliasing MNIST's grey edges come from.
    let scaled = imageops::resize(&source, new_w, new_h, FilterType::Triangle);
    let peak = scaled.pixels().map(|p| p.0[0]).fold(0.0f32, f32::max);
    let mut out = [0u8; IMAGE_PIXELS];
    if peak <= 0.0 {
        return out;
    }
    let (mut mass, mut sx, mut sy) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y, p) in scaled.enumerate_pixels() {
        mass += p.0[0];
        sx += x as f32 * p.0[0];
        sy += y as f32 * p.0[0];
    }
    let dx = (CENTRE_OF_MASS - sx / mass).round() as i64;
    let dy = (CENTRE_OF_MASS - sy / mass).round() as i64;
    let side = IMAGE_SIDE as i64;
    for (x, y, p) in scaled.enumerate_pixels() {
        let (tx, ty) = (x as i64 + dx, y as i64 + dy);
        if (0..side).contains(&tx) && (0..side).contains(&ty) {
            // Thin strokes shrunk from a large picture come out grey; MNIST's cores are 255.
            let v = (p.0[0] / peak).clamp(0.0, 1.0);
            out[(ty * side + tx) as usize] = (v * 255.0).round() as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::BBox;

    fn to_mnist(glyph: &Glyph) -> MnistPixels {
        style(glyph).pixels
    }

    fn glyph(w: u32, h: u32, ink: impl Fn(u32, u32) -> f32) -> Glyph {
        Glyph {
            bbox: BBox { x: 0, y: 0, w, h },
            ink: (0..h)
                .flat_map(|y| (0..w).map(move |x| (x, y)))
                .map(|(x, y)| ink(x, y))
                .collect(),
        }
    }

    fn ink_box(pixels: &MnistPixels) -> (usize, usize, usize, usize) {
        let on: Vec<(usize, usize)> = (0..IMAGE_PIXELS)
            .filter(|&i| pixels[i] > 0)
            .map(|i| (i % IMAGE_SIDE, i / IMAGE_SIDE))
            .collect();
        let xs = on.iter().map(|p| p.0);
        let ys = on.iter().map(|p| p.1);
        (
            xs.clone().min().unwrap(),
            ys.clone().min().unwrap(),
            xs.max().unwrap(),
            ys.max().unwrap(),
        )
    }

    #[test]
    fn a_tall_block_becomes_20_high_keeps_its_aspect_and_is_centred() {
        // 45x100 solid block → 9x20, its centre of mass moved to (14, 14): columns 10..=18.
        let pixels = to_mnist(&glyph(45, 100, |_, _| 1.0));
        let (left, top, right, bottom) = ink_box(&pixels);
        assert_eq!((left, right, bottom - top + 1), (10, 18, 20));
        assert!(
            top == 4 || top == 5,
            "rows {top}..={bottom}: the centre of mass is 9.5 rows down"
        );
        assert_eq!(pixels.iter().filter(|&&v| v == 255).count(), 9 * 20);
    }

    #[test]
    fn centre_of_mass_not_box_centre_is_placed() {
        // An L: heavy at the bottom, so its box sits higher than centred.
        let pixels = to_mnist(&glyph(
            20,
            20,
            |x, y| if x < 3 || y >= 14 { 1.0 } else { 0.0 },
        ));
        let (mass, sy) = (0..IMAGE_PIXELS).fold((0.0, 0.0), |(m, s), i| {
            let v = pixels[i] as f64;
            (m + v, s + (i / IMAGE_SIDE) as f64 * v)
        });
        assert!((sy / mass - 14.0).abs() <= 0.5, "{}", sy / mass);
        let (_, top, _, bottom) = ink_box(&pixels);
        assert!(top < 4 && bottom < 23, "{top} {bottom}");
    }

    #[test]
    fn faint_thin_strokes_are_brought_to_full_strength() {
        // A 1-pixel line in a 200-pixel box shrinks to a tenth of a pixel of grey.
        let pixels = to_mnist(&glyph(200, 200, |x, _| if x == 100 { 0.5 } else { 0.0 }));
        assert_eq!(pixels.iter().copied().max(), Some(255));
    }

    #[test]
    fn only_strokes_thinner_than_mnist_are_said_to_be_redrawn() {
        // A 2-pixel pen line across a 200-pixel box: 0.2 pixels at MNIST's size.
        let ring = |x: u32, y: u32, r: f32, width: f32| {
            let d = ((x as f32 - 100.0).powi(2) + (y as f32 - 100.0).powi(2)).sqrt();
            if (d - r).abs() <= width / 2.0 {
                1.0
            } else {
                0.0
            }
        };
        let thin = style(&glyph(200, 200, |x, y| ring(x, y, 90.0, 2.0)));
        assert!(thin.redrawn());
        // Redrawn at MNIST's width: a ring 20 pixels across whose stroke has 160 pixels of at
        // least half strength, where a one-pixel line around it would have about 57.
        let solid = thin.pixels.iter().filter(|&&v| v >= 128).count();
        assert!(solid >= 150, "{solid} solid pixels");
        // The same ring drawn with MNIST's own pen (2 of 20 pixels wide) stays as it is.
        let mnist_like = style(&glyph(200, 200, |x, y| ring(x, y, 90.0, 20.0)));
        assert!(!mnist_like.redrawn());
        assert!(mnist_like.other_pens.is_empty());
        // The redrawn ring is drawn with a thinner and a wider pen too, in that order.
        let solid_in = |p: &MnistPixels| p.iter().filter(|&&v| v >= 128).count();
        let other: Vec<usize> = thin.other_pens.iter().map(solid_in).collect();
        assert_eq!(other.len(), OTHER_PEN_WIDTHS.len());
        assert!(
            other[0] < solid && solid < other[1],
            "{other:?} around {solid}"
        );
    }

    #[test]
    fn a_one_pixel_glyph_still_gives_an_image() {
        let pixels = to_mnist(&glyph(1, 1, |_, _| 1.0));
        assert_eq!(pixels.iter().filter(|&&v| v > 0).count(), 20 * 20);
        assert!(to_mnist(&glyph(3, 3, |_, _| 0.0)).iter().all(|&v| v == 0));
    }
}
