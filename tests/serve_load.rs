//! `mnist serve` under load: 8 clients on loopback send 2,048 well-formed pictures (the digits
//! and numbers of tests/pictures/) mixed with malformed and oversized requests. Every
//! well-formed request must get 200 and the right number, every bad one a 4xx with a JSON
//! error, and the server must still be up and answering at the end. The 120 s limit guards
//! against a hang; it is not a speed requirement (throughput is printed for information).

mod common;

use std::time::{Duration, Instant};

use common::{http_exchange, post_read, repo, Server};
use serde_json::Value;

const CLIENTS: usize = 8;
const GOOD_PER_CLIENT: usize = 256;
/// One malformed request after every this many good ones.
const BAD_EVERY: usize = 8;
const HANG_GUARD: Duration = Duration::from_secs(120);

/// A request that must be refused, and the status it must get.
struct Bad {
    name: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
}

fn pictures() -> Vec<(String, Vec<u8>)> {
    let dir = repo().join("tests/pictures");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // `00001-number-75845.webp` holds 75845.
        let answer = name.split(['-', '.']).nth(2).unwrap().to_string();
        out.push((answer, std::fs::read(&path).unwrap()));
    }
    out.sort();
    assert_eq!(out.len(), 8, "the example pictures");
    out
}

fn bad_requests(png: &[u8]) -> Vec<Bad> {
    vec![
        Bad {
            name: "garbage bytes",
            content_type: Some("application/octet-stream"),
            body: (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect(),
            status: 422,
        },
        Bad {
            name: "truncated PNG",
            content_type: Some("image/png"),
            body: png[..png.len() / 3].to_vec(),
            status: 422,
        },
        Bad {
            name: "wrong content type",
            content_type: Some("application/json"),
            body: br#"{"image": "7"}"#.to_vec(),
            status: 415,
        },
        Bad {
            name: "empty body",
            content_type: Some("image/png"),
            body: Vec::new(),
            status: 400,
        },
        Bad {
            name: "decompression bomb header",
            content_type: Some("image/png"),
            body: mnist_image::synth::png_header_claiming(100_000, 100_000),
            status: 422,
        },
        Bad {
            name: "blank picture",
            content_type: Some("image/png"),
            body: {
                let blank = image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(
                    64,
                    64,
                    image::Luma([255]),
                ));
                mnist_image::synth::encode(&blank, mnist_image::synth::Encoding::Png)
            },
            status: 422,
        },
    ]
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

#[derive(Default)]
struct Tally {
    /// Well-formed pictures sent, and those answered 200 with the right number and details.
    good_sent: usize,
    good_answered: usize,
    /// Bad requests sent, and those refused with the expected status and a JSON error.
    bad_sent: usize,
    bad_refused: usize,
    failures: Vec<String>,
}

fn client(addr: &str, k: usize, pictures: &[(String, Vec<u8>)], bad: &[Bad]) -> Tally {
    let mut tally = Tally::default();
    for i in 0..GOOD_PER_CLIENT {
        let (answer, bytes) = &pictures[(i + k) % pictures.len()];
        // Mix how the type is declared: exact, generic, or not at all.
        let content_type = [Some("image/png"), Some("application/octet-stream"), None][i % 3];
        match post_read(addr, content_type, bytes) {
            Some((200, body)) => {
                let got = json(&body);
                let digits = got["digits"].as_array().map_or(0, |d| d.len());
                if got["number"] != answer.as_str() || digits != answer.len() {
                    tally
                        .failures
                        .push(format!("{answer}: got {}", got["number"]));
                } else {
                    let first = &got["digits"][0];
                    let len = |key: &str| first[key].as_array().map_or(0, |a| a.len());
                    if (len("probabilities"), len("pixels")) == (10, 784) {
                        tally.good_answered += 1;
                    } else {
                        tally
                            .failures
                            .push(format!("{answer}: details missing: {first}"));
                    }
                }
            }
            other => tally.failures.push(format!(
                "{answer}: {:?}",
                other.map(|(s, b)| (s, String::from_utf8_lossy(&b).into_owned()))
            )),
        }
        tally.good_sent += 1;
        if i % BAD_EVERY == BAD_EVERY - 1 {
            let b = &bad[(i / BAD_EVERY + k) % bad.len()];
            match post_read(addr, b.content_type, &b.body) {
                Some((status, body)) if status == b.status => {
                    let message = json(&body)["error"].as_str().unwrap_or("").to_string();
                    if message.is_empty() {
                        tally.failures.push(format!("{}: no error message", b.name));
                    } else {
                        tally.bad_refused += 1;
                    }
                }
                other => tally.failures.push(format!(
                    "{}: expected {}, got {:?}",
                    b.name,
                    b.status,
                    other.map(|(s, b)| (s, String::from_utf8_lossy(&b).into_owned()))
                )),
            }
            tally.bad_sent += 1;
        }
    }
    // Once per client: a body over the 16 MB limit, a request that is not HTTP, and a body cut
    // off by the client (which may get no answer at all, but must not harm the server).
    match post_read(addr, Some("image/png"), &vec![0u8; 17 << 20]) {
        Some((413, body)) if json(&body)["error"].is_string() => tally.bad_refused += 1,
        other => tally.failures.push(format!(
            "oversized: expected 413, got {:?}",
            other.map(|(s, _)| s)
        )),
    }
    match http_exchange(addr, "NOT HTTP AT ALL", b"") {
        Some((status, _)) if (400..500).contains(&status) => tally.bad_refused += 1,
        None => tally.bad_refused += 1, // closing the connection is a fine answer to this
        Some((status, _)) => tally.failures.push(format!("not HTTP: got {status}")),
    }
    // The cut-off body has no answer to count; the server's health afterwards is the check.
    cut_off_body(addr, &pictures[0].1[..100]);
    tally.bad_sent += 2;
    tally
}

/// Sends `part` of a body that claims 100,000 bytes, then closes the sending side.
fn cut_off_body(addr: &str, part: &[u8]) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let head = format!(
        "POST /api/read HTTP/1.1\r\nHost: {addr}\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n"
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(part);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.read_to_end(&mut Vec::new());
}

#[test]
fn serve_answers_concurrent_clients_and_refuses_bad_requests() {
    let mut server = Server::start(&[]);
    let pictures = pictures();
    let started = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    for k in 0..CLIENTS {
        let (tx, addr, pictures) = (tx.clone(), server.addr.clone(), pictures.clone());
        let bad = bad_requests(&pictures.iter().find(|(a, _)| a == "2").unwrap().1);
        std::thread::spawn(move || {
            let _ = tx.send(client(&addr, k, &pictures, &bad));
        });
    }
    drop(tx);
    let mut total = Tally::default();
    for _ in 0..CLIENTS {
        let left = HANG_GUARD.saturating_sub(started.elapsed());
        let tally = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("the clients did not finish within {HANG_GUARD:?}"));
        total.good_sent += tally.good_sent;
        total.good_answered += tally.good_answered;
        total.bad_sent += tally.bad_sent;
        total.bad_refused += tally.bad_refused;
        total.failures.extend(tally.failures);
    }
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "serve load: {} well-formed + {} bad requests (and {CLIENTS} cut off) from {CLIENTS} clients in {seconds:.1} s: {:.0} well-formed requests/s ({} cores)",
        total.good_sent,
        total.bad_sent,
        total.good_sent as f64 / seconds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    assert!(
        total.failures.is_empty(),
        "{} failures, first: {:#?}",
        total.failures.len(),
        &total.failures[..total.failures.len().min(10)]
    );

    // Every request was made and counted: 2,048 pictures answered right, 256 malformed requests
    // and 16 oversized or non-HTTP ones refused.
    assert_eq!(total.good_sent, CLIENTS * GOOD_PER_CLIENT);
    assert_eq!(total.good_answered, total.good_sent);
    assert_eq!(total.bad_sent, CLIENTS * (GOOD_PER_CLIENT / BAD_EVERY + 2));
    assert_eq!(total.bad_refused, total.bad_sent);

    // Still up and answering.
    assert!(server.is_running(), "mnist serve exited");
    let (status, page) = http_exchange(
        &server.addr,
        &format!("GET / HTTP/1.1\r\nHost: {}", server.addr),
        b"",
    )
    .unwrap();
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&page).contains("<canvas"));
    let (answer, bytes) = &pictures[1];
    let (status, body) = post_read(&server.addr, Some("image/webp"), bytes).unwrap();
    assert_eq!(
        (status, json(&body)["number"].as_str()),
        (200, Some(answer.as_str()))
    );
}
