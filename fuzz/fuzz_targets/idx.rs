//! The IDX reader on arbitrary bytes, raw or gzip (it tells them apart by content): it must
//! return a value or a `DataError`, never panic, and never allocate more than the bytes justify.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz-input");
    if let Ok(images) = mnist_data::parse_images(data, path) {
        assert_eq!(images.pixels.len(), images.count * mnist_data::IMAGE_PIXELS);
    }
    if let Ok(labels) = mnist_data::parse_labels(data, path) {
        assert!(labels.0.iter().all(|&l| (l as usize) < mnist_data::NUM_CLASSES));
    }
});
