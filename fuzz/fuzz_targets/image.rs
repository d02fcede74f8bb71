//! Image decoding plus everything after it (ink, segmentation, MNIST preprocessing) on arbitrary
//! bytes: any picture, or an error, never a panic or an unbounded allocation.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(image) = mnist_image::decode_image(data, Path::new("fuzz-input")) else {
        return;
    };
    let _ = mnist_image::digit_in_image(&image);
    let segments = mnist_image::digits_in_image(&image);
    for digit in segments.iter().flat_map(|s| s.candidates()) {
        assert!(digit.bbox.x + digit.bbox.w <= image.width());
        assert!(digit.bbox.y + digit.bbox.h <= image.height());
    }
});
