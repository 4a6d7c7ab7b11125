//! The registry transport: one request described so it can be sent again, answering auth
//! challenges, retrying 429/5xx/resets with backoff (never a host that does not resolve), and error
//! bodies read only to a cap.

use std::path::Path;

use indicatif::ProgressBar;
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, HeaderMap, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use tracing::{debug, warn};

use super::challenge::{AuthState, TokenService, scope};
use super::errors::{ErrorBody, RegistryError, Result, network_error};
use crate::net::NetworkCause;
use crate::net::redact::{http_error, url_for_log};
use crate::net::retry::RetryPolicy;
use crate::progress::FileBodyStream;

/// A response body of at most `cap` bytes, read as it arrives; `None` if it is longer (a registry
/// or something in between must not make us hold whatever it sends).
pub(super) async fn read_capped(
    mut r: reqwest::Response,
    cap: u64,
) -> reqwest::Result<Option<Vec<u8>>> {
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
pub(super) async fn error_body(r: reqwest::Response) -> ErrorBody {
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

/// One registry request, described so that a retry can send it again.
pub(super) struct Req<'a> {
    pub(super) method: Method,
    pub(super) url: &'a str,
    pub(super) repository: &'a str,
    /// Needs push (write) permission, not only pull.
    pub(super) push: bool,
    /// Also needs pull permission on this repository (the source of a cross-repository mount).
    pub(super) also_pull: Option<&'a str>,
    pub(super) headers: HeaderMap,
    pub(super) body: Body<'a>,
    pub(super) operation: &'a str,
    /// False when a retry must start over at a higher level (an upload session is spent once used).
    pub(super) retry: bool,
}

/// What a request body is, so that a retry can build it again.
pub(super) enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    File(&'a Path, u64, &'a ProgressBar),
}

/// One registry host as the requests reach it: its address, its auth state and the retry policy.
pub(super) struct Transport {
    pub(super) http: reqwest::Client,
    pub(super) registry: String,
    pub(super) base_url: String,
    pub(super) auth: AuthState,
    pub(super) policy: RetryPolicy,
}

impl Transport {
    pub(super) fn network_error(
        &self,
        operation: impl Into<String>,
        err: &reqwest::Error,
    ) -> RegistryError {
        network_error(&self.registry, operation, err)
    }

    pub(super) fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{}", self.base_url, path)
        }
    }

    /// Sends a request, answering auth challenges and retrying transient failures.
    pub(super) async fn send(&self, request: Req<'_>) -> Result<reqwest::Response> {
        let Req {
            method,
            url,
            repository,
            push,
            also_pull,
            headers,
            body,
            operation,
            retry,
        } = request;
        let attempts = if retry { self.policy.attempts } else { 1 };
        let mut scopes = vec![scope(repository, push)];
        scopes.extend(also_pull.map(|from| scope(from, false)));
        self.auth.renew_if_expiring(&self.registry).await?;
        let mut last = String::new();
        // A token for every announced scope first; if that was not enough, one for these alone.
        let mut challenges = 0;
        let mut attempt = 0;
        while attempt < attempts {
            attempt += 1;
            let mut req = self
                .http
                .request(method.clone(), url)
                .headers(headers.clone());
            let sent_at = self.auth.token_generation();
            if let Some(auth) = self.auth.header(&scopes) {
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
                Err(e) if NetworkCause::of(&e).is_permanent() => {
                    return Err(RegistryError::Network {
                        registry: self.registry.clone(),
                        operation: operation.to_string(),
                        attempts: attempt,
                        detail: http_error(&e),
                        cause: NetworkCause::of(&e),
                    });
                }
                Err(e) => {
                    last = http_error(&e);
                    self.pause(operation, &last, attempt).await;
                    continue;
                }
            };
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && challenges < 2 {
                challenges += 1;
                let challenge = response
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let to = TokenService {
                    http: &self.http,
                    registry: &self.registry,
                    repository,
                };
                self.auth
                    .answer_challenge(&to, &challenge, &scopes, challenges == 2, sent_at)
                    .await?;
                attempt -= 1;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Err(RegistryError::Unauthorized {
                    registry: self.registry.clone(),
                    repository: repository.to_string(),
                    status: status.as_u16(),
                    hint: self.auth.hint(&self.registry),
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
            cause: NetworkCause::Transient,
        })
    }

    pub(super) async fn pause(&self, operation: &str, why: &str, attempt: u32) {
        if attempt < self.policy.attempts {
            let delay = self.policy.delay(attempt);
            warn!(
                "{}: {operation}: {why}; retrying in {delay:?}",
                self.registry
            );
            tokio::time::sleep(delay).await;
        }
    }

    pub(super) fn status_error(
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
