//! Bearer front: the proxy plays a token-authenticated registry (Docker Hub, GHCR, Harbor style) in
//! front of the htpasswd registry, so tests can drive layerport's token flow against a real registry.
//!
//! A `/v2/` request without `Authorization: Bearer TOKEN` gets 401 and a Bearer challenge naming
//! the proxy's own `/token` realm; `GET /token` (recorded) answers `{"token": TOKEN}`; an authorized
//! request reaches the registry with its Authorization header replaced by the registry's Basic
//! credentials. Faults are not injected in this mode.

use sha2::{Digest, Sha256};
use std::io::{self, BufReader};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use super::forward::{forward, record};
use super::http::{Head, copy_body, read_head, respond_with};
use super::{FaultProxy, IO_TIMEOUT, MAX_CONNECTIONS, ProxiedRequest, Shared, lock};

/// The service named in the bearer challenge.
pub const BEARER_SERVICE: &str = "fake-registry";

/// One request to the bearer front's token endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    /// Every `scope` query parameter, decoded, in order.
    pub scopes: Vec<String>,
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
        let shared = Shared::new(upstream, addr);
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
            let scopes = query
                .split('&')
                .filter_map(|p| p.split_once('='))
                .filter(|(k, _)| *k == "scope")
                .map(|(_, v)| form_decode(v))
                .collect();
            lock(&bearer.token_requests).push(TokenRequest {
                scopes,
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
