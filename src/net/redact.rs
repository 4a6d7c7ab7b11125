//! Keeps presigned URLs, tokens and signatures out of every log line and error message.

use std::sync::{Mutex, PoisonError};

/// Secret values known to this run (the credentials given in the environment), removed from every
/// log line wherever they appear.
static KNOWN_SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Shown instead of a removed value.
const REDACTED: &str = "[redacted]";

/// Keys whose value is a secret, in the spellings SDK debug output, headers, JSON and query
/// strings use (compared in lower case).
const SECRET_KEYS: &[&str] = &[
    "access_key_id",
    "accesskeyid",
    "aws_access_key_id",
    "secret_access_key",
    "secretaccesskey",
    "session_token",
    "sessiontoken",
    "security-token",
    "security_token",
    "x-amz-credential",
    "x-amz-signature",
    "signature",
    "authorization",
    "password",
    "registrytoken",
    "authorizationtoken",
];

/// Remembers a secret value so that no log line can show it (short values are ignored: they
/// would blank out ordinary words).
pub fn register_secret(value: &str) {
    if value.len() >= 8 {
        let mut known = KNOWN_SECRETS.lock().unwrap_or_else(PoisonError::into_inner);
        if !known.iter().any(|k| k == value) {
            known.push(value.to_string());
        }
    }
}

/// What a log line may show: request and response bodies (Rust byte-string literals) dropped, the
/// values of secret keys, known secrets and access key ids removed, URL queries cut.
pub fn log_text(text: &str) -> String {
    let text = drop_byte_literals(text);
    let text = redact_key_values(&text);
    let mut text = redact_access_key_ids(&text);
    for secret in KNOWN_SECRETS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
    {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), REDACTED);
        }
    }
    scrub(&text)
}

/// `b"..."` (how the SDK's trace events print HTTP bodies) becomes `b"[N bytes redacted]"`:
/// a body can carry a presigned URL, a token or a function's environment.
fn drop_byte_literals(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("b\"") {
        // A literal starts a token (`Some(b"…")`); `"lib"` in ordinary text is not one.
        if start > 0 && rest.as_bytes()[start - 1].is_ascii_alphanumeric() {
            out.push_str(&rest[..start + 2]);
            rest = &rest[start + 2..];
            continue;
        }
        let body = &rest[start + 2..];
        let mut end = None;
        let mut escaped = false;
        for (i, c) in body.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let end = end.unwrap_or(body.len());
        out.push_str(&rest[..start]);
        out.push_str(&format!("b\"[{end} bytes redacted]\""));
        rest = body.get(end + 1..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// Replaces the value that follows any of `SECRET_KEYS` (`key: "v"`, `key=v`, `"Key":"v"`,
/// `key:v` in a header dump).
fn redact_key_values(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    for key in SECRET_KEYS {
        let mut from = 0;
        while let Some(found) = lower[from..].find(key) {
            let key_end = from + found + key.len();
            from = key_end;
            // The whole word: `signature` must not match inside `signatures_enabled`.
            let before_ok = from - key.len() == 0
                || !bytes[from - key.len() - 1].is_ascii_alphanumeric()
                    && bytes[from - key.len() - 1] != b'_';
            let mut i = key_end;
            let mut separated = false;
            while i < bytes.len() && matches!(bytes[i], b'"' | b'\\' | b':' | b'=' | b' ') {
                separated |= matches!(bytes[i], b':' | b'=');
                i += 1;
            }
            if !before_ok || !separated || i >= bytes.len() {
                continue;
            }
            let quoted = i > key_end && bytes[i - 1] == b'"';
            let mut end = i;
            while end < bytes.len() {
                let b = bytes[end];
                let stop = if quoted {
                    b == b'"' || b == b'\\'
                } else {
                    b.is_ascii_whitespace() || matches!(b, b',' | b'&' | b'}' | b')' | b';' | b'"')
                };
                if stop {
                    break;
                }
                end += 1;
            }
            if end > i && !text[i..end].starts_with("**") && text[i..end] != *REDACTED {
                cuts.push((i, end));
            }
        }
    }
    if cuts.is_empty() {
        return text.to_string();
    }
    cuts.sort();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in cuts {
        if start < at {
            continue;
        }
        out.push_str(&text[at..start]);
        out.push_str(REDACTED);
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

/// AWS access key ids (`AKIA…`, `ASIA…`: four letters and at least 12 more capitals or digits).
fn redact_access_key_ids(text: &str) -> String {
    const PREFIXES: &[&str] = &[
        "AKIA", "ASIA", "ABIA", "ACCA", "AIDA", "AROA", "AGPA", "ANPA",
    ];
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    let mut i = 0;
    while i + 16 <= bytes.len() {
        let word_start = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        if word_start
            && PREFIXES
                .iter()
                .any(|p| bytes[i..].starts_with(p.as_bytes()))
        {
            let end = i + bytes[i..]
                .iter()
                .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
                .count();
            let word_end = end == bytes.len() || !bytes[end].is_ascii_alphanumeric();
            if end - i >= 16 && word_end {
                out.push_str(&text[at..i]);
                out.push_str(REDACTED);
                at = end;
                i = end;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&text[at..]);
    out
}

/// `scheme://host/path` of a URL: the query (signature, token, expiry) is dropped.
pub fn url_for_log(url: &str) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let visible = &url[..end];
    // Userinfo (`user:pass@host`) is a secret too.
    match visible.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit('@').next().unwrap_or(authority);
            format!("{scheme}://{host}{path}")
        }
        None => visible.to_string(),
    }
}

/// Removes anything that looks like a URL query string from free text (an error from a library).
pub fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("://") {
        let begin = rest[..start]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.'))
            .map(|i| i + 1)
            .unwrap_or(0);
        out.push_str(&rest[..begin]);
        let tail = &rest[begin..];
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ')' || c == '>')
            .unwrap_or(tail.len());
        out.push_str(&url_for_log(&tail[..end]));
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// An HTTP client error and its causes, without the URL reqwest puts in its message (query included).
pub fn http_error(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    if let Some(start) = text.find(" for url (") {
        text.truncate(start);
    }
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = e.source();
    }
    scrub(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_lose_bodies_keys_and_known_secrets() {
        register_secret("KNOWNSECRETvalue42");
        let line = r#"identity=Credentials { access_key_id: "AKIDFAULTSKEY01", secret_access_key: "** redacted **" } body: SdkBody { inner: Once(Some(b"{\"Location\":\"http://h/p?X-Amz-Signature=abc\"}")) } x-amz-security-token:TOKENVALUE123 also KNOWNSECRETvalue42 and ASIAFAKEPRESIGNKEY01 url http://h/p?X-Amz-Signature=deadbeef"#;
        let shown = log_text(line);
        for secret in [
            "AKIDFAULTSKEY01",
            "TOKENVALUE123",
            "KNOWNSECRETvalue42",
            "ASIAFAKEPRESIGNKEY01",
            "deadbeef",
            "X-Amz-Signature=abc",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(
            shown.contains("secret_access_key: \"** redacted **\""),
            "{shown}"
        );
        assert!(shown.contains("http://h/p"), "{shown}");
        assert!(shown.contains("bytes redacted"), "{shown}");
    }

    #[test]
    fn ordinary_words_survive() {
        let line = "signature_location: Headers signing request; token bucket for RetryPartition; entry \"python/lib\" is fine";
        assert_eq!(log_text(line), line);
    }

    #[test]
    fn drops_query_and_userinfo() {
        assert_eq!(
            url_for_log(
                "https://awslambda-us-east-1-layers.s3.amazonaws.com/snapshots/1/x-abc?versionId=1&X-Amz-Signature=deadbeef"
            ),
            "https://awslambda-us-east-1-layers.s3.amazonaws.com/snapshots/1/x-abc"
        );
        assert_eq!(url_for_log("https://user:pw@host/p?q"), "https://host/p");
    }

    #[test]
    fn scrubs_urls_inside_text() {
        let t = scrub(
            "error sending request for url (http://127.0.0.1:9/snap?X-Amz-Security-Token=SECRET): reset",
        );
        assert!(!t.contains("SECRET"));
        assert!(t.contains("http://127.0.0.1:9/snap"));
        assert!(t.ends_with(": reset"));
    }

    #[tokio::test]
    async fn http_errors_lose_the_query() {
        // Port 1 on loopback refuses the connection; reqwest names the full URL in its message.
        let err = crate::net::http_client(std::time::Duration::from_secs(5))
            .unwrap()
            .get("http://127.0.0.1:1/snap?X-Amz-Signature=SECRETSIG")
            .send()
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("SECRETSIG"),
            "reqwest shows the URL: {err}"
        );
        let shown = http_error(&err);
        assert!(!shown.contains("SECRETSIG"), "{shown}");
        assert!(shown.contains("error sending request"), "{shown}");
    }
}
