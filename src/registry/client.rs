//! A small OCI distribution client over reqwest: bearer/basic auth challenges, retries with backoff on
//! 429/5xx/resets, blobs streamed from and to disk with digest checks, monolithic uploads.
//!
//! We speak the protocol ourselves instead of through oci-client because its uploads take the whole
//! blob as one in-memory slice, and layers can be hundreds of megabytes.

use std::path::Path;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap};
use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

pub use super::auth::{Credentials, Login, Renewal};
pub use super::errors::{RegistryError, Result};

use super::challenge::{AuthState, scope};
use super::errors::{ErrorBody, ErrorCode};
use super::transport::{Body, Req, Transport, error_body, read_capped};
use crate::core::digest::Digest;
use crate::net::NetworkCause;
use crate::net::retry::RetryPolicy;
use crate::oci::source::MAX_DOCUMENT_BYTES;
use crate::progress::Progress;

/// Manifest media types we accept when reading.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// One registry host, with its login and the bearer tokens obtained for it.
pub struct RegistryClient {
    transport: Transport,
    progress: Progress,
}

/// A manifest as the registry served it.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
}

impl RegistryClient {
    pub fn new(api_host: &str, registry: &str, plain_http: bool, login: Login) -> Self {
        let http = crate::net::http_client(Duration::from_secs(120))
            .expect("a TLS backend is compiled in");
        let scheme = if plain_http { "http" } else { "https" };
        RegistryClient {
            transport: Transport {
                http,
                registry: registry.to_string(),
                base_url: format!("{scheme}://{api_host}"),
                auth: AuthState::new(login, None),
                policy: RetryPolicy::default(),
            },
            progress: Progress::hidden(),
        }
    }

    /// The registry host as references name it.
    pub fn registry(&self) -> &str {
        &self.transport.registry
    }

    /// Announces that this run will pull from (or push to) `repository`, so that the first token
    /// asked for covers it too.
    pub fn will_use(&self, repository: &str, push: bool) {
        self.transport.auth.will_need(scope(repository, push));
    }

    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = progress;
        self
    }

    /// Lets the client log in again before its login expires.
    pub fn with_renewal(mut self, renewal: Renewal) -> Self {
        self.transport.auth.set_renewal(renewal);
        self
    }

    pub async fn blob_exists(&self, repository: &str, digest: &Digest) -> Result<bool> {
        let url = self
            .transport
            .url(&format!("/v2/{repository}/blobs/{digest}"));
        let r = self
            .transport
            .send(Req {
                method: Method::HEAD,
                url: &url,
                repository,
                push: true,
                also_pull: None,
                headers: HeaderMap::new(),
                body: Body::Empty,
                operation: "blob check",
                retry: true,
            })
            .await?;
        match r.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => {
                Err(self
                    .transport
                    .status_error(repository, "blob check", s, ErrorBody::default()))
            }
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
                Err(e) if attempt < self.transport.policy.attempts && is_transient(&e) => {
                    if self.blob_exists(repository, digest).await.unwrap_or(false) {
                        return Ok(false);
                    }
                    self.transport
                        .pause("blob upload", &e.to_string(), attempt)
                        .await;
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
        let url = self.transport.url(&start);
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, 0.into());
        let r = self
            .transport
            .send(Req {
                method: Method::POST,
                url: &url,
                repository,
                push: true,
                also_pull: mount_from,
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
            return Err(self
                .transport
                .status_error(repository, "upload start", status, body));
        }
        r.headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(|l| Some(l.to_string()))
            .ok_or_else(|| {
                self.transport.status_error(
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
        let put_url = self
            .transport
            .url(&format!("{location}{sep}digest={digest}"));
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            "application/octet-stream".parse().expect("static"),
        );
        let r = self
            .transport
            .send(Req {
                method: Method::PUT,
                url: &put_url,
                repository,
                push: true,
                also_pull: None,
                headers,
                body: Body::File(path, size, &bar),
                operation: "blob upload",
                retry: false,
            })
            .await?;
        if r.status() != StatusCode::CREATED {
            let status = r.status();
            let body = error_body(r).await;
            return Err(self
                .transport
                .status_error(repository, "blob upload", status, body));
        }
        Ok(())
    }

    pub async fn get_manifest(&self, repository: &str, reference: &str) -> Result<FetchedManifest> {
        let url = self
            .transport
            .url(&format!("/v2/{repository}/manifests/{reference}"));
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, MANIFEST_ACCEPT.parse().expect("static"));
        let r = self
            .transport
            .send(Req {
                method: Method::GET,
                url: &url,
                repository,
                push: false,
                also_pull: None,
                headers,
                body: Body::Empty,
                operation: "manifest fetch",
                retry: true,
            })
            .await?;
        let status = r.status();
        if status == StatusCode::NOT_FOUND {
            return Err(RegistryError::NotFound {
                registry: self.transport.registry.clone(),
                repository: repository.to_string(),
                what: format!("manifest {reference}"),
            });
        }
        if !status.is_success() {
            let body = error_body(r).await;
            return Err(self
                .transport
                .status_error(repository, "manifest fetch", status, body));
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
            .map_err(|e| self.transport.network_error("manifest fetch", &e))?
            .ok_or_else(|| RegistryError::TooBig {
                registry: self.transport.registry.clone(),
                repository: repository.to_string(),
                what: "manifest",
                limit: MAX_DOCUMENT_BYTES,
            })?;
        let digest = Digest::of(&bytes);
        if reference.starts_with("sha256:") && reference != digest.as_str() {
            return Err(RegistryError::DigestMismatch {
                registry: self.transport.registry.clone(),
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
        let url = self
            .transport
            .url(&format!("/v2/{repository}/manifests/{reference}"));
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            media_type.parse().map_err(|_| {
                self.transport.status_error(
                    repository,
                    "manifest push",
                    StatusCode::BAD_REQUEST,
                    ErrorBody::parse(b"the manifest's media type is not a valid header value"),
                )
            })?,
        );
        let r = self
            .transport
            .send(Req {
                method: Method::PUT,
                url: &url,
                repository,
                push: true,
                also_pull: None,
                headers,
                body: Body::Bytes(bytes),
                operation: "manifest push",
                retry: true,
            })
            .await?;
        if r.status() != StatusCode::CREATED && !r.status().is_success() {
            let status = r.status();
            let body = error_body(r).await;
            return Err(self
                .transport
                .status_error(repository, "manifest push", status, body));
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
                        cause: NetworkCause::Transient,
                        ..
                    },
                ) if attempt < self.transport.policy.attempts => {
                    self.transport
                        .pause("blob download", &e.to_string(), attempt)
                        .await;
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
        let url = self
            .transport
            .url(&format!("/v2/{repository}/blobs/{digest}"));
        let r = self
            .transport
            .send(Req {
                method: Method::GET,
                url: &url,
                repository,
                push: false,
                also_pull: None,
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
                    registry: self.transport.registry.clone(),
                    repository: repository.to_string(),
                    what: format!("blob {digest}"),
                });
            }
            let body = error_body(r).await;
            return Err(self
                .transport
                .status_error(repository, "blob download", status, body));
        }
        let io = |e| RegistryError::Io {
            path: dest.to_path_buf(),
            source: e,
        };
        let mut file = tokio::fs::File::create(dest).await.map_err(io)?;
        let mut hasher = Sha256::new();
        let mut received = 0u64;
        let mut r = r;
        while let Some(chunk) = r.chunk().await.map_err(|e| {
            self.transport
                .network_error(format!("download of {digest}"), &e)
        })? {
            hasher.update(&chunk);
            received += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.flush().await.map_err(io)?;
        let got = Digest::from_raw(&hasher.finalize().into());
        if got != *digest || size.is_some_and(|s| s != received) {
            let _ = tokio::fs::remove_file(dest).await;
            return Err(RegistryError::DigestMismatch {
                registry: self.transport.registry.clone(),
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
        RegistryError::Network { cause, .. } => !cause.is_permanent(),
        RegistryError::Status { status, body, .. } => {
            *status == 429
                || *status >= 500
                || (*status == 404 && body.has(&ErrorCode::BlobUploadUnknown))
        }
        _ => false,
    }
}
