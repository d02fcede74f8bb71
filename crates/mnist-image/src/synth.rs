//! User-style pictures made from MNIST digits: the kind of file a person hands the tool, with
//! the answer known. Used by the tests (accuracy of `predict` and `read` on pictures that are not
//! MNIST's pre-centred 28x28) and by `examples/user_images.rs`, which makes the README's examples.
//!
//! A digit is scaled to 30-400 pixels, put off-centre on a canvas with margins, drawn as dark ink
//! on light paper (or the reverse, or as strokes on a transparent canvas) in grey, RGB or RGBA,
//! lit unevenly, given sensor noise, and encoded as PNG, JPEG (quality 70-95), BMP, GIF, WebP or
//! TIFF.

pub mod fonts;
pub mod photo;

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::codecs::jpeg::JpegEncoder;
use image::imageops::{self, FilterType};
use image::{DynamicImage, GrayImage, ImageFormat, Luma, Rgb, RgbImage, Rgba, RgbaImage};
use mnist_data::{IMAGE_PIXELS, IMAGE_SIDE};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::segment::BBox;

/// How often [`Style::random`] adds uneven lighting.
const SHADING_P: f64 = 0.3;

/// How the picture's pixels are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    Grey,
    Rgb,
    /// RGBA with every pixel opaque.
    RgbaOpaque,
    /// Strokes of one colour on a fully transparent canvas (what drawing apps export).
    RgbaTransparent,
}

/// The file format, JPEG with its quality.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Png,
    Jpeg(u8),
    Bmp,
    Gif,
    WebP,
    Tiff,
}

impl Encoding {
    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg(_) => "jpg",
            Self::Bmp => "bmp",
            Self::Gif => "gif",
            Self::WebP => "webp",
            Self::Tiff => "tiff",
        }
    }
}

/// Everything that makes one picture look the way it does.
#[derive(Debug, Clone, PartialEq)]
pub struct Style {
    /// Height in pixels of a digit's 28x28 MNIST field once scaled.
    pub digit_side: u32,
    /// Paper around the content: left, top, right, bottom.
    pub margins: [u32; 4],
    pub paper: [u8; 3],
    pub ink: [u8; 3],
    pub colour: Colour,
    /// Standard deviation of Gaussian noise on a 0-255 scale (0 for none).
    pub noise: f32,
    /// Uneven lighting, as in a photo: brightness falls by this fraction (0 for none) from one
    /// side of the picture to the other, in the direction `shading_angle` (radians).
    pub shading: f32,
    pub shading_angle: f32,
    pub encoding: Encoding,
}

impl Style {
    /// A random style: digits 30-400 pixels, margins up to half a digit on each side (so the
    /// digit is off-centre), dark ink on light paper three times in four, noise half the time,
    /// lighting falling by 20-50% across the picture three times in ten,
    /// JPEG (quality 70-95) a third of the time.
    pub fn random(rng: &mut impl Rng, digit_sides: std::ops::RangeInclusive<u32>) -> Self {
        let digit_side = rng.random_range(digit_sides);
        let margins = [(); 4].map(|_| rng.random_range(0..=digit_side / 2));
        let dark_ink = rng.random_bool(0.75);
        let (light, dark) = (
            [(); 3].map(|_| rng.random_range(190..=255u8)),
            [(); 3].map(|_| rng.random_range(0..=70u8)),
        );
        let (paper, ink) = if dark_ink {
            (light, dark)
        } else {
            (dark, light)
        };
        let colour = match rng.random_range(0..4) {
            0 => Colour::Grey,
            1 => Colour::Rgb,
            2 => Colour::RgbaOpaque,
            _ => Colour::RgbaTransparent,
        };
        let noise = if rng.random_bool(0.5) {
            rng.random_range(2.0..12.0)
        } else {
            0.0
        };
        // BMP and JPEG have no alpha channel, so strokes on a transparent canvas go elsewhere.
        let opaque = colour != Colour::RgbaTransparent;
        let encoding = match rng.random_range(0..9) {
            0..=2 if opaque => Encoding::Jpeg(rng.random_range(70..=95)),
            4 if opaque => Encoding::Bmp,
            5 => Encoding::Gif,
            6 => Encoding::WebP,
            7 | 8 => Encoding::Tiff,
            _ => Encoding::Png,
        };
        let shading = if rng.random_bool(SHADING_P) {
            rng.random_range(0.2..0.5)
        } else {
            0.0
        };
        let shading_angle = rng.random_range(0.0..std::f32::consts::TAU);
        Self {
            digit_side,
            margins,
            paper,
            ink,
            colour,
            noise,
            shading,
            shading_angle,
            encoding,
        }
    }
}

/// An MNIST digit (28x28, 0 = paper) drawn in `style`.
pub fn digit_picture(pixels: &[u8], style: &Style, rng: &mut impl Rng) -> DynamicImage {
    let coverage = scaled_tile(pixels, style.digit_side);
    paint(&coverage, style, rng)
}

/// MNIST digits written left to right with clear gaps between their strokes, each scaled a
/// little differently and shifted up or down a little. Returns the picture and each digit's box.
pub fn number_picture(
    digits: &[&[u8]],
    style: &Style,
    rng: &mut impl Rng,
) -> (DynamicImage, Vec<BBox>) {
    let side = style.digit_side;
    let tiles: Vec<GrayImage> = digits
        .iter()
        .map(|d| {
            let s = (side as f32 * rng.random_range(0.9..1.1)).round() as u32;
            ink_columns(&scaled_tile(d, s))
        })
        .collect();
    let gaps: Vec<u32> = tiles
        .iter()
        .map(|_| (side as f32 * rng.random_range(0.12..0.35)).round() as u32)
        .collect();
    let shifts: Vec<u32> = tiles
        .iter()
        .map(|_| rng.random_range(0..=side / 8))
        .collect();
    let width = tiles.iter().map(|t| t.width()).sum::<u32>() + gaps[1..].iter().sum::<u32>();
    let height = tiles
        .iter()
        .zip(&shifts)
        .map(|(t, s)| t.height() + s)
        .max()
        .unwrap_or(1);
    let mut canvas = GrayImage::new(width, height);
    let mut boxes = Vec::new();
    let mut x = 0;
    for (i, tile) in tiles.iter().enumerate() {
        if i > 0 {
            x += gaps[i];
        }
        imageops::overlay(&mut canvas, tile, x as i64, shifts[i] as i64);
        boxes.push(ink_box(
            tile,
            x + style.margins[0],
            shifts[i] + style.margins[1],
        ));
        x += tile.width();
    }
    (paint(&canvas, style, rng), boxes)
}

/// The 28x28 digit scaled to `side` x `side` with a smooth filter.
fn scaled_tile(pixels: &[u8], side: u32) -> GrayImage {
    assert_eq!(pixels.len(), IMAGE_PIXELS, "an MNIST digit is 28x28");
    let tile = GrayImage::from_raw(IMAGE_SIDE as u32, IMAGE_SIDE as u32, pixels.to_vec())
        .unwrap_or_default();
    imageops::resize(&tile, side, side, FilterType::CatmullRom)
}

/// The tile cut down to the columns that hold ink (keeps full height, so baselines stay).
fn ink_columns(tile: &GrayImage) -> GrayImage {
    let has = |x: u32| (0..tile.height()).any(|y| tile.get_pixel(x, y).0[0] > 0);
    let first = (0..tile.width()).find(|&x| has(x)).unwrap_or(0);
    let last = (0..tile.width()).rev().find(|&x| has(x)).unwrap_or(0);
    imageops::crop_imm(tile, first, 0, last - first + 1, tile.height()).to_image()
}

fn ink_box(tile: &GrayImage, left: u32, top: u32) -> BBox {
    let on: Vec<(u32, u32)> = tile
        .enumerate_pixels()
        .filter(|(_, _, p)| p.0[0] > 0)
        .map(|(x, y, _)| (x, y))
        .collect();
    let x0 = on.iter().map(|p| p.0).min().unwrap_or(0);
    let y0 = on.iter().map(|p| p.1).min().unwrap_or(0);
    let x1 = on.iter().map(|p| p.0).max().unwrap_or(0);
    let y1 = on.iter().map(|p| p.1).max().unwrap_or(0);
    BBox {
        x: left + x0,
        y: top + y0,
        w: x1 - x0 + 1,
        h: y1 - y0 + 1,
    }
}

/// Puts `coverage` (255 = full stroke) on a canvas with the style's margins, colours and noise.
fn paint(coverage: &GrayImage, style: &Style, rng: &mut impl Rng) -> DynamicImage {
    let [left, top, right, bottom] = style.margins;
    let (w, h) = (
        coverage.width() + left + right,
        coverage.height() + top + bottom,
    );
    let cover = |x: u32, y: u32| -> f32 {
        if x < left || y < top || x >= left + coverage.width() || y >= top + coverage.height() {
            0.0
        } else {
            coverage.get_pixel(x - left, y - top).0[0] as f32 / 255.0
        }
    };
    let rgb = |x: u32, y: u32| -> [u8; 3] {
        let c = cover(x, y);
        [0, 1, 2]
            .map(|i| (style.paper[i] as f32 * (1.0 - c) + style.ink[i] as f32 * c).round() as u8)
    };
    let mut pixels: Vec<[u8; 3]> = Vec::with_capacity((w * h) as usize);
    for y in 0..h {
        for x in 0..w {
            pixels.push(rgb(x, y));
        }
    }
    // Sensor noise: the same offset on every channel of a pixel.
    if style.noise > 0.0 {
        for p in &mut pixels {
            let n = gaussian(rng) * style.noise;
            *p = p.map(|v| (v as f32 + n).round().clamp(0.0, 255.0) as u8);
        }
    }
    let at = |x: u32, y: u32| pixels[(y * w + x) as usize];
    match style.colour {
        Colour::Grey => DynamicImage::ImageLuma8(GrayImage::from_fn(w, h, |x, y| {
            let [r, g, b] = at(x, y);
            Luma([((r as u32 * 299 + g as u32 * 587 + b as u32 * 114) / 1000) as u8])
        })),
        Colour::Rgb => DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| Rgb(at(x, y)))),
        Colour::RgbaOpaque => DynamicImage::ImageRgba8(RgbaImage::from_fn(w, h, |x, y| {
            let [r, g, b] = at(x, y);
            Rgba([r, g, b, 255])
        })),
        Colour::RgbaTransparent => DynamicImage::ImageRgba8(RgbaImage::from_fn(w, h, |x, y| {
            let [r, g, b] = style.ink;
            Rgba([r, g, b, (cover(x, y) * 255.0).round() as u8])
        })),
    }
}

/// A standard normal sample (Box-Muller).
pub(crate) fn gaussian(rng: &mut impl Rng) -> f32 {
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// The picture as the bytes of a file in `encoding`. JPEG and BMP get no alpha channel.
pub fn encode(image: &DynamicImage, encoding: Encoding) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let result = match encoding {
        Encoding::Jpeg(quality) => {
            let flat = if image.color().has_color() {
                DynamicImage::ImageRgb8(image.to_rgb8())
            } else {
                DynamicImage::ImageLuma8(image.to_luma8())
            };
            flat.write_with_encoder(JpegEncoder::new_with_quality(&mut out, quality))
        }
        Encoding::Png => image.write_to(&mut out, ImageFormat::Png),
        Encoding::Bmp => image.write_to(&mut out, ImageFormat::Bmp),
        Encoding::Gif => {
            DynamicImage::ImageRgba8(image.to_rgba8()).write_to(&mut out, ImageFormat::Gif)
        }
        Encoding::WebP => {
            DynamicImage::ImageRgba8(image.to_rgba8()).write_to(&mut out, ImageFormat::WebP)
        }
        Encoding::Tiff => image.write_to(&mut out, ImageFormat::Tiff),
    };
    // Encoding an in-memory 8-bit image to a Vec only fails on a bug in the encoder.
    result.unwrap_or_else(|e| panic!("encoding {encoding:?}: {e}"));
    out.into_inner()
}

/// A picture written by [`write_digits`] or [`write_numbers`], with the answer it should get.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub file: PathBuf,
    /// The digit, or the number's digits, as text.
    pub answer: String,
}

/// Writes `count` single-digit pictures made from randomly chosen `digits` (MNIST images,
/// 784 bytes each, with their `labels`) into `dir`, named `NNNNN-digit-L.ext`.
pub fn write_digits(
    dir: &Path,
    digits: &[u8],
    labels: &[u8],
    count: usize,
    seed: u64,
) -> std::io::Result<Vec<Sample>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count)
        .map(|i| {
            let k = rng.random_range(0..labels.len());
            let style = Style::random(&mut rng, 30..=400);
            let picture = digit_picture(
                &digits[k * IMAGE_PIXELS..][..IMAGE_PIXELS],
                &style,
                &mut rng,
            );
            let answer = labels[k].to_string();
            let file = dir.join(format!(
                "{i:05}-digit-{answer}.{}",
                style.encoding.extension()
            ));
            std::fs::write(&file, encode(&picture, style.encoding))?;
            Ok(Sample { file, answer })
        })
        .collect()
}

/// Writes `count` pictures of numbers of `lengths` digits (separated, left to right), named
/// `NNNNN-number-DIGITS.ext`. Digits are 30-120 pixels high.
pub fn write_numbers(
    dir: &Path,
    digits: &[u8],
    labels: &[u8],
    count: usize,
    lengths: std::ops::RangeInclusive<usize>,
    seed: u64,
) -> std::io::Result<Vec<Sample>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count)
        .map(|i| {
            let n = rng.random_range(lengths.clone());
            let chosen: Vec<usize> = (0..n).map(|_| rng.random_range(0..labels.len())).collect();
            let images: Vec<&[u8]> = chosen
                .iter()
                .map(|&k| &digits[k * IMAGE_PIXELS..][..IMAGE_PIXELS])
                .collect();
            let style = Style::random(&mut rng, 30..=120);
            let (picture, _) = number_picture(&images, &style, &mut rng);
            let answer: String = chosen
                .iter()
                .map(|&k| char::from(b'0' + labels[k]))
                .collect();
            let file = dir.join(format!(
                "{i:05}-number-{answer}.{}",
                style.encoding.extension()
            ));
            std::fs::write(&file, encode(&picture, style.encoding))?;
            Ok(Sample { file, answer })
        })
        .collect()
}

/// A small PNG whose header claims `width` x `height` pixels: the IHDR, one IDAT chunk with a
/// few bytes of (stored) zlib data and IEND, as a decompression bomb starts. For tests of the
/// size limit.
pub fn png_header_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]); // 8-bit greyscale, deflate, no filter, no interlace
    let data = [0u8; 16];
    let mut zlib = vec![0x78, 0x01, 0x01]; // zlib header, then a final stored deflate block
    zlib.extend((data.len() as u16).to_le_bytes());
    zlib.extend((!(data.len() as u16)).to_le_bytes());
    zlib.extend(data);
    zlib.extend(adler32(&data).to_be_bytes());
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, body) in [
        (b"IHDR", &ihdr[..]),
        (b"IDAT", &zlib[..]),
        (b"IEND", &[][..]),
    ] {
        let mut chunk = kind.to_vec();
        chunk.extend(body);
        bytes.extend((body.len() as u32).to_be_bytes());
        bytes.extend(&chunk);
        bytes.extend(crc32(&chunk).to_be_bytes());
    }
    bytes
}

/// `png` (a PNG file) with an eXIf chunk saying the picture is stored rotated: EXIF orientation
/// 1-8 (6: turn 90 degrees clockwise to view), as phone cameras write. For tests of orientation.
pub fn png_with_exif_orientation(png: &[u8], orientation: u16) -> Vec<u8> {
    // A big-endian TIFF header and one IFD with a single SHORT entry: tag 0x0112 = orientation.
    let mut exif = b"MM\0\x2a".to_vec();
    exif.extend(8u32.to_be_bytes());
    exif.extend(1u16.to_be_bytes());
    exif.extend(0x0112u16.to_be_bytes());
    exif.extend(3u16.to_be_bytes());
    exif.extend(1u32.to_be_bytes());
    exif.extend(orientation.to_be_bytes());
    exif.extend([0, 0]);
    exif.extend(0u32.to_be_bytes());
    let mut chunk = b"eXIf".to_vec();
    chunk.extend(&exif);
    // After the signature (8 bytes) and IHDR (25 bytes); eXIf must precede the image data.
    let mut out = png[..33].to_vec();
    out.extend((exif.len() as u32).to_be_bytes());
    out.extend(&chunk);
    out.extend(crc32(&chunk).to_be_bytes());
    out.extend(&png[33..]);
    out
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + byte as u32) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

/// CRC-32 (IEEE), as PNG chunks use.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar_digit() -> Vec<u8> {
        (0..IMAGE_PIXELS)
            .map(|i| {
                if (12..16).contains(&(i % 28)) && (4..24).contains(&(i / 28)) {
                    255
                } else {
                    0
                }
            })
            .collect()
    }

    #[test]
    fn crc_matches_the_png_specification_example() {
        // The CRC of "IEND" is the constant every PNG ends with.
        assert_eq!(crc32(b"IEND"), 0xAE42_6082);
    }

    #[test]
    fn every_encoding_decodes_back_to_the_same_size() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for encoding in [
            Encoding::Png,
            Encoding::Jpeg(80),
            Encoding::Bmp,
            Encoding::Gif,
            Encoding::WebP,
            Encoding::Tiff,
        ] {
            let style = Style {
                encoding,
                ..Style::random(&mut rng, 40..=40)
            };
            let picture = digit_picture(&bar_digit(), &style, &mut rng);
            let bytes = encode(&picture, encoding);
            let back = crate::decode_image(&bytes, std::path::Path::new("x")).unwrap();
            assert_eq!(
                (back.width(), back.height()),
                (picture.width(), picture.height())
            );
        }
    }

    #[test]
    fn number_boxes_are_left_to_right_and_apart() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let style = Style::random(&mut rng, 60..=60);
        let digit = bar_digit();
        let (picture, boxes) = number_picture(&[&digit, &digit, &digit], &style, &mut rng);
        assert_eq!(boxes.len(), 3);
        for pair in boxes.windows(2) {
            assert!(pair[0].x + pair[0].w < pair[1].x, "{boxes:?}");
        }
        let last = boxes[2];
        assert!(last.x + last.w <= picture.width() && last.y + last.h <= picture.height());
    }
}
