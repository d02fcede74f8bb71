//! `mnist serve` beyond the load test (tests/serve_load.rs): the model it is given
//! (`--weights`, `--model`, `--device`), a port already taken, an unknown path, and SIGTERM,
//! which stops it cleanly once the request in flight is answered.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const PICTURE: &str = "tests/pictures/00001-number-75845.webp";

fn read_picture(server: &Server) -> Value {
    let bytes = std::fs::read(repo().join(PICTURE)).unwrap();
    let (status, body) = post_read(&server.addr, Some("image/webp"), &bytes).unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

/// With `--weights` the page answers with that model (probabilities of its own, not the
/// built-in convnet's); a bare state_dict with `--model` answers exactly as the file it came from.
#[test]
fn serve_uses_the_weights_model_and_device_it_is_given() {
    let seed = repo().join("weights/tutorial.safetensors");
    let dir = tempfile::tempdir().unwrap();
    let state_dict = dir.path().join("seed-state-dict.safetensors");
    write_state_dict(&seed, &state_dict);
    let seed_arg = seed.to_str().unwrap();
    let state_dict_arg = state_dict.to_str().unwrap();

    let built_in = read_picture(&Server::start(&[]));
    let with_seed = read_picture(&Server::start(&["--weights", seed_arg, "--device", "cpu"]));
    let bare = read_picture(&Server::start(&[
        "--weights",
        state_dict_arg,
        "--model",
        "seed",
    ]));
    for answer in [&built_in, &with_seed, &bare] {
        assert_eq!(answer["number"], "75845");
    }
    assert_ne!(built_in["digits"], with_seed["digits"]);
    assert_eq!(bare["digits"], with_seed["digits"]);
}

#[cfg(not(feature = "cuda"))]
#[test]
fn serve_on_a_device_this_build_lacks_is_one_line() {
    let line =
        run(mnist().args(["serve", "--addr", "127.0.0.1:0", "--device", "cuda"])).one_line_error();
    assert!(line.contains("--features cuda"), "{line}");
}

#[test]
fn a_port_already_in_use_is_one_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let line = run(mnist().args(["serve", "--addr", &addr])).one_line_error();
    assert!(
        line.contains(&addr) && line.contains("cannot listen") && line.contains("in use"),
        "{line}"
    );
}

#[test]
fn an_unknown_path_is_404_and_the_api_takes_only_post() {
    let server = Server::start(&[]);
    let get = |path: &str| {
        http_exchange(
            &server.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: {}", server.addr),
            b"",
        )
        .unwrap()
        .0
    };
    assert_eq!(get("/"), 200);
    assert_eq!(get("/nothing-here"), 404);
    assert_eq!(get("/api/read"), 405);
}

/// SIGTERM while a request is provably in flight (its body half sent): the server stops
/// accepting connections, answers that request in full, and exits with code 0.
#[cfg(unix)]
#[test]
fn sigterm_answers_the_request_in_flight_then_exits_cleanly() {
    let mut server = Server::start(&[]);
    let bytes = std::fs::read(repo().join(PICTURE)).unwrap();
    let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let head = format!(
        "POST /api/read HTTP/1.1\r\nHost: {}\r\nContent-Type: image/webp\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        server.addr,
        bytes.len()
    );
    let half = bytes.len() / 2;
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&bytes[..half]).unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));

    // SAFETY: kill only sends a signal to the child this test started.
    assert_eq!(
        unsafe { libc::kill(server.child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    // Shutting down: new connections are refused while the old one is still open.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&server.addr).is_ok() {
        assert!(
            Instant::now() < deadline,
            "still accepting connections 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(server.is_running(), "exited with a request in flight");

    stream.write_all(&bytes[half..]).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains(r#""number":"75845""#), "{text}");

    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "{status}");
}
