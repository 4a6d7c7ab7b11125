//! Shared helpers for the integration tests: run the real `layerport` binary, find test data, require
//! the independent consumers (umoci, skopeo, ...) loudly, read OCI layouts and layer tars, and
//! snapshot directory trees so two views of the same image can be compared.

use flate2::read::GzDecoder;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// mtime of a synthesised directory (and of the prefix dirs) when `SOURCE_DATE_EPOCH` is not set.
pub const SYNTH_MTIME: i64 = 315_532_800;
/// mtime of every entry of an Info-ZIP test zip (from its extended-timestamp field).
pub const INFOZIP_MTIME: i64 = 1_704_164_645;
/// mtime of every entry of a Python-zipfile test zip (DOS time only, which rounds down).
pub const PYZIP_MTIME: i64 = 1_704_164_644;

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_layerport"))
}

/// A file under `testdata/`, checked to exist.
pub fn testdata(rel: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(rel);
    assert!(p.exists(), "test data {} is missing", p.display());
    p
}

/// A `layerport` command with an environment that cannot change its output (no inherited
/// `SOURCE_DATE_EPOCH`, `RUST_LOG` or AWS settings).
pub fn layerport() -> Command {
    let mut cmd = Command::new(bin());
    for var in ["SOURCE_DATE_EPOCH", "RUST_LOG", "AWS_PROFILE", "AWS_REGION"] {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs a prepared command: (exit code, stdout, stderr). A signal death counts as code -1.
pub fn run_cmd(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `layerport ARGS...`: (exit code, stdout, stderr).
pub fn run<S: AsRef<OsStr>>(args: &[S]) -> (i32, String, String) {
    run_cmd(layerport().args(args))
}

/// Runs `layerport ARGS...`, asserts exit 0 and no panic, returns stdout.
pub fn run_ok<S: AsRef<OsStr>>(args: &[S]) -> String {
    let mut cmd = layerport();
    cmd.args(args);
    let (code, stdout, stderr) = run_cmd(&mut cmd);
    assert_eq!(
        code, 0,
        "{cmd:?} failed\nstdout: {stdout}\nstderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{cmd:?} panicked: {stderr}");
    stdout
}

/// Secrets shorter than this are not looked for: they could occur in any output by chance.
pub const MIN_SECRET_LEN: usize = 8;

/// Asserts that none of `secrets` (those of at least `MIN_SECRET_LEN` chars) occurs in any of
/// `outputs` (stdout, stderr, ...). Panics when no secret is left to look for, so a check that
/// cannot fail does not pass silently.
pub fn assert_no_secrets<S: AsRef<str>>(secrets: &[S], outputs: &[&str]) {
    let secrets: Vec<&str> = secrets
        .iter()
        .map(|s| s.as_ref())
        .filter(|s| s.len() >= MIN_SECRET_LEN)
        .collect();
    assert!(
        !secrets.is_empty(),
        "no secret of at least {MIN_SECRET_LEN} chars to look for"
    );
    for (i, out) in outputs.iter().enumerate() {
        for s in &secrets {
            assert!(
                !out.contains(s),
                "secret {s:?} leaked into output #{i}:\n{out}"
            );
        }
    }
}

/// Panics (never skips) when an external tool the test needs is not installed.
pub fn require_tool(name: &str, debian_package: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| is_executable(&d.join(name))))
        .unwrap_or(false);
    assert!(
        found,
        "{name} not found: install it with `apt-get install {debian_package}` (scripts/test.sh does this)"
    );
}

fn is_executable(p: &Path) -> bool {
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs an external tool (after `require_tool`) and asserts it succeeds; returns stdout.
pub fn tool_ok<S: AsRef<OsStr>>(name: &str, package: &str, args: &[S]) -> String {
    require_tool(name, package);
    let mut cmd = Command::new(name);
    cmd.args(args);
    let (code, stdout, stderr) = run_cmd(&mut cmd);
    assert_eq!(
        code, 0,
        "{cmd:?} failed\nstdout: {stdout}\nstderr: {stderr}"
    );
    stdout
}

/// `skopeo inspect REFERENCE` (e.g. `oci:DIR:TAG`, `docker-archive:FILE`) must succeed: its JSON
/// summary (Digest, Architecture, Os, Layers, ...). Registries with credentials: `Registry::inspect`.
pub fn skopeo_inspect(reference: &str) -> Value {
    parse_json(&tool_ok("skopeo", "skopeo", &["inspect", reference]))
}

/// Raw stdout bytes of an external tool that must succeed (e.g. `unzip -p`).
pub fn tool_bytes<S: AsRef<OsStr>>(name: &str, package: &str, args: &[S]) -> Vec<u8> {
    require_tool(name, package);
    let out = Command::new(name).args(args).output().expect("run tool");
    assert!(
        out.status.success(),
        "{name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `umoci unpack --rootless --image DIR:TAG BUNDLE`; returns BUNDLE/rootfs.
pub fn umoci_unpack(layout: &Path, tag: &str, bundle: &Path) -> PathBuf {
    let image = format!("{}:{tag}", layout.display());
    tool_ok(
        "umoci",
        "umoci",
        &[
            OsStr::new("unpack"),
            OsStr::new("--rootless"),
            OsStr::new("--image"),
            OsStr::new(&image),
            bundle.as_os_str(),
        ],
    );
    let rootfs = bundle.join("rootfs");
    assert!(
        rootfs.is_dir(),
        "umoci made no rootfs in {}",
        bundle.display()
    );
    rootfs
}

/// Extracts a zip with Info-ZIP `unzip` (an independent reader) and returns the tree it made.
pub fn unzip_tree(zip: &Path, tmp: &Path) -> Tree {
    let dest = tmp.join(format!(
        "unzip-{}",
        zip.file_name().unwrap().to_string_lossy()
    ));
    tool_ok(
        "unzip",
        "unzip",
        &[
            "-q".as_ref(),
            zip.as_os_str(),
            "-d".as_ref(),
            dest.as_os_str(),
        ],
    );
    tree(&dest)
}

/// (kind, data) only: the parts every extractor must agree on.
pub fn shape(t: &Tree) -> Vec<(String, Kind, Vec<u8>)> {
    t.iter()
        .map(|(k, n)| (k.clone(), n.kind, n.data.clone()))
        .collect()
}

/// An entry for `make_zip`: unix-mode file, directory or symlink (target as content).
pub enum ZipEntry<'a> {
    File(&'a str, &'a [u8], u32),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
}

/// Writes a small deflated zip with unix modes and a fixed DOS time (2024-01-02 03:04:06 UTC).
pub fn make_zip(path: &Path, entries: &[ZipEntry]) {
    use std::io::Write as _;
    use zip::write::SimpleFileOptions;
    let time = zip::DateTime::from_date_and_time(2024, 1, 2, 3, 4, 6).unwrap();
    let opts = SimpleFileOptions::default().last_modified_time(time);
    let mut zw = zip::ZipWriter::new(fs::File::create(path).expect("create zip"));
    for e in entries {
        match e {
            ZipEntry::File(name, data, mode) => {
                zw.start_file(*name, opts.unix_permissions(*mode)).unwrap();
                zw.write_all(data).unwrap();
            }
            ZipEntry::Dir(name) => zw
                .add_directory(*name, opts.unix_permissions(0o755))
                .unwrap(),
            ZipEntry::Symlink(name, target) => zw.add_symlink(*name, *target, opts).unwrap(),
        }
    }
    zw.finish().expect("finish zip");
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

/// One filesystem object: kind, permission bits (0o7777), file content or link target, mtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    pub mode: u32,
    pub data: Vec<u8>,
    pub mtime: i64,
}

pub type Tree = BTreeMap<String, Node>;

/// Everything below `root` (not `root` itself), keyed by `/`-joined relative path.
pub fn tree(root: &Path) -> Tree {
    let mut out = Tree::new();
    walk(root, "", &mut out);
    out
}

fn walk(dir: &Path, rel: &str, out: &mut Tree) {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").file_name())
        .collect();
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let key = if rel.is_empty() {
            name.to_string_lossy().into_owned()
        } else {
            format!("{rel}/{}", name.to_string_lossy())
        };
        let meta = fs::symlink_metadata(&path).expect("lstat");
        let ft = meta.file_type();
        let (kind, data) = if ft.is_symlink() {
            let target = fs::read_link(&path).expect("readlink");
            (Kind::Symlink, target.into_os_string().into_encoded_bytes())
        } else if ft.is_dir() {
            (Kind::Dir, Vec::new())
        } else if ft.is_file() {
            (Kind::File, fs::read(&path).expect("read file"))
        } else {
            panic!("unexpected file type at {}", path.display());
        };
        out.insert(
            key.clone(),
            Node {
                kind,
                mode: meta.mode() & 0o7777,
                data,
                mtime: meta.mtime(),
            },
        );
        if kind == Kind::Dir {
            walk(&path, &key, out);
        }
    }
}

/// All paths below `root` (files, dirs, links), for "nothing was left behind" checks.
pub fn list_all(root: &Path) -> Vec<String> {
    tree(root).into_keys().collect()
}

/// The subtree under `prefix/`, with keys made relative to it.
pub fn subtree(t: &Tree, prefix: &str) -> Tree {
    let p = format!("{prefix}/");
    t.iter()
        .filter_map(|(k, v)| k.strip_prefix(&p).map(|r| (r.to_string(), v.clone())))
        .collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

pub fn read_json(path: &Path) -> Value {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

pub fn parse_json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// Canonical JSON: keys sorted by bytes, no insignificant whitespace (independent of serde_json's
/// map ordering features).
pub fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", Value::String((*k).clone()), canonical(&m[*k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// Path of a blob in an OCI layout, checked to exist and to match its digest.
pub fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    let p = layout.join("blobs/sha256").join(hex);
    let bytes = fs::read(&p).unwrap_or_else(|e| panic!("blob {digest}: {e}"));
    assert_eq!(
        sha256_hex(&bytes),
        hex,
        "blob {digest} does not match its digest"
    );
    p
}

pub fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    fs::read(blob_path(layout, digest)).expect("read blob")
}

/// The manifest descriptor tagged `tag` in index.json, and the parsed manifest.
pub fn manifest_for_tag(layout: &Path, tag: &str) -> (Value, Value) {
    let index = read_json(&layout.join("index.json"));
    let desc = index["manifests"]
        .as_array()
        .expect("index.json manifests")
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no manifest tagged {tag} in {index}"))
        .clone();
    let manifest: Value =
        serde_json::from_slice(&blob(layout, desc["digest"].as_str().unwrap())).unwrap();
    (desc, manifest)
}

pub fn config_of(layout: &Path, manifest: &Value) -> Value {
    serde_json::from_slice(&blob(
        layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ))
    .unwrap()
}

/// Layer blobs of the manifest tagged `tag`, gunzipped, in order.
pub fn layer_tars(layout: &Path, tag: &str) -> Vec<Vec<u8>> {
    let (_, manifest) = manifest_for_tag(layout, tag);
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| gunzip(&blob(layout, l["digest"].as_str().unwrap())))
        .collect()
}

pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("layer blob is not valid gzip");
    out
}

/// One tar entry as written (path with its trailing `/` for directories, PAX/GNU long names resolved).
#[derive(Clone, Debug)]
pub struct TarEntry {
    pub path: String,
    pub entry_type: tar::EntryType,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub uname: Vec<u8>,
    pub gname: Vec<u8>,
    pub mtime: u64,
    pub data: Vec<u8>,
    pub link: Option<String>,
}

/// Reads every entry of an uncompressed tar with the `tar` crate (no unpacking to disk).
pub fn tar_entries(tar_bytes: &[u8]) -> Vec<TarEntry> {
    let mut archive = tar::Archive::new(tar_bytes);
    let mut out = Vec::new();
    for entry in archive.entries().expect("tar entries") {
        let mut entry = entry.expect("tar entry");
        let path = String::from_utf8(entry.path_bytes().into_owned()).expect("utf-8 path");
        let link = entry
            .link_name_bytes()
            .map(|b| String::from_utf8(b.into_owned()).expect("utf-8 link"));
        let h = entry.header().clone();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("tar data");
        out.push(TarEntry {
            path,
            entry_type: h.entry_type(),
            mode: h.mode().expect("mode"),
            uid: h.uid().expect("uid"),
            gid: h.gid().expect("gid"),
            uname: h.username_bytes().unwrap_or_default().to_vec(),
            gname: h.groupname_bytes().unwrap_or_default().to_vec(),
            mtime: h.mtime().expect("mtime"),
            data,
            link,
        });
    }
    out
}

/// The tree a tar describes (paths without trailing `/`), as `tree` would see it on disk.
/// Panics on entry types a Lambda layer must not contain (hardlinks, devices, ...).
pub fn tar_tree(entries: &[TarEntry]) -> Tree {
    let mut out = Tree::new();
    for e in entries {
        let kind = match e.entry_type {
            tar::EntryType::Regular => Kind::File,
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink,
            other => panic!("{}: unexpected tar entry type {other:?}", e.path),
        };
        let data = match kind {
            Kind::Symlink => e.link.clone().expect("symlink target").into_bytes(),
            _ => e.data.clone(),
        };
        let key = e.path.trim_end_matches('/').to_string();
        let node = Node {
            kind,
            mode: e.mode & 0o7777,
            data,
            mtime: e.mtime as i64,
        };
        assert!(out.insert(key, node).is_none(), "{} appears twice", e.path);
    }
    out
}

/// Checks the structural layer rules on one tar: explicit parents before children, sorted by path
/// bytes, root-owned without names, no hardlinks, and `prefix` dirs (e.g. `["opt/"]`) first.
pub fn assert_layer_rules(entries: &[TarEntry], prefix_dirs: &[&str]) {
    assert!(!entries.is_empty(), "empty layer tar");
    for (i, want) in prefix_dirs.iter().enumerate() {
        assert_eq!(entries[i].path, *want, "prefix dir {i}");
        assert_eq!(entries[i].entry_type, tar::EntryType::Directory);
    }
    let mut seen_dirs = std::collections::HashSet::new();
    let mut prev: Option<String> = None;
    for e in entries {
        let p = e.path.trim_end_matches('/');
        assert!(
            !p.is_empty() && !p.starts_with('/'),
            "bad path {:?}",
            e.path
        );
        assert!(
            !p.split('/').any(|c| c == ".." || c == "." || c.is_empty()),
            "bad path {:?}",
            e.path
        );
        if let Some((parent, _)) = p.rsplit_once('/') {
            assert!(
                seen_dirs.contains(parent),
                "{:?} comes before (or without) its parent directory entry",
                e.path
            );
        }
        if let Some(prev) = &prev {
            assert!(
                prev.as_bytes() < p.as_bytes(),
                "entries not sorted by path bytes: {prev:?} then {p:?}"
            );
        }
        prev = Some(p.to_string());
        assert_ne!(e.entry_type, tar::EntryType::Link, "hardlink {}", e.path);
        assert!(
            matches!(
                e.entry_type,
                tar::EntryType::Regular | tar::EntryType::Directory | tar::EntryType::Symlink
            ),
            "{}: entry type {:?}",
            e.path,
            e.entry_type
        );
        assert_eq!((e.uid, e.gid), (0, 0), "{} not owned by 0:0", e.path);
        assert!(
            e.uname.is_empty() && e.gname.is_empty(),
            "{} has user/group names {:?}/{:?}",
            e.path,
            String::from_utf8_lossy(&e.uname),
            String::from_utf8_lossy(&e.gname)
        );
        assert_eq!(e.mode & 0o7000, 0, "{} keeps setuid/setgid/sticky", e.path);
        if e.entry_type == tar::EntryType::Directory {
            assert!(
                e.path.ends_with('/'),
                "dir entry {:?} without trailing /",
                e.path
            );
            seen_dirs.insert(p.to_string());
        }
    }
}

/// `mtime` zeroed everywhere, for comparing trees whose times are checked elsewhere.
pub fn without_mtimes(t: &Tree) -> Tree {
    t.iter()
        .map(|(k, v)| {
            (
                k.clone(),
                Node {
                    mtime: 0,
                    ..v.clone()
                },
            )
        })
        .collect()
}
