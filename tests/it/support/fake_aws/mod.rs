//! A fake AWS endpoint on loopback (Lambda restJson1 layer and function APIs, ECR awsJson1.1,
//! presigned S3-style downloads), so integration tests can drive the real `aws-sdk-*` clients and
//! inject faults deterministically.
//!
//! It is a small blocking HTTP/1.1 server (one thread per connection) because the SDK keeps
//! connections alive and reuses them; it needs no async runtime, so sync and async tests can use it.
//! Routing: an `X-Amz-Target` header means ECR, a `/2018-10-31/layers` path means Lambda layers,
//! the function paths (`/2015-03-31/functions`, event source mappings, URL, provisioned
//! concurrency, code signing, tags) mean Lambda functions, and a `/snapshots/` path is a download
//! from the presigned-looking URL given in a layer's `Content.Location` or a function's
//! `Code.Location`.
//!
//! Layout, one file per protocol: `http` (HTTP/1.1 plumbing), `lambda` (layers), `functions` and
//! `function_write` (function APIs), `function_state` (the function model), `function_api` (the
//! tests' API for functions), `ecr`, `s3` (PutObject), `download` (presigned S3-style GETs),
//! `faults` (fault injection and download gates), and `util` (encoding and date helpers). This
//! file holds the server, its shared state, routing, and the public API tests use for layers,
//! downloads, faults and ECR.

mod download;
mod ecr;
mod faults;
mod function_api;
mod function_state;
mod function_write;
mod functions;
mod http;
mod lambda;
mod s3;
mod util;

pub use faults::{Fault, Gate};
pub use function_state::{FunctionCode, FunctionSpec, FunctionStatus};

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use download::{download, s3_error_xml};
use ecr::{ecr, ecr_token};
use function_state::StoredFunction;
use functions::{functions, is_function_path};
use http::{Request, Response, accept_loop};
use lambda::{lambda, parse_layer_arn, store_version};
use s3::s3;
use util::{now_epoch, query_pairs};

/// The account that owns layers published through the fake and its ECR registry.
pub const ACCOUNT: &str = "123456789012";
/// Session token embedded in every presigned download URL; tests grep output for it.
pub const PRESIGN_TOKEN: &str = "IQoJb3JpZ2luFAKEAWSPRESIGNSECRETTOKENdoNotLeak0123456789";
const DEFAULT_ECR_PASSWORD: &str = "FAKEAWS-ECR-PASSWORD-doNotLeak-9f3a7c";

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
    /// The Lambda function operation routed to ("GetFunction", "CreateFunction", ...); `None` for
    /// layer, ECR, S3 and download requests.
    pub operation: Option<&'static str>,
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
    /// Download path → requests answered for it.
    download_hits: HashMap<String, usize>,
    /// Unqualified function ARN → function.
    functions: BTreeMap<String, StoredFunction>,
    /// EventSourceMappingConfiguration JSON objects.
    event_source_mappings: Vec<Value>,
    /// CreateFunction request bodies, in arrival order (JSON null when unparseable).
    create_requests: Vec<Value>,
    /// UpdateFunctionCode (FunctionName from the path, body).
    update_code_requests: Vec<(String, Value)>,
    /// How many configuration reads a create or update stays Pending / InProgress.
    pending_reads: u32,
    /// Lambda operations (= IAM actions without `lambda:`) the caller is denied.
    denied_actions: BTreeSet<String>,
    /// Layer version ARNs whose GetLayerVersionByArn the caller is denied.
    denied_layers: BTreeSet<String>,
    /// ImageUri (by tag) → `repo@sha256:..`, for CreateFunction / UpdateFunctionCode.
    image_digests: HashMap<String, String>,
    /// Makes every stored function version's download path unique.
    version_nonce: u64,
}

impl State {
    /// Removes and returns the first queued fault accepted by `pred`.
    fn take_fault(&mut self, pred: impl Fn(&Fault) -> bool) -> Option<Fault> {
        let i = self.faults.iter().position(pred)?;
        self.faults.remove(i)
    }

    /// Whose bytes a download path serves: a layer version ARN, or a function ARN (qualified by
    /// version number for a published version).
    fn download_owner(&self, path: &str) -> Option<String> {
        let layer = self
            .layers
            .values()
            .flat_map(|versions| versions.values())
            .find(|v| v.download_path == path)
            .map(StoredLayerVersion::version_arn);
        layer.or_else(|| {
            self.functions.values().find_map(|f| {
                if f.latest.download_path == path {
                    return Some(f.arn());
                }
                f.versions
                    .iter()
                    .find(|(_, v)| v.download_path == path)
                    .map(|(n, _)| format!("{}:{n}", f.arn()))
            })
        })
    }

    /// The download path of a layer version ARN or a function ARN (optionally `:<version>`).
    fn download_path_of(&self, arn: &str) -> Option<String> {
        if let Some(a) = parse_layer_arn(arn) {
            return Some(
                self.layers
                    .get(&a.layer_arn)?
                    .get(&a.version?)?
                    .download_path
                    .clone(),
            );
        }
        let r = function_state::parse_function_name(arn, "")?;
        let f = self.functions.get(&r.arn)?;
        let (v, _, _) = f.resolve(r.qualifier.as_deref())?;
        Some(v.download_path.clone()).filter(|p| !p.is_empty())
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
                pending_reads: 1,
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

    /// Holds every download of `arn` (a layer version ARN, or a zip function's ARN for its code,
    /// `:<n>` for a published version) until `gate` opens, so tests can prove that other work
    /// overlaps this download. A download still held after `timeout` expires the gate: it is
    /// answered 500 InternalError, and so is every later one, at once. Panics on an unknown ARN.
    pub fn hold_download(&self, arn: &str, gate: Gate, timeout: Duration) {
        let mut st = self.shared.state();
        let path = st
            .download_path_of(arn)
            .unwrap_or_else(|| panic!("hold_download: no layer version or zip function {arn}"));
        st.holds.insert(path, (gate, timeout));
    }

    /// Calls `f(ARN, status)` for each download (a layer version ARN, or the function ARN of a
    /// code download) just before its answer is written, so what `f` records is ordered before
    /// anything the client does with those bytes.
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
    /// password and its token, session tokens and signatures seen in signed requests, and the
    /// values of every function's environment variables (register distinctive ones).
    pub fn secret_strings(&self) -> Vec<String> {
        let st = self.shared.state();
        let mut out = vec![
            PRESIGN_TOKEN.to_string(),
            st.ecr_password.clone(),
            ecr_token(&st.ecr_password),
        ];
        out.extend(st.downloads.values().map(|(_, sig)| sig.clone()));
        out.extend(st.seen_secrets.iter().cloned());
        for f in st.functions.values() {
            let versions = std::iter::once(&f.latest).chain(f.versions.values());
            out.extend(versions.flat_map(|v| v.spec.environment.values().cloned()));
        }
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
        } else if is_function_path(&req.path) {
            functions(&mut st, &shared.endpoint, req, sig.is_some(), region)
        } else if req.path.starts_with("/snapshots/") {
            st.downloads_served += 1;
            *st.download_hits.entry(req.path.clone()).or_default() += 1;
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
        operation: is_function_path(&req.path)
            .then(|| functions::operation_name(req))
            .flatten(),
        region: sig.as_ref().map(|s| s.region.clone()),
        service: sig.as_ref().map(|s| s.service.clone()),
        headers: req.headers.clone(),
        status: resp.status,
    });
    if req.path.starts_with("/snapshots/") {
        let (observer, arn) = {
            let st = shared.state();
            (st.download_observer.clone(), st.download_owner(&req.path))
        };
        if let (Some(observer), Some(arn)) = (observer, arn) {
            observer(&arn, resp.status);
        }
    }
    resp
}
