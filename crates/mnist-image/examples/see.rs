//! Writes the ink map of each picture as a PNG beside OUT_DIR/NAME.png (white = ink), to see
//! what the pipeline found. cargo run --release -p mnist-image --example see -- OUT_DIR FILE...
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (out, files) = args.split_first().ok_or("usage: see OUT_DIR FILE...")?;
    std::fs::create_dir_all(out)?;
    for file in files {
        let path = std::path::Path::new(file);
        let map = mnist_image::ink_map(&mnist_image::read_image(path)?);
        let img = image::GrayImage::from_fn(map.width as u32, map.height as u32, |x, y| {
            image::Luma([(map.at(x as usize, y as usize) * 255.0) as u8])
        });
        img.save(std::path::Path::new(out).join(format!(
            "{}.png",
            path.file_stem().unwrap().to_string_lossy()
        )))?;
    }
    Ok(())
}
