//! A small HTTP/1.1 client over a raw socket, so the web UI's tests see
//! exactly what the server sends.

use serde_json::Value;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// A response: status, content type, body.
pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

/// One request on a connection of its own (`Connection: close`).
pub fn request(base: &str, method: &str, path: &str) -> Response {
    request_with(base, method, path, &[], b"")
}

/// [`request`] with more header lines and a body.
pub fn request_with(
    base: &str,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &[u8],
) -> Response {
    let addr = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(body).unwrap();
    // To the end of the connection, or of a body of a stated length
    // (Chromium's DevTools server keeps the connection open).
    let mut raw = Vec::new();
    let mut buf = [0; 16 * 1024];
    loop {
        let n = conn.read(&mut buf).unwrap();
        raw.extend_from_slice(&buf[..n]);
        if n == 0 || complete(&raw) {
            break;
        }
    }
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let header = |name: &str| {
        head.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
            .unwrap_or_default()
    };
    let body = if header("transfer-encoding") == "chunked" {
        let mut out = String::new();
        let mut rest = body;
        loop {
            let (size, after) = rest.split_once("\r\n").unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            if size == 0 {
                break;
            }
            out.push_str(&after[..size]);
            rest = &after[size + 2..];
        }
        out
    } else {
        body.to_string()
    };
    Response {
        status,
        content_type: header("content-type"),
        body,
    }
}

/// Whether `raw` holds a whole response with a `Content-Length`.
fn complete(raw: &[u8]) -> bool {
    // Only the head is decoded: a big body is read in many pieces.
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..end]);
    let body = &raw[end + 4..];
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .is_some_and(|len| body.len() >= len)
}

pub fn get_json(base: &str, path: &str) -> Value {
    let r = request(base, "GET", path);
    assert_eq!(r.status, 200, "GET {path}: {}", r.body);
    assert_eq!(r.content_type, "application/json", "GET {path}");
    serde_json::from_str(&r.body).unwrap()
}

pub fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
