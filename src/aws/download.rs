//! Downloads a layer zip from its presigned URL: streamed to a temp file, hashed while streaming,
//! checked against CodeSha256 and CodeSize, retried on transient failures. The URL is a secret: only
//! scheme://host/path ever reaches a message.

use std::path::{Path, PathBuf};

use base64::Engine;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tracing::{debug, warn};

use crate::net::NetworkCause;
use crate::net::redact::{http_error, url_for_log};
use crate::net::retry::RetryPolicy;

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The presigned URL has expired (or was refused): ask Lambda for a fresh one.
    #[error("the download URL for {what} was refused (HTTP {status}); it has probably expired")]
    Expired { what: String, status: u16 },
    #[error(
        "downloaded {what} does not match what Lambda reported: {detail}\n  hint: nothing was written; retry, and if it persists the layer content or the endpoint is not what it claims"
    )]
    Mismatch { what: String, detail: String },
    #[error(
        "downloading {what} from {url} failed{}: {detail}\n  hint: {hint}",
        after_attempts(*attempts)
    )]
    Failed {
        what: String,
        url: String,
        attempts: u32,
        detail: String,
        hint: &'static str,
    },
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What the download must turn out to be.
#[derive(Debug, Clone)]
pub struct Expected {
    /// Base64 of the raw sha256 (Lambda's CodeSha256).
    pub code_sha256: String,
    pub size: u64,
}

enum Attempt {
    Retry(String),
    Fatal(DownloadError),
}

/// Downloads `url` into `dest` (a temp path the caller renames), verifying it. Returns the raw sha256.
pub async fn download(
    client: &reqwest::Client,
    url: &str,
    what: &str,
    expected: &Expected,
    dest: &Path,
    policy: RetryPolicy,
) -> Result<[u8; 32], DownloadError> {
    let shown = url_for_log(url);
    let mut last = String::new();
    for attempt in 1..=policy.attempts {
        if attempt > 1 {
            let delay = policy.delay(attempt - 1);
            warn!(
                "{what}: {last}; retrying in {delay:?} (attempt {attempt} of {})",
                policy.attempts
            );
            tokio::time::sleep(delay).await;
        }
        debug!("{what}: GET {shown}");
        match try_once(client, url, what, expected, dest).await {
            Ok(sha) => return Ok(sha),
            Err(Attempt::Retry(why)) => last = why,
            Err(Attempt::Fatal(e)) => return Err(e),
        }
    }
    let _ = tokio::fs::remove_file(dest).await;
    Err(DownloadError::Failed {
        what: what.to_string(),
        url: shown,
        attempts: policy.attempts,
        detail: last,
        hint: "check the network (proxies, firewalls, S3 access from this host) and retry",
    })
}

async fn try_once(
    client: &reqwest::Client,
    url: &str,
    what: &str,
    expected: &Expected,
    dest: &Path,
) -> Result<[u8; 32], Attempt> {
    let io_err = |e: std::io::Error| {
        Attempt::Fatal(DownloadError::Io {
            path: dest.to_path_buf(),
            source: e,
        })
    };
    let response = client.get(url).send().await.map_err(|e| match NetworkCause::of(&e) {
        // Every attempt would get the same answer.
        NetworkCause::UnknownHost => Attempt::Fatal(DownloadError::Failed {
            what: what.to_string(),
            url: url_for_log(url),
            attempts: 1,
            detail: format!("the host name does not resolve ({})", http_error(&e)),
            hint: "check the host name of the download endpoint (AWS_ENDPOINT_URL and DNS); it was not retried",
        }),
        NetworkCause::Certificate => Attempt::Fatal(DownloadError::Failed {
            what: what.to_string(),
            url: url_for_log(url),
            attempts: 1,
            detail: http_error(&e),
            hint: "the server's certificate is not trusted; point SSL_CERT_FILE at the CA that signed it",
        }),
        NetworkCause::Transient => Attempt::Retry(http_error(&e)),
    })?;
    let status = response.status();
    if status == reqwest::StatusCode::FORBIDDEN {
        return Err(Attempt::Fatal(DownloadError::Expired {
            what: what.to_string(),
            status: status.as_u16(),
        }));
    }
    if status.is_server_error()
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
    {
        return Err(Attempt::Retry(format!("HTTP {status}")));
    }
    if !status.is_success() {
        return Err(Attempt::Fatal(DownloadError::Failed {
            what: what.to_string(),
            url: url_for_log(url),
            attempts: 1,
            detail: format!("HTTP {status}"),
            hint: "the layer location could not be read; retry, or check the layer ARN",
        }));
    }
    let mut file = tokio::fs::File::create(dest).await.map_err(io_err)?;
    let mut hasher = Sha256::new();
    let mut received: u64 = 0;
    let mut response = response;
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => return Err(Attempt::Retry(http_error(&e))),
        };
        received += chunk.len() as u64;
        if received > expected.size {
            return Err(Attempt::Fatal(mismatch(
                what,
                format!("more than the {} bytes of CodeSize", expected.size),
            )));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(io_err)?;
    }
    file.flush().await.map_err(io_err)?;
    file.sync_all().await.map_err(io_err)?;
    if received != expected.size {
        return Err(Attempt::Fatal(mismatch(
            what,
            format!("{received} bytes, CodeSize says {}", expected.size),
        )));
    }
    let sha: [u8; 32] = hasher.finalize().into();
    let got = base64::engine::general_purpose::STANDARD.encode(sha);
    if got != expected.code_sha256 {
        return Err(Attempt::Fatal(mismatch(
            what,
            format!("sha256 {got}, CodeSha256 says {}", expected.code_sha256),
        )));
    }
    Ok(sha)
}

/// " after N attempts" when there were several, else nothing.
fn after_attempts(attempts: u32) -> String {
    if attempts > 1 {
        format!(" after {attempts} attempts")
    } else {
        String::new()
    }
}

fn mismatch(what: &str, detail: String) -> DownloadError {
    DownloadError::Mismatch {
        what: what.to_string(),
        detail,
    }
}
