//! A fake AWS endpoint on loopback (Lambda restJson1 layer APIs, ECR awsJson1.1, presigned
//! S3-style downloads), so integration tests can drive the real `aws-sdk-*` clients and inject
//! faults deterministically.
//!
//! It is a small blocking HTTP/1.1 server (one thread per connection) because the SDK keeps
//! connections alive and reuses them; it needs no async runtime, so sync and async tests can use it.
//! Routing: an `X-Amz-Target` header means ECR, a `/2018-10-31/layers` path means Lambda, and a
//! `/snapshots/` path is a download from the presigned-looking URL given in `Content.Location`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The account that owns layers published through the fake and its ECR registry.
pub const ACCOUNT: &str = "123456789012";
/// Session token embedded in every presigned download URL; tests grep output for it.
pub const PRESIGN_TOKEN: &str = "IQoJb3JpZ2luFAKEAWSPRESIGNSECRETTOKENdoNotLeak0123456789";
const DEFAULT_ECR_PASSWORD: &str = "FAKEAWS-ECR-PASSWORD-doNotLeak-9f3a7c";
// Bounds: a hung or hostile client must not wedge a test forever or eat memory.
const MAX_HEADER_BYTES: usize = 64 * 1024;
const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// A one-shot fault. Faults wait in a FIFO queue; each incoming request removes and applies the
/// first queued fault that matches its kind (see each variant), so faults of different kinds
/// interleave independently while faults of one kind are used in the order they were injected.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answers the next Lambda API call (any operation) with this status and error type,
    /// e.g. 500 ServiceException, 429 TooManyRequestsException, 403 AccessDeniedException.
    LambdaStatus {
        status: u16,
        error_type: String,
        message: String,
    },
    /// Answers the next ECR call (any operation) with this status and `__type`.
    EcrStatus {
        status: u16,
        error_type: String,
        message: String,
    },
    /// Answers the next download with this status and body (XML, like S3).
    DownloadStatus { status: u16, body: String },
    /// The next download sends headers with the full Content-Length, `after_bytes` of body, then
    /// closes the connection.
    DownloadReset { after_bytes: usize },
    /// The next successful GetLayerVersionByArn / GetLayerVersion reports a wrong CodeSha256.
    WrongCodeSha256,
    /// The next successful GetLayerVersionByArn / GetLayerVersion reports CodeSize + 1.
    WrongCodeSize,
    /// Answers the next S3 API call (PutObject) with this status and S3 error code,
    /// e.g. 403 AccessDenied.
    S3Status {
        status: u16,
        code: String,
        message: String,
    },
}

impl Fault {
    /// What S3 answers when a presigned URL is used after `X-Amz-Expires`.
    pub fn expired_download() -> Fault {
        Fault::DownloadStatus {
            status: 403,
            body: s3_error_xml("AccessDenied", "Request has expired"),
        }
    }

    /// What Lambda answers when the caller lacks `lambda:GetLayerVersion` on a layer.
    pub fn lambda_access_denied(arn: &str) -> Fault {
        Fault::LambdaStatus {
            status: 403,
            error_type: "AccessDeniedException".into(),
            message: access_denied_message(arn),
        }
    }

    fn is_lambda_status(&self) -> bool {
        matches!(self, Fault::LambdaStatus { .. })
    }
    fn is_content(&self) -> bool {
        matches!(self, Fault::WrongCodeSha256 | Fault::WrongCodeSize)
    }
    fn is_download(&self) -> bool {
        matches!(
            self,
            Fault::DownloadStatus { .. } | Fault::DownloadReset { .. }
        )
    }
}

/// A latch a test opens to release downloads held with [`FakeAws::hold_download`]; exists so tests
/// can prove other work overlaps a download by ordering events, without sleeping.
#[derive(Clone, Default)]
pub struct Gate(Arc<(Mutex<GateState>, Condvar)>);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum GateState {
    #[default]
    Closed,
    Open,
    /// A held download waited its whole timeout (or the fake stopped) before the gate opened.
    Expired,
}

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }

    fn state(&self) -> MutexGuard<'_, GateState> {
        self.0.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Releases the downloads waiting on this gate (and any later ones); too late once expired.
    pub fn open(&self) {
        let mut st = self.state();
        if *st == GateState::Closed {
            *st = GateState::Open;
        }
        self.0.1.notify_all();
    }

    pub fn is_open(&self) -> bool {
        *self.state() == GateState::Open
    }

    /// True when a held download gave up waiting before the gate was opened.
    pub fn expired(&self) -> bool {
        *self.state() == GateState::Expired
    }

    fn expire(&self) {
        let mut st = self.state();
        if *st == GateState::Closed {
            *st = GateState::Expired;
        }
        self.0.1.notify_all();
    }

    /// Waits until opened (true) or `timeout` passes, which expires the gate (false).
    fn wait(&self, timeout: Duration) -> bool {
        let guard = self.state();
        let (mut st, _) = self
            .0
            .1
            .wait_timeout_while(guard, timeout, |s| *s == GateState::Closed)
            .unwrap_or_else(|e| e.into_inner());
        if *st == GateState::Closed {
            *st = GateState::Expired;
            self.0.1.notify_all();
        }
        *st == GateState::Open
    }
}

type DownloadObserver = Arc<dyn Fn(&str, u16) + Send + Sync>;

/// One request as the fake saw it, with what it answered.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    /// Path without the query, still percent-encoded as sent.
    pub path: String,
    /// Raw query string without `?` ("" if none).
    pub query: String,
    /// `X-Amz-Target` (ECR operations).
    pub target: Option<String>,
    /// Region and service of the SigV4 credential scope; `None` when the request was unsigned.
    pub region: Option<String>,
    pub service: Option<String>,
    /// Lower-cased header names with their values.
    pub headers: Vec<(String, String)>,
    pub status: u16,
}

impl RecordedRequest {
    /// A percent-decoded query parameter.
    pub fn query_param(&self, name: &str) -> Option<String> {
        query_pairs(&self.query)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn is_download(&self) -> bool {
        self.path.starts_with("/snapshots/")
    }
}

/// A layer version the fake holds (registered with `add_layer` or published through the API).
#[derive(Clone, Debug)]
pub struct StoredLayerVersion {
    /// Unversioned layer ARN.
    pub layer_arn: String,
    pub version: i64,
    pub zip: Arc<Vec<u8>>,
    /// base64 of the raw sha256 of `zip`, as Lambda reports it.
    pub code_sha256: String,
    pub compatible_architectures: Vec<String>,
    pub compatible_runtimes: Vec<String>,
    pub description: String,
    pub license_info: Option<String>,
    pub created_date: String,
    download_path: String,
    signature: String,
}

impl StoredLayerVersion {
    pub fn version_arn(&self) -> String {
        format!("{}:{}", self.layer_arn, self.version)
    }
}

#[derive(Default)]
struct State {
    /// Unversioned layer ARN → version → data.
    layers: BTreeMap<String, BTreeMap<i64, StoredLayerVersion>>,
    /// Download path → (zip, expected X-Amz-Signature).
    downloads: HashMap<String, (Arc<Vec<u8>>, String)>,
    /// Objects PublishLayerVersion may reference with S3Bucket/S3Key.
    s3_objects: HashMap<(String, String), Arc<Vec<u8>>>,
    /// Buckets PutObject accepts (`add_s3_bucket`, or any `add_s3_object` bucket).
    s3_buckets: std::collections::BTreeSet<String>,
    faults: VecDeque<Fault>,
    requests: Vec<RecordedRequest>,
    downloads_served: usize,
    ecr_password: String,
    ecr_proxy_endpoint: Option<String>,
    ecr_repositories: BTreeMap<String, f64>,
    /// Secrets seen on the wire (request session tokens and signatures).
    seen_secrets: Vec<String>,
    /// Download path → (gate, timeout): downloads held by `hold_download`.
    holds: HashMap<String, (Gate, Duration)>,
    /// Told of each download (version ARN, status) just before its answer is written.
    download_observer: Option<DownloadObserver>,
}

impl State {
    /// Removes and returns the first queued fault accepted by `pred`.
    fn take_fault(&mut self, pred: impl Fn(&Fault) -> bool) -> Option<Fault> {
        let i = self.faults.iter().position(pred)?;
        self.faults.remove(i)
    }
}

struct Shared {
    state: Mutex<State>,
    endpoint: String,
    stop: AtomicBool,
    request_ids: AtomicU64,
    /// Open connections, so Drop can unblock their reads and join them.
    conns: Mutex<Vec<(TcpStream, JoinHandle<()>)>>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panicking handler thread must not turn every later assertion into a PoisonError.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The fake endpoint; serving stops and all threads are joined on Drop.
pub struct FakeAws {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

impl FakeAws {
    pub fn start() -> FakeAws {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                ecr_password: DEFAULT_ECR_PASSWORD.into(),
                ..State::default()
            }),
            endpoint: format!("http://{addr}"),
            stop: AtomicBool::new(false),
            request_ids: AtomicU64::new(1),
            conns: Mutex::new(Vec::new()),
        });
        let accept_shared = shared.clone();
        let accept = std::thread::Builder::new()
            .name("fake-aws-accept".into())
            .spawn(move || accept_loop(listener, accept_shared))
            .expect("spawn accept thread");
        FakeAws {
            shared,
            addr,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:PORT`, for `endpoint_url(..)` or `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        self.shared.endpoint.clone()
    }

    /// Registers a layer version under its version ARN
    /// (`arn:<partition>:lambda:<region>:<acct>:layer:<name>:<n>`).
    /// Panics on a malformed ARN: that is a bug in the test.
    pub fn add_layer(&self, arn: &str, zip: Vec<u8>, compatible_architectures: &[&str]) {
        let parsed = parse_layer_arn(arn)
            .unwrap_or_else(|| panic!("add_layer: not a layer version ARN: {arn}"));
        let version = parsed
            .version
            .unwrap_or_else(|| panic!("add_layer: ARN has no version: {arn}"));
        let archs = compatible_architectures
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut st = self.shared.state();
        store_version(
            &mut st,
            &parsed,
            version,
            Arc::new(zip),
            archs,
            vec!["provided.al2023".into()],
            format!("fake layer {}", parsed.name),
            None,
        );
    }

    /// Makes `S3Bucket`/`S3Key` resolvable for PublishLayerVersion.
    pub fn add_s3_object(&self, bucket: &str, key: &str, bytes: Vec<u8>) {
        let mut st = self.shared.state();
        st.s3_buckets.insert(bucket.into());
        st.s3_objects
            .insert((bucket.into(), key.into()), Arc::new(bytes));
    }

    /// Creates an empty bucket that S3 PutObject (path-style `PUT /bucket/key`) writes into.
    pub fn add_s3_bucket(&self, bucket: &str) {
        self.shared.state().s3_buckets.insert(bucket.into());
    }

    /// An object's bytes as PutObject stored them (aws-chunked bodies decoded and checked).
    pub fn s3_object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        self.shared
            .state()
            .s3_objects
            .get(&(bucket.to_string(), key.to_string()))
            .map(|o| o.to_vec())
    }

    pub fn inject(&self, fault: Fault) {
        self.shared.state().faults.push_back(fault);
    }

    /// Faults injected but not consumed yet.
    pub fn pending_faults(&self) -> usize {
        self.shared.state().faults.len()
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.state().requests.clone()
    }

    /// Download requests answered (any status, including injected faults).
    pub fn download_count(&self) -> usize {
        self.shared.state().downloads_served
    }

    /// Holds every download of `version_arn` until `gate` opens, so tests can prove that other work
    /// overlaps this download. A download still held after `timeout` expires the gate: it is answered
    /// 500 InternalError, and so is every later one, at once. Panics on an unknown ARN.
    pub fn hold_download(&self, version_arn: &str, gate: Gate, timeout: Duration) {
        let mut st = self.shared.state();
        let path = parse_layer_arn(version_arn)
            .and_then(|a| st.layers.get(&a.layer_arn)?.get(&a.version?).cloned())
            .unwrap_or_else(|| panic!("hold_download: no layer version {version_arn}"))
            .download_path;
        st.holds.insert(path, (gate, timeout));
    }

    /// Calls `f(version ARN, status)` for each download just before its answer is written, so what
    /// `f` records is ordered before anything the client does with those bytes.
    pub fn on_download(&self, f: impl Fn(&str, u16) + Send + Sync + 'static) {
        self.shared.state().download_observer = Some(Arc::new(f));
    }

    /// All versions of a layer, oldest first, by unversioned layer ARN (published layers live in
    /// `ACCOUNT`).
    pub fn layer_versions(&self, layer_arn: &str) -> Vec<StoredLayerVersion> {
        self.shared
            .state()
            .layers
            .get(layer_arn)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every unversioned layer ARN the fake holds.
    pub fn layer_arns(&self) -> Vec<String> {
        self.shared.state().layers.keys().cloned().collect()
    }

    /// Values that must never appear in any output: the presign token and signatures, the ECR
    /// password and its token, and session tokens and signatures seen in signed requests.
    pub fn secret_strings(&self) -> Vec<String> {
        let st = self.shared.state();
        let mut out = vec![
            PRESIGN_TOKEN.to_string(),
            st.ecr_password.clone(),
            ecr_token(&st.ecr_password),
        ];
        out.extend(st.downloads.values().map(|(_, sig)| sig.clone()));
        out.extend(st.seen_secrets.iter().cloned());
        out.sort();
        out.dedup();
        out
    }

    /// The X-Amz-Signature of the presigned URL for a layer version ARN.
    pub fn presign_signature(&self, version_arn: &str) -> Option<String> {
        let st = self.shared.state();
        let parsed = parse_layer_arn(version_arn)?;
        let v = st.layers.get(&parsed.layer_arn)?.get(&parsed.version?)?;
        Some(v.signature.clone())
    }

    pub fn presign_token(&self) -> &'static str {
        PRESIGN_TOKEN
    }

    pub fn set_ecr_password(&self, p: &str) {
        self.shared.state().ecr_password = p.into();
    }

    /// `proxyEndpoint` returned by GetAuthorizationToken; by default
    /// `https://<acct>.dkr.ecr.<region>.amazonaws.com`.
    pub fn set_ecr_proxy_endpoint(&self, url: &str) {
        self.shared.state().ecr_proxy_endpoint = Some(url.into());
    }

    pub fn add_ecr_repository(&self, name: &str) {
        self.shared
            .state()
            .ecr_repositories
            .insert(name.into(), now_epoch());
    }

    pub fn ecr_repositories(&self) -> Vec<String> {
        self.shared
            .state()
            .ecr_repositories
            .keys()
            .cloned()
            .collect()
    }
}

impl Drop for FakeAws {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Held downloads must not keep their connection threads (and so this Drop) waiting.
        for (gate, _) in self.shared.state().holds.values() {
            gate.expire();
        }
        // accept() has no timeout: a throwaway connection wakes it so it can see `stop`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        // Keep-alive connections sit in read(); shutting the socket down ends them promptly.
        let conns =
            std::mem::take(&mut *self.shared.conns.lock().unwrap_or_else(|e| e.into_inner()));
        for (stream, handle) in conns {
            let _ = stream.shutdown(Shutdown::Both);
            let _ = handle.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 plumbing

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let Ok(control) = stream.try_clone() else {
            continue;
        };
        let conn_shared = shared.clone();
        let Ok(handle) = std::thread::Builder::new()
            .name("fake-aws-conn".into())
            .spawn(move || serve_connection(stream, conn_shared))
        else {
            continue;
        };
        let mut conns = shared.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns.retain(|(_, h)| !h.is_finished());
        conns.push((control, handle));
    }
}

struct Request {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Send only this many body bytes (after a full Content-Length), then drop the connection.
    truncate_at: Option<usize>,
    /// HEAD: headers only.
    head: bool,
}

impl Response {
    fn new(status: u16, content_type: &str, body: Vec<u8>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
            truncate_at: None,
            head: false,
        }
    }
    fn json(status: u16, v: &Value) -> Response {
        Response::new(status, "application/json", v.to_string().into_bytes())
    }
    fn header(mut self, k: &str, v: &str) -> Response {
        self.headers.push((k.into(), v.into()));
        self
    }
}

fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut writer = write_half;
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let req = match read_request(&mut reader, &mut writer) {
            Ok(Some(req)) => req,
            Ok(None) => return, // clean EOF between requests
            Err(msg) => {
                let resp = Response::new(400, "text/plain", msg.into_bytes());
                let _ = write_response(&mut writer, &resp, true);
                return;
            }
        };
        let close = req
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let resp = handle(&shared, &req);
        let truncated = resp.truncate_at.is_some();
        if write_response(&mut writer, &resp, close).is_err() || close || truncated {
            let _ = writer.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// Reads one request; `Ok(None)` on EOF before any byte.
fn read_request(
    r: &mut BufReader<TcpStream>,
    w: &mut TcpStream,
) -> Result<Option<Request>, String> {
    let mut head_bytes = 0usize;
    let mut line = String::new();
    // Tolerate stray CRLFs between requests (RFC 9112 §2.2).
    loop {
        line.clear();
        let n = read_line_bounded(r, &mut line, &mut head_bytes)?;
        if n == 0 {
            return Ok(None);
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(_version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("bad request line: {line:?}"));
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.to_string(), String::new()),
    };
    let method = method.to_string();
    let mut headers = Vec::new();
    loop {
        line.clear();
        if read_line_bounded(r, &mut line, &mut head_bytes)? == 0 {
            return Err("EOF in headers".into());
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        let (k, v) = l
            .split_once(':')
            .ok_or_else(|| format!("bad header line: {l:?}"))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let mut req = Request {
        method,
        path,
        query,
        headers,
        body: Vec::new(),
    };
    if req
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .map_err(|e| e.to_string())?;
    }
    let chunked = req
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        req.body = read_chunked(r)?;
    } else if let Some(len) = req.header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| format!("bad content-length {len:?}"))?;
        if len > MAX_BODY_BYTES {
            return Err("body too large".into());
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body)
            .map_err(|e| format!("reading body: {e}"))?;
        req.body = body;
    }
    Ok(Some(req))
}

fn read_line_bounded(
    r: &mut BufReader<TcpStream>,
    line: &mut String,
    used: &mut usize,
) -> Result<usize, String> {
    let limit = (MAX_HEADER_BYTES.saturating_sub(*used) + 1) as u64;
    let n = r
        .by_ref()
        .take(limit)
        .read_line(line)
        .map_err(|e| e.to_string())?;
    *used += n;
    if *used > MAX_HEADER_BYTES {
        return Err("request head too large".into());
    }
    Ok(n)
}

fn read_chunked(r: &mut BufReader<TcpStream>) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    let mut used = 0usize;
    let mut line = String::new();
    loop {
        line.clear();
        read_line_bounded(r, &mut line, &mut used)?;
        let size_str = line.trim().split(';').next().unwrap_or("");
        let size =
            usize::from_str_radix(size_str, 16).map_err(|_| format!("bad chunk size {line:?}"))?;
        if size == 0 {
            // Trailers until the empty line.
            loop {
                line.clear();
                if read_line_bounded(r, &mut line, &mut used)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY_BYTES {
            return Err("body too large".into());
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])
            .map_err(|e| format!("reading chunk: {e}"))?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf)
            .map_err(|e| format!("reading chunk end: {e}"))?;
    }
}

fn write_response(w: &mut TcpStream, resp: &Response, close: bool) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    head.push_str(if close {
        "Connection: close\r\n\r\n"
    } else {
        "Connection: keep-alive\r\n\r\n"
    });
    w.write_all(head.as_bytes())?;
    if !resp.head {
        let n = resp
            .truncate_at
            .unwrap_or(resp.body.len())
            .min(resp.body.len());
        w.write_all(&resp.body[..n])?;
    }
    w.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        206 => "Partial Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

// ---------------------------------------------------------------------------------------------
// Routing and recording

/// SigV4 scope from
/// `AWS4-HMAC-SHA256 Credential=AKID/20261121/us-west-2/lambda/aws4_request, ..., Signature=...`.
struct SigV4 {
    region: String,
    service: String,
    signature: Option<String>,
}

fn parse_sigv4(auth: &str) -> Option<SigV4> {
    let rest = auth.strip_prefix("AWS4-HMAC-SHA256")?;
    let mut cred = None;
    let mut signature = None;
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(c) = part.strip_prefix("Credential=") {
            cred = Some(c);
        } else if let Some(s) = part.strip_prefix("Signature=") {
            signature = Some(s.to_string());
        }
    }
    let scope: Vec<&str> = cred?.split('/').collect();
    if scope.len() != 5 || scope[4] != "aws4_request" {
        return None;
    }
    Some(SigV4 {
        region: scope[2].into(),
        service: scope[3].into(),
        signature,
    })
}

fn handle(shared: &Shared, req: &Request) -> Response {
    let sig = req.header("authorization").and_then(parse_sigv4);
    let rid = shared.request_ids.fetch_add(1, Ordering::SeqCst);
    let request_id = format!("fa4e0000-0000-4000-8000-{rid:012x}");
    // A held download waits here, without the state lock, so everything else keeps being served.
    let hold = (req.path.starts_with("/snapshots/"))
        .then(|| shared.state().holds.get(&req.path).cloned())
        .flatten();
    let released = hold.is_none_or(|(gate, timeout)| gate.wait(timeout));
    let mut resp = {
        let mut st = shared.state();
        if let Some(tok) = req.header("x-amz-security-token") {
            st.seen_secrets.push(tok.to_string());
        }
        if let Some(s) = sig.as_ref().and_then(|s| s.signature.clone()) {
            st.seen_secrets.push(s);
        }
        let region = sig.as_ref().map(|s| s.region.as_str());
        if let Some(target) = req.header("x-amz-target") {
            ecr(&mut st, req, target, sig.is_some(), region)
        } else if req.path.starts_with("/2018-10-31/layers") {
            lambda(&mut st, &shared.endpoint, req, sig.is_some(), region)
        } else if req.path.starts_with("/snapshots/") {
            st.downloads_served += 1;
            if released {
                download(&mut st, req)
            } else {
                let msg = "fake AWS: the held download's gate was never opened";
                Response::new(
                    500,
                    "application/xml",
                    s3_error_xml("InternalError", msg).into_bytes(),
                )
            }
        } else if sig.as_ref().is_some_and(|s| s.service == "s3") {
            s3(&mut st, req)
        } else {
            Response::new(
                404,
                "text/plain",
                format!("fake AWS: no route for {} {}", req.method, req.path).into(),
            )
        }
    };
    resp.headers.push(("x-amzn-RequestId".into(), request_id));
    shared.state().requests.push(RecordedRequest {
        method: req.method.clone(),
        path: req.path.clone(),
        query: req.query.clone(),
        target: req.header("x-amz-target").map(str::to_string),
        region: sig.as_ref().map(|s| s.region.clone()),
        service: sig.as_ref().map(|s| s.service.clone()),
        headers: req.headers.clone(),
        status: resp.status,
    });
    if req.path.starts_with("/snapshots/") {
        let (observer, arn) = {
            let st = shared.state();
            let arn = st
                .layers
                .values()
                .flat_map(|versions| versions.values())
                .find(|v| v.download_path == req.path)
                .map(StoredLayerVersion::version_arn);
            (st.download_observer.clone(), arn)
        };
        if let (Some(observer), Some(arn)) = (observer, arn) {
            observer(&arn, resp.status);
        }
    }
    resp
}

// ---------------------------------------------------------------------------------------------
// Lambda (restJson1)

/// Lambda's error shape: the SDK takes the code from the `x-amzn-ErrorType` header first, then body
/// `code`, then `__type`; Lambda itself sends the header plus `{"Type":..,"message":..}`. We send
/// header and `__type` so either path yields the same code.
fn lambda_error(status: u16, error_type: &str, message: &str) -> Response {
    let kind = if status >= 500 { "Service" } else { "User" };
    Response::json(
        status,
        &json!({"Type": kind, "__type": error_type, "message": message}),
    )
    .header("x-amzn-ErrorType", error_type)
}

fn access_denied_message(arn: &str) -> String {
    format!(
        "User: arn:aws:sts::{ACCOUNT}:assumed-role/fake/session is not authorized to perform: \
         lambda:GetLayerVersion on resource: {arn} because no resource-based policy allows the \
         lambda:GetLayerVersion action"
    )
}

enum LambdaOp {
    GetByArn(String),
    Get(String, String),
    List(String),
    Publish(String),
    ListLayers,
}

fn lambda(
    st: &mut State,
    endpoint: &str,
    req: &Request,
    signed: bool,
    region: Option<&str>,
) -> Response {
    let segs: Vec<String> = req
        .path
        .trim_start_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let q = query_pairs(&req.query);
    let qget = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let op = match (req.method.as_str(), segs.as_slice()) {
        ("GET", ["2018-10-31", "layers"]) if qget("find").as_deref() == Some("LayerVersion") => {
            LambdaOp::GetByArn(qget("Arn").unwrap_or_default())
        }
        ("GET", ["2018-10-31", "layers"]) => LambdaOp::ListLayers,
        ("GET", ["2018-10-31", "layers", name, "versions"]) => LambdaOp::List(name.to_string()),
        ("POST", ["2018-10-31", "layers", name, "versions"]) => LambdaOp::Publish(name.to_string()),
        ("GET", ["2018-10-31", "layers", name, "versions", n]) => {
            LambdaOp::Get(name.to_string(), n.to_string())
        }
        _ => return lambda_error(404, "UnknownOperationException", "Unknown operation"),
    };
    if !signed {
        return lambda_error(
            403,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        );
    }
    let region = region.unwrap_or("us-east-1");

    // Resolve the version a content-returning op refers to, so a WrongCode* fault is only consumed
    // by a response that actually carries content.
    let target: Result<Option<(String, i64)>, Response> = match &op {
        LambdaOp::GetByArn(arn) => match parse_layer_arn(arn) {
            Some(LayerArn {
                version: Some(v),
                layer_arn,
                region: arn_region,
                ..
            }) => {
                // Real Lambda answers a layer from another region as a permission problem.
                if arn_region != region {
                    Err(lambda_error(
                        403,
                        "AccessDeniedException",
                        &access_denied_message(arn),
                    ))
                } else {
                    Ok(Some((layer_arn, v)))
                }
            }
            _ => Err(lambda_error(
                400,
                "ValidationException",
                &arn_validation_message(arn),
            )),
        },
        LambdaOp::Get(name, n) => match (resolve_layer_name(name, region), n.parse::<i64>()) {
            (Some(layer_arn), Ok(v)) => Ok(Some((layer_arn, v))),
            _ => Err(lambda_error(
                400,
                "InvalidParameterValueException",
                "Invalid layer name or version number",
            )),
        },
        _ => Ok(None),
    };
    let found = match &target {
        Ok(Some((layer_arn, v))) => st.layers.get(layer_arn).and_then(|m| m.get(v)).cloned(),
        _ => None,
    };
    let has_content = found.is_some();
    match st.take_fault(|f| f.is_lambda_status() || (has_content && f.is_content())) {
        Some(Fault::LambdaStatus {
            status,
            error_type,
            message,
        }) => {
            return lambda_error(status, &error_type, &message);
        }
        Some(fault) => {
            if let Some(v) = &found {
                return Response::json(200, &layer_version_json(v, endpoint, Some(&fault)));
            }
        }
        None => {}
    }
    let target = match target {
        Ok(t) => t,
        Err(resp) => return resp,
    };

    match op {
        LambdaOp::GetByArn(_) | LambdaOp::Get(..) => match found {
            Some(v) => Response::json(200, &layer_version_json(&v, endpoint, None)),
            None => {
                let (layer_arn, v) = target.expect("content ops resolve a target");
                lambda_error(
                    404,
                    "ResourceNotFoundException",
                    &format!("The resource you requested does not exist. ({layer_arn}:{v})"),
                )
            }
        },
        LambdaOp::List(name) => {
            let Some(layer_arn) = resolve_layer_name(&name, region) else {
                return lambda_error(400, "InvalidParameterValueException", "Invalid layer name");
            };
            let arch = qget("CompatibleArchitecture");
            let runtime = qget("CompatibleRuntime");
            let max: usize = qget("MaxItems")
                .and_then(|m| m.parse().ok())
                .unwrap_or(50)
                .clamp(1, 50);
            let marker: Option<i64> = qget("Marker").and_then(|m| m.parse().ok());
            // Newest first, as Lambda lists them.
            let matching: Vec<StoredLayerVersion> = st
                .layers
                .get(&layer_arn)
                .map(|m| m.values().rev().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
                .into_iter()
                .filter(|v| {
                    arch.as_ref()
                        .is_none_or(|a| v.compatible_architectures.contains(a))
                })
                .filter(|v| {
                    runtime
                        .as_ref()
                        .is_none_or(|r| v.compatible_runtimes.contains(r))
                })
                .filter(|v| marker.is_none_or(|m| v.version < m))
                .collect();
            let page: Vec<Value> = matching.iter().take(max).map(list_item_json).collect();
            let mut body = json!({ "LayerVersions": page });
            if matching.len() > max {
                body["NextMarker"] = json!(matching[max - 1].version.to_string());
            }
            Response::json(200, &body)
        }
        LambdaOp::ListLayers => {
            let layers: Vec<Value> = st
                .layers
                .iter()
                .filter_map(|(arn, m)| {
                    let latest = m.values().next_back()?;
                    let name = arn.rsplit(':').next().unwrap_or_default();
                    Some(json!({"LayerName": name, "LayerArn": arn, "LatestMatchingVersion": list_item_json(latest)}))
                })
                .collect();
            Response::json(200, &json!({ "Layers": layers }))
        }
        LambdaOp::Publish(name) => publish(st, endpoint, &name, region, &req.body),
    }
}

fn publish(st: &mut State, endpoint: &str, name: &str, region: &str, body: &[u8]) -> Response {
    let Some(layer_arn) = resolve_layer_name(name, region) else {
        return lambda_error(400, "InvalidParameterValueException", "Invalid layer name");
    };
    let input: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return lambda_error(
                400,
                "InvalidRequestContentException",
                &format!("Could not parse request body: {e}"),
            );
        }
    };
    let content = &input["Content"];
    let zip = if let Some(b64) = content["ZipFile"].as_str() {
        match B64.decode(b64) {
            Ok(z) => Arc::new(z),
            Err(e) => {
                return lambda_error(
                    400,
                    "InvalidParameterValueException",
                    &format!("ZipFile is not base64: {e}"),
                );
            }
        }
    } else if let (Some(bucket), Some(key)) =
        (content["S3Bucket"].as_str(), content["S3Key"].as_str())
    {
        match st.s3_objects.get(&(bucket.to_string(), key.to_string())) {
            Some(z) => z.clone(),
            None => {
                return lambda_error(
                    400,
                    "InvalidParameterValueException",
                    "Error occurred while GetObject. S3 Error Code: NoSuchKey. S3 Error Message: The specified key does not exist.",
                );
            }
        }
    } else {
        return lambda_error(
            400,
            "InvalidParameterValueException",
            "Content must have ZipFile or S3Bucket and S3Key",
        );
    };
    let strings = |k: &str| -> Vec<String> {
        input[k]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let parsed = parse_layer_arn(&layer_arn).expect("resolve_layer_name yields a valid ARN");
    let next = st
        .layers
        .get(&layer_arn)
        .and_then(|m| m.keys().next_back().copied())
        .unwrap_or(0)
        + 1;
    let stored = store_version(
        st,
        &parsed,
        next,
        zip,
        strings("CompatibleArchitectures"),
        strings("CompatibleRuntimes"),
        input["Description"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        input["LicenseInfo"].as_str().map(String::from),
    );
    // Lambda answers PublishLayerVersion with 201 Created.
    Response::json(201, &layer_version_json(&stored, endpoint, None))
}

#[allow(clippy::too_many_arguments)]
fn store_version(
    st: &mut State,
    arn: &LayerArn,
    version: i64,
    zip: Arc<Vec<u8>>,
    compatible_architectures: Vec<String>,
    compatible_runtimes: Vec<String>,
    description: String,
    license_info: Option<String>,
) -> StoredLayerVersion {
    let version_arn = format!("{}:{}", arn.layer_arn, version);
    let arn_hash = hex(&Sha256::digest(version_arn.as_bytes()));
    // uuid-shaped suffix, like real snapshot keys; derived from the ARN so URLs are stable.
    let uuid = format!(
        "{}-{}-{}-{}-{}",
        &arn_hash[0..8],
        &arn_hash[8..12],
        &arn_hash[12..16],
        &arn_hash[16..20],
        &arn_hash[20..32]
    );
    let download_path = format!("/snapshots/{}/{}-{}", arn.account, arn.name, uuid);
    // A distinctive, valid-looking 64-hex signature: tests grep output for it.
    let signature = hex(&Sha256::digest(
        format!("fake-aws-presign-signature:{version_arn}").as_bytes(),
    ));
    let stored = StoredLayerVersion {
        layer_arn: arn.layer_arn.clone(),
        version,
        code_sha256: B64.encode(Sha256::digest(zip.as_slice())),
        zip: zip.clone(),
        compatible_architectures,
        compatible_runtimes,
        description,
        license_info,
        created_date: iso8601_lambda(SystemTime::now()),
        download_path: download_path.clone(),
        signature: signature.clone(),
    };
    st.downloads.insert(download_path, (zip, signature));
    st.layers
        .entry(arn.layer_arn.clone())
        .or_default()
        .insert(version, stored.clone());
    stored
}

fn layer_version_json(v: &StoredLayerVersion, endpoint: &str, fault: Option<&Fault>) -> Value {
    let mut sha = v.code_sha256.clone();
    let mut size = v.zip.len() as i64;
    match fault {
        Some(Fault::WrongCodeSha256) => sha = B64.encode(Sha256::digest(b"not the layer zip")),
        Some(Fault::WrongCodeSize) => size += 1,
        _ => {}
    }
    let region = parse_layer_arn(&v.layer_arn)
        .map(|a| a.region)
        .unwrap_or_default();
    let mut out = json!({
        "Content": {"Location": presigned_url(v, endpoint, &region), "CodeSha256": sha, "CodeSize": size},
        "LayerArn": v.layer_arn,
        "LayerVersionArn": v.version_arn(),
        "Description": v.description,
        "CreatedDate": v.created_date,
        "Version": v.version,
        "CompatibleRuntimes": v.compatible_runtimes,
        "CompatibleArchitectures": v.compatible_architectures,
    });
    if let Some(l) = &v.license_info {
        out["LicenseInfo"] = json!(l);
    }
    out
}

fn list_item_json(v: &StoredLayerVersion) -> Value {
    let mut out = json!({
        "LayerVersionArn": v.version_arn(),
        "Version": v.version,
        "Description": v.description,
        "CreatedDate": v.created_date,
        "CompatibleRuntimes": v.compatible_runtimes,
        "CompatibleArchitectures": v.compatible_architectures,
    });
    if let Some(l) = &v.license_info {
        out["LicenseInfo"] = json!(l);
    }
    out
}

fn presigned_url(v: &StoredLayerVersion, endpoint: &str, region: &str) -> String {
    let now = SystemTime::now();
    let amz_date = amz_date(now);
    format!(
        "{endpoint}{path}?versionId=FaKeVeRsIoNiD.{ver}&X-Amz-Security-Token={PRESIGN_TOKEN}\
         &X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date={amz_date}&X-Amz-SignedHeaders=host&X-Amz-Expires=600\
         &X-Amz-Credential=ASIAFAKEPRESIGNKEY01%2F{day}%2F{region}%2Fs3%2Faws4_request&X-Amz-Signature={sig}",
        path = v.download_path,
        ver = v.version,
        day = &amz_date[..8],
        sig = v.signature,
    )
}

struct LayerArn {
    /// Unversioned layer ARN.
    layer_arn: String,
    region: String,
    account: String,
    name: String,
    version: Option<i64>,
}

/// `arn:<partition>:lambda:<region>:<12 digits>:layer:<name>[:<version>]`.
fn parse_layer_arn(arn: &str) -> Option<LayerArn> {
    let p: Vec<&str> = arn.split(':').collect();
    if !(7..=8).contains(&p.len())
        || p[0] != "arn"
        || !p[1].starts_with("aws")
        || p[2] != "lambda"
        || p[5] != "layer"
    {
        return None;
    }
    let ok_region = !p[3].is_empty()
        && p[3]
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let ok_account = p[4].len() == 12 && p[4].chars().all(|c| c.is_ascii_digit());
    let ok_name = !p[6].is_empty()
        && p[6].len() <= 140
        && p[6]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !(ok_region && ok_account && ok_name) {
        return None;
    }
    let version = match p.get(7) {
        Some(v) => Some(v.parse::<i64>().ok().filter(|v| *v >= 1)?),
        None => None,
    };
    Some(LayerArn {
        layer_arn: p[..7].join(":"),
        region: p[3].into(),
        account: p[4].into(),
        name: p[6].into(),
        version,
    })
}

/// LayerName in a path may be a bare name (the caller's own account, the signing region) or an
/// unversioned ARN.
fn resolve_layer_name(name: &str, region: &str) -> Option<String> {
    let arn = if name.starts_with("arn:") {
        name.to_string()
    } else {
        format!("arn:aws:lambda:{region}:{ACCOUNT}:layer:{name}")
    };
    match parse_layer_arn(&arn)? {
        LayerArn {
            version: None,
            layer_arn,
            ..
        } => Some(layer_arn),
        _ => None,
    }
}

fn arn_validation_message(arn: &str) -> String {
    format!(
        "1 validation error detected: Value '{arn}' at 'arn' failed to satisfy constraint: Member must satisfy \
         regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:[a-z]{{2}}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{{1}}:\\d{{12}}:layer:[a-zA-Z0-9-_]+:[0-9]+)"
    )
}

// ---------------------------------------------------------------------------------------------
// ECR (awsJson1.1)

fn ecr_error(status: u16, error_type: &str, message: &str) -> Response {
    Response::new(
        status,
        "application/x-amz-json-1.1",
        json!({"__type": error_type, "message": message})
            .to_string()
            .into_bytes(),
    )
}

fn ecr_token(password: &str) -> String {
    B64.encode(format!("AWS:{password}"))
}

fn ecr(
    st: &mut State,
    req: &Request,
    target: &str,
    signed: bool,
    region: Option<&str>,
) -> Response {
    let Some(op) = target.strip_prefix("AmazonEC2ContainerRegistry_V20150921.") else {
        return ecr_error(
            400,
            "UnknownOperationException",
            &format!("unknown target {target}"),
        );
    };
    if !signed {
        return ecr_error(
            400,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        );
    }
    if let Some(Fault::EcrStatus {
        status,
        error_type,
        message,
    }) = st.take_fault(|f| matches!(f, Fault::EcrStatus { .. }))
    {
        return ecr_error(status, &error_type, &message);
    }
    let region = region.unwrap_or("us-east-1");
    let input: Value = if req.body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&req.body) {
            Ok(v) => v,
            Err(e) => return ecr_error(400, "SerializationException", &e.to_string()),
        }
    };
    let ok = |v: Value| {
        Response::new(
            200,
            "application/x-amz-json-1.1",
            v.to_string().into_bytes(),
        )
    };
    let repo_json = |name: &str, created: f64| {
        json!({
            "repositoryArn": format!("arn:aws:ecr:{region}:{ACCOUNT}:repository/{name}"),
            "registryId": ACCOUNT,
            "repositoryName": name,
            "repositoryUri": format!("{ACCOUNT}.dkr.ecr.{region}.amazonaws.com/{name}"),
            "createdAt": created,
            "imageTagMutability": "MUTABLE",
            "imageScanningConfiguration": {"scanOnPush": false},
            "encryptionConfiguration": {"encryptionType": "AES256"},
        })
    };
    match op {
        "GetAuthorizationToken" => {
            let proxy = st
                .ecr_proxy_endpoint
                .clone()
                .unwrap_or_else(|| format!("https://{ACCOUNT}.dkr.ecr.{region}.amazonaws.com"));
            ok(json!({"authorizationData": [{
                "authorizationToken": ecr_token(&st.ecr_password),
                "expiresAt": now_epoch() + 12.0 * 3600.0,
                "proxyEndpoint": proxy,
            }]}))
        }
        "DescribeRepositories" => {
            let names: Option<Vec<String>> = input["repositoryNames"].as_array().map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            });
            let mut repos = Vec::new();
            match names {
                Some(names) => {
                    for n in names {
                        let Some(created) = st.ecr_repositories.get(&n) else {
                            return ecr_error(
                                400,
                                "RepositoryNotFoundException",
                                &format!(
                                    "The repository with name '{n}' does not exist in the registry with id '{ACCOUNT}'"
                                ),
                            );
                        };
                        repos.push(repo_json(&n, *created));
                    }
                }
                None => repos.extend(st.ecr_repositories.iter().map(|(n, c)| repo_json(n, *c))),
            }
            ok(json!({ "repositories": repos }))
        }
        "CreateRepository" => {
            let Some(name) = input["repositoryName"].as_str() else {
                return ecr_error(
                    400,
                    "InvalidParameterException",
                    "repositoryName is required",
                );
            };
            if st.ecr_repositories.contains_key(name) {
                return ecr_error(
                    400,
                    "RepositoryAlreadyExistsException",
                    &format!(
                        "The repository with name '{name}' already exists in the registry with id '{ACCOUNT}'"
                    ),
                );
            }
            let created = now_epoch();
            st.ecr_repositories.insert(name.into(), created);
            ok(json!({ "repository": repo_json(name, created) }))
        }
        _ => ecr_error(
            400,
            "UnknownOperationException",
            &format!("the fake does not implement {op}"),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Presigned downloads (S3-style)

fn s3_error_xml(code: &str, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message>\
         <RequestId>FAKE0REQUEST0ID</RequestId><HostId>ZmFrZS1ob3N0LWlk</HostId></Error>"
    )
}

fn download(st: &mut State, req: &Request) -> Response {
    let s3_error = |status: u16, code: &str, msg: &str| {
        Response::new(
            status,
            "application/xml",
            s3_error_xml(code, msg).into_bytes(),
        )
    };
    if req.method != "GET" && req.method != "HEAD" {
        return s3_error(
            405,
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
        );
    }
    let head = req.method == "HEAD";
    let q = query_pairs(&req.query);
    let qget = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    // A client that drops or mangles the presign parameters must fail like it would against S3.
    let required = [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
        "X-Amz-Security-Token",
    ];
    if required.iter().any(|k| qget(k).is_none()) {
        return s3_error(
            403,
            "AccessDenied",
            "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.",
        );
    }
    let Some((zip, signature)) = st.downloads.get(&req.path).cloned() else {
        return s3_error(404, "NoSuchKey", "The specified key does not exist.");
    };
    if qget("X-Amz-Signature") != Some(signature.as_str())
        || qget("X-Amz-Security-Token") != Some(PRESIGN_TOKEN)
    {
        return s3_error(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        );
    }
    match st.take_fault(Fault::is_download) {
        Some(Fault::DownloadStatus { status, body }) => {
            return Response::new(status, "application/xml", body.into_bytes());
        }
        Some(Fault::DownloadReset { after_bytes }) => {
            let mut r = Response::new(200, "application/zip", zip.to_vec());
            r.truncate_at = Some(after_bytes);
            return r;
        }
        _ => {}
    }
    let total = zip.len();
    let etag = format!("\"{}\"", &hex(&Sha256::digest(zip.as_slice()))[..32]);
    // Honour `Range: bytes=N-[M]` so resumable downloads can be tested.
    if let Some(range) = req.header("range") {
        let parsed = range
            .strip_prefix("bytes=")
            .and_then(|r| r.split_once('-'))
            .and_then(|(a, b)| {
                let start: usize = a.parse().ok()?;
                let end: usize = if b.is_empty() {
                    total.checked_sub(1)?
                } else {
                    b.parse::<usize>().ok()?.min(total.checked_sub(1)?)
                };
                (start <= end).then_some((start, end))
            });
        let Some((start, end)) = parsed else {
            return Response::new(
                416,
                "application/xml",
                s3_error_xml("InvalidRange", "The requested range is not satisfiable").into_bytes(),
            )
            .header("Content-Range", &format!("bytes */{total}"));
        };
        let mut r = Response::new(206, "application/zip", zip[start..=end].to_vec())
            .header("Content-Range", &format!("bytes {start}-{end}/{total}"))
            .header("ETag", &etag)
            .header("Accept-Ranges", "bytes");
        r.head = head;
        return r;
    }
    let mut r = Response::new(200, "application/zip", zip.to_vec())
        .header("ETag", &etag)
        .header("Accept-Ranges", "bytes");
    r.head = head;
    r
}

// ---------------------------------------------------------------------------------------------
// S3 (path-style REST, signed): PutObject only

fn s3(st: &mut State, req: &Request) -> Response {
    let s3_error = |status: u16, code: &str, msg: &str| {
        Response::new(
            status,
            "application/xml",
            s3_error_xml(code, msg).into_bytes(),
        )
    };
    if let Some(Fault::S3Status {
        status,
        code,
        message,
    }) = st.take_fault(|f| matches!(f, Fault::S3Status { .. }))
    {
        return s3_error(status, &code, &message);
    }
    let path = percent_decode(&req.path);
    let Some((bucket, key)) = path.trim_start_matches('/').split_once('/') else {
        return s3_error(
            400,
            "InvalidRequest",
            "the fake expects path-style /bucket/key requests",
        );
    };
    if req.method != "PUT" || key.is_empty() {
        return s3_error(501, "NotImplemented", "the fake implements PutObject only");
    }
    if !st.s3_buckets.contains(bucket) {
        return s3_error(404, "NoSuchBucket", "The specified bucket does not exist");
    }
    let body = match s3_body(req) {
        Ok(b) => b,
        Err((code, msg)) => return s3_error(400, code, &msg),
    };
    let etag = format!("\"{}\"", &hex(&Sha256::digest(&body))[..32]);
    st.s3_objects
        .insert((bucket.to_string(), key.to_string()), Arc::new(body));
    Response::new(200, "application/xml", Vec::new()).header("ETag", &etag)
}

/// The object bytes of a PutObject: the body as sent, or decoded from `aws-chunked` (what the SDK
/// sends with a trailing checksum). Declared lengths and checksums must match, as S3 checks them.
fn s3_body(req: &Request) -> Result<Vec<u8>, (&'static str, String)> {
    let content_sha = req.header("x-amz-content-sha256").unwrap_or("");
    let chunked = req
        .header("content-encoding")
        .is_some_and(|v| v.contains("aws-chunked"))
        || content_sha.starts_with("STREAMING-");
    let mut trailers: Vec<(String, String)> = Vec::new();
    let body = if chunked {
        let raw = &req.body;
        let mut out = Vec::new();
        let mut i = 0;
        let line = |from: usize| -> Result<(String, usize), (&'static str, String)> {
            let end = raw[from..].windows(2).position(|w| w == b"\r\n").ok_or((
                "IncompleteBody",
                "aws-chunked line without CRLF".to_string(),
            ))?;
            Ok((
                String::from_utf8_lossy(&raw[from..from + end]).into_owned(),
                from + end + 2,
            ))
        };
        loop {
            let (size_line, next) = line(i)?;
            let size_hex = size_line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_hex, 16).map_err(|_| {
                (
                    "InvalidRequest",
                    format!("bad aws-chunked size {size_line:?}"),
                )
            })?;
            i = next;
            if size == 0 {
                break;
            }
            if raw.len() < i + size + 2 {
                return Err(("IncompleteBody", "aws-chunked body is truncated".into()));
            }
            out.extend_from_slice(&raw[i..i + size]);
            i += size + 2;
        }
        while i < raw.len() {
            let (trailer, next) = line(i)?;
            i = next;
            if trailer.is_empty() {
                break;
            }
            if let Some((k, v)) = trailer.split_once(':') {
                trailers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        out
    } else {
        req.body.clone()
    };
    if let Some(len) = req.header("x-amz-decoded-content-length")
        && len.parse::<usize>().ok() != Some(body.len())
    {
        return Err((
            "IncompleteBody",
            format!(
                "x-amz-decoded-content-length {len} but {} bytes",
                body.len()
            ),
        ));
    }
    if content_sha.len() == 64 && content_sha != hex(&Sha256::digest(&body)) {
        return Err((
            "XAmzContentSHA256Mismatch",
            "The provided 'x-amz-content-sha256' header does not match what was computed.".into(),
        ));
    }
    let crc = B64.encode(crc32fast::hash(&body).to_be_bytes());
    let claimed = trailers
        .iter()
        .cloned()
        .chain(req.headers.iter().cloned())
        .filter(|(k, _)| k == "x-amz-checksum-crc32");
    for (_, v) in claimed {
        if v != crc {
            return Err((
                "BadDigest",
                format!(
                    "The CRC32 you specified did not match the calculated checksum ({v} != {crc})."
                ),
            ));
        }
    }
    Ok(body)
}

// ---------------------------------------------------------------------------------------------
// Small helpers (kept here so the fake needs no extra dev-dependencies)

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// (year, month, day, hour, minute, second) in UTC; days-from-civil inverse (H. Hinnant).
fn utc(t: SystemTime) -> (i64, u32, u32, u32, u32, u32) {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, sod) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (sod / 3600) as u32,
        (sod % 3600 / 60) as u32,
        (sod % 60) as u32,
    )
}

fn amz_date(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = utc(t);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

/// Lambda's CreatedDate format, e.g. `2026-11-21T10:00:00.000+0000`.
fn iso8601_lambda(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = utc(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.000+0000")
}
