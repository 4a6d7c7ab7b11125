//! Fault injection: the [`ProxyFault`]s tests queue, and the decision (repository filter, queued
//! fault, ECR immutable tag, or plain forwarding) the proxy takes for each request.

use super::{ECR_ACCOUNT, Shared};

/// A fault for requests whose method is `method` (empty: any) and whose target (path and query)
/// starts with `path_prefix`; used `uses` times (usize::MAX: forever), in the order injected.
#[derive(Clone, Debug)]
pub struct ProxyFault {
    pub method: String,
    pub path_prefix: String,
    pub kind: FaultKind,
    pub uses: usize,
}

#[derive(Clone, Copy, Debug)]
pub enum FaultKind {
    /// Answer with this status (and a registry-style error body) without forwarding.
    Status(u16),
    /// For a request whose body is longer than this: its head and this many body bytes reach the
    /// registry, then both connections are cut.
    ResetAfter(usize),
    /// Forward, then flip the last byte of a Content-Length response body.
    CorruptBody,
    /// Forward, but cut both connections after this many bytes of a longer response body.
    CutBody(usize),
}

impl ProxyFault {
    fn new(method: &str, path_prefix: &str, kind: FaultKind, uses: usize) -> ProxyFault {
        let (method, path_prefix) = (method.into(), path_prefix.into());
        ProxyFault {
            method,
            path_prefix,
            kind,
            uses,
        }
    }
    pub fn status(method: &str, path_prefix: &str, status: u16, times: usize) -> ProxyFault {
        Self::new(method, path_prefix, FaultKind::Status(status), times)
    }
    pub fn reset(method: &str, path_prefix: &str, after_bytes: usize) -> ProxyFault {
        Self::new(method, path_prefix, FaultKind::ResetAfter(after_bytes), 1)
    }
    pub fn corrupt(method: &str, path_prefix: &str) -> ProxyFault {
        Self::new(method, path_prefix, FaultKind::CorruptBody, 1)
    }
    pub fn cut_response(method: &str, path_prefix: &str, after_bytes: usize) -> ProxyFault {
        Self::new(method, path_prefix, FaultKind::CutBody(after_bytes), 1)
    }

    fn matches(&self, method: &str, target: &str, body_len: Option<u64>) -> bool {
        if let FaultKind::ResetAfter(n) = self.kind
            && body_len.is_none_or(|len| len <= n as u64)
        {
            return false;
        }
        self.uses > 0
            && (self.method.is_empty() || self.method == method)
            && target.starts_with(&self.path_prefix)
    }
}

pub(super) enum Action {
    /// Relay to the registry (true: corrupt the answer's body).
    Forward(bool),
    /// Relay to the registry, cutting the answer's body after this many bytes.
    ForwardCut(usize),
    Answer(u16, String),
    Reset(usize),
    /// Buffer the (Content-Length) body; refuse it when it is another digest than the tag's.
    ImmutableCheck(String, String),
}

/// What to do with a request: the repository filter first, then queued faults, then immutable tags.
pub(super) fn decide(shared: &Shared, method: &str, target: &str, body_len: Option<u64>) -> Action {
    let path = target.split('?').next().unwrap_or("");
    let (repo, kind, reference) = split_api_path(path);
    let mut st = shared.state();
    if let (Some(repo), Some(filter)) = (&repo, &st.filter)
        && !filter(repo)
    {
        let message = format!(
            "The repository with name '{repo}' does not exist in the registry with id '{ECR_ACCOUNT}'"
        );
        return Action::Answer(404, ecr_error("NAME_UNKNOWN", &message));
    }
    if let Some(fault) = st
        .faults
        .iter_mut()
        .find(|f| f.matches(method, target, body_len))
    {
        if fault.uses != usize::MAX {
            fault.uses -= 1;
        }
        return match fault.kind {
            FaultKind::Status(status) => Action::Answer(
                status,
                r#"{"errors":[{"code":"UNKNOWN","message":"injected fault"}]}"#.into(),
            ),
            FaultKind::ResetAfter(n) => Action::Reset(n),
            FaultKind::CorruptBody => Action::Forward(true),
            FaultKind::CutBody(n) => Action::ForwardCut(n),
        };
    }
    if st.immutable
        && body_len.is_some()
        && method == "PUT"
        && kind == Some("manifests")
        && let (Some(repo), Some(tag)) = (repo, reference)
        && !tag.starts_with("sha256:")
    {
        return Action::ImmutableCheck(repo, tag);
    }
    Action::Forward(false)
}

/// `/v2/NAME/(blobs|manifests|tags)/REST` → (NAME, kind, first segment of REST).
fn split_api_path(path: &str) -> (Option<String>, Option<&'static str>, Option<String>) {
    let Some(rest) = path.strip_prefix("/v2/") else {
        return (None, None, None);
    };
    for kind in ["manifests", "blobs", "tags"] {
        if let Some(i) = rest.rfind(&format!("/{kind}/")) {
            let after = &rest[i + kind.len() + 2..];
            let reference = after.split('/').next().map(str::to_string);
            return (Some(rest[..i].to_string()), Some(kind), reference);
        }
    }
    (None, None, None)
}

/// A distribution-spec error body, as ECR words them.
pub(super) fn ecr_error(code: &str, message: &str) -> String {
    serde_json::json!({"errors": [{"code": code, "message": message}]}).to_string()
}
