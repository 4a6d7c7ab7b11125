//! Proves that a registry whose TLS certificate is not trusted fails at once with a hint about its
//! CA (no retries: every retry would meet the same certificate), and that trusting the CA through
//! `SSL_CERT_FILE` is enough to reach it — through the same rustls stack the binary ships.

use crate::support::tools::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use tempfile::TempDir;

/// A CA, and a server certificate it signed for 127.0.0.1.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        tool_ok("openssl", "openssl", args);
    };
    let d = |name: &str| dir.join(name).to_str().unwrap().to_string();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=layerport test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
        "-keyout",
        &d("ca.key"),
        "-out",
        &d("ca.pem"),
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &d("server.key"),
        "-out",
        &d("server.csr"),
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &d("server.csr"),
        "-CA",
        &d("ca.pem"),
        "-CAkey",
        &d("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &d("server.ext"),
        "-out",
        &d("server.pem"),
    ]);
}

/// An HTTPS server on a free loopback port that answers every GET like a registry that lacks the
/// manifest, and logs each request it got to `requests.log`.
struct TlsServer {
    child: Child,
    port: u16,
}

impl TlsServer {
    fn start(dir: &Path) -> TlsServer {
        require_tool("python3", "python3");
        let script = r#"
import http.server, ssl, sys
log = open(sys.argv[3], "a")
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        log.write(self.path + "\n"); log.flush()
        body = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}'
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_HEAD = do_GET
    def log_message(self, *a): pass
srv = http.server.HTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(dir.join("server.pem"))
            .arg(dir.join("server.key"))
            .arg(dir.join("requests.log"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3 https server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the server printed its port");
        TlsServer { child, port }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn check_against(server: &TlsServer, ca_bundle: Option<&Path>) -> (i32, String, String) {
    let mut cmd = layerport();
    cmd.args(["check", &format!("127.0.0.1:{}/lambda/fn:v1", server.port)]);
    cmd.env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR");
    if let Some(bundle) = ca_bundle {
        cmd.env("SSL_CERT_FILE", bundle);
    }
    run_cmd(&mut cmd)
}

#[test]
fn an_untrusted_certificate_fails_at_once_with_a_ca_hint_and_trusting_the_ca_reaches_the_registry()
{
    let tmp = TempDir::new().unwrap();
    make_certificates(tmp.path());
    let server = TlsServer::start(tmp.path());

    let (code, _, err) = check_against(&server, None);
    assert_eq!(code, 1, "stderr: {err}");
    assert!(err.contains("certificate"), "names the certificate: {err}");
    assert!(
        err.contains("hint:") && err.contains("SSL_CERT_FILE"),
        "{err}"
    );
    assert!(
        !err.contains("retrying"),
        "a certificate is not retried: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let requests = std::fs::read_to_string(tmp.path().join("requests.log")).unwrap_or_default();
    assert!(
        requests.is_empty(),
        "no request passed the handshake: {requests}"
    );

    let (code, _, err) = check_against(&server, Some(&tmp.path().join("ca.pem")));
    assert_ne!(code, 0, "the registry has no such image: {err}");
    assert!(
        !err.contains("certificate"),
        "the CA from SSL_CERT_FILE is trusted: {err}"
    );
    let requests = std::fs::read_to_string(tmp.path().join("requests.log")).unwrap();
    assert!(
        requests
            .lines()
            .any(|l| l.contains("/v2/lambda/fn/manifests/v1")),
        "the manifest was asked for over TLS: {requests}"
    );
}
