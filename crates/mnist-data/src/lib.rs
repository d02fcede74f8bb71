//! The MNIST data: reading and validating the four IDX files, finding them
//! (`--data-dir`, `MNIST_DIR`, `./data/mnist`, the copy a clone of this
//! repository carries), and downloading them from the usual mirrors with
//! checksum verification when they are missing.
//!
//! Everything here works on raw `u8` pixels and labels; turning them into
//! tensors (normalization, batching) is done once, elsewhere, so that training
//! and prediction cannot drift apart. The crate never touches a device.
//!
//! ```no_run
//! use mnist_data::{data_dir, ensure_files, load_dir, DownloadOptions};
//!
//! let dir = data_dir(None);
//! ensure_files(&dir, &DownloadOptions::from_env())?;
//! let mnist = load_dir(&dir)?;
//! assert_eq!(mnist.train.len(), 60_000);
//! # Ok::<(), mnist_data::DataError>(())
//! ```

pub mod augment;
pub mod batch;
pub mod dataset;
pub mod download;
pub mod error;
pub mod fs;
#[cfg(feature = "hub")]
pub mod hub;
pub mod idx;
pub mod normalize;
pub mod rng;
pub mod stroke;
pub mod synthetic;

/// Height and width of an MNIST image, in pixels.
pub const IMAGE_SIDE: usize = 28;
/// Pixels per image; images are stored row-major, one `u8` per pixel
/// (0 = background, 255 = ink).
pub const IMAGE_PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;
/// Number of digit classes; labels are `0..NUM_CLASSES`.
pub const NUM_CLASSES: usize = 10;

pub use dataset::{
    data_dir, find_file, load_dir, repository_data_dir, resolve_data_dir, DataDirSource, Mnist,
    MnistFile, Split, DATA_DIR_ENV, DEFAULT_DATA_DIR,
};
pub use download::{ensure_files, DownloadOptions, MIRRORS, MIRROR_ENV};
pub use error::DataError;
pub use idx::{parse_images, parse_labels, read_images, read_labels, IdxKind, Images, Labels};
pub use normalize::Normalization;
