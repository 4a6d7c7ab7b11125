//! A stand-in for the AWS Lambda Python base image, built on this machine (no Docker, no registry)
//! so that tests can prove an image layerport writes really runs: a Debian minbase root filesystem
//! with python3 from `debootstrap`, a stand-in `/lambda-entrypoint.sh` and runtime
//! (`lambda_stand_in/`), packed deterministically into a one-layer OCI layout whose config is
//! shaped like `public.ecr.aws/lambda/python`'s (Entrypoint, Cmd, WorkingDir, Env).
//!
//! The root filesystem is built once per machine and the layout once per version of this module,
//! both under `$XDG_CACHE_HOME/layerport-tests` (else `~/.cache/layerport-tests`): each is built in
//! a temporary directory under a lock file and renamed into place, so concurrent test processes
//! wait for one build instead of corrupting it. `LAYERPORT_TEST_DEBIAN_MIRROR` overrides the
//! mirror.

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use super::images::{self, OCI_CONFIG, OCI_MANIFEST};
use super::tools::{canonical, manifest_for_tag, require_tool, run_cmd};

/// The tag of the base in its layout.
pub const BASE_TAG: &str = "python";
/// What debootstrap installs; part of the root filesystem's cache key.
const DEBOOTSTRAP_ARGS: [&str; 3] = ["--variant=minbase", "--include=python3", "bookworm"];
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
/// Every entry's mtime in the base layer (2024-01-01T00:00:00Z).
pub const MTIME: u64 = 1_704_067_200;
/// Directories whose contents the image does not need (apt indexes and caches, docs, translations,
/// logs): kept as empty directories, they would only make every test unpack ~140 MB more.
const TRIMMED: [&str; 7] = [
    "usr/share/doc",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/man",
    "var/cache/apt",
    "var/lib/apt/lists",
    "var/log",
];
const ENTRYPOINT: &str = include_str!("lambda_stand_in/lambda-entrypoint.sh");
const RUNTIME: &str = include_str!("lambda_stand_in/bootstrap.py");
/// This file: any change to how the layout is made gives a new layout cache key.
const THIS_MODULE: &str = include_str!("lambda_base.rs");

/// The cached stand-in base. Its layout is shared by every test of every process: read it, pass
/// it as `--base`, never write into it (`write_to` makes a private copy).
#[derive(Debug)]
pub struct LambdaBase {
    pub layout: PathBuf,
    pub tag: &'static str,
    /// `3.11` for bookworm: where `/opt/python/lib/python3.X/site-packages` points.
    pub python: String,
    pub architecture: &'static str,
    pub manifest_digest: String,
    pub layer_digest: String,
    /// Compressed size of the one layer, in bytes.
    pub layer_size: u64,
}

static BASE: OnceLock<LambdaBase> = OnceLock::new();

/// The stand-in base, built (or found in the cache) at most once per test process.
pub fn lambda_base() -> &'static LambdaBase {
    BASE.get_or_init(load_or_build)
}

impl LambdaBase {
    /// `oci:LAYOUT:TAG`, for `--base`.
    pub fn reference(&self) -> String {
        format!("oci:{}:{}", self.layout.display(), self.tag)
    }

    /// Writes the base into a new OCI layout at `dir`, tagged `tag`, and returns `oci:DIR:TAG`.
    /// Blobs are hard-linked when the cache is on the same filesystem (layerport and umoci only
    /// ever write new blobs by rename, never into an existing one), else copied.
    pub fn write_to(&self, dir: &Path, tag: &str) -> String {
        images::init_layout(dir);
        let (desc, manifest) = manifest_for_tag(&self.layout, self.tag);
        let mut blobs = vec![&desc["digest"], &manifest["config"]["digest"]];
        blobs.extend(
            manifest["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| &l["digest"]),
        );
        for digest in blobs {
            let rel = format!("blobs/sha256/{}", &digest.as_str().unwrap()[7..]);
            let (from, to) = (self.layout.join(&rel), dir.join(&rel));
            if fs::hard_link(&from, &to).is_err() {
                fs::copy(&from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
            }
        }
        images::write_index(dir, vec![images::tagged(desc, tag)]);
        format!("oci:{}:{tag}", dir.display())
    }
}

fn load_or_build() -> LambdaBase {
    let start = Instant::now();
    let root = cache_root();
    fs::create_dir_all(&root).unwrap_or_else(|e| panic!("create {}: {e}", root.display()));
    let rootfs_key = short_hash(&[DEBOOTSTRAP_ARGS.join(" ").as_bytes()]);
    let rootfs = cached(&root, &format!("rootfs-{rootfs_key}"), debootstrap);
    let python = python_version(&rootfs);
    let layout_key = short_hash(&[
        rootfs_key.as_bytes(),
        THIS_MODULE.as_bytes(),
        ENTRYPOINT.as_bytes(),
        RUNTIME.as_bytes(),
    ]);
    let layout = cached(&root, &format!("layout-{layout_key}"), |tmp| {
        pack_layout(&rootfs, tmp, &python)
    });
    let (desc, manifest) = manifest_for_tag(&layout, BASE_TAG);
    let layer = &manifest["layers"][0];
    let base = LambdaBase {
        manifest_digest: desc["digest"].as_str().unwrap().to_string(),
        layer_digest: layer["digest"].as_str().unwrap().to_string(),
        layer_size: layer["size"].as_u64().unwrap(),
        layout,
        tag: BASE_TAG,
        python,
        architecture: architecture(),
    };
    eprintln!(
        "stand-in Lambda base ready in {:.1}s: {} (layer {:.1} MB)",
        start.elapsed().as_secs_f64(),
        base.reference(),
        base.layer_size as f64 / 1e6
    );
    base
}

fn cache_root() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    base.join("layerport-tests")
}

fn short_hash(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    format!("{:x}", h.finalize())[..16].to_string()
}

/// `root/name`, built by `build(tmp)` if missing. `build` must create `tmp`; it runs under an
/// exclusive lock on `root/name.lock` and its result is renamed into place, so a reader sees
/// either nothing or a finished directory, and a build that died half-way is redone.
pub fn cached(root: &Path, name: &str, build: impl FnOnce(&Path)) -> PathBuf {
    let done = root.join(name);
    if done.is_dir() {
        return done;
    }
    let lock_path = root.join(format!("{name}.lock"));
    let lock = File::create(&lock_path)
        .unwrap_or_else(|e| panic!("create lock {}: {e}", lock_path.display()));
    lock.lock()
        .unwrap_or_else(|e| panic!("lock {}: {e}", lock_path.display()));
    // Another process may have finished the build while this one waited for the lock.
    if done.is_dir() {
        return done;
    }
    let tmp = root.join(format!("{name}.tmp"));
    if fs::symlink_metadata(&tmp).is_ok() {
        remove_stale(&tmp);
    }
    build(&tmp);
    fs::rename(&tmp, &done).unwrap_or_else(|e| panic!("rename into {}: {e}", done.display()));
    done
}

/// Removes what a dead build left. debootstrap mounts /proc and /sys inside its target and a
/// killed run leaves them mounted: those are unmounted first, and nothing is deleted while any
/// mount is left under the directory (deleting through a mount would reach the host).
fn remove_stale(tmp: &Path) {
    let mounts_under = || -> Vec<String> {
        let prefix = format!("{}/", tmp.display());
        fs::read_to_string("/proc/self/mounts")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(1).map(str::to_string))
            .filter(|m| m.starts_with(&prefix))
            .collect()
    };
    for mount in mounts_under().iter().rev() {
        let _ = Command::new("umount").arg("--lazy").arg(mount).status();
    }
    let left = mounts_under();
    assert!(
        left.is_empty(),
        "a dead build left mounts under {}: {left:?}; unmount them and remove it by hand",
        tmp.display()
    );
    fs::remove_dir_all(tmp).unwrap_or_else(|e| panic!("remove {}: {e}", tmp.display()));
}

/// Panics with the reason when the tests do not run as root (debootstrap and chroot need it).
pub fn require_root(what: &str) {
    let uid = fs::metadata("/proc/self").expect("stat /proc/self").uid();
    assert_eq!(
        uid, 0,
        "{what} needs root (this is uid {uid}): run the tests as root"
    );
}

fn debootstrap(target: &Path) {
    require_tool("debootstrap", "debootstrap");
    require_root("building the stand-in Lambda base with debootstrap");
    let mirror = std::env::var("LAYERPORT_TEST_DEBIAN_MIRROR")
        .unwrap_or_else(|_| DEFAULT_MIRROR.to_string());
    eprintln!(
        "building the stand-in Lambda base: debootstrap {} {} {mirror} (once per machine)",
        DEBOOTSTRAP_ARGS.join(" "),
        target.display()
    );
    let start = Instant::now();
    let mut cmd = Command::new("debootstrap");
    cmd.args(DEBOOTSTRAP_ARGS).arg(target).arg(&mirror);
    let (code, stdout, stderr) = run_cmd(&mut cmd);
    let tail = |s: &str| s.lines().rev().take(20).collect::<Vec<_>>().join("\n");
    assert_eq!(
        code,
        0,
        "debootstrap failed (is {mirror} reachable? set LAYERPORT_TEST_DEBIAN_MIRROR for another \
         mirror)\nlast lines of stdout (newest first):\n{}\nstderr:\n{}",
        tail(&stdout),
        tail(&stderr)
    );
    eprintln!("debootstrap took {:.1}s", start.elapsed().as_secs_f64());
}

/// `3.11` from the `usr/bin/python3 -> python3.11` link.
fn python_version(rootfs: &Path) -> String {
    let link = fs::read_link(rootfs.join("usr/bin/python3")).expect("usr/bin/python3 link");
    let name = link.file_name().unwrap().to_string_lossy().into_owned();
    let version = name.strip_prefix("python").expect("python3.X").to_string();
    assert!(version.starts_with("3."), "unexpected python {name}");
    version
}

fn architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => panic!("no Lambda architecture for {other}"),
    }
}

/// The image's Env, shaped like the AWS base images' (no /var/lang: Debian's python is in /usr).
/// PYTHONPATH is how this stand-in finds layer packages in /opt/python, as Lambda's runtime does.
pub fn base_env(python: &str) -> Vec<String> {
    vec![
        "LANG=C.UTF-8".into(),
        "TZ=:/etc/localtime".into(),
        "PATH=/usr/local/bin:/usr/bin:/bin:/opt/bin".into(),
        "LD_LIBRARY_PATH=/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib".into(),
        "LAMBDA_TASK_ROOT=/var/task".into(),
        "LAMBDA_RUNTIME_DIR=/var/runtime".into(),
        format!("PYTHONPATH=/opt/python/lib/python{python}/site-packages:/opt/python"),
    ]
}

fn pack_layout(rootfs: &Path, out: &Path, python: &str) {
    let start = Instant::now();
    images::init_layout(out);
    let overlay = [
        ("lambda-entrypoint.sh", Overlay::File(0o755, ENTRYPOINT)),
        ("opt", Overlay::Dir(0o755)),
        ("var/runtime", Overlay::Dir(0o755)),
        ("var/runtime/bootstrap.py", Overlay::File(0o644, RUNTIME)),
        ("var/task", Overlay::Dir(0o755)),
    ];
    let staged = out.join("layer.tmp");
    let layer = pack_layer(rootfs, &overlay, &staged);
    let hex = &layer.digest[7..];
    fs::rename(&staged, out.join("blobs/sha256").join(hex)).expect("move layer blob");
    let config = json!({
        "architecture": architecture(),
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {
            "Entrypoint": ["/lambda-entrypoint.sh"],
            "Cmd": ["app.handler"],
            "WorkingDir": "/var/task",
            "Env": base_env(python),
        },
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        "history": [{
            "created": "2024-01-01T00:00:00Z",
            "created_by": format!(
                "debootstrap {} + stand-in /lambda-entrypoint.sh (layerport tests)",
                DEBOOTSTRAP_ARGS.join(" ")
            ),
        }],
    });
    let mut config_desc = images::put_blob(out, canonical(&config).as_bytes());
    config_desc["mediaType"] = json!(OCI_CONFIG);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_desc,
        "layers": [{"mediaType": images::LAYER_GZIP, "digest": layer.digest, "size": layer.size}],
    });
    let mut desc = images::put_blob(out, canonical(&manifest).as_bytes());
    desc["mediaType"] = json!(OCI_MANIFEST);
    desc["platform"] = json!({"os": "linux", "architecture": architecture()});
    images::write_index(out, vec![images::tagged(desc, BASE_TAG)]);
    eprintln!(
        "packed the stand-in base layer in {:.1}s: {:.1} MB gzip, {:.1} MB tar",
        start.elapsed().as_secs_f64(),
        layer.size as f64 / 1e6,
        layer.tar_size as f64 / 1e6
    );
}

/// An entry added to (or replacing one of) the packed tree.
#[derive(Clone, Copy, Debug)]
pub enum Overlay {
    Dir(u32),
    File(u32, &'static str),
}

/// What `pack_layer` wrote: the blob's digest and size, the tar's digest (diff_id) and size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackedLayer {
    pub digest: String,
    pub size: u64,
    pub diff_id: String,
    pub tar_size: u64,
}

enum Item {
    Dir(u32),
    Symlink(PathBuf),
    /// A file on disk, with its inode (a second path to the same inode becomes a hardlink entry).
    Disk {
        mode: u32,
        path: PathBuf,
        inode: (u64, u64),
        links: u64,
        len: u64,
    },
    Inline(u32, &'static str),
}

/// Packs the tree at `root` plus `overlay` into a gzip tar layer at `dest`: entries sorted by
/// path bytes, mode bits kept, uid/gid 0 without names, one mtime, hardlinks as link entries,
/// anything else (devices, fifos, sockets) and the contents of `TRIMMED` left out. The same tree
/// always gives the same bytes.
pub fn pack_layer(root: &Path, overlay: &[(&str, Overlay)], dest: &Path) -> PackedLayer {
    let mut items = BTreeMap::new();
    walk(root, "", &mut items);
    for (path, o) in overlay {
        let item = match *o {
            Overlay::Dir(mode) => Item::Dir(mode),
            Overlay::File(mode, text) => Item::Inline(mode, text),
        };
        items.insert(path.to_string(), item);
    }
    let file = BufWriter::new(File::create(dest).expect("create layer file"));
    let gz = GzEncoder::new(Hashing::new(file), Compression::default());
    let mut tar = tar::Builder::new(Hashing::new(gz));
    let mut first_path: HashMap<(u64, u64), String> = HashMap::new();
    for (path, item) in &items {
        if let Some((parent, _)) = path.rsplit_once('/') {
            assert!(
                items.contains_key(parent),
                "{path}: parent {parent} not packed"
            );
        }
        append(&mut tar, path, item, &mut first_path);
    }
    let plain = tar.into_inner().expect("finish tar");
    let (tar_size, diff_id) = (plain.len, plain.digest());
    let mut compressed = plain.inner.finish().expect("finish gzip");
    compressed.inner.flush().expect("flush layer file");
    PackedLayer {
        digest: compressed.digest(),
        size: compressed.len,
        diff_id,
        tar_size,
    }
}

fn walk(dir: &Path, rel: &str, out: &mut BTreeMap<String, Item>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display())) {
        let entry = entry.expect("dir entry");
        let name = entry.file_name().into_string().expect("utf-8 file name");
        let key = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).expect("lstat");
        let mode = meta.mode() & 0o7777;
        let ft = meta.file_type();
        let item = if ft.is_dir() {
            if !TRIMMED.contains(&key.as_str()) {
                walk(&path, &key, out);
            }
            Item::Dir(mode)
        } else if ft.is_symlink() {
            Item::Symlink(fs::read_link(&path).expect("readlink"))
        } else if ft.is_file() {
            let inode = (meta.dev(), meta.ino());
            let (links, len) = (meta.nlink(), meta.len());
            Item::Disk {
                mode,
                path,
                inode,
                links,
                len,
            }
        } else {
            continue; // a device node, fifo or socket: nothing a layer should carry
        };
        out.insert(key, item);
    }
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    item: &Item,
    first_path: &mut HashMap<(u64, u64), String>,
) {
    let mut h = tar::Header::new_gnu();
    h.set_mtime(MTIME);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(0);
    let done = match item {
        Item::Dir(mode) => {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(*mode);
            tar.append_data(&mut h, format!("{path}/"), io::empty())
        }
        Item::Symlink(target) => {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_mode(0o777);
            tar.append_link(&mut h, path, target)
        }
        Item::Inline(mode, text) => {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(*mode);
            h.set_size(text.len() as u64);
            tar.append_data(&mut h, path, text.as_bytes())
        }
        Item::Disk {
            mode,
            path: src,
            inode,
            links,
            len,
        } => {
            h.set_mode(*mode);
            match first_path.get(inode) {
                Some(first) => {
                    h.set_entry_type(tar::EntryType::Link);
                    tar.append_link(&mut h, path, first)
                }
                None => {
                    if *links > 1 {
                        first_path.insert(*inode, path.to_string());
                    }
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(*len);
                    let f = File::open(src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
                    tar.append_data(&mut h, path, f)
                }
            }
        }
    };
    done.unwrap_or_else(|e| panic!("pack {path}: {e}"));
}

/// A writer that counts and hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    len: u64,
}

impl<W> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            hash: Sha256::new(),
            len: 0,
        }
    }

    fn digest(&self) -> String {
        format!("sha256:{:x}", self.hash.clone().finalize())
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The base's config, as JSON (for tests that check what an image inherited).
pub fn base_config(base: &LambdaBase) -> Value {
    let (_, manifest) = manifest_for_tag(&base.layout, base.tag);
    super::tools::config_of(&base.layout, &manifest)
}
