//! Fetching missing MNIST files from public mirrors.
//!
//! Each missing file is tried on every mirror in turn. A response is kept
//! only if its content (decompressed) has the published SHA-256; it is then
//! written atomically (temporary file in the same folder, fsync, rename), so
//! an interrupted or rejected download never leaves a file that
//! [`crate::load_dir`] would pick up. Nothing is checked or re-downloaded for
//! files already present: [`crate::load_dir`] validates those.

use std::io::IsTerminal;
use std::path::Path;
#[cfg(feature = "download")]
use std::{io::Read, path::PathBuf, time::Duration};

#[cfg(feature = "download")]
use flate2::read::MultiGzDecoder;
#[cfg(feature = "download")]
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
#[cfg(feature = "download")]
use sha2::{Digest, Sha256};

use crate::dataset::{find_file, MnistFile};
use crate::error::DataError;
#[cfg(feature = "download")]
use crate::idx::GZIP_MAGIC;

/// Base URLs tried in order. torchvision's copy first: yann.lecun.com, the
/// original, has often refused downloads (HTTP 403) since 2023.
pub const MIRRORS: [&str; 3] = [
    // torchvision
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    // TensorFlow's tutorials
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
];

/// Environment variable with a base URL that replaces [`MIRRORS`], for
/// networks that can only reach an internal copy.
pub const MIRROR_ENV: &str = "MNIST_MIRROR";

/// The most bytes accepted for one file. The largest `.gz` is 9.9 MB, but a
/// server that sets `Content-Encoding: gzip` on it has the HTTP client
/// inflate it, and then the 47,040,016-byte IDX file arrives; anything
/// beyond that is not MNIST.
const MAX_FILE_BYTES: u64 = 48 << 20;

/// How to fetch missing files.
#[derive(Clone, Debug)]
pub struct DownloadOptions {
    /// Base URLs tried in order; `NAME.gz` is appended to each.
    pub mirrors: Vec<String>,
    /// Expected SHA-256 (hex) of each file's uncompressed content, in
    /// [`MnistFile::ALL`] order. The published ones by default; tests put
    /// the checksums of small synthetic files here.
    pub sha256: [String; 4],
    /// The most bytes accepted for one file, both as received and
    /// decompressed: a bound on memory whatever a server sends.
    pub max_bytes: u64,
    /// Draw a progress bar on stderr.
    pub show_progress: bool,
}

impl Default for DownloadOptions {
    /// The built-in mirrors and published checksums; a progress bar when
    /// stderr is a terminal, so logs and pipes stay clean.
    fn default() -> Self {
        DownloadOptions {
            mirrors: MIRRORS.map(str::to_owned).to_vec(),
            sha256: MnistFile::ALL.map(|file| file.sha256().to_owned()),
            max_bytes: MAX_FILE_BYTES,
            show_progress: std::io::stderr().is_terminal(),
        }
    }
}

impl DownloadOptions {
    /// [`Default`], with the mirrors replaced by [`MIRROR_ENV`] when it is set.
    pub fn from_env() -> Self {
        DownloadOptions {
            mirrors: mirrors(std::env::var(MIRROR_ENV).ok()),
            ..DownloadOptions::default()
        }
    }

    #[cfg(feature = "download")]
    fn expected_sha256(&self, file: MnistFile) -> &str {
        &self.sha256[file as usize]
    }
}

/// The environment is a parameter so tests need not mutate the process's.
fn mirrors(env: Option<String>) -> Vec<String> {
    match env {
        Some(mirror) if !mirror.trim().is_empty() => vec![mirror.trim().to_owned()],
        _ => MIRRORS.map(str::to_owned).to_vec(),
    }
}

/// Downloads whichever of the four files `dir` lacks (creating `dir` if
/// needed), so that [`crate::load_dir`] can then read them.
pub fn ensure_files(dir: &Path, options: &DownloadOptions) -> Result<(), DataError> {
    let missing: Vec<MnistFile> = MnistFile::ALL
        .into_iter()
        .filter(|&file| find_file(dir, file).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    #[cfg(not(feature = "download"))]
    {
        let _ = options;
        Err(DataError::Missing {
            dir: dir.to_owned(),
            missing,
        })
    }
    #[cfg(feature = "download")]
    fetch_missing(dir, &missing, options)
}

/// Fetches, checks and saves each of `missing` in turn.
#[cfg(feature = "download")]
fn fetch_missing(
    dir: &Path,
    missing: &[MnistFile],
    options: &DownloadOptions,
) -> Result<(), DataError> {
    let agent = agent();
    for (i, &file) in missing.iter().enumerate() {
        let content =
            fetch_verified(&agent, file, options).map_err(|last_error| DataError::Unavailable {
                dir: dir.to_owned(),
                missing: missing[i..].to_vec(),
                last_error: last_error.map(Box::new),
            })?;
        // Created once there is a file to put in it: an offline first run leaves no empty
        // folder behind.
        std::fs::create_dir_all(dir).map_err(|error| DataError::Write {
            path: dir.to_owned(),
            error,
        })?;
        save(dir, file, &content)?;
    }
    Ok(())
}

#[cfg(feature = "download")]
/// Timeouts that notice a dead network quickly but let a slow, steady
/// connection finish: there is no limit on the whole transfer.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_recv_response(Some(Duration::from_secs(30)))
        .timeout_per_read(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
}

#[cfg(feature = "download")]
/// The response of the first mirror whose content has the expected
/// checksum; otherwise the last mirror's error (`None`: no mirrors).
fn fetch_verified(
    agent: &ureq::Agent,
    file: MnistFile,
    options: &DownloadOptions,
) -> Result<Vec<u8>, Option<DataError>> {
    let mut last_error = None;
    for mirror in &options.mirrors {
        let url = format!("{}/{}.gz", mirror.trim_end_matches('/'), file.base_name());
        let result = fetch(agent, &url, options).and_then(|body| {
            verify(
                &url,
                &body,
                options.expected_sha256(file),
                options.max_bytes,
            )
            .map(|()| body)
        });
        match result {
            Ok(body) => return Ok(body),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error)
}

#[cfg(feature = "download")]
fn fetch(agent: &ureq::Agent, url: &str, options: &DownloadOptions) -> Result<Vec<u8>, DataError> {
    let http = |error: String| DataError::Http {
        url: url.to_owned(),
        error,
    };
    let too_large = || DataError::ResponseTooLarge {
        url: url.to_owned(),
        limit: options.max_bytes,
    };

    let mut response = agent
        .get(url)
        .call()
        .map_err(|error| http(error.to_string()))?;
    let length = response.body().content_length();
    if length.is_some_and(|length| length > options.max_bytes) {
        return Err(too_large());
    }
    let bar = progress_bar(url, length, options.show_progress);
    let mut body = Vec::new();
    // One byte past the limit tells a body that is too large from one that fits.
    let reader = response.body_mut().as_reader().take(options.max_bytes + 1);
    let result = bar.wrap_read(reader).read_to_end(&mut body);
    bar.finish();
    result.map_err(|error| http(error.to_string()))?;
    if body.len() as u64 > options.max_bytes {
        return Err(too_large());
    }
    Ok(body)
}

#[cfg(feature = "download")]
fn progress_bar(url: &str, length: Option<u64>, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let style =
        ProgressStyle::with_template("{msg} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec}")
            .expect("the template is a valid constant")
            .progress_chars("=> ");
    ProgressBar::with_draw_target(length, ProgressDrawTarget::stderr())
        .with_style(style)
        .with_message(url.to_owned())
}

#[cfg(feature = "download")]
/// Checks the SHA-256 of the content, decompressing it if it is gzipped.
fn verify(url: &str, body: &[u8], expected: &str, max_bytes: u64) -> Result<(), DataError> {
    let mut hasher = Sha256::new();
    if body.starts_with(&GZIP_MAGIC) {
        // Hashing streams, so the cap bounds time, not memory: content
        // longer than any MNIST file cannot match anyway.
        let mut content = MultiGzDecoder::new(body).take(max_bytes);
        std::io::copy(&mut content, &mut hasher).map_err(|error| DataError::CorruptGzip {
            path: url.into(),
            error,
        })?;
    } else {
        hasher.update(body);
    }
    let found = format!("{:x}", hasher.finalize());
    if !found.eq_ignore_ascii_case(expected) {
        return Err(DataError::ChecksumMismatch {
            url: url.to_owned(),
            found,
            expected: expected.to_owned(),
        });
    }
    Ok(())
}

#[cfg(feature = "download")]
/// Writes `content` into `dir` atomically, named after what it is: `NAME.gz`
/// if gzipped, `NAME` if the server or client already inflated it.
fn save(dir: &Path, file: MnistFile, content: &[u8]) -> Result<PathBuf, DataError> {
    let name = match content.starts_with(&GZIP_MAGIC) {
        true => format!("{}.gz", file.base_name()),
        false => file.base_name().to_owned(),
    };
    let path = dir.join(&name);
    let write_error = |error| DataError::Write {
        path: path.clone(),
        error,
    };

    crate::fs::write_atomic(&path, content).map_err(write_error)?;
    Ok(path)
}

#[cfg(all(test, feature = "download"))]
mod tests {
    use super::*;
    use crate::dataset::load_dir;
    use crate::idx::tests::{gzip, image_file, label_file};
    use crate::{IMAGE_PIXELS, IMAGE_SIDE};
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    /// A minimal HTTP/1.1 server on 127.0.0.1: `GET` of a path in `routes`
    /// answers its bytes, anything else 404; one request per connection.
    /// Records the paths asked for.
    struct Server {
        base_url: String,
        requests: Arc<Mutex<Vec<String>>>,
    }

    impl Server {
        fn start(routes: HashMap<String, Vec<u8>>) -> Server {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let base_url = format!("http://{}/mnist/", listener.local_addr().unwrap());
            let requests = Arc::new(Mutex::new(Vec::new()));
            let log = Arc::clone(&requests);
            // The thread lives as long as the test process; nothing joins it.
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let mut reader = BufReader::new(&stream);
                    let mut request_line = String::new();
                    let _ = reader.read_line(&mut request_line);
                    let mut header = String::new();
                    while reader.read_line(&mut header).is_ok_and(|n| n > 0) && header != "\r\n" {
                        header.clear();
                    }
                    let path = request_line
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or_default()
                        .to_owned();
                    let (status, body) = match routes.get(&path) {
                        Some(body) => ("200 OK", body.as_slice()),
                        None => ("404 Not Found", &b"no such file"[..]),
                    };
                    log.lock().unwrap().push(path);
                    let mut stream = &stream;
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(body);
                }
            });
            Server { base_url, requests }
        }

        fn requests(&self) -> Vec<String> {
            self.requests.lock().unwrap().clone()
        }
    }

    /// A small consistent MNIST (5 training, 2 test examples): the raw
    /// content of each file in [`MnistFile::ALL`] order.
    fn small_files() -> [Vec<u8>; 4] {
        let side = IMAGE_SIDE as u32;
        let pixels = |count: u8| {
            (0..count)
                .flat_map(|i| [i; IMAGE_PIXELS])
                .collect::<Vec<u8>>()
        };
        [
            image_file(5, side, side, &pixels(5)),
            label_file(5, &[5, 0, 4, 1, 9]),
            image_file(2, side, side, &pixels(2)),
            label_file(2, &[7, 2]),
        ]
    }

    /// Routes serving `files` gzipped under their standard names.
    fn routes(files: &[Vec<u8>; 4]) -> HashMap<String, Vec<u8>> {
        MnistFile::ALL
            .iter()
            .zip(files)
            .map(|(file, raw)| (format!("/mnist/{}.gz", file.base_name()), gzip(raw)))
            .collect()
    }

    /// Options for the test mirrors, expecting the checksums of `files`.
    fn options(mirrors: &[&str], files: &[Vec<u8>; 4]) -> DownloadOptions {
        DownloadOptions {
            mirrors: mirrors.iter().map(|mirror| mirror.to_string()).collect(),
            sha256: files
                .each_ref()
                .map(|raw| format!("{:x}", Sha256::digest(raw))),
            max_bytes: 1 << 20,
            show_progress: false,
        }
    }

    fn file_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// The URL of a port nothing listens on.
    fn closed_port_url() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/mnist/", listener.local_addr().unwrap())
    }

    #[test]
    fn missing_files_are_fetched_checked_and_written() {
        let files = small_files();
        let server = Server::start(routes(&files));
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("not/yet/there");
        let options = options(&[&server.base_url], &files);

        ensure_files(&dir, &options).unwrap();
        let mut expected: Vec<String> = MnistFile::ALL
            .iter()
            .map(|file| format!("{}.gz", file.base_name()))
            .collect();
        expected.sort();
        assert_eq!(file_names(&dir), expected, "no temporary files may remain");
        let mnist = load_dir(&dir).unwrap();
        assert_eq!(mnist.train.labels, [5, 0, 4, 1, 9]);
        assert_eq!(mnist.test.images[IMAGE_PIXELS..], [1; IMAGE_PIXELS]);

        // Everything present: nothing is fetched again.
        let requests = server.requests().len();
        ensure_files(&dir, &options).unwrap();
        assert_eq!(server.requests().len(), requests);
    }

    #[test]
    fn only_the_missing_files_are_fetched() {
        let files = small_files();
        let server = Server::start(routes(&files));
        let dir = tempfile::tempdir().unwrap();
        for (file, raw) in MnistFile::ALL.iter().zip(&files).skip(1) {
            std::fs::write(dir.path().join(file.base_name()), raw).unwrap();
        }
        ensure_files(dir.path(), &options(&[&server.base_url], &files)).unwrap();
        assert_eq!(server.requests(), ["/mnist/train-images-idx3-ubyte.gz"]);
        assert_eq!(load_dir(dir.path()).unwrap().train.len(), 5);
    }

    #[test]
    fn wrong_bytes_give_a_checksum_error_and_leave_nothing_behind() {
        let files = small_files();
        let mut served = routes(&files);
        // Valid IDX, but not the expected content: other pixels.
        served.insert(
            "/mnist/train-images-idx3-ubyte.gz".into(),
            gzip(&image_file(5, 28, 28, &[3; 5 * IMAGE_PIXELS])),
        );
        let server = Server::start(served);
        let dir = tempfile::tempdir().unwrap();

        let err = ensure_files(dir.path(), &options(&[&server.base_url], &files)).unwrap_err();
        let DataError::Unavailable {
            last_error: Some(last_error),
            missing,
            ..
        } = &err
        else {
            panic!("expected Unavailable with a cause, got {err:?}");
        };
        assert_eq!(missing.len(), 4);
        let DataError::ChecksumMismatch { url, expected, .. } = last_error.as_ref() else {
            panic!("expected a checksum mismatch, got {last_error:?}");
        };
        assert_eq!(
            url,
            &format!("{}train-images-idx3-ubyte.gz", server.base_url)
        );
        assert_eq!(expected, &options(&[], &files).sha256[0]);
        assert!(err.to_string().contains("SHA-256"), "{err}");
        assert_eq!(file_names(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn a_mirror_that_404s_falls_back_to_the_next() {
        let files = small_files();
        let empty = Server::start(HashMap::new());
        let good = Server::start(routes(&files));
        let dir = tempfile::tempdir().unwrap();

        ensure_files(
            dir.path(),
            &options(&[&empty.base_url, &good.base_url], &files),
        )
        .unwrap();
        assert_eq!(empty.requests().len(), 4);
        assert_eq!(good.requests().len(), 4);
        assert_eq!(load_dir(dir.path()).unwrap().test.labels, [7, 2]);
    }

    #[test]
    fn an_unreachable_mirror_gives_the_offline_message() {
        let files = small_files();
        let dir = tempfile::tempdir().unwrap();
        let mirror = closed_port_url();

        let err = ensure_files(dir.path(), &options(&[&mirror], &files)).unwrap_err();
        assert!(
            matches!(&err, DataError::Unavailable { last_error: Some(last), .. }
                if matches!(last.as_ref(), DataError::Http { .. })),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(!message.contains('\n'), "{message}");
        let dir_name = dir.path().display().to_string();
        for part in [
            dir_name.as_str(),
            "t10k-labels-idx1-ubyte",
            "download failed",
            &mirror,
            "MNIST_DIR",
        ] {
            assert!(message.contains(part), "{part:?} missing from {message:?}");
        }
        assert_eq!(file_names(dir.path()), Vec::<String>::new());
        // A folder that did not exist is not created by a download that fetched nothing.
        let absent = dir.path().join("data").join("mnist");
        ensure_files(&absent, &options(&[&mirror], &files)).unwrap_err();
        assert!(!dir.path().join("data").exists());
    }

    #[test]
    fn no_mirrors_is_reported_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let err = ensure_files(dir.path(), &options(&[], &small_files())).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Unavailable {
                    last_error: None,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("no mirror configured"), "{err}");
    }

    #[test]
    fn an_oversized_response_is_refused() {
        let files = small_files();
        let server = Server::start(routes(&files));
        let dir = tempfile::tempdir().unwrap();
        // Any gzip stream has at least 18 bytes of header and trailer.
        let options = DownloadOptions {
            max_bytes: 16,
            ..options(&[&server.base_url], &files)
        };

        let err = ensure_files(dir.path(), &options).unwrap_err();
        let DataError::Unavailable {
            last_error: Some(last_error),
            ..
        } = &err
        else {
            panic!("expected Unavailable with a cause, got {err:?}");
        };
        assert!(
            matches!(
                last_error.as_ref(),
                DataError::ResponseTooLarge { limit: 16, .. }
            ),
            "{last_error:?}"
        );
        assert_eq!(file_names(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn content_already_inflated_is_saved_without_gz() {
        let files = small_files();
        let mut served = routes(&files);
        served.insert("/mnist/t10k-labels-idx1-ubyte.gz".into(), files[3].clone());
        let server = Server::start(served);
        let dir = tempfile::tempdir().unwrap();

        ensure_files(dir.path(), &options(&[&server.base_url], &files)).unwrap();
        assert!(dir.path().join("t10k-labels-idx1-ubyte").is_file());
        assert_eq!(load_dir(dir.path()).unwrap().test.labels, [7, 2]);
    }

    #[test]
    fn mirror_env_replaces_the_list() {
        assert_eq!(
            mirrors(Some(" http://internal/mnist/ ".into())),
            ["http://internal/mnist/"]
        );
        assert_eq!(mirrors(Some(String::new())), MIRRORS);
        assert_eq!(mirrors(None), MIRRORS);
    }
}
