//! Builds test images the way image tools lay them out, deterministically: layer tars (with the
//! `tar` crate, so whiteouts, hardlinks and odd names are exactly what the test says), OCI layouts
//! with single- or multi-platform indexes, and `docker save` archives (legacy and docker 25+).

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Write;
use std::path::Path;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const MTIME: u64 = 1_700_000_000;

/// One layer entry.
#[derive(Clone, Debug)]
pub enum E {
    Dir(&'static str, u32),
    File(&'static str, u32, Vec<u8>),
    Symlink(&'static str, &'static str),
    Hardlink(&'static str, &'static str),
    Fifo(&'static str),
    /// A regular file whose name is written into the header as is (`..` and all).
    RawName(&'static str),
}

pub fn file(path: &'static str, data: &str) -> E {
    E::File(path, 0o644, data.as_bytes().to_vec())
}

pub fn dir(path: &'static str) -> E {
    E::Dir(path, 0o755)
}

/// An empty whiteout or opaque marker file.
pub fn marker(path: &'static str) -> E {
    E::File(path, 0o644, Vec::new())
}

/// An uncompressed layer tar of `entries`, root-owned, one fixed mtime.
pub fn layer_tar(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.mode(tar::HeaderMode::Deterministic);
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(MTIME);
        h.set_uid(0);
        h.set_gid(0);
        match e {
            E::Dir(p, mode) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_size(0);
                b.append_data(&mut h, p, std::io::empty()).unwrap();
            }
            E::File(p, mode, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, p, &data[..]).unwrap();
            }
            E::Symlink(p, target) | E::Hardlink(p, target) => {
                let kind = if matches!(e, E::Symlink(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                };
                h.set_entry_type(kind);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, p, target).unwrap();
            }
            E::Fifo(p) => {
                h.set_entry_type(tar::EntryType::Fifo);
                h.set_mode(0o644);
                h.set_size(0);
                b.append_data(&mut h, p, std::io::empty()).unwrap();
            }
            E::RawName(p) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(1);
                h.as_old_mut().name[..p.len()].copy_from_slice(p.as_bytes());
                h.set_cksum();
                b.append(&h, &b"x"[..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut g = GzEncoder::new(Vec::new(), Compression::fast());
    g.write_all(bytes).unwrap();
    g.finish().unwrap()
}

pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// How a layer is stored in the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    Tar,
    Gzip,
    /// Gzip bytes under the zstd media type (the media type alone must trigger the error).
    ZstdMediaType,
}

/// An image: its platform and its layers (uncompressed tars, lowest first).
#[derive(Clone, Debug)]
pub struct Img {
    pub arch: &'static str,
    pub layers: Vec<Vec<u8>>,
    pub store: Store,
}

impl Img {
    pub fn new(arch: &'static str, layers: Vec<Vec<u8>>) -> Img {
        Img {
            arch,
            layers,
            store: Store::Gzip,
        }
    }

    pub fn config(&self) -> Vec<u8> {
        let diff_ids: Vec<String> = self.layers.iter().map(|l| digest(l)).collect();
        serde_json::to_vec(&json!({
            "architecture": self.arch,
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap()
    }

    /// The layer blobs as stored, with their media types.
    pub fn blobs(&self) -> Vec<(Vec<u8>, &'static str)> {
        self.layers
            .iter()
            .map(|l| match self.store {
                Store::Tar => (l.clone(), LAYER_TAR),
                Store::Gzip => (gzip(l), LAYER_GZIP),
                Store::ZstdMediaType => (gzip(l), LAYER_ZSTD),
            })
            .collect()
    }
}

/// Creates an empty OCI layout at `dir`.
pub fn init_layout(dir: &Path) {
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    write_index(dir, vec![]);
}

pub fn put_blob(layout: &Path, bytes: &[u8]) -> Value {
    let d = digest(bytes);
    fs::write(layout.join("blobs/sha256").join(&d[7..]), bytes).unwrap();
    json!({"digest": d, "size": bytes.len()})
}

/// Writes the image's blobs and manifest; returns the manifest descriptor with its platform.
pub fn put_image(layout: &Path, img: &Img) -> Value {
    let mut config = put_blob(layout, &img.config());
    config["mediaType"] = json!(OCI_CONFIG);
    let layers: Vec<Value> = img
        .blobs()
        .iter()
        .map(|(bytes, mt)| {
            let mut d = put_blob(layout, bytes);
            d["mediaType"] = json!(mt);
            d
        })
        .collect();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config,
        "layers": layers,
    }))
    .unwrap();
    let mut desc = put_blob(layout, &manifest);
    desc["mediaType"] = json!(OCI_MANIFEST);
    desc["platform"] = json!({"os": "linux", "architecture": img.arch});
    desc
}

/// Writes an image index over `manifests`; returns its descriptor.
pub fn put_index(layout: &Path, manifests: Vec<Value>) -> Value {
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    }))
    .unwrap();
    let mut desc = put_blob(layout, &index);
    desc["mediaType"] = json!(OCI_INDEX);
    desc
}

pub fn tagged(mut desc: Value, tag: &str) -> Value {
    desc["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
    desc
}

pub fn write_index(layout: &Path, manifests: Vec<Value>) {
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
}

/// A layout at `dir` holding `img` tagged `tag`.
pub fn oci_layout(dir: &Path, tag: &str, img: &Img) {
    init_layout(dir);
    let desc = put_image(dir, img);
    write_index(dir, vec![tagged(desc, tag)]);
}

/// A `docker save` archive as docker before 25 wrote it: `manifest.json`, `<id>.json` and
/// `<id>/layer.tar` (uncompressed). `gzip_last` stores the last layer gzipped, as some tools do,
/// and a layer identical to an earlier one becomes a symlink to it, as `docker save` did.
pub fn docker_archive_legacy(file: &Path, repo_tag: &str, img: &Img, gzip_last: bool) {
    let mut b = tar::Builder::new(Vec::new());
    let config = img.config();
    let config_name = format!("{}.json", &digest(&config)[7..]);
    let mut names: Vec<String> = Vec::new();
    let mut seen: Vec<(String, String)> = Vec::new();
    for (i, layer) in img.layers.iter().enumerate() {
        let id = format!("{:064x}", i + 1);
        let name = format!("{id}/layer.tar");
        let d = digest(layer);
        if let Some((_, first)) = seen.iter().find(|(dd, _)| *dd == d) {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            h.set_mode(0o777);
            b.append_link(&mut h, &name, format!("../{first}")).unwrap();
        } else {
            let bytes = if gzip_last && i + 1 == img.layers.len() {
                gzip(layer)
            } else {
                layer.clone()
            };
            append(&mut b, &name, &bytes);
            seen.push((d, name.clone()));
        }
        names.push(name);
    }
    append(&mut b, &config_name, &config);
    let manifest = json!([{"Config": config_name, "RepoTags": [repo_tag], "Layers": names}]);
    append(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    fs::write(file, b.into_inner().unwrap()).unwrap();
}

/// A `docker save` archive as docker 25+ writes it: an OCI layout plus `manifest.json` pointing at
/// `blobs/sha256/<digest>` members (here with the image's own layer storage, e.g. gzip).
pub fn docker_archive_25(file: &Path, repo_tag: &str, img: &Img) {
    let scratch = tempfile::tempdir().unwrap();
    let layout = scratch.path();
    init_layout(layout);
    let desc = put_image(layout, img);
    let manifest: Value = serde_json::from_slice(
        &fs::read(
            layout
                .join("blobs/sha256")
                .join(&desc["digest"].as_str().unwrap()[7..]),
        )
        .unwrap(),
    )
    .unwrap();
    write_index(layout, vec![tagged(desc, "latest")]);
    let blob_name = |d: &Value| format!("blobs/sha256/{}", &d["digest"].as_str().unwrap()[7..]);
    let docker_manifest = json!([{
        "Config": blob_name(&manifest["config"]),
        "RepoTags": [repo_tag],
        "Layers": manifest["layers"].as_array().unwrap().iter().map(blob_name).collect::<Vec<_>>(),
    }]);
    let mut b = tar::Builder::new(Vec::new());
    for name in ["oci-layout", "index.json"] {
        append(&mut b, name, &fs::read(layout.join(name)).unwrap());
    }
    let mut blobs: Vec<_> = fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    blobs.sort();
    for hex in blobs {
        append(
            &mut b,
            &format!("blobs/sha256/{hex}"),
            &fs::read(layout.join("blobs/sha256").join(&hex)).unwrap(),
        );
    }
    append(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&docker_manifest).unwrap(),
    );
    fs::write(file, b.into_inner().unwrap()).unwrap();
}

fn append(b: &mut tar::Builder<Vec<u8>>, name: &str, bytes: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(bytes.len() as u64);
    b.append_data(&mut h, name, bytes).unwrap();
}

/// Deterministic incompressible bytes (xorshift), fast enough for tens of megabytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A Lambda-like base image in an OCI layout (Env, Entrypoint, Cmd, WorkingDir, history), made
/// byte for byte the same on every run.
pub fn lambda_like_base(layout: &Path, tag: &str) {
    lambda_like_base_for(layout, tag, "amd64");
}

/// The same base for another architecture.
pub fn lambda_like_base_for(layout: &Path, tag: &str, arch: &str) {
    let layers = [
        layer_tar(&[dir("etc/"), file("etc/base-file.txt", "from the base\n")]),
        layer_tar(&[
            dir("var/"),
            dir("var/runtime/"),
            file("var/runtime/bootstrap", "#!/bin/sh\n"),
        ]),
    ];
    let diff_ids: Vec<String> = layers.iter().map(|l| digest(l)).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": arch,
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "LAMBDA_TASK_ROOT=/var/task"],
            "Entrypoint": ["/lambda-entrypoint.sh"],
            "Cmd": ["app.handler"],
            "WorkingDir": "/var/task",
            "Labels": {"team": "base"},
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "base layer 1"}, {"created_by": "base layer 2"}],
    }))
    .unwrap();
    init_layout(layout);
    let mut config_desc = put_blob(layout, &config);
    config_desc["mediaType"] = json!(OCI_CONFIG);
    let layer_descs: Vec<Value> = layers
        .iter()
        .map(|l| {
            let mut d = put_blob(layout, &gzip(l));
            d["mediaType"] = json!(LAYER_GZIP);
            d
        })
        .collect();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_desc,
        "layers": layer_descs,
    }))
    .unwrap();
    let mut desc = put_blob(layout, &manifest);
    desc["mediaType"] = json!(OCI_MANIFEST);
    write_index(layout, vec![tagged(desc, tag)]);
}
