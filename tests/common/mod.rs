//! Helpers shared by the end-to-end tests: run the real `mnist` binary, build small synthetic
//! MNIST directories, and find the real data.

#![allow(dead_code)] // each test file uses a different subset

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository's root (weights/, tests/pictures/, scripts/).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The files in `dir`, in name order.
pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// The binary under test, with a mirror that cannot be reached so no test ever downloads.
pub fn mnist() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mnist"));
    cmd.env("MNIST_MIRROR", "http://127.0.0.1:9/")
        .env_remove("MNIST_DIR");
    cmd
}

pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(cmd: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("cannot start the mnist binary");
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

impl Run {
    /// Asserts success and returns stdout.
    pub fn ok(self) -> String {
        assert_eq!(
            self.code,
            Some(0),
            "failed:\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self.stdout
    }

    /// Asserts a failure reported as one `error:` line with no panic, and returns that line.
    pub fn one_line_error(self) -> String {
        assert_eq!(
            self.code,
            Some(1),
            "expected exit 1:\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("backtrace"),
            "{}",
            self.stderr
        );
        let line = self
            .stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_else(|| panic!("no error line in: {}", self.stderr))
            .to_string();
        assert_eq!(
            self.stderr
                .lines()
                .filter(|l| l.starts_with("error"))
                .count(),
            1,
            "{}",
            self.stderr
        );
        line
    }
}

/// The real MNIST the repository carries (`data/mnist/`, checked against its published SHA-256
/// by mnist-data's tests). Never `MNIST_DIR`: a variable inherited from the shell must not change
/// what the accuracy tests measure.
pub fn real_mnist_dir() -> PathBuf {
    let dir = repo().join("data/mnist");
    assert!(
        dir.join("t10k-labels-idx1-ubyte.gz").is_file(),
        "{} does not hold MNIST: the clone is incomplete",
        dir.display()
    );
    dir
}

pub fn idx_images(pixels: &[u8], count: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for v in [0x0803u32, count as u32, 28, 28] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(pixels);
    out
}

pub fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in [0x0801u32, labels.len() as u32] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(labels);
    out
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A learnable stand-in for MNIST: digit `d` is a bright 6x6 block at a position of its own, on
/// speckle noise. Deterministic.
pub fn synthetic_split(count: usize, salt: u32) -> (Vec<u8>, Vec<u8>) {
    let mut state = 0x9e37_79b9u32 ^ salt;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    let mut pixels = vec![0u8; count * 784];
    let mut labels = Vec::with_capacity(count);
    for (i, img) in pixels.chunks_exact_mut(784).enumerate() {
        let d = (i % 10) as u8;
        labels.push(d);
        for p in img.iter_mut() {
            if next() % 16 == 0 {
                *p = (next() % 120) as u8;
            }
        }
        let (x0, y0) = (2 + (d as usize % 5) * 5, 4 + (d as usize / 5) * 12);
        let jitter = (next() % 3) as usize;
        for y in y0 + jitter..y0 + jitter + 6 {
            for x in x0..x0 + 6 {
                img[y * 28 + x] = 200 + (next() % 56) as u8;
            }
        }
    }
    (pixels, labels)
}

/// Writes a synthetic MNIST directory with `train`/`test` images, gzipped or raw.
pub fn write_synthetic_mnist(dir: &Path, train: usize, test: usize, gzipped: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let (train_px, train_lb) = synthetic_split(train, 1);
    let (test_px, test_lb) = synthetic_split(test, 2);
    let files = [
        ("train-images-idx3-ubyte", idx_images(&train_px, train)),
        ("train-labels-idx1-ubyte", idx_labels(&train_lb)),
        ("t10k-images-idx3-ubyte", idx_images(&test_px, test)),
        ("t10k-labels-idx1-ubyte", idx_labels(&test_lb)),
    ];
    for (name, bytes) in files {
        if gzipped {
            std::fs::write(dir.join(format!("{name}.gz")), gzip(&bytes)).unwrap();
        } else {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}

/// Every tensor of a safetensors file as raw bytes, by name (bit-exact comparisons).
pub fn tensor_bytes(path: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| (name, view.data().to_vec()))
        .collect()
}

/// The metadata of a safetensors file.
pub fn metadata(path: &Path) -> std::collections::HashMap<String, String> {
    let bytes = std::fs::read(path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    meta.metadata().clone().unwrap_or_default()
}

/// Parses `key value` pairs of a result line such as `epoch 1/5 train_loss 0.1 ...`.
pub fn field(line: &str, key: &str) -> String {
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == key {
            return words.next().unwrap_or_default().to_string();
        }
    }
    panic!("no {key} in {line:?}")
}

/// A running `mnist serve`, stopped when dropped.
pub struct Server {
    pub child: std::process::Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// `http://127.0.0.1:PORT/`.
    pub url: String,
}

impl Server {
    /// Starts `mnist serve --addr 127.0.0.1:0 ARGS...` and waits (at most a minute) for the URL
    /// it prints once listening.
    pub fn start(args: &[&str]) -> Server {
        use std::io::BufRead;
        let mut child = mnist()
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("cannot start mnist serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("mnist serve printed no URL within 60 s");
            }
        };
        let url = line.trim().to_string();
        let addr = url
            .strip_prefix("http://")
            .and_then(|rest| rest.strip_suffix('/'))
            .unwrap_or_else(|| panic!("unexpected first line from mnist serve: {line:?}"))
            .to_string();
        Server { child, addr, url }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bare HTTP/1.1 exchange over a fresh connection (`Connection: close`): the status code and
/// body, or `None` when the server answered nothing parseable (it may drop a connection that
/// is not HTTP). `head` is the request line and headers without the final blank line; a
/// `Content-Length` for `body` is added unless `head` has one.
pub fn http_exchange(addr: &str, head: &str, body: &[u8]) -> Option<(u16, Vec<u8>)> {
    use std::io::{Read, Write};
    let timeout = Some(std::time::Duration::from_secs(60));
    let stream = std::net::TcpStream::connect(addr).expect("cannot connect to the server");
    stream.set_read_timeout(timeout).unwrap();
    stream.set_write_timeout(timeout).unwrap();
    let mut request = head.to_string();
    if !head.to_ascii_lowercase().contains("content-length:") {
        request.push_str(&format!("\r\nContent-Length: {}", body.len()));
    }
    request.push_str("\r\nConnection: close\r\n\r\n");
    // Write from another thread while this one reads: a server refusing a large body answers
    // before reading it all, and the answer must be read before the connection is reset.
    let mut writer = stream.try_clone().unwrap();
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(&bytes);
    });
    let mut response = Vec::new();
    let mut reader = &stream;
    let _ = reader.read_to_end(&mut response);
    let _ = sender.join();
    parse_response(&response)
}

fn parse_response(response: &[u8]) -> Option<(u16, Vec<u8>)> {
    let end = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&response[..end]).ok()?;
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let mut body = response[end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = unchunk(&body)?;
    }
    Some((status, body))
}

fn unchunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// `POST /api/read` with `body` as `content_type` (no header when `None`).
pub fn post_read(addr: &str, content_type: Option<&str>, body: &[u8]) -> Option<(u16, Vec<u8>)> {
    let mut head = format!("POST /api/read HTTP/1.1\r\nHost: {addr}");
    if let Some(t) = content_type {
        head.push_str(&format!("\r\nContent-Type: {t}"));
    }
    http_exchange(addr, &head, body)
}

/// Writes the model tensors of `from` to `to` as PyTorch's
/// `safetensors.torch.save_file(model.state_dict(), to)` would: no metadata, no optimizer state.
pub fn write_state_dict(from: &Path, to: &Path) {
    let bytes = std::fs::read(from).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tensors: Vec<_> = st
        .tensors()
        .into_iter()
        .filter(|(name, _)| !name.starts_with("optim."))
        .collect();
    safetensors::serialize_to_file(tensors, None, to).unwrap();
}
