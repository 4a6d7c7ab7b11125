//! What the network adapters (`registry`, `aws`) share: the HTTP client's settings, the retry
//! policy, and the redaction that keeps presigned URLs and tokens out of every message.

pub mod redact;
pub mod retry;

use std::time::Duration;

/// An HTTP client with layerport's user agent and timeouts (`read` bounds a stalled body).
pub fn http_client(read: Duration) -> reqwest::Result<reqwest::Client> {
    // reqwest's TLS uses the process's rustls provider: aws-lc-rs, the one the AWS SDK already
    // builds, rather than compiling ring as well. Installing twice is harmless (the first stays).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(15))
        .read_timeout(read)
        .user_agent(concat!("layerport/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Why a request never got an answer, for deciding whether to retry and what to suggest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkCause {
    /// A reset, a timeout, a refused connection: worth retrying.
    Transient,
    /// The host name does not resolve.
    UnknownHost,
    /// The server's TLS certificate is not trusted (or not for this name).
    Certificate,
}

impl NetworkCause {
    pub fn of(err: &reqwest::Error) -> Self {
        if is_unknown_host(err) {
            NetworkCause::UnknownHost
        } else if is_untrusted_certificate(err) {
            NetworkCause::Certificate
        } else {
            NetworkCause::Transient
        }
    }

    pub fn is_permanent(self) -> bool {
        self != NetworkCause::Transient
    }
}

/// The TLS handshake refused the server's certificate: every retry would see the same certificate.
pub fn is_untrusted_certificate(err: &reqwest::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        if e.to_string().contains("invalid peer certificate") {
            return true;
        }
        cause = e.source();
    }
    false
}

/// The host name does not resolve ("Name or service not known"): retrying cannot help, unlike a
/// temporary resolver failure or a refused connection.
pub fn is_unknown_host(err: &reqwest::Error) -> bool {
    is_unknown_host_error(err)
}

/// The same test on any error chain (the AWS SDK's connector errors too).
pub fn is_unknown_host_error(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut dns = false;
    while let Some(e) = cause {
        let text = e.to_string();
        if text.starts_with("dns error") || text.contains(": dns error") {
            dns = true;
        }
        if dns && (text.contains("not known") || text.contains("No address associated")) {
            return true;
        }
        cause = e.source();
    }
    false
}
