//! A small OCI distribution client over reqwest: bearer/basic auth challenges, retries with backoff on
//! 429/5xx/resets, blobs streamed from and to disk with digest checks, monolithic uploads.
//!
//! We speak the protocol ourselves instead of through oci-client because its uploads take the whole
//! blob as one in-memory slice, and layers can be hundreds of megabytes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;
use tracing::{debug, warn};

use super::errors::{ErrorBody, ErrorCode};
use crate::core::digest::Digest;
use crate::net::redact::{http_error, url_for_log};
use crate::net::retry::RetryPolicy;
use crate::oci::source::MAX_DOCUMENT_BYTES;
use crate::progress::{FileBodyStream, Progress};
use indicatif::ProgressBar;

/// Manifest media types we accept when reading.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

#[derive(Clone, Default)]
pub enum Credentials {
    #[default]
    Anonymous,
    Basic {
        username: String,
        password: String,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{registry}: authentication failed for {repository} (HTTP {status})\n  hint: {hint}")]
    Unauthorized {
        registry: String,
        repository: String,
        status: u16,
        hint: String,
    },
    #[error("{registry}/{repository}: {what} not found")]
    NotFound {
        registry: String,
        repository: String,
        what: String,
    },
    #[error("{registry}/{repository}: {operation} failed: HTTP {status} {body}")]
    Status {
        registry: String,
        repository: String,
        operation: String,
        status: u16,
        body: ErrorBody,
    },
    #[error(
        "{registry}: {operation} failed{}: {detail}\n  hint: {}",
        attempts_text(*attempts),
        if *permanent { "check the registry host name (a local image needs oci:DIR or docker-archive:FILE)" } else { "check that the registry is reachable (use --plain-http HOST for a registry without TLS)" }
    )]
    Network {
        registry: String,
        operation: String,
        attempts: u32,
        detail: String,
        /// The host name does not resolve: retrying cannot help.
        permanent: bool,
    },
    #[error(
        "{registry}/{repository}: blob {digest} does not match its digest ({detail})\n  hint: the registry or something between us returned other content; retry"
    )]
    DigestMismatch {
        registry: String,
        repository: String,
        digest: String,
        detail: String,
    },
    #[error(
        "{registry}/{repository}: the {what} is over {limit} bytes, too big for an image document\n  hint: check that the reference names an image"
    )]
    TooBig {
        registry: String,
        repository: String,
        what: &'static str,
        limit: u64,
    },
    #[error("cannot use {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

fn attempts_text(attempts: u32) -> String {
    if attempts > 1 {
        format!(" after {attempts} attempts")
    } else {
        String::new()
    }
}

/// A response body of at most `cap` bytes, read as it arrives; `None` if it is longer (a registry
/// or something in between must not make us hold whatever it sends).
async fn read_capped(mut r: reqwest::Response, cap: u64) -> reqwest::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    while let Some(chunk) = r.chunk().await? {
        if bytes.len() as u64 + chunk.len() as u64 > cap {
            return Ok(None);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Some(bytes))
}

/// An error response's body, read up to 4 KiB: its error document, and its start for messages.
async fn error_body(r: reqwest::Response) -> ErrorBody {
    let mut r = r;
    let mut bytes = Vec::new();
    while bytes.len() < 4096 {
        match r.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    ErrorBody::parse(&bytes)
}

/// One registry host, with its credentials and the bearer tokens obtained for each scope.
pub struct RegistryClient {
    pub(super) http: reqwest::Client,
    pub registry: String,
    base_url: String,
    pub(super) credentials: Credentials,
    pub(super) tokens: Mutex<HashMap<String, String>>,
    pub(super) use_basic: Mutex<bool>,
    policy: RetryPolicy,
    progress: Progress,
}

/// A manifest as the registry served it.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
}

/// One registry request, described so that a retry can send it again.
struct Req<'a> {
    method: Method,
    url: &'a str,
    repository: &'a str,
    /// Needs push (write) permission, not only pull.
    push: bool,
    headers: HeaderMap,
    body: Body<'a>,
    operation: &'a str,
    /// False when a retry must start over at a higher level (an upload session is spent once used).
    retry: bool,
}

/// What a request body is, so that a retry can build it again.
enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    File(&'a Path, u64, &'a ProgressBar),
}

impl RegistryClient {
    pub fn new(api_host: &str, registry: &str, plain_http: bool, credentials: Credentials) -> Self {
        let http = crate::net::http_client(Duration::from_secs(120))
            .expect("a TLS backend is compiled in");
        let scheme = if plain_http { "http" } else { "https" };
        RegistryClient {
            http,
            registry: registry.to_string(),
            base_url: format!("{scheme}://{api_host}"),
            credentials,
            tokens: Mutex::new(HashMap::new()),
            use_basic: Mutex::new(false),
            policy: RetryPolicy::default(),
            progress: Progress::hidden(),
        }
    }

    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = progress;
        self
    }

    pub(super) fn network_error(
        &self,
        operation: impl Into<String>,
        err: &reqwest::Error,
    ) -> RegistryError {
        RegistryError::Network {
            registry: self.registry.clone(),
            operation: operation.into(),
            attempts: 1,
            detail: http_error(err),
            permanent: crate::net::is_unknown_host(err),
        }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{}", self.base_url, path)
        }
    }

    /// Sends a request, answering auth challenges and retrying transient failures.
    async fn send(&self, request: Req<'_>) -> Result<reqwest::Response> {
        let Req {
            method,
            url,
            repository,
            push,
            headers,
            body,
            operation,
            retry,
        } = request;
        let attempts = if retry { self.policy.attempts } else { 1 };
        let scope = if push {
            format!("repository:{repository}:pull,push")
        } else {
            format!("repository:{repository}:pull")
        };
        let mut last = String::new();
        let mut challenged = false;
        let mut attempt = 0;
        while attempt < attempts {
            attempt += 1;
            let mut req = self
                .http
                .request(method.clone(), url)
                .headers(headers.clone());
            if let Some(auth) = self.auth_header(&scope) {
                req = req.header(AUTHORIZATION, auth);
            }
            req = match &body {
                Body::Empty => req,
                Body::Bytes(b) => req.body(b.to_vec()),
                Body::File(path, size, bar) => {
                    let file =
                        tokio::fs::File::open(path)
                            .await
                            .map_err(|e| RegistryError::Io {
                                path: path.to_path_buf(),
                                source: e,
                            })?;
                    let stream = FileBodyStream::new(file, (*bar).clone());
                    req.header(CONTENT_LENGTH, *size)
                        .body(reqwest::Body::wrap_stream(stream))
                }
            };
            debug!("{method} {}", url_for_log(url));
            let response = match req.send().await {
                Ok(r) => r,
                Err(e) if crate::net::is_unknown_host(&e) => {
                    return Err(RegistryError::Network {
                        registry: self.registry.clone(),
                        operation: operation.to_string(),
                        attempts: attempt,
                        detail: http_error(&e),
                        permanent: true,
                    });
                }
                Err(e) => {
                    last = http_error(&e);
                    self.pause(operation, &last, attempt).await;
                    continue;
                }
            };
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && !challenged {
                challenged = true;
                let challenge = response
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                self.answer_challenge(&challenge, &scope, repository)
                    .await?;
                attempt -= 1;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Err(RegistryError::Unauthorized {
                    registry: self.registry.clone(),
                    repository: repository.to_string(),
                    status: status.as_u16(),
                    hint: self.auth_hint(),
                });
            }
            if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                last = format!("HTTP {status}");
                self.pause(operation, &last, attempt).await;
                continue;
            }
            return Ok(response);
        }
        Err(RegistryError::Network {
            registry: self.registry.clone(),
            operation: operation.to_string(),
            attempts,
            detail: last,
            permanent: false,
        })
    }

    async fn pause(&self, operation: &str, why: &str, attempt: u32) {
        if attempt < self.policy.attempts {
            let delay = self.policy.delay(attempt);
            warn!(
                "{}: {operation}: {why}; retrying in {delay:?}",
                self.registry
            );
            tokio::time::sleep(delay).await;
        }
    }

    fn status_error(
        &self,
        repository: &str,
        operation: &str,
        status: StatusCode,
        body: ErrorBody,
    ) -> RegistryError {
        RegistryError::Status {
            registry: self.registry.clone(),
            repository: repository.to_string(),
            operation: operation.to_string(),
            status: status.as_u16(),
            body,
        }
    }

    pub async fn blob_exists(&self, repository: &str, digest: &Digest) -> Result<bool> {
        let url = self.url(&format!("/v2/{repository}/blobs/{digest}"));
        let r = self
            .send(Req {
                method: Method::HEAD,
                url: &url,
                repository,
                push: true,
                headers: HeaderMap::new(),
                body: Body::Empty,
                operation: "blob check",
                retry: true,
            })
            .await?;
        match r.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(self.status_error(repository, "blob check", s, ErrorBody::default())),
        }
    }

    /// Uploads a blob from disk in one PUT; with `mount_from`, first asks the registry to mount it
    /// from another repository of the same registry. Returns true if it was mounted (no upload).
    /// A failed PUT spends its upload session, so a retry starts a new one.
    pub async fn upload_blob(
        &self,
        repository: &str,
        digest: &Digest,
        file: Option<(&Path, u64)>,
        mount_from: Option<&str>,
    ) -> Result<bool> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Some(location) = self.start_upload(repository, digest, mount_from).await? else {
                return Ok(true);
            };
            let Some((path, size)) = file else {
                return Ok(false);
            };
            match self
                .put_upload(repository, digest, &location, path, size)
                .await
            {
                Ok(()) => return Ok(false),
                Err(e) if attempt < self.policy.attempts && is_transient(&e) => {
                    if self.blob_exists(repository, digest).await.unwrap_or(false) {
                        return Ok(false);
                    }
                    self.pause("blob upload", &e.to_string(), attempt).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Opens an upload session (its Location), or None when the blob was mounted instead.
    async fn start_upload(
        &self,
        repository: &str,
        digest: &Digest,
        mount_from: Option<&str>,
    ) -> Result<Option<String>> {
        let mut start = format!("/v2/{repository}/blobs/uploads/");
        if let Some(from) = mount_from {
            start.push_str(&format!("?mount={digest}&from={from}"));
        }
        let url = self.url(&start);
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, 0.into());
        let r = self
            .send(Req {
                method: Method::POST,
                url: &url,
                repository,
                push: true,
                headers,
                body: Body::Empty,
                operation: "upload start",
                retry: true,
            })
            .await?;
        let status = r.status();
        if status == StatusCode::CREATED && mount_from.is_some() {
            return Ok(None);
        }
        if status != StatusCode::ACCEPTED {
            let body = error_body(r).await;
            return Err(self.status_error(repository, "upload start", status, body));
        }
        r.headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(|l| Some(l.to_string()))
            .ok_or_else(|| {
                self.status_error(
                    repository,
                    "upload start",
                    status,
                    ErrorBody::parse(b"the answer has no Location header"),
                )
            })
    }

    async fn put_upload(
        &self,
        repository: &str,
        digest: &Digest,
        location: &str,
        path: &Path,
        size: u64,
    ) -> Result<()> {
        let short: String = digest.hex().chars().take(12).collect();
        let bar = self.progress.bar(&format!("push {short}"), size);
        let sep = if location.contains('?') { '&' } else { '?' };
        let put_url = self.url(&format!("{location}{sep}digest={digest}"));
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            "application/octet-stream".parse().expect("static"),
        );
        let r = self
            .send(Req {
                method: Method::PUT,
                url: &put_url,
                repository,
                push: true,
                headers,
                body: Body::File(path, size, &bar),
                operation: "blob upload",
                retry: false,
            })
            .await?;
        if r.status() != StatusCode::CREATED {
            let status = r.status();
            let body = error_body(r).await;
            return Err(self.status_error(repository, "blob upload", status, body));
        }
        Ok(())
    }

    pub async fn get_manifest(&self, repository: &str, reference: &str) -> Result<FetchedManifest> {
        let url = self.url(&format!("/v2/{repository}/manifests/{reference}"));
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, MANIFEST_ACCEPT.parse().expect("static"));
        let r = self
            .send(Req {
                method: Method::GET,
                url: &url,
                repository,
                push: false,
                headers,
                body: Body::Empty,
                operation: "manifest fetch",
                retry: true,
            })
            .await?;
        let status = r.status();
        if status == StatusCode::NOT_FOUND {
            return Err(RegistryError::NotFound {
                registry: self.registry.clone(),
                repository: repository.to_string(),
                what: format!("manifest {reference}"),
            });
        }
        if !status.is_success() {
            let body = error_body(r).await;
            return Err(self.status_error(repository, "manifest fetch", status, body));
        }
        let media_type = r
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let bytes = read_capped(r, MAX_DOCUMENT_BYTES)
            .await
            .map_err(|e| self.network_error("manifest fetch", &e))?
            .ok_or_else(|| RegistryError::TooBig {
                registry: self.registry.clone(),
                repository: repository.to_string(),
                what: "manifest",
                limit: MAX_DOCUMENT_BYTES,
            })?;
        let digest = Digest::of(&bytes);
        if reference.starts_with("sha256:") && reference != digest.as_str() {
            return Err(RegistryError::DigestMismatch {
                registry: self.registry.clone(),
                repository: repository.to_string(),
                digest: reference.to_string(),
                detail: format!("got {digest}"),
            });
        }
        let media_type = if media_type.is_empty() || media_type == "application/json" {
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| {
                    v.get("mediaType")
                        .and_then(|m| m.as_str())
                        .map(str::to_string)
                })
                .unwrap_or_default()
        } else {
            media_type
        };
        Ok(FetchedManifest {
            bytes: bytes.to_vec(),
            media_type,
            digest,
        })
    }

    /// The digest the tag points at now, or None if the tag does not exist.
    pub async fn manifest_digest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<Digest>> {
        match self.get_manifest(repository, reference).await {
            Ok(m) => Ok(Some(m.digest)),
            Err(RegistryError::NotFound { .. }) => Ok(None),
            Err(RegistryError::Status {
                status: 404, body, ..
            }) if body.has(&ErrorCode::ManifestUnknown) || body.errors.is_empty() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<()> {
        let url = self.url(&format!("/v2/{repository}/manifests/{reference}"));
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            media_type.parse().map_err(|_| {
                self.status_error(
                    repository,
                    "manifest push",
                    StatusCode::BAD_REQUEST,
                    ErrorBody::parse(b"the manifest's media type is not a valid header value"),
                )
            })?,
        );
        let r = self
            .send(Req {
                method: Method::PUT,
                url: &url,
                repository,
                push: true,
                headers,
                body: Body::Bytes(bytes),
                operation: "manifest push",
                retry: true,
            })
            .await?;
        if r.status() != StatusCode::CREATED && !r.status().is_success() {
            let status = r.status();
            let body = error_body(r).await;
            return Err(self.status_error(repository, "manifest push", status, body));
        }
        Ok(())
    }

    /// Streams a blob to `dest`, checking its sha256 and size as it arrives. A connection lost
    /// mid-body starts the download again (the request itself is retried inside `send`).
    pub async fn download_blob(
        &self,
        repository: &str,
        digest: &Digest,
        size: Option<u64>,
        dest: &Path,
    ) -> Result<()> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.download_once(repository, digest, size, dest).await {
                Err(
                    e @ RegistryError::Network {
                        permanent: false, ..
                    },
                ) if attempt < self.policy.attempts => {
                    self.pause("blob download", &e.to_string(), attempt).await;
                }
                other => return other,
            }
        }
    }

    async fn download_once(
        &self,
        repository: &str,
        digest: &Digest,
        size: Option<u64>,
        dest: &Path,
    ) -> Result<()> {
        let url = self.url(&format!("/v2/{repository}/blobs/{digest}"));
        let r = self
            .send(Req {
                method: Method::GET,
                url: &url,
                repository,
                push: false,
                headers: HeaderMap::new(),
                body: Body::Empty,
                operation: "blob download",
                retry: true,
            })
            .await?;
        if !r.status().is_success() {
            let status = r.status();
            if status == StatusCode::NOT_FOUND {
                return Err(RegistryError::NotFound {
                    registry: self.registry.clone(),
                    repository: repository.to_string(),
                    what: format!("blob {digest}"),
                });
            }
            let body = error_body(r).await;
            return Err(self.status_error(repository, "blob download", status, body));
        }
        let io = |e| RegistryError::Io {
            path: dest.to_path_buf(),
            source: e,
        };
        let mut file = tokio::fs::File::create(dest).await.map_err(io)?;
        let mut hasher = Sha256::new();
        let mut received = 0u64;
        let mut r = r;
        while let Some(chunk) = r
            .chunk()
            .await
            .map_err(|e| self.network_error(format!("download of {digest}"), &e))?
        {
            hasher.update(&chunk);
            received += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.flush().await.map_err(io)?;
        let got = Digest::from_raw(&hasher.finalize().into());
        if got != *digest || size.is_some_and(|s| s != received) {
            let _ = tokio::fs::remove_file(dest).await;
            return Err(RegistryError::DigestMismatch {
                registry: self.registry.clone(),
                repository: repository.to_string(),
                digest: digest.to_string(),
                detail: format!("got {got}, {received} bytes"),
            });
        }
        Ok(())
    }
}

/// Worth a fresh upload session: the network failed, the registry failed, or the session was lost
/// (`BLOB_UPLOAD_UNKNOWN`). Any other 404 (an unknown repository) would only fail again.
fn is_transient(err: &RegistryError) -> bool {
    match err {
        RegistryError::Network { permanent, .. } => !permanent,
        RegistryError::Status { status, body, .. } => {
            *status == 429
                || *status >= 500
                || (*status == 404 && body.has(&ErrorCode::BlobUploadUnknown))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(body: Vec<u8>) -> reqwest::Response {
        reqwest::Response::from(http::Response::new(body))
    }

    #[test]
    fn bodies_over_the_cap_are_not_read_whole() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let body = vec![7u8; 1000];
            let whole = read_capped(response(body.clone()), 1000).await.unwrap();
            assert_eq!(whole, Some(body.clone()));
            assert_eq!(read_capped(response(body), 999).await.unwrap(), None);
            let body = error_body(response(b"{\"errors\":[]}".to_vec())).await;
            assert_eq!(body.to_string(), "{\"errors\":[]}");
        });
    }
}
