//! HTTP/1.1 plumbing for the proxy: reading bounded request and response heads, copying bodies as
//! they are on the wire (length, chunked, until close), and writing the proxy's own JSON answers.

use std::io::{self, BufRead, Read, Write};
use std::net::TcpStream;

use super::MAX_HEADER_BYTES;

#[derive(Clone, Copy, Debug)]
pub(super) enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

pub(super) struct Head {
    pub(super) raw: Vec<u8>,
    pub(super) first: String,
    pub(super) headers: Vec<(String, String)>,
}

impl Head {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub(super) fn framing(&self) -> Framing {
        if self
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            Framing::Chunked
        } else if let Some(n) = self.header("content-length") {
            Framing::Length(n.trim().parse().unwrap_or(0))
        } else {
            Framing::Empty
        }
    }
    pub(super) fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

pub(super) fn respond(
    client: &mut TcpStream,
    method: &str,
    status: u16,
    body: &str,
) -> io::Result<()> {
    let reason = match status {
        400 => "Bad Request",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=utf-8\r\n\
         Docker-Distribution-Api-Version: registry/2.0\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    client.write_all(head.as_bytes())?;
    if method != "HEAD" {
        client.write_all(body.as_bytes())?;
    }
    client.flush()
}

/// Reads a request or response head (through the blank line); None on EOF before its first byte.
pub(super) fn read_head(r: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut raw = Vec::new();
    loop {
        let before = raw.len();
        let n = r
            .by_ref()
            .take((MAX_HEADER_BYTES - raw.len()) as u64 + 1)
            .read_until(b'\n', &mut raw)?;
        if n == 0 {
            if raw.is_empty() {
                return Ok(None);
            }
            return Err(broken("truncated head"));
        }
        if raw.len() > MAX_HEADER_BYTES {
            return Err(broken("head too large"));
        }
        let line = &raw[before..];
        if line == b"\r\n" || line == b"\n" {
            if before == 0 {
                raw.clear(); // stray blank line between keep-alive requests
                continue;
            }
            break;
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("").to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Some(Head {
        raw,
        first,
        headers,
    }))
}

pub(super) fn copy_exact(r: &mut impl Read, w: &mut impl Write, n: u64) -> io::Result<()> {
    let copied = io::copy(&mut r.take(n), w)?;
    if copied != n {
        return Err(broken("body shorter than announced"));
    }
    Ok(())
}

/// Copies one message body as it is on the wire (chunk framing included).
pub(super) fn copy_body(
    r: &mut impl BufRead,
    framing: Framing,
    w: &mut impl Write,
) -> io::Result<()> {
    match framing {
        Framing::Empty => Ok(()),
        Framing::Length(n) => copy_exact(r, w, n),
        Framing::UntilClose => io::copy(r, w).map(|_| ()),
        Framing::Chunked => loop {
            let mut line = Vec::new();
            r.by_ref().take(4096).read_until(b'\n', &mut line)?;
            w.write_all(&line)?;
            let size_text = String::from_utf8_lossy(&line);
            let size_text = size_text.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size_text, 16).map_err(|_| broken("bad chunk size"))?;
            if size == 0 {
                loop {
                    let mut trailer = Vec::new();
                    r.by_ref().take(4096).read_until(b'\n', &mut trailer)?;
                    w.write_all(&trailer)?;
                    if trailer.is_empty() || trailer == b"\r\n" || trailer == b"\n" {
                        return Ok(());
                    }
                }
            }
            copy_exact(r, w, size + 2)?; // data and its CRLF
        },
    }
}

pub(super) fn broken(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

pub(super) fn respond_with(
    client: &mut TcpStream,
    method: &str,
    status: u16,
    reason: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=utf-8\r\n\
         Docker-Distribution-Api-Version: registry/2.0\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    client.write_all(head.as_bytes())?;
    if method != "HEAD" {
        client.write_all(body.as_bytes())?;
    }
    client.flush()
}
