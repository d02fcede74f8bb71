//! Prints one line per picture: a hash of what the pipeline makes of it (its ink map, every
//! value bit for bit, and every candidate digit's box and 28x28 pixels, other pens included),
//! then the boxes. Two builds that print the same lines see those pictures the same, so a
//! change made for speed alone can be checked to change nothing:
//!
//! cargo run --release -p mnist-image --example fingerprint -- FILE_OR_DIR... > A.txt
//!
//! (the same with the other build into B.txt, then `diff A.txt B.txt`). Directories give their
//! PNG and JPEG files; lines are in file name order.
use std::hash::Hasher;
use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        return Err("usage: fingerprint FILE_OR_DIR...".into());
    }
    let mut files: Vec<PathBuf> = Vec::new();
    for arg in &args {
        let path = Path::new(arg);
        if path.is_dir() {
            for entry in std::fs::read_dir(path)? {
                let file = entry?.path();
                let extension = file.extension().and_then(|e| e.to_str()).unwrap_or("");
                if ["png", "jpg", "jpeg"].contains(&extension.to_ascii_lowercase().as_str()) {
                    files.push(file);
                }
            }
        } else {
            files.push(path.to_path_buf());
        }
    }
    files.sort_by_key(|f| f.file_name().map(|n| n.to_os_string()));
    for file in files {
        let image = mnist_image::read_image(&file)?;
        let map = mnist_image::ink_map(&image);
        // FNV-1a: stable across runs and builds, unlike std's default hasher.
        let mut hash = Fnv(0xcbf2_9ce4_8422_2325);
        hash.write_usize(map.width);
        hash.write_usize(map.height);
        for v in &map.ink {
            hash.write_u32(v.to_bits());
        }
        hash.write_u32(map.faint.to_bits());
        let mut boxes = Vec::new();
        for segment in mnist_image::digits_in_image(&image) {
            for digit in segment.candidates() {
                let b = digit.bbox;
                boxes.push(format!("{}x{}+{}+{}", b.w, b.h, b.x, b.y));
                hash.write(&digit.styled.pixels);
                for pen in &digit.styled.other_pens {
                    hash.write(pen);
                }
            }
        }
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        println!("{name} {:016x} {}", hash.finish(), boxes.join(" "));
    }
    Ok(())
}

struct Fnv(u64);

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
