//! The distribution spec's error documents (`{"errors":[{"code":…,"message":…}]}`), parsed so that
//! a failure is recognised by its code rather than by words in a body; the body's start stays as a
//! fallback for registries (and proxies) that answer with something else — and the client's
//! errors, which carry them.

use serde::Deserialize;

use crate::net::NetworkCause;

/// The error codes of the OCI distribution spec, and ECR's immutable-tag code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorCode {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    TagInvalid,
    TagImmutable,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    Other(String),
}

impl ErrorCode {
    fn parse(code: &str) -> ErrorCode {
        match code {
            "BLOB_UNKNOWN" => ErrorCode::BlobUnknown,
            "BLOB_UPLOAD_INVALID" => ErrorCode::BlobUploadInvalid,
            "BLOB_UPLOAD_UNKNOWN" => ErrorCode::BlobUploadUnknown,
            "DIGEST_INVALID" => ErrorCode::DigestInvalid,
            "MANIFEST_BLOB_UNKNOWN" => ErrorCode::ManifestBlobUnknown,
            "MANIFEST_INVALID" => ErrorCode::ManifestInvalid,
            "MANIFEST_UNKNOWN" => ErrorCode::ManifestUnknown,
            "NAME_INVALID" => ErrorCode::NameInvalid,
            "NAME_UNKNOWN" => ErrorCode::NameUnknown,
            "SIZE_INVALID" => ErrorCode::SizeInvalid,
            "TAG_INVALID" => ErrorCode::TagInvalid,
            "TAG_IMMUTABLE" => ErrorCode::TagImmutable,
            "UNAUTHORIZED" => ErrorCode::Unauthorized,
            "DENIED" => ErrorCode::Denied,
            "UNSUPPORTED" => ErrorCode::Unsupported,
            "TOOMANYREQUESTS" => ErrorCode::TooManyRequests,
            other => ErrorCode::Other(other.to_string()),
        }
    }
}

/// One entry of an error document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryErrorEntry {
    pub code: ErrorCode,
    /// The code as the registry spelled it.
    pub raw_code: String,
    pub message: String,
}

/// What an error response said: its parsed entries, and the start of the body as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorBody {
    pub errors: Vec<RegistryErrorEntry>,
    /// At most 300 characters of the body, with anything URL-like scrubbed of its query.
    pub excerpt: String,
}

#[derive(Deserialize)]
struct Document {
    #[serde(default)]
    errors: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

impl ErrorBody {
    pub fn parse(body: &[u8]) -> ErrorBody {
        let errors = serde_json::from_slice::<Document>(body)
            .map(|d| d.errors)
            .unwrap_or_default()
            .into_iter()
            .map(|e| RegistryErrorEntry {
                code: ErrorCode::parse(&e.code),
                raw_code: e.code,
                message: crate::net::redact::scrub(&e.message),
            })
            .collect();
        let text = String::from_utf8_lossy(body);
        ErrorBody {
            errors,
            excerpt: crate::net::redact::scrub(&text).chars().take(300).collect(),
        }
    }

    pub fn has(&self, code: &ErrorCode) -> bool {
        self.errors.iter().any(|e| &e.code == code)
    }

    /// An immutable tag refusing another digest: ECR says `TAG_INVALID` ("… cannot be overwritten
    /// because the tag is immutable"), other registries `TAG_IMMUTABLE`.
    pub fn is_immutable_tag(&self) -> bool {
        self.errors.iter().any(|e| match e.code {
            ErrorCode::TagImmutable => true,
            ErrorCode::TagInvalid => e.message.contains("immutable"),
            _ => false,
        })
    }
}

impl std::fmt::Display for ErrorBody {
    /// `CODE: message` for each entry, else the body's start.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.errors.is_empty() {
            return f.write_str(&self.excerpt);
        }
        let parts: Vec<String> = self
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.raw_code, e.message))
            .collect();
        f.write_str(&parts.join("; "))
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
        network_hint(*cause)
    )]
    Network {
        registry: String,
        operation: String,
        attempts: u32,
        detail: String,
        cause: NetworkCause,
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

fn network_hint(cause: NetworkCause) -> &'static str {
    match cause {
        NetworkCause::UnknownHost => {
            "check the registry host name (a local image needs oci:DIR or docker-archive:FILE)"
        }
        NetworkCause::Certificate => {
            "the registry's TLS certificate is not trusted: add its CA to the system's certificates (or point SSL_CERT_FILE at a bundle that has it); --plain-http HOST is for registries without TLS"
        }
        NetworkCause::Transient => {
            "check that the registry is reachable (use --plain-http HOST for a registry without TLS)"
        }
    }
}

fn attempts_text(attempts: u32) -> String {
    if attempts > 1 {
        format!(" after {attempts} attempts")
    } else {
        String::new()
    }
}

/// A network failure on `operation` (retrying cannot help when its cause is permanent).
pub fn network_error(
    registry: &str,
    operation: impl Into<String>,
    err: &reqwest::Error,
) -> RegistryError {
    RegistryError::Network {
        registry: registry.to_string(),
        operation: operation.into(),
        attempts: 1,
        detail: crate::net::redact::http_error(err),
        cause: NetworkCause::of(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_codes_and_keeps_the_body_otherwise() {
        let ecr = br#"{"errors":[{"code":"TAG_INVALID","message":"The image tag 'v1' already exists in the 'app' repository and cannot be overwritten because the tag is immutable."}]}"#;
        let body = ErrorBody::parse(ecr);
        assert!(body.has(&ErrorCode::TagInvalid));
        assert!(body.is_immutable_tag());
        assert!(body.to_string().starts_with("TAG_INVALID: The image tag"));

        let missing =
            ErrorBody::parse(br#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#);
        assert!(missing.has(&ErrorCode::NameUnknown));
        assert!(!missing.is_immutable_tag());

        let html = ErrorBody::parse(b"<html>502 Bad Gateway</html>");
        assert!(html.errors.is_empty());
        assert_eq!(html.to_string(), "<html>502 Bad Gateway</html>");
    }

    #[test]
    fn messages_lose_url_queries() {
        let body = ErrorBody::parse(
            br#"{"errors":[{"code":"DENIED","message":"see https://x.example/a?X-Amz-Signature=SECRET"}]}"#,
        );
        assert!(!body.to_string().contains("SECRET"), "{body}");
    }
}
