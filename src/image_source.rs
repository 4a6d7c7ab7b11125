//! Reads an image for `layerport zip` from wherever it lives, behind one small trait (`ImageStore`),
//! and resolves it to one platform's layers, with every blob checked against its digest as it streams.
//!
//! Stores: an OCI image layout directory (`oci:DIR[:TAG]`) and a `docker save` archive
//! (`docker-archive:FILE[:NAME]`). A registry store plugs in by implementing `ImageStore`:
//! - `root()`: `GET /v2/<repo>/manifests/<tag or digest>` with the usual `Accept` list; return the body
//!   and its `Content-Type` (checked against the digest when the reference is a digest);
//! - `manifest(blob)`: `GET /v2/<repo>/manifests/<blob.digest>`, checked with [`check_document`];
//! - `open_blob(blob)`: `GET /v2/<repo>/blobs/<blob.digest>`, streamed (e.g. from a download to a temp
//!   file, or a channel fed by the async client), wrapped in [`VerifyingReader::blob`].
//!
//! Everything above the trait (platform choice, config, layer order, decompression, diff_id checks)
//! is shared by all stores, so the same image gives the same layers — and the same zip — from any of them.

mod archive;
mod layout;

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::digest::format_digest;
use crate::platform::Platform;

pub use archive::DockerArchiveStore;
pub use layout::OciLayoutStore;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// JSON documents (index, manifest, config) are read whole; a bigger one is refused as damaged.
pub const MAX_DOCUMENT_BYTES: u64 = 16 * 1024 * 1024;

/// A JSON document as the store holds it, with its media type (from the descriptor, the HTTP
/// `Content-Type`, or its own `mediaType` field).
#[derive(Debug, Clone)]
pub struct Document {
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// What a descriptor says about a blob: enough to fetch it and to check what arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    /// `sha256:<64 hex>`, checked by [`check_digest`] before any store uses it.
    pub digest: String,
    pub size: Option<u64>,
    pub media_type: String,
}

/// Where an image is read from. Implementations must never return unverified bytes: `manifest`
/// checks the whole document, `open_blob` returns a reader that fails at end of stream on a mismatch.
pub trait ImageStore: Send + Sync {
    /// How messages name the image, e.g. `oci:build/layout:v1`.
    fn name(&self) -> &str;
    /// The document the user's reference points at: an image index / manifest list, or a manifest.
    fn root(&self) -> Result<Document, ImageError>;
    /// A manifest named by an index entry, checked against `blob.digest`.
    fn manifest(&self, blob: &BlobRef) -> Result<Document, ImageError>;
    /// A blob (config or layer) as stored, streamed through a [`VerifyingReader`].
    fn open_blob(&self, blob: &BlobRef) -> Result<Box<dyn Read + Send + '_>, ImageError>;
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{image}: {problem}\n  hint: {hint}")]
    Source {
        image: String,
        problem: String,
        hint: String,
    },
    #[error("{image}: cannot read {path}: {source}")]
    Io {
        image: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{image}: blob {digest} is missing\n  hint: the image is incomplete; copy or save it again (e.g. `skopeo copy`)"
    )]
    MissingBlob { image: String, digest: String },
    #[error(
        "{image}: {what} {digest} does not match its digest ({detail})\n  hint: the image is damaged or was changed after it was written; copy or save it again"
    )]
    DigestMismatch {
        image: String,
        what: &'static str,
        digest: String,
        detail: String,
    },
    #[error("{image}: {what} {digest} is unusable: {detail}\n  hint: {hint}")]
    BadDocument {
        image: String,
        what: &'static str,
        digest: String,
        detail: String,
        hint: &'static str,
    },
    #[error("{image} has no {wanted} image; it has: {present}\n  hint: pick one of those with --platform")]
    NoPlatform {
        image: String,
        wanted: String,
        present: String,
    },
    #[error(
        "{image} is a {actual} image, not {wanted}\n  hint: drop --platform, or use an image built for {wanted}"
    )]
    PlatformMismatch {
        image: String,
        actual: String,
        wanted: String,
    },
    #[error("{image}: layer {digest}: {problem}\n  hint: {hint}")]
    Layer {
        image: String,
        digest: String,
        problem: String,
        hint: &'static str,
    },
    #[error(
        "{reference}: registry images are not readable by `layerport zip` yet (registry sources come with push support)\n  hint: copy the image to a local layout first, e.g. `skopeo copy docker://{reference} oci:image:latest`, then run `layerport zip oci:image:latest ...`"
    )]
    RegistryUnsupported { reference: String },
}

impl ImageError {
    /// Wraps this error so it travels through `io::Read` (tar and gzip readers) and is recovered intact.
    pub fn into_io(self) -> io::Error {
        io::Error::other(self)
    }

    /// Recovers an `ImageError` that travelled through I/O.
    pub fn from_io(err: io::Error) -> Result<ImageError, io::Error> {
        if err.get_ref().is_some_and(|e| e.is::<ImageError>()) {
            let inner = err.into_inner().expect("checked above");
            return Ok(*inner.downcast::<ImageError>().expect("checked above"));
        }
        Err(err)
    }
}

/// The IMAGE argument, by transport (the prefixes users know from skopeo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSpec {
    OciLayout { dir: PathBuf, tag: Option<String> },
    DockerArchive { file: PathBuf, name: Option<String> },
    /// Anything else: `repo:tag`, `host/repo@sha256:…`, Docker Hub short names.
    Registry(String),
}

impl ImageSpec {
    /// `oci:DIR[:TAG]` and `docker-archive:FILE[:NAME]` split at the first `:` after the transport,
    /// as skopeo does, unless the whole rest names an existing path.
    pub fn parse(spec: &str) -> ImageSpec {
        let split = |rest: &str| -> (PathBuf, Option<String>) {
            if Path::new(rest).exists() {
                return (PathBuf::from(rest), None);
            }
            match rest.split_once(':') {
                Some((path, tag)) if !tag.is_empty() => (PathBuf::from(path), Some(tag.to_string())),
                Some((path, _)) => (PathBuf::from(path), None),
                None => (PathBuf::from(rest), None),
            }
        };
        if let Some(rest) = spec.strip_prefix("oci:") {
            let (dir, tag) = split(rest);
            ImageSpec::OciLayout { dir, tag }
        } else if let Some(rest) = spec.strip_prefix("docker-archive:") {
            let (file, name) = split(rest);
            ImageSpec::DockerArchive { file, name }
        } else {
            ImageSpec::Registry(spec.to_string())
        }
    }
}

/// Opens a local store (OCI layout or docker archive). A registry reference is refused until the
/// registry store lands; it will implement [`ImageStore`] too.
pub fn open_local(spec: &ImageSpec) -> Result<Box<dyn ImageStore>, ImageError> {
    match spec {
        ImageSpec::OciLayout { dir, tag } => Ok(Box::new(OciLayoutStore::open(dir, tag.as_deref())?)),
        ImageSpec::DockerArchive { file, name } => Ok(Box::new(DockerArchiveStore::open(
            file,
            name.as_deref(),
        )?)),
        ImageSpec::Registry(reference) => Err(ImageError::RegistryUnsupported {
            reference: reference.clone(),
        }),
    }
}

/// One layer to apply: its blob as stored and the digest of its uncompressed tar (`diff_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBlob {
    pub blob: BlobRef,
    pub diff_id: String,
}

/// An image narrowed to one platform: what `layerport zip` applies.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    pub name: String,
    pub platform: Platform,
    pub layers: Vec<LayerBlob>,
}

/// Picks the platform (from an index: `wanted`, else linux/amd64), reads the manifest and the
/// config, and pairs each layer with its diff_id.
pub fn resolve(store: &dyn ImageStore, wanted: Option<&Platform>) -> Result<ResolvedImage, ImageError> {
    let image = store.name().to_string();
    let root = store.root()?;
    let root_value = parse_json(&image, "image reference", "", &root.bytes)?;
    let kind = document_kind(&root.media_type, &root_value);
    let (manifest, manifest_digest) = match kind {
        DocKind::Index => {
            let want = wanted.cloned().unwrap_or_else(Platform::amd64);
            let blob = pick_platform(&image, &root_value, &want)?;
            let doc = store.manifest(&blob)?;
            let value = parse_json(&image, "manifest", &blob.digest, &doc.bytes)?;
            (value, blob.digest)
        }
        DocKind::Manifest => (root_value, format_digest(&Sha256::digest(&root.bytes))),
        DocKind::Other => {
            return Err(ImageError::BadDocument {
                image,
                what: "document",
                digest: format_digest(&Sha256::digest(&root.bytes)),
                detail: format!("media type {:?} is neither an image index nor an image manifest", root.media_type),
                hint: "give an image (OCI or Docker v2 schema 2), not another kind of artifact",
            });
        }
    };
    let bad = |detail: String| ImageError::BadDocument {
        image: image.clone(),
        what: "manifest",
        digest: manifest_digest.clone(),
        detail,
        hint: "the manifest does not follow the OCI / Docker v2 schema 2 format; rebuild the image",
    };
    let config_ref = descriptor(&manifest["config"]).map_err(|e| bad(format!("config: {e}")))?;
    let layer_refs = manifest["layers"]
        .as_array()
        .ok_or_else(|| bad("it has no \"layers\" list".into()))?
        .iter()
        .map(descriptor)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("layers: {e}")))?;
    let config_bytes = read_document(store, &config_ref, &image)?;
    let config = parse_json(&image, "config", &config_ref.digest, &config_bytes)?;
    let platform = Platform {
        os: config["os"].as_str().unwrap_or("linux").to_string(),
        architecture: config["architecture"].as_str().unwrap_or("amd64").to_string(),
        variant: config["variant"].as_str().map(str::to_string),
    };
    if kind == DocKind::Manifest
        && let Some(w) = wanted
        && !platform_matches(&platform, w)
    {
        return Err(ImageError::PlatformMismatch {
            image,
            actual: platform.to_string(),
            wanted: w.to_string(),
        });
    }
    let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| a.iter().filter_map(|d| d.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    if diff_ids.len() != layer_refs.len() {
        return Err(ImageError::BadDocument {
            image,
            what: "config",
            digest: config_ref.digest,
            detail: format!(
                "it lists {} diff_ids for {} layers in the manifest",
                diff_ids.len(),
                layer_refs.len()
            ),
            hint: "the config and the manifest disagree; rebuild the image",
        });
    }
    let mut layers = Vec::with_capacity(layer_refs.len());
    for (blob, diff_id) in layer_refs.into_iter().zip(diff_ids) {
        check_digest(&diff_id).map_err(|detail| ImageError::BadDocument {
            image: image.clone(),
            what: "config",
            digest: config_ref.digest.clone(),
            detail: format!("diff_id {diff_id:?}: {detail}"),
            hint: "the config is damaged; rebuild the image",
        })?;
        layers.push(LayerBlob { blob, diff_id });
    }
    Ok(ResolvedImage {
        name: image,
        platform,
        layers,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DocKind {
    Index,
    Manifest,
    Other,
}

fn document_kind(media_type: &str, value: &Value) -> DocKind {
    let media_type = if media_type.is_empty() || media_type == "application/json" {
        value["mediaType"].as_str().unwrap_or("")
    } else {
        media_type
    };
    match media_type {
        OCI_INDEX | DOCKER_LIST => DocKind::Index,
        OCI_MANIFEST | DOCKER_MANIFEST => DocKind::Manifest,
        "" if value["manifests"].is_array() => DocKind::Index,
        "" if value["layers"].is_array() => DocKind::Manifest,
        _ => DocKind::Other,
    }
}

/// Does an image's platform satisfy `--platform`? arm64 images often say variant `v8` or nothing.
fn platform_matches(have: &Platform, want: &Platform) -> bool {
    let variant_ok = match (&want.variant, &have.variant) {
        (None, _) => true,
        (Some(w), Some(h)) => w == h,
        (Some(w), None) => want.architecture == "arm64" && w == "v8",
    };
    have.os == want.os && have.architecture == want.architecture && variant_ok
}

/// The index entry for `want`, skipping attestations (platform `unknown/unknown`).
fn pick_platform(image: &str, index: &Value, want: &Platform) -> Result<BlobRef, ImageError> {
    let mut present = Vec::new();
    for entry in index["manifests"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let p = &entry["platform"];
        let (os, arch) = (p["os"].as_str().unwrap_or(""), p["architecture"].as_str().unwrap_or(""));
        if os.is_empty() || os == "unknown" {
            continue;
        }
        let have = Platform {
            os: os.to_string(),
            architecture: arch.to_string(),
            variant: p["variant"].as_str().map(str::to_string),
        };
        if platform_matches(&have, want) {
            return descriptor(entry).map_err(|detail| ImageError::BadDocument {
                image: image.to_string(),
                what: "index entry for",
                digest: want.to_string(),
                detail,
                hint: "the image index is damaged; rebuild or copy the image again",
            });
        }
        present.push(have.to_string());
    }
    Err(ImageError::NoPlatform {
        image: image.to_string(),
        wanted: want.to_string(),
        present: if present.is_empty() {
            "no platforms".into()
        } else {
            present.join(", ")
        },
    })
}

/// A descriptor (`{mediaType, digest, size}`), with its digest checked.
pub fn descriptor(value: &Value) -> Result<BlobRef, String> {
    let digest = value["digest"]
        .as_str()
        .ok_or_else(|| "a descriptor has no digest".to_string())?;
    check_digest(digest)?;
    Ok(BlobRef {
        digest: digest.to_string(),
        size: value["size"].as_u64(),
        media_type: value["mediaType"].as_str().unwrap_or("").to_string(),
    })
}

/// Only `sha256:<64 lowercase hex>`: anything else could also never be used as a blob path safely.
pub fn check_digest(digest: &str) -> Result<(), String> {
    let Some(hex) = digest.strip_prefix("sha256:") else {
        return Err(format!(
            "digest {digest:?} is not sha256 (the only algorithm layerport reads)"
        ));
    };
    if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(format!("digest {digest:?} is malformed"))
    }
}

fn parse_json(image: &str, what: &'static str, digest: &str, bytes: &[u8]) -> Result<Value, ImageError> {
    serde_json::from_slice(bytes).map_err(|e| ImageError::BadDocument {
        image: image.to_string(),
        what,
        digest: digest.to_string(),
        detail: format!("it is not valid JSON ({e})"),
        hint: "the image is damaged; copy or save it again",
    })
}

/// Reads a small blob (a config) whole, verified.
fn read_document(store: &dyn ImageStore, blob: &BlobRef, image: &str) -> Result<Vec<u8>, ImageError> {
    let mut reader = store.open_blob(blob)?;
    let mut bytes = Vec::new();
    reader
        .by_ref()
        .take(MAX_DOCUMENT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(e, image, &blob.digest))?;
    if bytes.len() as u64 > MAX_DOCUMENT_BYTES {
        return Err(too_big(image, "config", &blob.digest));
    }
    Ok(bytes)
}

pub(crate) fn too_big(image: &str, what: &'static str, digest: &str) -> ImageError {
    ImageError::BadDocument {
        image: image.to_string(),
        what,
        digest: digest.to_string(),
        detail: format!("it is over {MAX_DOCUMENT_BYTES} bytes"),
        hint: "this is not an image document; check the image",
    }
}

/// An I/O error while reading a blob: the `ImageError` it carries, or one naming the blob.
pub(crate) fn io_error(err: io::Error, image: &str, digest: &str) -> ImageError {
    ImageError::from_io(err).unwrap_or_else(|err| ImageError::Io {
        image: image.to_string(),
        path: PathBuf::from(digest),
        source: err,
    })
}

/// Checks a whole document against the digest (and size) its descriptor gave.
pub fn check_document(image: &str, blob: &BlobRef, bytes: &[u8]) -> Result<(), ImageError> {
    let actual = format_digest(&Sha256::digest(bytes));
    let size_ok = blob.size.is_none_or(|s| s == bytes.len() as u64);
    if actual != blob.digest || !size_ok {
        return Err(ImageError::DigestMismatch {
            image: image.to_string(),
            what: "manifest",
            digest: blob.digest.clone(),
            detail: format!("got {actual}, {} bytes", bytes.len()),
        });
    }
    Ok(())
}

/// Hashes and counts what passes through; at end of stream (or as soon as it runs past the
/// expected size) a mismatch is an error carrying an [`ImageError`] that names the digest.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
    digest: String,
    size: Option<u64>,
    image: String,
    what: &'static str,
    checked: bool,
}

impl<R: Read> VerifyingReader<R> {
    /// A blob as stored, checked against its descriptor's digest and size.
    pub fn blob(inner: R, image: &str, blob: &BlobRef) -> Self {
        Self::new(inner, image, "blob", &blob.digest, blob.size)
    }

    pub fn new(inner: R, image: &str, what: &'static str, digest: &str, size: Option<u64>) -> Self {
        VerifyingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
            digest: digest.to_string(),
            size,
            image: image.to_string(),
            what,
            checked: false,
        }
    }

    fn mismatch(&self, detail: String) -> io::Error {
        ImageError::DigestMismatch {
            image: self.image.clone(),
            what: self.what,
            digest: self.digest.clone(),
            detail,
        }
        .into_io()
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        if let Some(size) = self.size
            && self.count > size
        {
            return Err(self.mismatch(format!("more than the {size} bytes its descriptor declares")));
        }
        if n == 0 && !self.checked {
            self.checked = true;
            let actual = format_digest(&self.hasher.clone().finalize());
            if self.size.is_some_and(|s| s != self.count) || actual != self.digest {
                return Err(self.mismatch(format!("got {actual}, {} bytes", self.count)));
            }
        }
        Ok(n)
    }
}

/// How a layer blob is compressed, from its first bytes (media types are often wrong in the wild).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

pub fn sniff_compression(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// A layer's uncompressed tar stream. Reading it to the end checks both the blob digest (on the
/// stored bytes) and the diff_id (on the tar); an error surfaces as an [`ImageError`] in the `io::Error`.
pub fn open_layer<'a>(
    store: &'a dyn ImageStore,
    layer: &LayerBlob,
) -> Result<Box<dyn Read + Send + 'a>, ImageError> {
    let image = store.name();
    let unsupported = |problem: String| ImageError::Layer {
        image: image.to_string(),
        digest: layer.blob.digest.clone(),
        problem,
        hint: "layerport reads tar and tar+gzip layers; convert the image, e.g. `skopeo copy --dest-compress-format gzip`",
    };
    let mt = layer.blob.media_type.as_str();
    if mt.contains("zstd") {
        return Err(unsupported(format!("zstd compression ({mt}) is not supported")));
    }
    if mt.contains("foreign") || mt.contains("windows") {
        return Err(unsupported(format!("{mt} is not a Linux layer")));
    }
    let raw = store.open_blob(&layer.blob)?;
    let mut raw = io::BufReader::with_capacity(256 * 1024, raw);
    let head = io::BufRead::fill_buf(&mut raw).map_err(|e| io_error(e, image, &layer.blob.digest))?;
    let tar: Box<dyn Read + Send + 'a> = match sniff_compression(head) {
        // MultiGzDecoder reads its input to the end (looking for another member), so the blob's
        // own digest check at end of stream always runs.
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        Compression::None => Box::new(raw),
        Compression::Zstd => return Err(unsupported("zstd compression is not supported".into())),
    };
    Ok(Box::new(VerifyingReader::new(tar, image, "uncompressed layer (diff_id)", &layer.diff_id, None)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn digest_of(bytes: &[u8]) -> String {
        format_digest(&Sha256::digest(bytes))
    }

    #[test]
    fn parses_transports() {
        assert_eq!(
            ImageSpec::parse("oci:/no/such/dir:v1"),
            ImageSpec::OciLayout { dir: "/no/such/dir".into(), tag: Some("v1".into()) }
        );
        assert_eq!(
            ImageSpec::parse("docker-archive:/no/img.tar"),
            ImageSpec::DockerArchive { file: "/no/img.tar".into(), name: None }
        );
        assert_eq!(
            ImageSpec::parse("public.ecr.aws/lambda/python:3.12"),
            ImageSpec::Registry("public.ecr.aws/lambda/python:3.12".into())
        );
        assert!(matches!(
            open_local(&ImageSpec::parse("alpine:3")),
            Err(ImageError::RegistryUnsupported { .. })
        ));
    }

    #[test]
    fn verifying_reader_accepts_good_and_refuses_bad_bytes() {
        let data = b"layer bytes".to_vec();
        let good = BlobRef { digest: digest_of(&data), size: Some(data.len() as u64), media_type: String::new() };
        let mut out = Vec::new();
        VerifyingReader::blob(&data[..], "img", &good).read_to_end(&mut out).unwrap();
        assert_eq!(out, data);

        let tampered = b"layer bytez".to_vec();
        let err = VerifyingReader::blob(&tampered[..], "img", &good)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        let err = ImageError::from_io(err).unwrap();
        assert!(err.to_string().contains(&good.digest), "{err}");

        let short = BlobRef { size: Some(3), ..good };
        let err = VerifyingReader::blob(&data[..], "img", &short).read_to_end(&mut Vec::new()).unwrap_err();
        assert!(ImageError::from_io(err).unwrap().to_string().contains("more than the 3 bytes"));
    }

    #[test]
    fn digests_are_checked_before_use() {
        assert!(check_digest(&format!("sha256:{}", "a".repeat(64))).is_ok());
        assert!(check_digest("sha256:../../etc/passwd").is_err());
        assert!(check_digest(&format!("sha512:{}", "a".repeat(128))).is_err());
        assert!(check_digest(&format!("sha256:{}", "A".repeat(64))).is_err());
    }

    #[test]
    fn picks_platforms_and_lists_the_present_ones() {
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let index = json!({"manifests": [
            {"digest": d('a'), "size": 1, "mediaType": OCI_MANIFEST, "platform": {"os": "linux", "architecture": "amd64"}},
            {"digest": d('b'), "size": 1, "mediaType": OCI_MANIFEST, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {"digest": d('c'), "size": 1, "mediaType": OCI_MANIFEST, "platform": {"os": "unknown", "architecture": "unknown"}},
        ]});
        assert_eq!(pick_platform("i", &index, &Platform::amd64()).unwrap().digest, d('a'));
        assert_eq!(pick_platform("i", &index, &Platform::arm64()).unwrap().digest, d('b'));
        let s390 = Platform { os: "linux".into(), architecture: "s390x".into(), variant: None };
        let err = pick_platform("i", &index, &s390).unwrap_err().to_string();
        assert!(err.contains("linux/amd64, linux/arm64/v8"), "{err}");
        assert!(!err.contains("unknown"), "{err}");
    }

    #[test]
    fn sniffs_compression() {
        assert_eq!(sniff_compression(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(sniff_compression(&[0x28, 0xb5, 0x2f, 0xfd]), Compression::Zstd);
        assert_eq!(sniff_compression(b"opt/\0\0"), Compression::None);
    }
}
