//! Presigned S3-style downloads of layer zips (the `Content.Location` URLs), with presign
//! checks, Range support, and injected download faults.

use sha2::{Digest, Sha256};

use super::http::{Request, Response};
use super::util::{hex, query_pairs};
use super::{Fault, PRESIGN_TOKEN, State};

pub(super) fn s3_error_xml(code: &str, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message>\
         <RequestId>FAKE0REQUEST0ID</RequestId><HostId>ZmFrZS1ob3N0LWlk</HostId></Error>"
    )
}

pub(super) fn download(st: &mut State, req: &Request) -> Response {
    let s3_error = |status: u16, code: &str, msg: &str| {
        Response::new(
            status,
            "application/xml",
            s3_error_xml(code, msg).into_bytes(),
        )
    };
    if req.method != "GET" && req.method != "HEAD" {
        return s3_error(
            405,
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
        );
    }
    let head = req.method == "HEAD";
    let q = query_pairs(&req.query);
    let qget = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    // A client that drops or mangles the presign parameters must fail like it would against S3.
    let required = [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
        "X-Amz-Security-Token",
    ];
    if required.iter().any(|k| qget(k).is_none()) {
        return s3_error(
            403,
            "AccessDenied",
            "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.",
        );
    }
    let Some((zip, signature)) = st.downloads.get(&req.path).cloned() else {
        return s3_error(404, "NoSuchKey", "The specified key does not exist.");
    };
    if qget("X-Amz-Signature") != Some(signature.as_str())
        || qget("X-Amz-Security-Token") != Some(PRESIGN_TOKEN)
    {
        return s3_error(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        );
    }
    match st.take_fault(Fault::is_download) {
        Some(Fault::DownloadStatus { status, body }) => {
            return Response::new(status, "application/xml", body.into_bytes());
        }
        Some(Fault::DownloadReset { after_bytes }) => {
            let mut r = Response::new(200, "application/zip", zip.to_vec());
            r.truncate_at = Some(after_bytes);
            return r;
        }
        _ => {}
    }
    let total = zip.len();
    let etag = format!("\"{}\"", &hex(&Sha256::digest(zip.as_slice()))[..32]);
    // Honour `Range: bytes=N-[M]` so resumable downloads can be tested.
    if let Some(range) = req.header("range") {
        let parsed = range
            .strip_prefix("bytes=")
            .and_then(|r| r.split_once('-'))
            .and_then(|(a, b)| {
                let start: usize = a.parse().ok()?;
                let end: usize = if b.is_empty() {
                    total.checked_sub(1)?
                } else {
                    b.parse::<usize>().ok()?.min(total.checked_sub(1)?)
                };
                (start <= end).then_some((start, end))
            });
        let Some((start, end)) = parsed else {
            return Response::new(
                416,
                "application/xml",
                s3_error_xml("InvalidRange", "The requested range is not satisfiable").into_bytes(),
            )
            .header("Content-Range", &format!("bytes */{total}"));
        };
        let mut r = Response::new(206, "application/zip", zip[start..=end].to_vec())
            .header("Content-Range", &format!("bytes {start}-{end}/{total}"))
            .header("ETag", &etag)
            .header("Accept-Ranges", "bytes");
        r.head = head;
        return r;
    }
    let mut r = Response::new(200, "application/zip", zip.to_vec())
        .header("ETag", &etag)
        .header("Accept-Ranges", "bytes");
    r.head = head;
    r
}
