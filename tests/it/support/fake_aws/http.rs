//! HTTP/1.1 plumbing for the fake: accepting connections, reading bounded requests (including
//! chunked bodies and `Expect: 100-continue`), and writing responses (optionally truncated).

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Shared, handle};

// Bounds: a hung or hostile client must not wedge a test forever or eat memory.
const MAX_HEADER_BYTES: usize = 64 * 1024;
const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(60);

pub(super) fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let Ok(control) = stream.try_clone() else {
            continue;
        };
        let conn_shared = shared.clone();
        let Ok(handle) = std::thread::Builder::new()
            .name("fake-aws-conn".into())
            .spawn(move || serve_connection(stream, conn_shared))
        else {
            continue;
        };
        let mut conns = shared.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns.retain(|(_, h)| !h.is_finished());
        conns.push((control, handle));
    }
}

pub(super) struct Request {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) query: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

impl Request {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

pub(super) struct Response {
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
    /// Send only this many body bytes (after a full Content-Length), then drop the connection.
    pub(super) truncate_at: Option<usize>,
    /// HEAD: headers only.
    pub(super) head: bool,
}

impl Response {
    pub(super) fn new(status: u16, content_type: &str, body: Vec<u8>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
            truncate_at: None,
            head: false,
        }
    }
    pub(super) fn json(status: u16, v: &Value) -> Response {
        Response::new(status, "application/json", v.to_string().into_bytes())
    }
    pub(super) fn header(mut self, k: &str, v: &str) -> Response {
        self.headers.push((k.into(), v.into()));
        self
    }
}

pub(super) fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut writer = write_half;
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let req = match read_request(&mut reader, &mut writer) {
            Ok(Some(req)) => req,
            Ok(None) => return, // clean EOF between requests
            Err(msg) => {
                let resp = Response::new(400, "text/plain", msg.into_bytes());
                let _ = write_response(&mut writer, &resp, true);
                return;
            }
        };
        let close = req
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let resp = handle(&shared, &req);
        let truncated = resp.truncate_at.is_some();
        if write_response(&mut writer, &resp, close).is_err() || close || truncated {
            let _ = writer.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// Reads one request; `Ok(None)` on EOF before any byte.
pub(super) fn read_request(
    r: &mut BufReader<TcpStream>,
    w: &mut TcpStream,
) -> Result<Option<Request>, String> {
    let mut head_bytes = 0usize;
    let mut line = String::new();
    // Tolerate stray CRLFs between requests (RFC 9112 §2.2).
    loop {
        line.clear();
        let n = read_line_bounded(r, &mut line, &mut head_bytes)?;
        if n == 0 {
            return Ok(None);
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(_version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("bad request line: {line:?}"));
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.to_string(), String::new()),
    };
    let method = method.to_string();
    let mut headers = Vec::new();
    loop {
        line.clear();
        if read_line_bounded(r, &mut line, &mut head_bytes)? == 0 {
            return Err("EOF in headers".into());
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        let (k, v) = l
            .split_once(':')
            .ok_or_else(|| format!("bad header line: {l:?}"))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let mut req = Request {
        method,
        path,
        query,
        headers,
        body: Vec::new(),
    };
    if req
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .map_err(|e| e.to_string())?;
    }
    let chunked = req
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        req.body = read_chunked(r)?;
    } else if let Some(len) = req.header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| format!("bad content-length {len:?}"))?;
        if len > MAX_BODY_BYTES {
            return Err("body too large".into());
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body)
            .map_err(|e| format!("reading body: {e}"))?;
        req.body = body;
    }
    Ok(Some(req))
}

pub(super) fn read_line_bounded(
    r: &mut BufReader<TcpStream>,
    line: &mut String,
    used: &mut usize,
) -> Result<usize, String> {
    let limit = (MAX_HEADER_BYTES.saturating_sub(*used) + 1) as u64;
    let n = r
        .by_ref()
        .take(limit)
        .read_line(line)
        .map_err(|e| e.to_string())?;
    *used += n;
    if *used > MAX_HEADER_BYTES {
        return Err("request head too large".into());
    }
    Ok(n)
}

pub(super) fn read_chunked(r: &mut BufReader<TcpStream>) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    let mut used = 0usize;
    let mut line = String::new();
    loop {
        line.clear();
        read_line_bounded(r, &mut line, &mut used)?;
        let size_str = line.trim().split(';').next().unwrap_or("");
        let size =
            usize::from_str_radix(size_str, 16).map_err(|_| format!("bad chunk size {line:?}"))?;
        if size == 0 {
            // Trailers until the empty line.
            loop {
                line.clear();
                if read_line_bounded(r, &mut line, &mut used)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY_BYTES {
            return Err("body too large".into());
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])
            .map_err(|e| format!("reading chunk: {e}"))?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf)
            .map_err(|e| format!("reading chunk end: {e}"))?;
    }
}

pub(super) fn write_response(
    w: &mut TcpStream,
    resp: &Response,
    close: bool,
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    head.push_str(if close {
        "Connection: close\r\n\r\n"
    } else {
        "Connection: keep-alive\r\n\r\n"
    });
    w.write_all(head.as_bytes())?;
    if !resp.head {
        let n = resp
            .truncate_at
            .unwrap_or(resp.body.len())
            .min(resp.body.len());
        w.write_all(&resp.body[..n])?;
    }
    w.flush()
}

pub(super) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        206 => "Partial Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        412 => "Precondition Failed",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}
