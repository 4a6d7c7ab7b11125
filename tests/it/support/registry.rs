//! A real CNCF registry (`docker-registry`) on a loopback port with htpasswd basic auth, for push
//! tests: started per test, ready when `GET /v2/` answers, its log captured so tests can count the
//! upload requests it served, killed on Drop. Also the rest of a push test's kit: skopeo/umoci as
//! independent consumers, base images built with umoci, and layerport run in a clean home.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::tools::{require_tool, run_cmd, tool_ok, umoci_unpack};

/// How long a registry may take to start answering, and a synced log line to appear.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
const PORT_ATTEMPTS: usize = 5;

static SYNC_MARKS: AtomicUsize = AtomicUsize::new(0);

/// One request line of the registry's access log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessLine {
    pub method: String,
    /// Request URI as logged (path and query).
    pub uri: String,
    pub status: u16,
    pub user_agent: String,
}

impl AccessLine {
    /// A blob upload request: starting (POST), continuing (PATCH) or completing (PUT) an upload.
    pub fn is_upload(&self) -> bool {
        matches!(self.method.as_str(), "POST" | "PUT" | "PATCH")
            && self.uri.contains("/blobs/uploads/")
    }
}

/// A running `docker-registry serve`, with htpasswd users; killed (and waited for) on Drop.
pub struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    pub user: String,
    pub password: String,
}

impl Registry {
    /// A registry with one user, `tester`, and a fixed password.
    pub fn start() -> Registry {
        Registry::start_with_users(&[("tester", "s3cret-registry-pass")])
    }

    /// A registry accepting these users (bcrypt htpasswd, as docker-registry requires); the first
    /// one is `user`/`password`.
    pub fn start_with_users(users: &[(&str, &str)]) -> Registry {
        assert!(!users.is_empty(), "a registry needs at least one user");
        require_tool("docker-registry", "docker-registry");
        require_tool("htpasswd", "apache2-utils");
        let mut dir = tempfile::Builder::new()
            .prefix("registry-")
            .tempdir()
            .expect("temp dir");
        let mut htpasswd = String::new();
        for (user, pass) in users {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, pass])
                .output()
                .expect("run htpasswd");
            assert!(out.status.success(), "htpasswd failed: {out:?}");
            htpasswd.push_str(String::from_utf8_lossy(&out.stdout).trim());
            htpasswd.push('\n');
        }
        fs::write(dir.path().join("htpasswd"), htpasswd).expect("write htpasswd");
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let log = dir.path().join("registry.log");
            let config = dir.path().join("config.yml");
            fs::write(&config, config_yml(dir.path(), port)).expect("write config.yml");
            let log_file = fs::File::create(&log).expect("create registry log");
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().expect("clone log handle"))
                .stderr(log_file)
                .spawn()
                .expect("spawn docker-registry");
            let mut reg = Registry {
                child,
                port,
                dir,
                user: users[0].0.to_string(),
                password: users[0].1.to_string(),
            };
            match reg.wait_ready() {
                Ok(()) => return reg,
                Err(log) if log.contains("address already in use") => {
                    // Another process took the port between our probe and the registry's bind.
                    dir = reg.into_dir();
                }
                Err(log) => panic!("docker-registry did not start; its log:\n{log}"),
            }
        }
        panic!("docker-registry could not bind a free port in {PORT_ATTEMPTS} attempts");
    }

    /// Stops the process; a fresh directory with the same htpasswd, for a retry on another port.
    fn into_dir(mut self) -> tempfile::TempDir {
        self.stop();
        let dir = tempfile::Builder::new()
            .prefix("registry-")
            .tempdir()
            .expect("temp dir");
        fs::copy(
            self.dir.path().join("htpasswd"),
            dir.path().join("htpasswd"),
        )
        .expect("copy htpasswd");
        dir
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Polls until our process logs that it listens on its port and `GET /v2/` answers (any HTTP
    /// status), the process exits (Err with its log), or the deadline passes (panic).
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let listening = format!("listening on 127.0.0.1:{}", self.port);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Err(format!("(exited with {status})\n{}", self.log()));
            }
            if self.log().contains(&listening)
                && let Ok((code, _)) = self.raw_request("GET", "/v2/", &[], &[], false)
                && code > 0
            {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry on port {} not ready after {READY_TIMEOUT:?}; its log:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `127.0.0.1:PORT`, the host part of references (`--plain-http` takes this too).
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `user:password`, for skopeo's `--creds`/`--src-creds`/`--dest-creds`.
    pub fn creds(&self) -> String {
        format!("{}:{}", self.user, self.password)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// The whole log so far (not synced; see `synced_log`).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The log after every request answered so far has been logged: sends a marker request and
    /// waits (bounded) until the access log shows it.
    pub fn synced_log(&self) -> String {
        let n = SYNC_MARKS.fetch_add(1, Ordering::SeqCst);
        let mark = format!("/v2/layerport-sync-{}-{n}/tags/list", std::process::id());
        self.raw_request("GET", &mark, &[], &[], false)
            .unwrap_or_else(|e| panic!("sync request to the registry failed: {e}"));
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let log = self.log();
            if log.contains(&format!("\"GET {mark} ")) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "the registry never logged {mark}; its log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every access-log line so far (synced).
    pub fn access_lines(&self) -> Vec<AccessLine> {
        self.synced_log()
            .lines()
            .filter_map(parse_access_line)
            .collect()
    }

    /// Blob-upload requests (POST/PATCH/PUT under `/blobs/uploads/`) served so far.
    pub fn upload_requests(&self) -> usize {
        self.access_lines().iter().filter(|l| l.is_upload()).count()
    }

    /// Blob-upload requests served so far for one repository.
    pub fn upload_requests_for(&self, repository: &str) -> usize {
        let prefix = format!("/v2/{repository}/blobs/uploads/");
        self.access_lines()
            .iter()
            .filter(|l| l.is_upload() && l.uri.starts_with(&prefix))
            .count()
    }

    /// Writes `DIR/config.json` with basic credentials for this registry (and any `others`), the
    /// way `docker login` does; returns DIR for `DOCKER_CONFIG`.
    pub fn docker_config(&self, dir: &Path, others: &[&Registry]) -> PathBuf {
        let mut entries: Vec<(String, String, String)> =
            vec![(self.host(), self.user.clone(), self.password.clone())];
        entries.extend(
            others
                .iter()
                .map(|r| (r.host(), r.user.clone(), r.password.clone())),
        );
        write_docker_config(dir, &entries)
    }

    /// `PUT /v2/REPO/manifests/REFERENCE` with the first user's credentials; panics unless 201.
    pub fn put_manifest(&self, repository: &str, reference: &str, media_type: &str, body: &[u8]) {
        let path = format!("/v2/{repository}/manifests/{reference}");
        let (code, text) = self
            .raw_request("PUT", &path, &[("Content-Type", media_type)], body, true)
            .unwrap_or_else(|e| panic!("PUT {path}: {e}"));
        assert_eq!(code, 201, "PUT {path} answered {code}: {text}");
    }

    /// `skopeo inspect --raw` of `REPO:TAG` (or `REPO@DIGEST`) here: the manifest bytes as served.
    pub fn raw_manifest(&self, reference: &str) -> Vec<u8> {
        self.skopeo(&["inspect", "--raw"], reference).into_bytes()
    }

    /// `skopeo inspect` (its summary: Digest, Architecture, Layers, ...).
    pub fn inspect(&self, reference: &str) -> serde_json::Value {
        parse(&self.skopeo(&["inspect"], reference))
    }

    /// `skopeo inspect --config`: the image config as served.
    pub fn config(&self, reference: &str) -> serde_json::Value {
        parse(&self.skopeo(&["inspect", "--config"], reference))
    }

    fn skopeo(&self, args: &[&str], reference: &str) -> String {
        let image = format!("docker://{}/{reference}", self.host());
        let mut all: Vec<&str> = args.to_vec();
        let creds = self.creds();
        all.extend(["--tls-verify=false", "--creds", &creds, &image]);
        tool_ok("skopeo", "skopeo", &all)
    }

    /// `skopeo copy docker://HOST/REFERENCE oci:LAYOUT:TAG` (skopeo checks every blob's digest).
    pub fn copy_to_oci(&self, reference: &str, layout: &Path, tag: &str) {
        let src = format!("docker://{}/{reference}", self.host());
        if let Some(parent) = layout.parent() {
            fs::create_dir_all(parent).expect("create the layout's parent");
        }
        let dest = format!("oci:{}:{tag}", layout.display());
        let creds = self.creds();
        tool_ok(
            "skopeo",
            "skopeo",
            &[
                "copy",
                "--src-tls-verify=false",
                "--src-creds",
                &creds,
                &src,
                &dest,
            ],
        );
    }

    /// Pulls `reference` with skopeo into WORK/pulled and unpacks it with umoci into WORK/bundle:
    /// the rootfs.
    pub fn unpack(&self, reference: &str, work: &Path) -> PathBuf {
        let layout = work.join("pulled");
        self.copy_to_oci(reference, &layout, "t");
        umoci_unpack(&layout, "t", &work.join("bundle"))
    }

    /// `skopeo copy oci:LAYOUT:TAG docker://HOST/REFERENCE`, with `--format v2s2` when `docker`.
    pub fn push_oci(&self, layout: &Path, tag: &str, reference: &str, docker: bool) {
        let src = format!("oci:{}:{tag}", layout.display());
        let dest = format!("docker://{}/{reference}", self.host());
        let creds = self.creds();
        let mut args = vec!["copy", "--dest-tls-verify=false", "--dest-creds", &creds];
        if docker {
            args.extend(["--format", "v2s2"]);
        }
        args.extend([src.as_str(), dest.as_str()]);
        tool_ok("skopeo", "skopeo", &args);
    }

    /// One HTTP/1.1 request on a fresh connection (`Connection: close`): (status, body as text).
    fn raw_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        auth: bool,
    ) -> std::io::Result<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.set_write_timeout(Some(Duration::from_secs(10)))?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.host(),
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if auth {
            head.push_str(&format!(
                "Authorization: Basic {}\r\n",
                B64.encode(self.creds())
            ));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes())?;
        s.write_all(body)?;
        let mut resp = Vec::new();
        s.take(1 << 20).read_to_end(&mut resp)?;
        let text = String::from_utf8_lossy(&resp).into_owned();
        let code = text
            .strip_prefix("HTTP/1.1 ")
            .and_then(|r| r.get(..3))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        Ok((code, body.to_string()))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A scratch home for running layerport against registries with only the environment set here:
/// `DOCKER_CONFIG` is HOME/docker (empty until a test writes config.json), AWS config files are
/// empty and IMDS is off, so AWS reaches nothing unless the test adds variables.
pub struct PushHome {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Default for PushHome {
    fn default() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir_all(dir.path().join("docker")).expect("create docker config dir");
        for empty in ["aws-config", "aws-credentials"] {
            fs::write(dir.path().join(empty), "").expect("write empty AWS file");
        }
        PushHome {
            dir,
            env: Vec::new(),
        }
    }
}

impl PushHome {
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The `DOCKER_CONFIG` directory.
    pub fn docker_dir(&self) -> PathBuf {
        self.path("docker")
    }

    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.push((key.into(), value.into()));
    }

    /// `layerport --plain-http H... ARGS`: (exit code, stdout, stderr); a panic fails the test.
    pub fn run<S: AsRef<OsStr>>(&self, plain: &[&str], args: &[S]) -> (i32, String, String) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_layerport"));
        for host in plain {
            cmd.args(["--plain-http", host]);
        }
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("DOCKER_CONFIG", self.docker_dir())
            .env("XDG_CACHE_HOME", self.path("cache"))
            .env("AWS_CONFIG_FILE", self.path("aws-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", self.path("aws-credentials"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        let (code, stdout, stderr) = run_cmd(&mut cmd);
        assert!(!stderr.contains("panicked"), "layerport panicked: {stderr}");
        (code, stdout, stderr)
    }

    /// A push that must succeed, with `--json`: the JSON document.
    pub fn push_json<S: AsRef<OsStr>>(&self, plain: &[&str], args: &[S]) -> serde_json::Value {
        let mut all: Vec<OsString> = args.iter().map(|a| a.as_ref().to_owned()).collect();
        all.push("--json".into());
        let (code, stdout, stderr) = self.run(plain, &all);
        assert_eq!(code, 0, "push failed\nstdout: {stdout}\nstderr: {stderr}");
        parse(&stdout)
    }
}

/// Adds an image tagged `tag` to the umoci layout (created if needed): one layer holding
/// /etc/`file` with `content`, a Lambda-like config (Env, Entrypoint, Cmd, WorkingDir, a label) and
/// architecture `arch`.
pub fn umoci_image(layout: &Path, tag: &str, arch: &str, file: &str, content: &str) {
    let l = layout.to_string_lossy().into_owned();
    if !layout.exists() {
        tool_ok("umoci", "umoci", &["init", "--layout", &l]);
    }
    let image = format!("{l}:{tag}");
    tool_ok("umoci", "umoci", &["new", "--image", &image]);
    let bundle = layout.with_extension(format!("bundle-{tag}"));
    let b = bundle.to_string_lossy().into_owned();
    tool_ok(
        "umoci",
        "umoci",
        &["unpack", "--rootless", "--image", &image, &b],
    );
    fs::create_dir_all(bundle.join("rootfs/etc")).expect("mkdir etc");
    fs::write(bundle.join("rootfs/etc").join(file), content).expect("write base file");
    tool_ok("umoci", "umoci", &["repack", "--image", &image, &b]);
    let config = [
        "config",
        "--image",
        &image,
        "--config.env=FOO=bar",
        "--config.entrypoint=/entry",
        "--config.cmd=handler",
        "--config.workingdir=/var/task",
        "--config.label=team=x",
        "--architecture",
        arch,
        "--os",
        "linux",
    ];
    tool_ok("umoci", "umoci", &config);
}

// Reading what a push did.

/// A zip of testdata/good/sample.
pub fn zip_path(name: &str) -> String {
    let p = super::tools::testdata(&format!("good/sample/{name}"));
    p.to_string_lossy().into_owned()
}

/// `image ZIP... [--base BASE] --push TARGET` (a zip without `/` is one of testdata/good/sample).
pub fn push_args(zips: &[&str], base: Option<&str>, target: &str) -> Vec<String> {
    let mut args = vec!["image".to_string()];
    for z in zips {
        args.push(if z.contains('/') {
            z.to_string()
        } else {
            zip_path(z)
        });
    }
    if let Some(b) = base {
        args.extend(["--base".into(), b.into()]);
    }
    args.extend(["--push".into(), target.into()]);
    args
}

/// Every blob's status in a push's JSON, by digest.
pub fn statuses(doc: &serde_json::Value) -> std::collections::BTreeMap<String, String> {
    let blobs = doc["blobs"].as_array().expect("blobs in the push JSON");
    blobs
        .iter()
        .map(|b| {
            (
                b["digest"].as_str().unwrap().into(),
                b["status"].as_str().unwrap().into(),
            )
        })
        .collect()
}

/// `sha256:HEX` of some bytes (a manifest as served).
pub fn digest_of(raw: &[u8]) -> String {
    format!("sha256:{}", super::tools::sha256_hex(raw))
}

/// The layer digests of a manifest, in order.
pub fn layer_digests(manifest: &serde_json::Value) -> Vec<String> {
    let layers = manifest["layers"].as_array().expect("layers");
    layers
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

/// Writes `DIR/config.json` with `auths` entries (host, user, password); returns DIR.
pub fn write_docker_config(dir: &Path, entries: &[(String, String, String)]) -> PathBuf {
    let auths: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|(host, user, pass)| {
            (
                host.clone(),
                serde_json::json!({"auth": B64.encode(format!("{user}:{pass}"))}),
            )
        })
        .collect();
    fs::create_dir_all(dir).expect("create docker config dir");
    fs::write(
        dir.join("config.json"),
        serde_json::json!({ "auths": auths }).to_string(),
    )
    .expect("write docker config");
    dir.to_path_buf()
}

/// What Basic credentials `user`/`password` look like in any output: the password, the base64 of
/// `user:password` and the whole `Basic …` header value, for `tools::assert_no_secrets`.
pub fn basic_auth_secrets(user: &str, password: &str) -> Vec<String> {
    let b64 = B64.encode(format!("{user}:{password}"));
    vec![password.to_string(), format!("Basic {b64}"), b64]
}

/// A port nobody listens on right now (bound on 127.0.0.1:0, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

fn config_yml(dir: &Path, port: u16) -> String {
    format!(
        "version: 0.1\n\
         log:\n  level: info\n  accesslog:\n    disabled: false\n\
         storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n\
         auth:\n  htpasswd:\n    realm: test\n    path: {htpasswd}\n",
        data = dir.join("data").display(),
        htpasswd = dir.join("htpasswd").display(),
    )
}

/// `127.0.0.1 - - [date] "METHOD URI HTTP/1.1" STATUS SIZE "referer" "user agent"` (combined format).
fn parse_access_line(line: &str) -> Option<AccessLine> {
    let (_, rest) = line.split_once(" - - [")?;
    let (_, rest) = rest.split_once("] \"")?;
    let (request, rest) = rest.split_once("\" ")?;
    let mut parts = request.split(' ');
    let method = parts.next()?.to_string();
    let uri = parts.next()?.to_string();
    let status = rest.split(' ').next()?.parse().ok()?;
    let user_agent = rest
        .rsplit_once(" \"")
        .map(|(_, ua)| ua.trim_end().trim_end_matches('"').to_string())
        .unwrap_or_default();
    Some(AccessLine {
        method,
        uri,
        status,
        user_agent,
    })
}

fn parse(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}
