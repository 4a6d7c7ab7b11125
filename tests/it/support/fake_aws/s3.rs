//! S3 path-style REST, signed: PutObject only, including `aws-chunked` bodies with trailing
//! checksums that are verified like S3 does.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};
use std::sync::Arc;

use super::download::s3_error_xml;
use super::http::{Request, Response};
use super::util::{hex, percent_decode};
use super::{Fault, State};

pub(super) fn s3(st: &mut State, req: &Request) -> Response {
    let s3_error = |status: u16, code: &str, msg: &str| {
        Response::new(
            status,
            "application/xml",
            s3_error_xml(code, msg).into_bytes(),
        )
    };
    if let Some(Fault::S3Status {
        status,
        code,
        message,
    }) = st.take_fault(|f| matches!(f, Fault::S3Status { .. }))
    {
        return s3_error(status, &code, &message);
    }
    let path = percent_decode(&req.path);
    let Some((bucket, key)) = path.trim_start_matches('/').split_once('/') else {
        return s3_error(
            400,
            "InvalidRequest",
            "the fake expects path-style /bucket/key requests",
        );
    };
    if req.method != "PUT" || key.is_empty() {
        return s3_error(501, "NotImplemented", "the fake implements PutObject only");
    }
    if !st.s3_buckets.contains(bucket) {
        return s3_error(404, "NoSuchBucket", "The specified bucket does not exist");
    }
    let body = match s3_body(req) {
        Ok(b) => b,
        Err((code, msg)) => return s3_error(400, code, &msg),
    };
    let etag = format!("\"{}\"", &hex(&Sha256::digest(&body))[..32]);
    st.s3_objects
        .insert((bucket.to_string(), key.to_string()), Arc::new(body));
    Response::new(200, "application/xml", Vec::new()).header("ETag", &etag)
}

/// The object bytes of a PutObject: the body as sent, or decoded from `aws-chunked` (what the SDK
/// sends with a trailing checksum). Declared lengths and checksums must match, as S3 checks them.
pub(super) fn s3_body(req: &Request) -> Result<Vec<u8>, (&'static str, String)> {
    let content_sha = req.header("x-amz-content-sha256").unwrap_or("");
    let chunked = req
        .header("content-encoding")
        .is_some_and(|v| v.contains("aws-chunked"))
        || content_sha.starts_with("STREAMING-");
    let mut trailers: Vec<(String, String)> = Vec::new();
    let body = if chunked {
        let raw = &req.body;
        let mut out = Vec::new();
        let mut i = 0;
        let line = |from: usize| -> Result<(String, usize), (&'static str, String)> {
            let end = raw[from..].windows(2).position(|w| w == b"\r\n").ok_or((
                "IncompleteBody",
                "aws-chunked line without CRLF".to_string(),
            ))?;
            Ok((
                String::from_utf8_lossy(&raw[from..from + end]).into_owned(),
                from + end + 2,
            ))
        };
        loop {
            let (size_line, next) = line(i)?;
            let size_hex = size_line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_hex, 16).map_err(|_| {
                (
                    "InvalidRequest",
                    format!("bad aws-chunked size {size_line:?}"),
                )
            })?;
            i = next;
            if size == 0 {
                break;
            }
            if raw.len() < i + size + 2 {
                return Err(("IncompleteBody", "aws-chunked body is truncated".into()));
            }
            out.extend_from_slice(&raw[i..i + size]);
            i += size + 2;
        }
        while i < raw.len() {
            let (trailer, next) = line(i)?;
            i = next;
            if trailer.is_empty() {
                break;
            }
            if let Some((k, v)) = trailer.split_once(':') {
                trailers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        out
    } else {
        req.body.clone()
    };
    if let Some(len) = req.header("x-amz-decoded-content-length")
        && len.parse::<usize>().ok() != Some(body.len())
    {
        return Err((
            "IncompleteBody",
            format!(
                "x-amz-decoded-content-length {len} but {} bytes",
                body.len()
            ),
        ));
    }
    if content_sha.len() == 64 && content_sha != hex(&Sha256::digest(&body)) {
        return Err((
            "XAmzContentSHA256Mismatch",
            "The provided 'x-amz-content-sha256' header does not match what was computed.".into(),
        ));
    }
    let crc = B64.encode(crc32fast::hash(&body).to_be_bytes());
    let claimed = trailers
        .iter()
        .cloned()
        .chain(req.headers.iter().cloned())
        .filter(|(k, _)| k == "x-amz-checksum-crc32");
    for (_, v) in claimed {
        if v != crc {
            return Err((
                "BadDigest",
                format!(
                    "The CRC32 you specified did not match the calculated checksum ({v} != {crc})."
                ),
            ));
        }
    }
    Ok(body)
}
