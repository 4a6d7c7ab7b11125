//! A small HTTP/1.1 forwarding proxy on loopback between layerport and a registry, so push tests can
//! inject what real registries and networks do: 5xx answers, a connection reset in the middle of an
//! upload, ECR's immutable-tag refusal and ECR's NAME_UNKNOWN for a repository that does not exist.
//!
//! Requests are forwarded byte for byte (one upstream connection per request); the only rewrite is
//! of absolute `Location` headers that name the registry, which are made to name the proxy. Client
//! connections are kept alive; everything is bounded (header size, connections, timeouts).

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

const MAX_HEADER_BYTES: usize = 64 * 1024;
const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;
const MAX_CONNECTIONS: usize = 64;
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// The account named in the ECR-style error messages.
pub const ECR_ACCOUNT: &str = "123456789012";

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

/// One request as the proxy handled it.
#[derive(Clone, Debug)]
pub struct ProxiedRequest {
    pub method: String,
    /// Request target as sent (path and query).
    pub target: String,
    /// Status answered to the client; 0 when the connection was cut.
    pub status: u16,
    /// True when the proxy answered (or cut) instead of the registry.
    pub injected: bool,
}

type RepoFilter = Arc<dyn Fn(&str) -> bool + Send + Sync>;
type Observer = Arc<dyn Fn(&ProxiedRequest) + Send + Sync>;

#[derive(Default)]
struct State {
    faults: Vec<ProxyFault>,
    requests: Vec<ProxiedRequest>,
    immutable: bool,
    /// (repository, tag) → manifest digest, for tags pushed through the proxy.
    tags: HashMap<(String, String), String>,
    filter: Option<RepoFilter>,
    observer: Option<Observer>,
}

struct Shared {
    state: Mutex<State>,
    upstream: SocketAddr,
    addr: SocketAddr,
    stop: AtomicBool,
    active: AtomicUsize,
    next_id: AtomicU64,
    /// Open streams (client and upstream), so Drop can unblock every thread.
    streams: Mutex<HashMap<u64, TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A lock that survives a panicked holder (a failed assertion must not poison later ones).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Registers a stream for shutdown on Drop; it is forgotten when the guard drops.
    fn track(self: &Arc<Self>, s: &TcpStream) -> StreamGuard {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        if let Ok(clone) = s.try_clone() {
            lock(&self.streams).insert(id, clone);
        }
        StreamGuard {
            shared: Arc::clone(self),
            id,
        }
    }
}

struct StreamGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if let Some(s) = lock(&self.shared.streams).remove(&self.id) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// The running proxy; stops and joins its threads on Drop.
pub struct FaultProxy {
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port forwarding to `upstream` (`127.0.0.1:PORT`).
    pub fn start(upstream: &str) -> FaultProxy {
        let upstream: SocketAddr = upstream.parse().expect("upstream is HOST:PORT");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            upstream,
            addr,
            stop: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            streams: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
        });
        let s = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name("fault-proxy-accept".into())
            .spawn(move || accept_loop(listener, s))
            .expect("spawn accept thread");
        FaultProxy {
            shared,
            accept: Some(accept),
        }
    }

    /// `127.0.0.1:PORT` of the proxy, to use in references and `--plain-http`.
    pub fn host(&self) -> String {
        self.shared.addr.to_string()
    }

    pub fn inject(&self, fault: ProxyFault) {
        self.shared.state().faults.push(fault);
    }

    /// Uses left of the faults injected, `usize::MAX` ones (forever) not counted.
    pub fn pending_faults(&self) -> usize {
        self.shared
            .state()
            .faults
            .iter()
            .filter(|f| f.uses != usize::MAX)
            .map(|f| f.uses)
            .sum()
    }

    pub fn requests(&self) -> Vec<ProxiedRequest> {
        self.shared.state().requests.clone()
    }

    /// ECR's immutable tags: a manifest PUT to a tag pushed through the proxy with another digest
    /// gets ECR's 400 refusal; the same digest goes through.
    pub fn set_immutable_tags(&self, on: bool) {
        self.shared.state().immutable = on;
    }

    /// Calls `f` with each answer (the registry's or an injected status) before it is relayed to the
    /// client, so tests can order what the registry received against other events and react to it
    /// while layerport still runs.
    pub fn set_observer(&self, f: impl Fn(&ProxiedRequest) + Send + Sync + 'static) {
        self.shared.state().observer = Some(Arc::new(f));
    }

    /// Repositories for which `exists` is false get ECR's 404 NAME_UNKNOWN for every request.
    pub fn set_repository_filter(&self, exists: impl Fn(&str) -> bool + Send + Sync + 'static) {
        self.shared.state().filter = Some(Arc::new(exists));
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.shared.addr); // wakes the accept loop
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        for s in lock(&self.shared.streams).values() {
            let _ = s.shutdown(Shutdown::Both);
        }
        let threads: Vec<_> = lock(&self.shared.threads).drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(conn) = conn else { continue };
        if shared.active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            continue; // dropped: a bounded proxy refuses rather than piles up threads
        }
        shared.active.fetch_add(1, Ordering::SeqCst);
        let s = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("fault-proxy-conn".into())
            .spawn(move || {
                let guard = s.track(&conn);
                let _ = serve_client(conn, &s);
                drop(guard);
                s.active.fetch_sub(1, Ordering::SeqCst);
            })
            .expect("spawn connection thread");
        let mut threads = lock(&shared.threads);
        threads.retain(|t| !t.is_finished());
        threads.push(handle);
    }
}

#[derive(Clone, Copy, Debug)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

struct Head {
    raw: Vec<u8>,
    first: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn framing(&self) -> Framing {
        if self
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            Framing::Chunked
        } else if let Some(n) = self.header("content-length") {
            Framing::Length(n.trim().parse().unwrap_or(0))
        } else {
            Framing::Empty
        }
    }
    fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

enum Action {
    /// Relay to the registry (true: corrupt the answer's body).
    Forward(bool),
    /// Relay to the registry, cutting the answer's body after this many bytes.
    ForwardCut(usize),
    Answer(u16, String),
    Reset(usize),
    /// Buffer the (Content-Length) body; refuse it when it is another digest than the tag's.
    ImmutableCheck(String, String),
}

fn serve_client(client: TcpStream, shared: &Arc<Shared>) -> io::Result<()> {
    client.set_read_timeout(Some(IO_TIMEOUT))?;
    client.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut writer = client;
    loop {
        let Some(head) = read_head(&mut reader)? else {
            return Ok(());
        };
        let mut parts = head.first.split(' ');
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let framing = head.framing();
        let body_len = match framing {
            Framing::Length(n) => Some(n),
            _ => None,
        };
        let action = decide(shared, &method, &target, body_len);
        let (status, injected, keep_open) = match action {
            Action::Answer(status, body) => {
                copy_body(&mut reader, framing, &mut io::sink())?;
                observe(shared, &method, &target, status, true);
                respond(&mut writer, &method, status, &body)?;
                (status, true, true)
            }
            Action::Reset(after) => {
                let mut up = connect(shared)?;
                let _guard = shared.track(&up);
                up.write_all(&head.raw)?;
                copy_exact(&mut reader, &mut up, after as u64)?;
                up.flush()?;
                record(shared, &method, &target, 0, true);
                let _ = up.shutdown(Shutdown::Both);
                let _ = writer.shutdown(Shutdown::Both);
                return Ok(());
            }
            Action::ImmutableCheck(repo, tag) => {
                let mut body = Vec::new();
                let mut limited = (&mut reader).take(MAX_MANIFEST_BYTES as u64);
                copy_body(&mut limited, framing, &mut body)?;
                let digest = format!("sha256:{:x}", Sha256::digest(&body));
                let key = (repo.clone(), tag.clone());
                let held = shared.state().tags.get(&key).cloned();
                if held.is_some_and(|d| d != digest) {
                    let message = format!(
                        "The image tag '{tag}' already exists in the '{repo}' repository and cannot be overwritten because the repository is immutable."
                    );
                    respond(
                        &mut writer,
                        &method,
                        400,
                        &ecr_error("TAG_INVALID", &message),
                    )?;
                    (400, true, true)
                } else {
                    let mut body = io::Cursor::new(body);
                    let (status, keep) = forward(shared, &head, &mut body, &mut writer, false)?;
                    if status == 201 {
                        shared.state().tags.insert(key, digest);
                    }
                    (status, false, keep)
                }
            }
            Action::Forward(corrupt) => {
                let (status, keep) = forward(shared, &head, &mut reader, &mut writer, corrupt)?;
                (status, corrupt, keep)
            }
            Action::ForwardCut(n) => {
                record(shared, &method, &target, 0, true);
                forward_cut(shared, &head, &mut reader, &mut writer, n)?;
                let _ = writer.shutdown(Shutdown::Both);
                return Ok(());
            }
        };
        record(shared, &method, &target, status, injected);
        if !keep_open || head.closes() {
            let _ = writer.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

/// Tells the observer (if any) of an answer; called without holding the state lock.
fn observe(shared: &Shared, method: &str, target: &str, status: u16, injected: bool) {
    let observer = shared.state().observer.clone();
    if let Some(observer) = observer {
        observer(&ProxiedRequest {
            method: method.to_string(),
            target: target.to_string(),
            status,
            injected,
        });
    }
}

fn record(shared: &Shared, method: &str, target: &str, status: u16, injected: bool) {
    let (method, target) = (method.to_string(), target.to_string());
    shared.state().requests.push(ProxiedRequest {
        method,
        target,
        status,
        injected,
    });
}

/// What to do with a request: the repository filter first, then queued faults, then immutable tags.
fn decide(shared: &Shared, method: &str, target: &str, body_len: Option<u64>) -> Action {
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

fn connect(shared: &Shared) -> io::Result<TcpStream> {
    let up = TcpStream::connect_timeout(&shared.upstream, IO_TIMEOUT)?;
    up.set_read_timeout(Some(IO_TIMEOUT))?;
    up.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(up)
}

/// Sends the request upstream on a fresh connection and relays the answer (its last body byte
/// flipped when `corrupt`): (status, keep the client connection open).
fn forward(
    shared: &Arc<Shared>,
    head: &Head,
    body: &mut impl BufRead,
    client: &mut TcpStream,
    corrupt: bool,
) -> io::Result<(u16, bool)> {
    let mut up = connect(shared)?;
    let _guard = shared.track(&up);
    up.write_all(&head.raw)?;
    copy_body(body, head.framing(), &mut up)?;
    let method = head.first.split(' ').next().unwrap_or("");
    up.flush()?;
    let mut upr = BufReader::new(up.try_clone()?);
    loop {
        let Some(resp) = read_head(&mut upr)? else {
            return Err(broken("the registry closed the connection"));
        };
        let status: u16 = resp
            .first
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if !(100..200).contains(&status) || status == 101 {
            let target = head.first.split(' ').nth(1).unwrap_or("");
            observe(shared, method, target, status, corrupt);
        }
        client.write_all(&rewrite_location(&resp, shared))?;
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        let framing = if method == "HEAD" || status == 204 || status == 304 {
            Framing::Empty
        } else {
            match resp.framing() {
                Framing::Empty => Framing::UntilClose,
                f => f,
            }
        };
        match framing {
            Framing::Length(n) if corrupt && n > 0 => {
                copy_exact(&mut upr, client, n - 1)?;
                let mut last = [0u8];
                upr.read_exact(&mut last)?;
                client.write_all(&[last[0] ^ 0xff])?;
            }
            _ => copy_body(&mut upr, framing, client)?,
        }
        client.flush()?;
        let keep = !matches!(framing, Framing::UntilClose) && !resp.closes();
        return Ok((status, keep));
    }
}

/// Like `forward`, but relays only `n` bytes of the answer's body and then drops the connection.
fn forward_cut(
    shared: &Arc<Shared>,
    head: &Head,
    body: &mut impl BufRead,
    client: &mut TcpStream,
    n: usize,
) -> io::Result<()> {
    let mut up = connect(shared)?;
    let _guard = shared.track(&up);
    up.write_all(&head.raw)?;
    copy_body(body, head.framing(), &mut up)?;
    up.flush()?;
    let mut upr = BufReader::new(up.try_clone()?);
    let Some(resp) = read_head(&mut upr)? else {
        return Err(broken("the registry closed the connection"));
    };
    client.write_all(&rewrite_location(&resp, shared))?;
    if let Framing::Length(len) = resp.framing() {
        copy_exact(&mut upr, client, len.min(n as u64))?;
    }
    client.flush()
}

/// The response head with absolute `Location` URLs naming the registry made to name the proxy.
fn rewrite_location(resp: &Head, shared: &Shared) -> Vec<u8> {
    let text = String::from_utf8_lossy(&resp.raw);
    let from = format!("http://{}", shared.upstream);
    let to = format!("http://{}", shared.addr);
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive("\r\n") {
        if line.len() > 9 && line[..9].eq_ignore_ascii_case("location:") {
            out.push_str(&line.replacen(&from, &to, 1));
        } else {
            out.push_str(line);
        }
    }
    out.into_bytes()
}

fn respond(client: &mut TcpStream, method: &str, status: u16, body: &str) -> io::Result<()> {
    let reason = match status {
        400 => "Bad Request",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=utf-8\r\n\
         Docker-Distribution-Api-Version: registry/2.0\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    client.write_all(head.as_bytes())?;
    if method != "HEAD" {
        client.write_all(body.as_bytes())?;
    }
    client.flush()
}

/// A distribution-spec error body, as ECR words them.
fn ecr_error(code: &str, message: &str) -> String {
    serde_json::json!({"errors": [{"code": code, "message": message}]}).to_string()
}

/// Reads a request or response head (through the blank line); None on EOF before its first byte.
fn read_head(r: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut raw = Vec::new();
    loop {
        let before = raw.len();
        let n = r
            .by_ref()
            .take((MAX_HEADER_BYTES - raw.len()) as u64 + 1)
            .read_until(b'\n', &mut raw)?;
        if n == 0 {
            if raw.is_empty() {
                return Ok(None);
            }
            return Err(broken("truncated head"));
        }
        if raw.len() > MAX_HEADER_BYTES {
            return Err(broken("head too large"));
        }
        let line = &raw[before..];
        if line == b"\r\n" || line == b"\n" {
            if before == 0 {
                raw.clear(); // stray blank line between keep-alive requests
                continue;
            }
            break;
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("").to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Some(Head {
        raw,
        first,
        headers,
    }))
}

fn copy_exact(r: &mut impl Read, w: &mut impl Write, n: u64) -> io::Result<()> {
    let copied = io::copy(&mut r.take(n), w)?;
    if copied != n {
        return Err(broken("body shorter than announced"));
    }
    Ok(())
}

/// Copies one message body as it is on the wire (chunk framing included).
fn copy_body(r: &mut impl BufRead, framing: Framing, w: &mut impl Write) -> io::Result<()> {
    match framing {
        Framing::Empty => Ok(()),
        Framing::Length(n) => copy_exact(r, w, n),
        Framing::UntilClose => io::copy(r, w).map(|_| ()),
        Framing::Chunked => loop {
            let mut line = Vec::new();
            r.by_ref().take(4096).read_until(b'\n', &mut line)?;
            w.write_all(&line)?;
            let size_text = String::from_utf8_lossy(&line);
            let size_text = size_text.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size_text, 16).map_err(|_| broken("bad chunk size"))?;
            if size == 0 {
                loop {
                    let mut trailer = Vec::new();
                    r.by_ref().take(4096).read_until(b'\n', &mut trailer)?;
                    w.write_all(&trailer)?;
                    if trailer.is_empty() || trailer == b"\r\n" || trailer == b"\n" {
                        return Ok(());
                    }
                }
            }
            copy_exact(r, w, size + 2)?; // data and its CRLF
        },
    }
}

fn broken(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

// Bearer front: the proxy plays a token-authenticated registry (Docker Hub, GHCR, Harbor style) in
// front of the htpasswd registry. A `/v2/` request without `Authorization: Bearer TOKEN` gets 401
// and a Bearer challenge naming the proxy's own `/token` realm; `GET /token` (recorded) answers
// `{"token": TOKEN}`; an authorized request reaches the registry with its Authorization header
// replaced by the registry's Basic credentials. Faults are not injected in this mode.

/// The service named in the bearer challenge.
pub const BEARER_SERVICE: &str = "fake-registry";

/// One request to the bearer front's token endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    /// `scope` query parameter, decoded (empty when absent).
    pub scope: String,
    /// `service` query parameter, decoded (empty when absent).
    pub service: String,
    /// True when the request carried `Authorization: Basic …`.
    pub basic: bool,
    /// The user name of those Basic credentials, when they decode.
    pub basic_user: Option<String>,
}

struct BearerState {
    token: String,
    /// `Basic BASE64(user:password)` for the registry behind the proxy.
    upstream_auth: String,
    token_requests: Mutex<Vec<TokenRequest>>,
}

/// A fault proxy in bearer-front mode; stops like a `FaultProxy` on Drop.
pub struct BearerProxy {
    proxy: FaultProxy,
    bearer: Arc<BearerState>,
}

impl BearerProxy {
    /// Starts a bearer front on a free loopback port for the registry at `upstream`
    /// (`127.0.0.1:PORT`), which accepts `user`/`password` with Basic auth.
    pub fn start(upstream: &str, user: &str, password: &str) -> BearerProxy {
        use base64::Engine as _;
        let upstream: SocketAddr = upstream.parse().expect("upstream is HOST:PORT");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let seed = format!("{}-{}-{nanos}", std::process::id(), addr.port());
        let token = format!("lp-bearer-{:x}", Sha256::digest(seed.as_bytes()));
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let bearer = Arc::new(BearerState {
            token,
            upstream_auth: format!("Basic {basic}"),
            token_requests: Mutex::new(Vec::new()),
        });
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            upstream,
            addr,
            stop: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            streams: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
        });
        let (s, b) = (Arc::clone(&shared), Arc::clone(&bearer));
        let accept = std::thread::Builder::new()
            .name("bearer-proxy-accept".into())
            .spawn(move || bearer_accept_loop(listener, s, b))
            .expect("spawn accept thread");
        BearerProxy {
            proxy: FaultProxy {
                shared,
                accept: Some(accept),
            },
            bearer,
        }
    }

    /// `127.0.0.1:PORT` of the proxy, to use in references and `--plain-http`.
    pub fn host(&self) -> String {
        self.proxy.host()
    }

    /// The token the front hands out (and the only one it accepts).
    pub fn token(&self) -> String {
        self.bearer.token.clone()
    }

    /// Every token request so far, in order.
    pub fn token_requests(&self) -> Vec<TokenRequest> {
        lock(&self.bearer.token_requests).clone()
    }

    /// Every request handled so far (token requests included, `injected` for the proxy's answers).
    pub fn requests(&self) -> Vec<ProxiedRequest> {
        self.proxy.requests()
    }
}

fn bearer_accept_loop(listener: TcpListener, shared: Arc<Shared>, bearer: Arc<BearerState>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(conn) = conn else { continue };
        if shared.active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            continue;
        }
        shared.active.fetch_add(1, Ordering::SeqCst);
        let (s, b) = (Arc::clone(&shared), Arc::clone(&bearer));
        let handle = std::thread::Builder::new()
            .name("bearer-proxy-conn".into())
            .spawn(move || {
                let guard = s.track(&conn);
                let _ = serve_bearer_client(conn, &s, &b);
                drop(guard);
                s.active.fetch_sub(1, Ordering::SeqCst);
            })
            .expect("spawn connection thread");
        let mut threads = lock(&shared.threads);
        threads.retain(|t| !t.is_finished());
        threads.push(handle);
    }
}

fn serve_bearer_client(
    client: TcpStream,
    shared: &Arc<Shared>,
    bearer: &BearerState,
) -> io::Result<()> {
    client.set_read_timeout(Some(IO_TIMEOUT))?;
    client.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut writer = client;
    loop {
        let Some(head) = read_head(&mut reader)? else {
            return Ok(());
        };
        let mut parts = head.first.split(' ');
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let framing = head.framing();
        let (path, query) = target.split_once('?').unwrap_or((target.as_str(), ""));
        let (status, injected, keep_open) = if path == "/token" {
            copy_body(&mut reader, framing, &mut io::sink())?;
            let auth = head.header("authorization").unwrap_or("");
            let basic = auth.len() > 6 && auth[..6].eq_ignore_ascii_case("basic ");
            let basic_user = basic.then(|| decode_basic_user(&auth[6..])).flatten();
            let param = |name: &str| {
                query
                    .split('&')
                    .filter_map(|p| p.split_once('='))
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| form_decode(v))
                    .unwrap_or_default()
            };
            lock(&bearer.token_requests).push(TokenRequest {
                scope: param("scope"),
                service: param("service"),
                basic,
                basic_user,
            });
            let body = serde_json::json!({"token": bearer.token, "expires_in": 300}).to_string();
            respond_with(&mut writer, &method, 200, "OK", &[], &body)?;
            (200, true, true)
        } else if path == "/v2" || path.starts_with("/v2/") {
            let expected = format!("Bearer {}", bearer.token);
            if head.header("authorization") == Some(expected.as_str()) {
                let head = with_authorization(&head, &bearer.upstream_auth);
                let (status, keep) = forward(shared, &head, &mut reader, &mut writer, false)?;
                (status, false, keep)
            } else {
                copy_body(&mut reader, framing, &mut io::sink())?;
                let challenge = format!(
                    "Bearer realm=\"http://{}/token\",service=\"{BEARER_SERVICE}\"",
                    shared.addr
                );
                let body =
                    r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
                respond_with(
                    &mut writer,
                    &method,
                    401,
                    "Unauthorized",
                    &[("WWW-Authenticate", &challenge)],
                    body,
                )?;
                (401, true, true)
            }
        } else {
            copy_body(&mut reader, framing, &mut io::sink())?;
            let body = r#"{"errors":[{"code":"UNKNOWN","message":"not found"}]}"#;
            respond_with(&mut writer, &method, 404, "Not Found", &[], body)?;
            (404, true, true)
        };
        record(shared, &method, &target, status, injected);
        if !keep_open || head.closes() {
            let _ = writer.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

/// The head with every Authorization header dropped and `Authorization: auth` added.
fn with_authorization(head: &Head, auth: &str) -> Head {
    let text = String::from_utf8_lossy(&head.raw);
    let mut out = String::with_capacity(text.len() + auth.len() + 20);
    for line in text.split_inclusive('\n') {
        if line.len() >= 14 && line[..14].eq_ignore_ascii_case("authorization:") {
            continue;
        }
        if line == "\r\n" || line == "\n" {
            out.push_str(&format!("Authorization: {auth}\r\n"));
        }
        out.push_str(line);
    }
    let mut headers: Vec<(String, String)> = head
        .headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("authorization"))
        .cloned()
        .collect();
    headers.push(("Authorization".into(), auth.into()));
    Head {
        raw: out.into_bytes(),
        first: head.first.clone(),
        headers,
    }
}

fn respond_with(
    client: &mut TcpStream,
    method: &str,
    status: u16,
    reason: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=utf-8\r\n\
         Docker-Distribution-Api-Version: registry/2.0\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    client.write_all(head.as_bytes())?;
    if method != "HEAD" {
        client.write_all(body.as_bytes())?;
    }
    client.flush()
}

fn decode_basic_user(b64: &str) -> Option<String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.split_once(':').map(|(u, _)| u.to_string())
}

/// `application/x-www-form-urlencoded` value decoding (`+` is a space, `%XX` a byte).
fn form_decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
