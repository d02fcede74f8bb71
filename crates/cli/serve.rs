//! `mnist serve`: a local web page to draw a digit or a number (mouse, pen or finger) or upload
//! a picture, and watch it being read as `mnist read` would: the number, each digit's
//! probabilities, and the 28x28 image the model saw.
//!
//! `POST /api/read` takes an image file's bytes (the page sends its canvas as PNG) and answers
//! JSON. The page itself (`serve/`) is plain HTML, CSS and JavaScript compiled into the binary:
//! no build step, no CDN, works offline. The models are immutable and shared; decoding and
//! classifying are CPU work, so they run on blocking threads, at most one per core at a time,
//! and the async threads only move bytes. Bad requests get a 4xx with a JSON `error` and the
//! server carries on.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mnist_image::ImageError;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::cli::ServeArgs;
use crate::images::{self, DigitAnswer, Reader};

/// Largest request body: a phone photo fits, a canvas PNG is a few kB.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How uploads are named in error messages (there is no file name).
const UPLOAD_NAME: &str = "the uploaded image";

static INDEX_HTML: &str = include_str!("serve/index.html");
static APP_JS: &str = include_str!("serve/app.js");
static STYLE_CSS: &str = include_str!("serve/style.css");

struct AppState {
    reader: Reader,
    min_confidence: f32,
    /// One permit per core: requests beyond that wait their turn instead of all slowing down.
    workers: Semaphore,
}

pub fn run(args: ServeArgs) -> Result<ExitCode> {
    let min_confidence = crate::cli::min_confidence(args.min_confidence)?;
    let reader = Reader::load(&args.model)?;
    if !args.addr.ip().is_loopback() {
        eprintln!(
            "warning: --addr {}: not a loopback address, so anyone who can reach this machine can use the page",
            args.addr
        );
    }
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let state = Arc::new(AppState {
        reader,
        min_confidence,
        workers: Semaphore::new(workers),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(args.addr, state))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(addr: SocketAddr, state: Arc<AppState>) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--addr {addr}: cannot listen"))?;
    let local = listener
        .local_addr()
        .context("reading the listening address")?;
    // The URL alone on stdout, once listening: a script (or a test) waits for this line.
    println!("http://{local}/");
    eprintln!("serving the drawing page on http://{local}/ (Ctrl-C stops)");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving")?;
    eprintln!("stopped");
    Ok(())
}

/// Ctrl-C, or SIGTERM on Unix: stop accepting, finish the requests in flight.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(|| asset(INDEX_HTML, "text/html; charset=utf-8")))
        .route(
            "/app.js",
            get(|| asset(APP_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/style.css",
            get(|| asset(STYLE_CSS, "text/css; charset=utf-8")),
        )
        .route("/api/read", post(read))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// `POST /api/read`: the image file's bytes in, the number and each digit's details out.
async fn read(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is larger than the {MAX_BODY_BYTES}-byte limit"),
            )
        }
        Err(rejection) => return error(rejection.status(), rejection.body_text()),
    };
    if let Some(refused) = refuse_content_type(headers.get(header::CONTENT_TYPE)) {
        return refused;
    }
    if body.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "the request body is empty; send the image file's bytes",
        );
    }
    // Waits while every core is busy; the permit is held until the blocking work is done.
    let Ok(_permit) = state.workers.acquire().await else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping");
    };
    let worker_state = state.clone();
    match tokio::task::spawn_blocking(move || answer(&worker_state, &body)).await {
        Ok(Ok(json)) => Json(json).into_response(),
        Ok(Err(ReadFailure::Image(e))) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        Ok(Err(ReadFailure::Model(e))) => {
            eprintln!("error: classifying a request: {e:#}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the model failed: {e}"),
            )
        }
        // A panic in the work is that request's failure, not the server's.
        Err(e) => {
            eprintln!("error: a request's work failed: {e}");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

/// Image bytes come as `image/*` or `application/octet-stream` (or without a type, as `curl
/// --data-binary` may send them); anything else is a client mistake worth naming.
fn refuse_content_type(value: Option<&HeaderValue>) -> Option<Response> {
    let value = value?;
    let text = value.to_str().unwrap_or("(not text)");
    let mime = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime.starts_with("image/") || mime == "application/octet-stream" {
        return None;
    }
    Some(error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!(
            "Content-Type {text:?} is not an image; send the image file's bytes as image/* or application/octet-stream"
        ),
    ))
}

enum ReadFailure {
    Image(ImageError),
    Model(anyhow::Error),
}

/// Decodes and reads `bytes` as `mnist read` does, adding what the page shows: every digit's
/// ten probabilities and the 28x28 pixels the model saw (row-major, 0 = paper).
fn answer(state: &AppState, bytes: &[u8]) -> Result<Value, ReadFailure> {
    let name = Path::new(UPLOAD_NAME);
    let image = mnist_image::decode_image(bytes, name).map_err(ReadFailure::Image)?;
    let segments = mnist_image::digits_in_image(&image);
    if segments.is_empty() {
        return Err(ReadFailure::Image(ImageError::NoInk {
            path: name.to_path_buf(),
        }));
    }
    let digits = images::read_numbers(&state.reader, &[&segments])
        .map_err(ReadFailure::Model)?
        .pop()
        .unwrap_or_default();
    let mut number = String::new();
    let mut parts = Vec::new();
    for (found, probabilities) in &digits {
        let answer = DigitAnswer::new(probabilities, state.min_confidence);
        number.push(char::from(b'0' + answer.digit() as u8));
        let mut part = answer.to_json(found);
        part["probabilities"] = json!(probabilities);
        part["pixels"] = json!(found.styled.pixels.to_vec());
        parts.push(part);
    }
    let uncertain = parts.iter().any(|p| p["uncertain"] == true);
    Ok(json!({
        "number": number,
        "uncertain": uncertain,
        "width": image.width(),
        "height": image.height(),
        "digits": parts,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_types_pass_and_others_are_refused() {
        for ok in [
            "image/png",
            "IMAGE/JPEG",
            "image/webp; q=1",
            "application/octet-stream",
        ] {
            assert!(
                refuse_content_type(Some(&HeaderValue::from_static(ok))).is_none(),
                "{ok}"
            );
        }
        assert!(refuse_content_type(None).is_none());
        for bad in [
            "text/plain",
            "application/json",
            "multipart/form-data; boundary=x",
        ] {
            let refused = refuse_content_type(Some(&HeaderValue::from_static(bad)))
                .unwrap_or_else(|| panic!("{bad} passed"));
            assert_eq!(refused.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        }
    }
}
