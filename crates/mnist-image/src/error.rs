//! Errors of the image crate: each names the file and says what is wrong with it.

use std::path::PathBuf;

/// Why an image file could not be turned into digits.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: is a directory, not an image file")]
    IsDirectory { path: PathBuf },
    #[error("{path}: the file is empty")]
    Empty { path: PathBuf },
    #[error("{path}: {size} bytes is larger than the {limit}-byte limit for an image file")]
    FileTooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error("{path}: not an image in a supported format (PNG, JPEG, BMP, GIF, WebP, TIFF)")]
    NotAnImage { path: PathBuf },
    #[error("{path}: the header claims {width}x{height} pixels, more than the {megapixels}-megapixel limit (a damaged file or a decompression bomb)")]
    TooManyPixels {
        path: PathBuf,
        width: u32,
        height: u32,
        megapixels: u64,
    },
    #[error("{path}: has zero width or height")]
    ZeroSize { path: PathBuf },
    #[error(
        "{path}: cannot decode the {format} data ({reason}); the file is damaged or truncated"
    )]
    Decode {
        path: PathBuf,
        format: String,
        reason: String,
    },
    #[error("{path}: no ink found: the image is blank or too faint to hold a digit")]
    NoInk { path: PathBuf },
}
