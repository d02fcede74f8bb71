//! Reading an image file into memory with bounded cost, whatever its size or format claims.
//!
//! The format is recognized from the bytes, not the file name. Dimensions are checked from the
//! header before any pixel buffer is allocated, so a 100,000 x 100,000 PNG of a few hundred bytes
//! is refused in microseconds instead of asking for 40 GB.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits};

use crate::ImageError;

/// Largest file read (a 48-megapixel phone photo as PNG is about 100 MB).
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;
/// Largest image decoded: 40 megapixels (a 12-megapixel photo has room to spare; at 4 bytes a
/// pixel the decoded buffer stays under 160 MB).
pub const MAX_PIXELS: u64 = 40_000_000;

/// Reads and decodes `path`, refusing directories, empty files, non-images and oversized images.
pub fn read_image(path: &Path) -> Result<DynamicImage, ImageError> {
    let io = |source| ImageError::Io {
        path: path.to_path_buf(),
        source,
    };
    let info = std::fs::metadata(path).map_err(io)?;
    if info.is_dir() {
        return Err(ImageError::IsDirectory {
            path: path.to_path_buf(),
        });
    }
    if info.len() > MAX_FILE_BYTES {
        return Err(ImageError::FileTooLarge {
            path: path.to_path_buf(),
            size: info.len(),
            limit: MAX_FILE_BYTES,
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    decode_image(&bytes, path)
}

/// Decodes an image held in memory; `path` only names it in errors.
pub fn decode_image(bytes: &[u8], path: &Path) -> Result<DynamicImage, ImageError> {
    let path_buf = || path.to_path_buf();
    if bytes.is_empty() {
        return Err(ImageError::Empty { path: path_buf() });
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|source| ImageError::Io {
            path: path_buf(),
            source,
        })?;
    let Some(format) = reader.format() else {
        return Err(ImageError::NotAnImage { path: path_buf() });
    };
    let format_name = format!("{format:?}").to_uppercase();
    // The header alone first, so the error can say what size was claimed.
    // (Without limits: this reads only the header, and a decoder's allocation limit would
    // otherwise refuse a giant claim before we could name its size.)
    let mut header = ImageReader::with_format(Cursor::new(bytes), format);
    header.no_limits();
    if let Ok((width, height)) = header.into_dimensions() {
        check_pixel_count(width, height, path)?;
    }
    let decode_error = |e: image::ImageError| match e {
        image::ImageError::Limits(_) => ImageError::Decode {
            path: path_buf(),
            format: format_name.clone(),
            reason: format!("it needs more memory than the {MAX_PIXELS}-pixel limit allows"),
        },
        image::ImageError::Unsupported(_) => ImageError::NotAnImage { path: path_buf() },
        other => ImageError::Decode {
            path: path_buf(),
            format: format_name.clone(),
            // Some decoders' messages span lines; ours are one line each.
            reason: other
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        },
    };
    let mut reader = reader;
    reader.limits(limits());
    let mut decoder = reader.into_decoder().map_err(decode_error)?;
    // Phones store photos sideways and say so in EXIF; a digit read sideways is another digit.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(ImageError::ZeroSize { path: path_buf() });
    }
    check_pixel_count(width, height, path)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    image.apply_orientation(orientation);
    Ok(image)
}

fn check_pixel_count(width: u32, height: u32, path: &Path) -> Result<(), ImageError> {
    if width as u64 * height as u64 > MAX_PIXELS {
        return Err(ImageError::TooManyPixels {
            path: path.to_path_buf(),
            width,
            height,
            megapixels: MAX_PIXELS / 1_000_000,
        });
    }
    Ok(())
}

/// The decoder's own allocation cap, a second line behind the pixel count check (some formats
/// allocate per frame or per strip before the dimensions are known).
fn limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(u16::MAX as u32);
    limits.max_image_height = Some(u16::MAX as u32);
    limits.max_alloc = Some(MAX_PIXELS * 16);
    limits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{png_header_claiming, png_with_exif_orientation};
    use image::{GrayImage, ImageFormat};

    fn png_bytes(img: &GrayImage) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn decodes_by_content_not_by_name() {
        let img = GrayImage::from_fn(5, 3, |x, y| image::Luma([(x * 10 + y) as u8]));
        let decoded = decode_image(&png_bytes(&img), Path::new("photo.jpg")).unwrap();
        assert_eq!(decoded.to_luma8(), img);
    }

    #[test]
    fn exif_orientation_is_applied() {
        // Stored 4 wide and 2 high with ink in the left column; orientation 6 means "turn 90
        // degrees clockwise to view", so the viewed picture is 2 wide, 4 high, ink on top.
        let stored = GrayImage::from_fn(4, 2, |x, _| image::Luma([if x == 0 { 0 } else { 255 }]));
        let bytes = png_with_exif_orientation(&png_bytes(&stored), 6);
        let viewed = decode_image(&bytes, Path::new("photo.png"))
            .unwrap()
            .to_luma8();
        assert_eq!(viewed.dimensions(), (2, 4));
        assert_eq!(viewed.get_pixel(0, 0).0[0], 0);
        assert_eq!(viewed.get_pixel(1, 0).0[0], 0);
        assert_eq!(viewed.get_pixel(0, 3).0[0], 255);
    }

    #[test]
    fn a_bomb_header_is_refused_before_allocating() {
        let err = decode_image(
            &png_header_claiming(100_000, 100_000),
            Path::new("bomb.png"),
        )
        .unwrap_err();
        assert!(matches!(err, ImageError::TooManyPixels { .. }), "{err}");
        assert!(err.to_string().contains("100000x100000"), "{err}");
    }

    #[test]
    fn zero_sized_and_truncated_images_are_named() {
        let err = decode_image(&png_header_claiming(0, 0), Path::new("z.png")).unwrap_err();
        assert!(
            matches!(err, ImageError::ZeroSize { .. } | ImageError::Decode { .. }),
            "{err}"
        );
        let full = png_bytes(&GrayImage::from_pixel(64, 64, image::Luma([200])));
        let err = decode_image(&full[..full.len() / 2], Path::new("cut.png")).unwrap_err();
        assert!(matches!(err, ImageError::Decode { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("cut.png: cannot decode the PNG data"),
            "{err}"
        );
    }

    #[test]
    fn text_and_empty_files_are_not_images() {
        let err = decode_image(b"hello, world\n", Path::new("a.png")).unwrap_err();
        assert!(matches!(err, ImageError::NotAnImage { .. }), "{err}");
        let err = decode_image(b"", Path::new("e.png")).unwrap_err();
        assert!(matches!(err, ImageError::Empty { .. }), "{err}");
    }

    #[test]
    fn directories_and_missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_image(dir.path()).unwrap_err();
        assert!(matches!(err, ImageError::IsDirectory { .. }), "{err}");
        let err = read_image(&dir.path().join("nope.png")).unwrap_err();
        assert!(err.to_string().contains("nope.png: cannot read"), "{err}");
    }
}
