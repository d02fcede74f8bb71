//! The drawing page in a real browser: `mnist serve` on a free loopback port, and
//! `scripts/browser-test.sh` driving headless Chromium through playwright-core to draw a 7, then
//! a 1 and a 7, with the mouse and to upload a picture of a number, checking the number the page
//! shows each time. Screenshots are kept in `target/artifacts/`.
//!
//! It needs Chromium, node and playwright-core, so a plain `cargo test` leaves it out (ignored);
//! `scripts/verify-all.sh` runs it, and fails when any of them is missing.

mod common;

use common::{repo, Server};

#[test]
#[ignore = "needs Chromium, node and playwright-core: run by scripts/verify-all.sh"]
fn the_page_reads_a_drawn_digit_and_an_uploaded_number() {
    let server = Server::start(&[]);
    let artifacts = repo().join("target/artifacts");
    let _ = std::fs::remove_file(artifacts.join("serve-drawn.png"));
    let _ = std::fs::remove_file(artifacts.join("serve-upload.png"));
    let upload = repo().join("tests/pictures/00001-number-75845.webp");
    let status = std::process::Command::new(repo().join("scripts/browser-test.sh"))
        .arg(&server.url)
        .arg(&upload)
        .arg("75845")
        .arg(&artifacts)
        .status()
        .expect("cannot run scripts/browser-test.sh");
    assert!(status.success(), "scripts/browser-test.sh failed: {status}");
    for shot in ["serve-drawn.png", "serve-upload.png"] {
        let (w, h) =
            image::image_dimensions(artifacts.join(shot)).unwrap_or_else(|e| panic!("{shot}: {e}"));
        assert!(w >= 800 && h >= 800, "{shot}: {w}x{h}");
    }
}
