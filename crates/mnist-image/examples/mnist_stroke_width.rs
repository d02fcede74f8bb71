//! Measures MNIST's stroke width the way `mnist_style` measures a glyph's, for the constants
//! `MNIST_THIN_WIDTH` and `MNIST_STROKE_WIDTH`: each of the first 10,000 training digits is cut
//! to its box, enlarged to the working scale (8x) and given to `mnist_style::stroke_width`.
//!
//! cargo run --release -p mnist-image --example mnist_stroke_width (MNIST from $MNIST_DIR)

use image::imageops::{self, FilterType};
use mnist_data::{data_dir, read_images, MnistFile, IMAGE_PIXELS, IMAGE_SIDE};
use mnist_image::mnist_style::{stroke_width, WORK_SCALE};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = data_dir(None);
    let file = mnist_data::find_file(&dir, MnistFile::TrainImages).ok_or(format!(
        "{}: MNIST training images not found; set MNIST_DIR",
        dir.display()
    ))?;
    let images = read_images(&file)?;
    let side = IMAGE_SIDE as u32;
    let mut widths = Vec::new();
    for pixels in images.pixels.chunks_exact(IMAGE_PIXELS).take(10_000) {
        let tile = image::GrayImage::from_raw(side, side, pixels.to_vec()).ok_or("28x28")?;
        let on: Vec<(u32, u32)> = tile
            .enumerate_pixels()
            .filter(|p| p.2 .0[0] > 0)
            .map(|(x, y, _)| (x, y))
            .collect();
        let (Some(x0), Some(x1)) = (on.iter().map(|p| p.0).min(), on.iter().map(|p| p.0).max())
        else {
            continue;
        };
        let (y0, y1) = (
            on.iter().map(|p| p.1).min().unwrap_or(0),
            on.iter().map(|p| p.1).max().unwrap_or(0),
        );
        let cut = imageops::crop_imm(&tile, x0, y0, x1 - x0 + 1, y1 - y0 + 1).to_image();
        let (w, h) = ((x1 - x0 + 1) * WORK_SCALE, (y1 - y0 + 1) * WORK_SCALE);
        let big = imageops::resize(&cut, w, h, FilterType::Triangle);
        let ink: Vec<f32> = big.pixels().map(|p| p.0[0] as f32 / 255.0).collect();
        widths.extend(stroke_width(&ink, w as usize, h as usize));
    }
    widths.sort_by(f32::total_cmp);
    let q = |f: f64| widths[((widths.len() - 1) as f64 * f).round() as usize];
    println!(
        "{} digits; stroke width in the 20-px box: 1st percentile {:.2}, 5th {:.2}, 10th {:.2}, median {:.2}, 90th {:.2}",
        widths.len(),
        q(0.01),
        q(0.05),
        q(0.1),
        q(0.5),
        q(0.9)
    );
    Ok(())
}
