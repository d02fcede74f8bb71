//! Finding, downloading and loading MNIST for a subcommand.

use anyhow::{Context, Result};
use mnist_data::{ensure_files, load_dir, resolve_data_dir, DownloadOptions, Mnist};

use crate::cli::DataArgs;

/// Resolves the directory (flag, `MNIST_DIR`, `./data/mnist`, the repository's copy), downloads
/// missing files, and reads and validates all four.
pub fn load(args: &DataArgs) -> Result<Mnist> {
    let (dir, source) = resolve_data_dir(args.data_dir.as_deref());
    eprintln!("data: {} ({source})", dir.display());
    ensure_files(&dir, &DownloadOptions::from_env()).context("getting MNIST")?;
    let mnist = load_dir(&dir).context("reading MNIST")?;
    Ok(mnist)
}
