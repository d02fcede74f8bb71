//! Writes user-style pictures made from MNIST test digits, named after their answers: the files
//! behind the README's `predict` and `read` examples and the accuracy figures
//! (`scripts/image-accuracy.sh`).
//!
//! cargo run --release -p mnist-image --example user_images -- DIGITS NUMBERS OUT_DIR [SEED]
//! (MNIST from $MNIST_DIR or ./data/mnist; NUMBERS pictures hold 2 to 7 digits.)

use std::path::PathBuf;

use mnist_data::{data_dir, read_images, read_labels, MnistFile};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [digits, numbers, out, rest @ ..] = &args[..] else {
        return Err("usage: user_images DIGITS NUMBERS OUT_DIR [SEED]".into());
    };
    let seed: u64 = rest.first().map(|s| s.parse()).transpose()?.unwrap_or(1);
    let dir = data_dir(None);
    let find = |file| {
        mnist_data::find_file(&dir, file).ok_or(format!(
            "{}: MNIST test files not found; set MNIST_DIR",
            dir.display()
        ))
    };
    let images = read_images(&find(MnistFile::TestImages)?)?;
    let labels = read_labels(&find(MnistFile::TestLabels)?)?;
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out)?;
    let d =
        mnist_image::synth::write_digits(&out, &images.pixels, &labels.0, digits.parse()?, seed)?;
    let n = mnist_image::synth::write_numbers(
        &out,
        &images.pixels,
        &labels.0,
        numbers.parse()?,
        2..=7,
        seed,
    )?;
    eprintln!(
        "wrote {} digit and {} number pictures to {}",
        d.len(),
        n.len(),
        out.display()
    );
    Ok(())
}
