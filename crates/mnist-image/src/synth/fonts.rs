//! Digits written in sixteen handwriting fonts, in MNIST's form (28x28, the longer side 20 px,
//! centred by mass): a second source of digits for the photo-like test pictures
//! ([`super::photo::write_photos`] takes them in place of MNIST's).
//!
//! MNIST's digits were written with a broad pen and scanned; thinned to a pen line, a few lose
//! what made them one digit (a loop the pen filled becomes a stroke), and a person cannot read
//! them either (docs/photo-reader-notes.md). A handwriting font's digit was drawn as a line, so
//! its pen line is a digit a person reads at a glance: these pictures measure the reader on
//! writing that is legible, as issue 17's own first measurements did.
//!
//! The fonts (`crates/mnist-image/fonts/`) are Google Fonts' handwriting faces from npm's
//! `@fontsource` packages, cut down to the ten digits; each one's licence (SIL Open Font
//! License 1.1 or Apache 2.0) lies beside it.

use ab_glyph::{Font, FontRef, Outline, OutlineCurve};
use ab_glyph_rasterizer::{point, Point, Rasterizer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::mnist_style::{cropped, scaled_and_centred};

/// `(name, bytes)` of `fonts/NAME.ttf`.
macro_rules! font {
    ($name:literal) => {
        (
            $name,
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/fonts/",
                $name,
                ".ttf"
            )),
        )
    };
}

/// The fonts, by name, as TrueType bytes holding the digits 0-9.
pub const HANDWRITING_FONTS: [(&str, &[u8]); 16] = [
    font!("architects-daughter"),
    font!("caveat"),
    font!("coming-soon"),
    font!("covered-by-your-grace"),
    font!("gloria-hallelujah"),
    font!("gochi-hand"),
    font!("handlee"),
    font!("indie-flower"),
    font!("just-another-hand"),
    font!("kalam"),
    font!("nanum-pen-script"),
    font!("nothing-you-could-do"),
    font!("patrick-hand"),
    font!("reenie-beanie"),
    font!("schoolbell"),
    font!("shadows-into-light"),
];

/// How far a written digit is turned, either way (degrees): people do not write upright.
const MAX_TURN_DEGREES: f32 = 6.0;
/// How far it leans (horizontal shift per unit of height; positive leans right, as most
/// right-handed writing does).
const SLANT: std::ops::Range<f32> = -0.1..0.3;
/// How much narrower or wider than the font draws it.
const WIDTH: std::ops::Range<f32> = 0.85..1.15;
/// How many drawings of each glyph the test pictures draw their digits from (`photos write
/// --fonts`, `tests/photos.rs`): 16 fonts x 10 digits x 25 = 4,000 digits, as many per digit
/// as per font.
pub const DRAWINGS_PER_GLYPH: usize = 25;
/// Height (pixels) the glyph is rasterized at before it is brought to MNIST's 20 px: fine
/// enough that the shrink, not the rasterizer, makes the grey edges, as in MNIST.
const DRAWN_HEIGHT: f32 = 112.0;

/// `per_glyph` differently turned, slanted and stretched drawings of each digit of each of
/// [`HANDWRITING_FONTS`], as MNIST's test files hold digits: the pixels (28x28 each, 0-255, ink
/// bright) one after the other, and their labels. Font by font, digit by digit; the same
/// `seed` gives the same bytes.
pub fn font_digits(per_glyph: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (name, bytes) in HANDWRITING_FONTS {
        let font = FontRef::try_from_slice(bytes)
            .unwrap_or_else(|e| panic!("built-in font {name}: {e} (a unit test reads each)"));
        for digit in 0..10u8 {
            let Some(outline) = font.outline(font.glyph_id(char::from(b'0' + digit))) else {
                panic!("built-in font {name} has no {digit} (a unit test reads each)");
            };
            for _ in 0..per_glyph {
                let hand = Hand {
                    turn: rng
                        .random_range(-MAX_TURN_DEGREES..=MAX_TURN_DEGREES)
                        .to_radians(),
                    slant: rng.random_range(SLANT),
                    width: rng.random_range(WIDTH),
                };
                pixels.extend_from_slice(&written(&outline, hand));
                labels.push(digit);
            }
        }
    }
    (pixels, labels)
}

/// How one drawing of a glyph differs from the font's.
#[derive(Debug, Clone, Copy)]
struct Hand {
    turn: f32,
    slant: f32,
    width: f32,
}

impl Hand {
    /// A point of the outline (font units, y up) in the drawing, before it is scaled (y down).
    fn place(&self, p: Point) -> Point {
        let x = self.width * (p.x + self.slant * p.y);
        let (sin, cos) = self.turn.sin_cos();
        point(x * cos - p.y * sin, -(x * sin + p.y * cos))
    }
}

/// The glyph `outline` drawn by `hand` and brought to MNIST's form.
fn written(outline: &Outline, hand: Hand) -> [u8; mnist_data::IMAGE_PIXELS] {
    let curves: Vec<OutlineCurve> = outline
        .curves
        .iter()
        .map(|curve| moved(curve, |p| hand.place(p)))
        .collect();
    let ends = |curve: &OutlineCurve| match *curve {
        OutlineCurve::Line(a, b) => vec![a, b],
        OutlineCurve::Quad(a, b, c) => vec![a, b, c],
        OutlineCurve::Cubic(a, b, c, d) => vec![a, b, c, d],
    };
    // The control points bound the curves; the drawing is cropped to its ink afterwards.
    let points: Vec<Point> = curves.iter().flat_map(ends).collect();
    let (x0, x1) = points
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), p| (a.min(p.x), b.max(p.x)));
    let (y0, y1) = points
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), p| (a.min(p.y), b.max(p.y)));
    let scale = DRAWN_HEIGHT / (y1 - y0).max(x1 - x0).max(f32::EPSILON);
    let to_pixels = |p: Point| point((p.x - x0) * scale + 1.0, (p.y - y0) * scale + 1.0);
    let w = ((x1 - x0) * scale).ceil() as usize + 2;
    let h = ((y1 - y0) * scale).ceil() as usize + 2;
    let mut raster = Rasterizer::new(w, h);
    for curve in &curves {
        match moved(curve, to_pixels) {
            OutlineCurve::Line(a, b) => raster.draw_line(a, b),
            OutlineCurve::Quad(a, b, c) => raster.draw_quad(a, b, c),
            OutlineCurve::Cubic(a, b, c, d) => raster.draw_cubic(a, b, c, d),
        }
    }
    let mut ink = vec![0.0f32; w * h];
    raster.for_each_pixel_2d(|x, y, alpha| ink[y as usize * w + x as usize] = alpha.min(1.0));
    match cropped(ink, w, h) {
        Some((ink, w, h)) => scaled_and_centred(ink, w as u32, h as u32),
        None => [0; mnist_data::IMAGE_PIXELS],
    }
}

/// `curve` with each of its points moved by `f`.
fn moved(curve: &OutlineCurve, f: impl Fn(Point) -> Point) -> OutlineCurve {
    match *curve {
        OutlineCurve::Line(a, b) => OutlineCurve::Line(f(a), f(b)),
        OutlineCurve::Quad(a, b, c) => OutlineCurve::Quad(f(a), f(b), f(c)),
        OutlineCurve::Cubic(a, b, c, d) => OutlineCurve::Cubic(f(a), f(b), f(c), f(d)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mnist_data::{IMAGE_PIXELS, IMAGE_SIDE};

    impl Hand {
        const UPRIGHT: Hand = Hand {
            turn: 0.0,
            slant: 0.0,
            width: 1.0,
        };
    }

    /// Rows and columns of `pixels` (28x28) that hold ink.
    fn ink_box(pixels: &[u8]) -> (usize, usize) {
        let on = |x: usize, y: usize| pixels[y * IMAGE_SIDE + x] > 0;
        let cols = (0..IMAGE_SIDE)
            .filter(|&x| (0..IMAGE_SIDE).any(|y| on(x, y)))
            .count();
        let rows = (0..IMAGE_SIDE)
            .filter(|&y| (0..IMAGE_SIDE).any(|x| on(x, y)))
            .count();
        (cols, rows)
    }

    #[test]
    fn every_font_draws_every_digit_in_mnist_form() {
        let (pixels, labels) = font_digits(1, 3);
        assert_eq!(labels.len(), HANDWRITING_FONTS.len() * 10);
        assert_eq!(pixels.len(), labels.len() * IMAGE_PIXELS);
        for (k, digit) in pixels.chunks_exact(IMAGE_PIXELS).enumerate() {
            let font = HANDWRITING_FONTS[k / 10].0;
            assert_eq!(labels[k] as usize, k % 10, "{font}");
            // MNIST's box: the longer side 20 px (a pixel more where a grey edge spills over).
            let (w, h) = ink_box(digit);
            assert!(
                (20..=22).contains(&w.max(h)),
                "{font} {}: {w}x{h}",
                labels[k]
            );
            // Cores at full strength, as MNIST's are, and a stroke, not a blot or a hairline.
            assert_eq!(digit.iter().max(), Some(&255), "{font} {}", labels[k]);
            let ink = digit.iter().filter(|&&v| v >= 128).count();
            assert!((20..=250).contains(&ink), "{font} {}: {ink} px", labels[k]);
        }
    }

    #[test]
    fn drawings_follow_the_seed_and_differ_by_hand() {
        let (a, _) = font_digits(2, 9);
        assert_eq!(a, font_digits(2, 9).0);
        assert_ne!(a, font_digits(2, 10).0);
        // Two drawings of one glyph are not the same picture.
        assert_ne!(a[..IMAGE_PIXELS], a[IMAGE_PIXELS..2 * IMAGE_PIXELS]);
    }

    #[test]
    fn a_slant_leans_the_top_of_a_one_to_the_right() {
        let font = FontRef::try_from_slice(HANDWRITING_FONTS[2].1).unwrap();
        let one = font.outline(font.glyph_id('1')).unwrap();
        // Column of the mass of the top and the bottom fifth of the drawing.
        let lean = |hand: Hand| {
            let pixels = written(&one, hand);
            let mean_x = |rows: std::ops::Range<usize>| {
                let (mut m, mut s) = (0.0, 0.0);
                for y in rows {
                    for x in 0..IMAGE_SIDE {
                        let v = pixels[y * IMAGE_SIDE + x] as f32;
                        m += v;
                        s += v * x as f32;
                    }
                }
                s / m
            };
            let (top, bottom) = ink_rows(&pixels);
            let fifth = (bottom - top) / 5;
            mean_x(top..top + fifth) - mean_x(bottom - fifth..bottom)
        };
        let upright = lean(Hand::UPRIGHT);
        let slanted = lean(Hand {
            slant: 0.3,
            ..Hand::UPRIGHT
        });
        assert!(
            slanted > upright + 2.0,
            "upright {upright}, slanted {slanted}"
        );
    }

    fn ink_rows(pixels: &[u8]) -> (usize, usize) {
        let rows: Vec<usize> = (0..IMAGE_SIDE)
            .filter(|&y| {
                pixels[y * IMAGE_SIDE..][..IMAGE_SIDE]
                    .iter()
                    .any(|&v| v > 0)
            })
            .collect();
        (rows[0], rows[rows.len() - 1] + 1)
    }
}
