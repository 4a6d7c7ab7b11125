//! Keeps presigned URLs, tokens and signatures out of every log line and error message.

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
