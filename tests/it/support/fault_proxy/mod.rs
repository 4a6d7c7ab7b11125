//! A small HTTP/1.1 forwarding proxy on loopback between layerport and a registry, so push tests can
//! inject what real registries and networks do: 5xx answers, a connection reset in the middle of an
//! upload, ECR's immutable-tag refusal and ECR's NAME_UNKNOWN for a repository that does not exist.
//!
//! Requests are forwarded byte for byte (one upstream connection per request); the only rewrite is
//! of absolute `Location` headers that name the registry, which are made to name the proxy. Client
//! connections are kept alive; everything is bounded (header size, connections, timeouts).
//!
//! Layout, by concern: `faults` (the injectable faults and deciding what to do with a request),
//! `forward` (the accept loop, serving clients and relaying to the registry), `http` (HTTP/1.1
//! heads, bodies and canned answers), and `bearer` (the token-authenticated front, [`BearerProxy`]).
//! This file holds the shared state, stream tracking and the [`FaultProxy`] API tests use.

mod bearer;
mod faults;
mod forward;
mod http;

// The API tests import as `support::fault_proxy::*`; a test crate that uses only some of it would
// otherwise warn about the rest, since each test binary compiles `support` on its own.
#[allow(unused_imports)]
pub use bearer::{BEARER_SERVICE, BearerProxy, TokenRequest};
#[allow(unused_imports)]
pub use faults::{FaultKind, ProxyFault};

use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use forward::accept_loop;

const MAX_HEADER_BYTES: usize = 64 * 1024;
const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;
const MAX_CONNECTIONS: usize = 64;
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// The account named in the ECR-style error messages.
pub const ECR_ACCOUNT: &str = "123456789012";

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
    fn new(upstream: SocketAddr, addr: SocketAddr) -> Arc<Shared> {
        Arc::new(Shared {
            state: Mutex::new(State::default()),
            upstream,
            addr,
            stop: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            streams: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
        })
    }

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
        let shared = Shared::new(upstream, addr);
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
