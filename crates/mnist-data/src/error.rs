//! The crate's one error type.
//!
//! Each message is a single line that starts with the file (or URL) concerned,
//! says what was found and what was expected, and ends with what to do about
//! it, so that the binary can print it as-is. Underlying I/O and HTTP errors
//! are part of the message rather than exposed through `source()`: printing
//! the chain with `{err:#}` would otherwise show them twice.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::dataset::MnistFile;
use crate::idx::IdxKind;
use crate::IMAGE_SIDE;

/// Everything that can go wrong while finding, downloading or reading MNIST.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// A file could not be read (permissions, I/O failure, a directory...).
    #[error("{}: cannot read: {error}; check that the path is right and readable", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },

    /// A downloaded file could not be written into the data directory.
    #[error(
        "{}: cannot write: {error}; check that the folder is writable and has free space, \
         or set MNIST_DIR / --data-dir to another folder",
        path.display()
    )]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },

    /// Some of the four files are not in the directory (under any accepted name).
    #[error(
        "{}: {} not found there; put the MNIST files in that folder, set MNIST_DIR / --data-dir \
         to a folder that holds them, or let the program download them",
        dir.display(), file_list(missing)
    )]
    Missing {
        dir: PathBuf,
        missing: Vec<MnistFile>,
    },

    /// The content ends inside the IDX header.
    #[error(
        "{}: {found} bytes, shorter than the {expected}-byte header of an IDX {kind} file; \
         the file is truncated or not MNIST — download it again",
        path.display()
    )]
    ShortHeader {
        path: PathBuf,
        kind: IdxKind,
        found: usize,
        expected: usize,
    },

    /// The first four bytes are not an IDX `u8` magic number.
    #[error(
        "{}: magic number {found:#010x}, expected {expected:#010x} for IDX {kind}; \
         this is not an MNIST {kind} file — check which file this is, or download it again",
        path.display()
    )]
    BadMagic {
        path: PathBuf,
        kind: IdxKind,
        found: u32,
        expected: u32,
    },

    /// An IDX `u8` file, but with a number of dimensions other than MNIST's.
    #[error(
        "{}: the IDX header declares {found} dimension(s), expected {expected} for MNIST {kind}; \
         this is not an MNIST {kind} file (images and labels swapped?) — check the file names",
        path.display()
    )]
    WrongRank {
        path: PathBuf,
        kind: IdxKind,
        found: u8,
        expected: u8,
    },

    /// Images of another size than 28x28.
    #[error(
        "{}: images are {rows}x{cols} pixels, expected {IMAGE_SIDE}x{IMAGE_SIDE}; \
         this is another dataset, not MNIST — point MNIST_DIR / --data-dir at the MNIST files",
        path.display()
    )]
    WrongImageSize { path: PathBuf, rows: u32, cols: u32 },

    /// The header announces more data than the content holds.
    #[error(
        "{}: the header announces {count} {kind} ({expected} bytes) but the content holds only \
         {found} bytes; the file is truncated (an interrupted download?) — download it again",
        path.display()
    )]
    Truncated {
        path: PathBuf,
        kind: IdxKind,
        count: u32,
        expected: u64,
        found: u64,
    },

    /// The content goes on after the data the header announces.
    #[error(
        "{}: the content goes on past the {expected} bytes its header announces ({count} {kind}); \
         the file is corrupt or has something appended — download it again",
        path.display()
    )]
    TrailingData {
        path: PathBuf,
        kind: IdxKind,
        count: u32,
        expected: u64,
    },

    /// A label that is not a digit.
    #[error(
        "{}: label #{index} is {value}, expected a digit 0-9; the file is corrupt or not an \
         MNIST label file — download it again",
        path.display()
    )]
    LabelOutOfRange {
        path: PathBuf,
        index: usize,
        value: u8,
    },

    /// An image file and a label file that disagree on the number of examples.
    #[error(
        "{}: {labels} labels but {images} images in {}; the files do not belong together — \
         download them again",
        labels_path.display(), images_path.display()
    )]
    CountMismatch {
        images_path: PathBuf,
        labels_path: PathBuf,
        images: usize,
        labels: usize,
    },

    /// Content that starts with the gzip magic but does not decompress.
    #[error(
        "{}: starts like gzip (1f 8b) but does not decompress: {error}; the file is damaged — \
         download it again",
        path.display()
    )]
    CorruptGzip {
        path: PathBuf,
        error: std::io::Error,
    },

    /// A download whose decompressed content is not the canonical file.
    #[error(
        "{url}: SHA-256 of the content is {found}, expected {expected}; the mirror served a \
         different or damaged file — try another mirror with MNIST_MIRROR"
    )]
    ChecksumMismatch {
        url: String,
        found: String,
        expected: String,
    },

    /// A response larger than any MNIST file, refused before it fills memory.
    #[error(
        "{url}: the response is larger than the {limit} bytes allowed for an MNIST file; \
         the mirror serves something else — try another mirror with MNIST_MIRROR"
    )]
    ResponseTooLarge { url: String, limit: u64 },

    /// The request failed: no connection, a timeout, an HTTP error status.
    #[error("{url}: {error}; check the network connection and the mirror (MNIST_MIRROR)")]
    Http { url: String, error: String },

    /// Files were missing and no mirror could supply them.
    #[error(
        "{}: {} not found there and the download failed ({}); put the MNIST files in that \
         folder, or set MNIST_DIR / --data-dir to a folder that holds them",
        dir.display(), file_list(missing),
        last_error.as_ref().map_or_else(|| "no mirror configured".to_owned(), |e| e.to_string())
    )]
    Unavailable {
        dir: PathBuf,
        missing: Vec<MnistFile>,
        last_error: Option<Box<DataError>>,
    },

    /// A `candle_datasets` dataset that does not hold MNIST as its loaders produce it.
    #[cfg(feature = "hub")]
    #[error(
        "candle dataset {tensor}: {found}, expected {expected}; hand over the Dataset that \
         candle_datasets::vision::mnist produced, unchanged"
    )]
    BadTensor {
        tensor: &'static str,
        found: String,
        expected: String,
    },

    /// A tensor operation failed while converting to or from `candle_datasets`.
    #[cfg(feature = "hub")]
    #[error("candle dataset conversion: {0}")]
    Candle(#[from] candle_core::Error),
}

/// "a, b and c", each file with its optional `.gz`.
fn file_list(files: &[MnistFile]) -> String {
    let mut list = String::new();
    for (i, file) in files.iter().enumerate() {
        let separator = match i {
            0 => "",
            _ if i + 1 == files.len() => " and ",
            _ => ", ",
        };
        // Writing to a String cannot fail.
        let _ = write!(list, "{separator}{}[.gz]", file.base_name());
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_list_reads_as_a_sentence() {
        assert_eq!(
            file_list(&[MnistFile::TestLabels]),
            "t10k-labels-idx1-ubyte[.gz]"
        );
        assert_eq!(
            file_list(&MnistFile::ALL),
            "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], \
             t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz]"
        );
    }

    #[test]
    fn count_mismatch_message_names_both_files_and_the_remedy() {
        let err = DataError::CountMismatch {
            images_path: "d/t10k-images-idx3-ubyte.gz".into(),
            labels_path: "d/t10k-labels-idx1-ubyte.gz".into(),
            images: 10_000,
            labels: 9_999,
        };
        assert_eq!(
            err.to_string(),
            "d/t10k-labels-idx1-ubyte.gz: 9999 labels but 10000 images in \
             d/t10k-images-idx3-ubyte.gz; the files do not belong together — download them again"
        );
    }

    #[test]
    fn unavailable_message_says_where_why_and_how() {
        let err = DataError::Unavailable {
            dir: "data/mnist".into(),
            missing: vec![MnistFile::TrainImages],
            last_error: Some(Box::new(DataError::Http {
                url: "http://m/train-images-idx3-ubyte.gz".into(),
                error: "connection refused".into(),
            })),
        };
        let message = err.to_string();
        assert!(!message.contains('\n'));
        for part in [
            "data/mnist",
            "train-images-idx3-ubyte",
            "download failed",
            "connection refused",
            "MNIST_DIR",
        ] {
            assert!(message.contains(part), "{part:?} missing from {message:?}");
        }
    }
}
