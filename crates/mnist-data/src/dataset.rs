//! The four MNIST files: their names, where to look for them, and loading
//! them into memory as one checked [`Mnist`].
//!
//! The byte-level format lives in [`crate::idx`]; fetching missing files in
//! [`crate::download`].

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::DataError;
use crate::idx::{read_images, read_labels};

/// Environment variable naming the folder that holds the MNIST files.
pub const DATA_DIR_ENV: &str = "MNIST_DIR";
/// Where the files are looked for when neither `--data-dir` nor
/// [`DATA_DIR_ENV`] says otherwise, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "data/mnist";

/// One of the four files MNIST is distributed as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MnistFile {
    TrainImages,
    TrainLabels,
    TestImages,
    TestLabels,
}

impl MnistFile {
    /// All four, in the order the original site lists them.
    pub const ALL: [MnistFile; 4] = [
        MnistFile::TrainImages,
        MnistFile::TrainLabels,
        MnistFile::TestImages,
        MnistFile::TestLabels,
    ];

    /// The name as published, without `.gz`.
    pub fn base_name(self) -> &'static str {
        match self {
            MnistFile::TrainImages => "train-images-idx3-ubyte",
            MnistFile::TrainLabels => "train-labels-idx1-ubyte",
            MnistFile::TestImages => "t10k-images-idx3-ubyte",
            MnistFile::TestLabels => "t10k-labels-idx1-ubyte",
        }
    }

    /// The same name with a dot before `idx`, as Windows unpackers and some
    /// Kaggle copies write it.
    fn dotted_name(self) -> &'static str {
        match self {
            MnistFile::TrainImages => "train-images.idx3-ubyte",
            MnistFile::TrainLabels => "train-labels.idx1-ubyte",
            MnistFile::TestImages => "t10k-images.idx3-ubyte",
            MnistFile::TestLabels => "t10k-labels.idx1-ubyte",
        }
    }

    /// SHA-256 of the uncompressed file, as published by the mirrors. The
    /// `.gz` bytes differ between mirrors (compression level, timestamps),
    /// the content does not.
    pub fn sha256(self) -> &'static str {
        match self {
            MnistFile::TrainImages => {
                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"
            }
            MnistFile::TrainLabels => {
                "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"
            }
            MnistFile::TestImages => {
                "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"
            }
            MnistFile::TestLabels => {
                "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"
            }
        }
    }

    /// Names accepted in a data folder, in order of preference: the
    /// unpacked file is cheapest to read.
    fn candidate_names(self) -> [String; 4] {
        let (base, dotted) = (self.base_name(), self.dotted_name());
        [
            base.to_owned(),
            format!("{base}.gz"),
            dotted.to_owned(),
            format!("{dotted}.gz"),
        ]
    }
}

impl fmt::Display for MnistFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.base_name())
    }
}

/// The copy of MNIST that a clone of this repository carries (`data/mnist/` at its top), found
/// through where this crate was compiled. It is absent from a published crate, so `cargo install`
/// builds fall back to [`DEFAULT_DATA_DIR`] and the downloader.
pub fn repository_data_dir() -> Option<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/mnist")
        .canonicalize()
        .ok()
        .filter(|dir| dir.is_dir())
}

/// Where [`resolve_data_dir`] found the data folder, for messages such as
/// "reading MNIST from data/mnist (the default)".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataDirSource {
    /// The `--data-dir` flag.
    Flag,
    /// The [`DATA_DIR_ENV`] environment variable.
    Env,
    /// [`DEFAULT_DATA_DIR`] in the working directory.
    Default,
    /// The repository's own copy ([`repository_data_dir`]).
    Repository,
}

impl fmt::Display for DataDirSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataDirSource::Flag => f.write_str("from --data-dir"),
            DataDirSource::Env => write!(f, "from {DATA_DIR_ENV}"),
            DataDirSource::Default => f.write_str("the default"),
            DataDirSource::Repository => f.write_str("the copy in this repository"),
        }
    }
}

/// The data folder: the `--data-dir` flag if given, else [`DATA_DIR_ENV`] if set and not empty,
/// else [`DEFAULT_DATA_DIR`] if that folder exists, else the repository's copy if there is one,
/// else [`DEFAULT_DATA_DIR`] (where missing files are downloaded to).
pub fn data_dir(flag: Option<&Path>) -> PathBuf {
    resolve_data_dir(flag).0
}

/// [`data_dir`], together with which of the places it came from.
pub fn resolve_data_dir(flag: Option<&Path>) -> (PathBuf, DataDirSource) {
    resolve(
        flag,
        std::env::var_os(DATA_DIR_ENV),
        Path::new(DEFAULT_DATA_DIR).is_dir(),
        repository_data_dir(),
    )
}

/// The environment and the file system are parameters so tests need not change the process's.
fn resolve(
    flag: Option<&Path>,
    env: Option<OsString>,
    default_exists: bool,
    repository: Option<PathBuf>,
) -> (PathBuf, DataDirSource) {
    match (flag, env, repository) {
        (Some(flag), _, _) => (flag.to_owned(), DataDirSource::Flag),
        (None, Some(env), _) if !env.is_empty() => (PathBuf::from(env), DataDirSource::Env),
        (None, _, Some(repository)) if !default_exists => (repository, DataDirSource::Repository),
        _ => (PathBuf::from(DEFAULT_DATA_DIR), DataDirSource::Default),
    }
}

/// The path under which `file` exists in `dir`, under any accepted name
/// (`NAME`, `NAME.gz`, and the same with `.idx` for `-idx`).
pub fn find_file(dir: &Path, file: MnistFile) -> Option<PathBuf> {
    file.candidate_names()
        .into_iter()
        .map(|name| dir.join(name))
        // Anything by that name counts as found: a directory there is then reported as one
        // when it is read, instead of sending the user to download a file they seem to have.
        .find(|path| path.exists())
}

/// One half of MNIST, as stored in the files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    /// `len() * IMAGE_PIXELS` bytes, image after image, each row-major.
    pub images: Vec<u8>,
    /// One digit per image.
    pub labels: Vec<u8>,
}

impl Split {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// The whole dataset: 60,000 training and 10,000 test examples when read
/// from the real files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mnist {
    pub train: Split,
    pub test: Split,
}

/// Reads and checks the four files in `dir`, each gzipped or not.
pub fn load_dir(dir: &Path) -> Result<Mnist, DataError> {
    let paths = MnistFile::ALL.map(|file| find_file(dir, file));
    let missing: Vec<MnistFile> = MnistFile::ALL
        .into_iter()
        .zip(&paths)
        .filter(|(_, path)| path.is_none())
        .map(|(file, _)| file)
        .collect();
    let [Some(train_images), Some(train_labels), Some(test_images), Some(test_labels)] = paths
    else {
        return Err(DataError::Missing {
            dir: dir.to_owned(),
            missing,
        });
    };
    Ok(Mnist {
        train: load_split(&train_images, &train_labels)?,
        test: load_split(&test_images, &test_labels)?,
    })
}

fn load_split(images_path: &Path, labels_path: &Path) -> Result<Split, DataError> {
    let images = read_images(images_path)?;
    let labels = read_labels(labels_path)?;
    if images.count != labels.0.len() {
        return Err(DataError::CountMismatch {
            images_path: images_path.to_owned(),
            labels_path: labels_path.to_owned(),
            images: images.count,
            labels: labels.0.len(),
        });
    }
    Ok(Split {
        images: images.pixels,
        labels: labels.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idx::tests::{gzip, image_file, label_file};
    use crate::{IMAGE_PIXELS, IMAGE_SIDE, NUM_CLASSES};

    const SIDE: u32 = IMAGE_SIDE as u32;

    /// Writes a consistent small MNIST into `dir`: `train` and `test`
    /// examples, image `i` filled with `i`, label `i % 10`; train files
    /// gzipped, test files not, so both paths are exercised.
    fn write_small_mnist(dir: &Path, train: u32, test: u32) {
        let split = |count: u32| {
            let pixels: Vec<u8> = (0..count).flat_map(|i| [i as u8; IMAGE_PIXELS]).collect();
            let labels: Vec<u8> = (0..count).map(|i| (i % 10) as u8).collect();
            (
                image_file(count, SIDE, SIDE, &pixels),
                label_file(count, &labels),
            )
        };
        let (images, labels) = split(train);
        std::fs::write(dir.join("train-images-idx3-ubyte.gz"), gzip(&images)).unwrap();
        std::fs::write(dir.join("train-labels-idx1-ubyte.gz"), gzip(&labels)).unwrap();
        let (images, labels) = split(test);
        std::fs::write(dir.join("t10k-images-idx3-ubyte"), images).unwrap();
        std::fs::write(dir.join("t10k-labels.idx1-ubyte"), labels).unwrap();
    }

    #[test]
    fn load_dir_reads_gzipped_raw_and_dotted_names() {
        let dir = tempfile::tempdir().unwrap();
        write_small_mnist(dir.path(), 12, 3);
        let mnist = load_dir(dir.path()).unwrap();
        assert_eq!((mnist.train.len(), mnist.test.len()), (12, 3));
        assert_eq!(mnist.train.images.len(), 12 * IMAGE_PIXELS);
        assert_eq!(mnist.train.images[11 * IMAGE_PIXELS], 11);
        assert_eq!(mnist.train.labels[11], 1);
        assert_eq!(mnist.test.labels, [0, 1, 2]);
    }

    #[test]
    fn count_mismatch_names_both_files() {
        let dir = tempfile::tempdir().unwrap();
        write_small_mnist(dir.path(), 2, 3);
        let labels = dir.path().join("t10k-labels.idx1-ubyte");
        std::fs::write(&labels, label_file(2, &[4, 5])).unwrap();
        let err = load_dir(dir.path()).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::CountMismatch {
                    images: 3,
                    labels: 2,
                    ..
                }
            ),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.starts_with(&format!("{}: 2 labels but 3 images in ", labels.display())));
        assert!(message.contains("t10k-images-idx3-ubyte;"), "{message}");
    }

    #[test]
    fn missing_files_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        write_small_mnist(dir.path(), 2, 2);
        std::fs::remove_file(dir.path().join("train-labels-idx1-ubyte.gz")).unwrap();
        std::fs::remove_file(dir.path().join("t10k-images-idx3-ubyte")).unwrap();
        let err = load_dir(dir.path()).unwrap_err();
        match &err {
            DataError::Missing { missing, .. } => {
                assert_eq!(missing, &[MnistFile::TrainLabels, MnistFile::TestImages]);
            }
            other => panic!("expected Missing, got {other:?}"),
        }
        assert!(err.to_string().contains("MNIST_DIR"), "{err}");
    }

    #[test]
    fn data_dir_prefers_flag_then_env_then_working_directory_then_repository() {
        let flag = Path::new("/flag");
        let env = || Some(OsString::from("/env"));
        let repo = || Some(PathBuf::from("/repo/data/mnist"));
        assert_eq!(
            resolve(Some(flag), env(), true, repo()),
            (PathBuf::from("/flag"), DataDirSource::Flag)
        );
        assert_eq!(
            resolve(None, env(), true, repo()),
            (PathBuf::from("/env"), DataDirSource::Env)
        );
        let default = (PathBuf::from(DEFAULT_DATA_DIR), DataDirSource::Default);
        assert_eq!(resolve(None, None, true, repo()), default);
        assert_eq!(resolve(None, Some(OsString::new()), true, None), default);
        assert_eq!(
            resolve(None, None, false, repo()),
            (PathBuf::from("/repo/data/mnist"), DataDirSource::Repository)
        );
        assert_eq!(resolve(None, None, false, None), default);
    }

    /// The repository's copy: the four files whose decompressed SHA-256 are the published ones
    /// (checked against [`MnistFile::sha256`] and the folder's own `SHA256SUMS`), with the
    /// published sizes and the test set's class counts.
    #[test]
    fn the_repository_copy_is_the_real_mnist() {
        use sha2::{Digest, Sha256};
        let dir = repository_data_dir().expect("data/mnist is missing from this clone");
        let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
        for file in MnistFile::ALL {
            let path = find_file(&dir, file).unwrap();
            let mut content = Vec::new();
            std::io::Read::read_to_end(
                &mut flate2::read::MultiGzDecoder::new(std::fs::File::open(&path).unwrap()),
                &mut content,
            )
            .unwrap();
            let digest: String = Sha256::digest(&content)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(digest, file.sha256(), "{}", path.display());
            assert!(
                sums.lines().any(|l| l == format!("{digest}  {file}")),
                "SHA256SUMS has no line for {file}"
            );
        }
        assert_eq!(sums.lines().count(), 4);
        let mnist = load_dir(&dir).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(mnist.train.len(), 60_000);
        assert_eq!(mnist.test.len(), 10_000);
        assert_eq!(mnist.train.images.len(), 60_000 * IMAGE_PIXELS);
        let mut histogram = [0usize; NUM_CLASSES];
        for &label in &mnist.test.labels {
            histogram[usize::from(label)] += 1;
        }
        // The test set's class counts, as
        // `numpy.bincount(t10k_labels)` over the canonical file gives them.
        assert_eq!(
            histogram,
            [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
        );
    }
}
