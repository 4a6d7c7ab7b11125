//! What the network adapters (`registry`, `aws`) share: the HTTP client's settings, the retry
//! policy, and the redaction that keeps presigned URLs and tokens out of every message.

pub mod redact;
pub mod retry;

use std::time::Duration;

/// An HTTP client with layerport's user agent and timeouts (`read` bounds a stalled body).
pub fn http_client(read: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(15))
        .read_timeout(read)
        .user_agent(concat!("layerport/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The host name does not resolve ("Name or service not known"): retrying cannot help, unlike a
/// temporary resolver failure or a refused connection.
pub fn is_unknown_host(err: &reqwest::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut dns = false;
    while let Some(e) = cause {
        let text = e.to_string();
        if text.starts_with("dns error") {
            dns = true;
        }
        if dns && (text.contains("not known") || text.contains("No address associated")) {
            return true;
        }
        cause = e.source();
    }
    false
}
