//! People's pictures of digits, turned into what an MNIST model expects.
//!
//! [`read_digit`] treats the whole picture as one digit; [`read_number`] finds the digits of a
//! number written left to right (a group wide enough to be touching digits comes both whole and
//! cut, for the caller's model to choose: [`Segment::choose`]). Both decode any PNG, JPEG, BMP, GIF, WebP or TIFF of any size
//! with bounded memory ([`decode`]), find the ink whatever its colour and the paper's
//! ([`ink`]), segment it ([`segment`]) and give each digit MNIST's own preprocessing
//! ([`mnist_style`]). The result is 28x28 `u8` pixels, 0 = paper, exactly like MNIST's files,
//! so a model's input goes through the same `Normalization` as in training. Nothing here
//! touches a model or a device.
//!
//! [`synth`] makes user-style pictures out of MNIST digits, for tests and examples.

pub mod decode;
mod error;
pub mod ink;
pub mod lines;
pub mod mnist_style;
pub mod segment;
pub use mnist_data::stroke;
pub mod synth;

use std::path::Path;

use image::DynamicImage;

pub use decode::{decode_image, read_image};
pub use error::ImageError;
pub use ink::InkMap;
pub use mnist_style::{style, MnistPixels, Styled};
pub use segment::{BBox, Glyph, Segment};

/// Pictures are analysed at most this large (longer side): digits need no more, and it bounds
/// the work on a 40-megapixel photo. Larger pictures are shrunk by a whole factor (a 12-megapixel
/// photo, 4000 pixels wide, to 1334). Boxes are reported in the original picture's pixels.
pub const ANALYSIS_MAX_SIDE: u32 = 1600;

/// A picture out of focus ([`InkMap::out_of_focus`]) is looked at at half its size, where its
/// blur is half as wide, unless that would leave fewer pixels than this on its longer side.
const OUT_OF_FOCUS_MIN_SIDE: u32 = 150;

/// One digit found in a picture, ready for a model.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundDigit {
    /// MNIST-style 28x28 pixels.
    pub pixels: MnistPixels,
    /// Where the digit is, in the original picture's pixels.
    pub bbox: BBox,
    /// Its strokes were a thin pen line, redrawn at MNIST's width ([`Styled::redrawn`]).
    pub redrawn: bool,
}

/// The whole picture at `path` as a single digit.
pub fn read_digit(path: &Path) -> Result<FoundDigit, ImageError> {
    let image = read_image(path)?;
    digit_in_image(&image).ok_or_else(|| ImageError::NoInk {
        path: path.to_path_buf(),
    })
}

/// The digits of the number written left to right in the picture at `path`.
pub fn read_number(path: &Path) -> Result<Vec<Segment<FoundDigit>>, ImageError> {
    let image = read_image(path)?;
    let digits = digits_in_image(&image);
    if digits.is_empty() {
        return Err(ImageError::NoInk {
            path: path.to_path_buf(),
        });
    }
    Ok(digits)
}

/// All the ink of `image` as one digit; `None` when there is none.
pub fn digit_in_image(image: &DynamicImage) -> Option<FoundDigit> {
    let (map, scale) = analysable(image);
    segment::single_glyph(&map).map(|g| found(&g, scale, image))
}

/// The digits of the number in `image`, left to right; empty when there is no ink.
pub fn digits_in_image(image: &DynamicImage) -> Vec<Segment<FoundDigit>> {
    let (map, scale) = analysable(image);
    segment::number_glyphs(&map)
        .iter()
        .map(|s| s.map(|g| found(g, scale, image)))
        .collect()
}

/// The ink map segmentation works on: what the pipeline takes for writing in `image`, at the
/// analysis size (for looking at, as `examples/see.rs` does).
pub fn ink_map(image: &DynamicImage) -> InkMap {
    analysable(image).0
}

/// The ink map of `image`, shrunk if needed (to [`ANALYSIS_MAX_SIDE`], and by half again when
/// the picture is out of focus), without the page's printed lines, and the factor from its
/// pixels to the original's.
fn analysable(image: &DynamicImage) -> (InkMap, f64) {
    let side = image.width().max(image.height());
    let mut factor = side.div_ceil(ANALYSIS_MAX_SIDE).max(1);
    let mut map = InkMap::from_planes(ink::Planes::from_image(image, factor as usize));
    if map.out_of_focus() && side / (2 * factor) >= OUT_OF_FOCUS_MIN_SIDE {
        factor *= 2;
        map = InkMap::from_planes(ink::Planes::from_image(image, factor as usize));
    }
    lines::remove_page_lines(&mut map);
    map.drop_faint_alone();
    (map, factor as f64)
}

fn found(glyph: &Glyph, scale: f64, image: &DynamicImage) -> FoundDigit {
    let b = glyph.bbox;
    let to_original = |v: u32, limit: u32| ((v as f64 * scale).round() as u32).min(limit);
    let (x, y) = (
        to_original(b.x, image.width()),
        to_original(b.y, image.height()),
    );
    let right = to_original(b.x + b.w, image.width()).max(x + 1);
    let bottom = to_original(b.y + b.h, image.height()).max(y + 1);
    let Styled { pixels, redrawn } = style(glyph);
    FoundDigit {
        pixels,
        redrawn,
        bbox: BBox {
            x,
            y,
            w: right - x,
            h: bottom - y,
        },
    }
}
