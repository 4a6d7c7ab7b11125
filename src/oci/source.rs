//! Reads an image from wherever it lives, behind one small trait (`ImageStore`), and resolves it to
//! one platform's layers, with every blob checked against its digest as it streams.
//!
//! Stores: an OCI image layout directory (`oci:DIR[:TAG]`, `oci::layout`), a `docker save` archive
//! (`docker-archive:FILE[:NAME]`, `oci::archive`) and a registry (`registry::remote::RegistryStore`).
//! `pipeline::open_image` picks one for an `ImageSpec`; every reader of images (zip, check, inspect,
//! `--base`) goes through it.
//!
//! The trait is synchronous like the rest of the core: the registry store bridges to its async
//! client with `Handle::block_on`, so stores are called from plain threads, never inside a runtime.
//!
//! Everything above the trait (platform choice, config, layer order, decompression, diff_id checks)
//! is shared by all stores, so the same image gives the same layers — and the same zip — from any of them.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::core::digest::Digest;
use crate::core::error::SourceError;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// JSON documents (index, manifest, config) are read whole; a bigger one is refused as damaged.
pub const MAX_DOCUMENT_BYTES: u64 = 16 * 1024 * 1024;

/// A blob bigger than Lambda's whole-image limit (10 GiB) is refused before it is read.
pub const MAX_BLOB_BYTES: u64 = 10 * 1024 * 1024 * 1024;

/// A JSON document as the store holds it, with its media type (from the descriptor, the HTTP
/// `Content-Type`, or its own `mediaType` field).
#[derive(Debug, Clone)]
pub struct Document {
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// One layer to apply: its blob as stored and the digest of its uncompressed tar (`diff_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBlob {
    pub blob: BlobRef,
    pub diff_id: Digest,
}

/// What a descriptor says about a blob: enough to fetch it and to check what arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    /// `sha256:<64 hex>`, checked by [`check_digest`] before any store uses it.
    pub digest: Digest,
    pub size: Option<u64>,
    pub media_type: String,
}

/// Where an image is read from. Implementations must never return unverified bytes: `manifest`
/// checks the whole document, `open_blob` returns a reader that fails at end of stream on a mismatch
/// (or bytes already verified while they were downloaded).
pub trait ImageStore: Send + Sync {
    /// How messages name the image, e.g. `oci:build/layout:v1`.
    fn name(&self) -> &str;
    /// The document the user's reference points at: an image index / manifest list, or a manifest.
    fn root(&self) -> Result<Document, ImageError>;
    /// A manifest named by an index entry, checked against `blob.digest`.
    fn manifest(&self, blob: &BlobRef) -> Result<Document, ImageError>;
    /// A blob (config or layer) as stored, streamed through a [`VerifyingReader`].
    fn open_blob(&self, blob: &BlobRef) -> Result<Box<dyn Read + Send + '_>, ImageError>;

    /// Copies a blob as stored into the file `dest`, verified on the way.
    fn copy_blob_to(&self, blob: &BlobRef, dest: &Path) -> Result<(), ImageError> {
        let io = |source| ImageError::Io {
            image: self.name().to_string(),
            path: dest.to_path_buf(),
            source,
        };
        let mut reader = self.open_blob(blob)?;
        let mut file = io::BufWriter::new(File::create(dest).map_err(io)?);
        io::copy(&mut reader, &mut file).map_err(|e| io_error(e, self.name(), &blob.digest))?;
        file.into_inner()
            .map_err(|e| io(e.into_error()))?
            .sync_all()
            .map_err(io)
    }

    /// The registry host and repository the blobs live in, for a store that reads a registry:
    /// a push to the same registry can mount them instead of copying.
    fn registry_repository(&self) -> Option<(&str, &str)> {
        None
    }
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
    #[error(
        "{image} has no {wanted} image; it has: {present}\n  hint: pick one of those with --platform"
    )]
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
    /// A failure of a remote store (registry), whose message already names the image and the fix.
    #[error("{0}")]
    Remote(Box<dyn std::error::Error + Send + Sync>),
}

impl ImageError {
    /// Wraps this error so it travels through `io::Read` (tar and gzip readers) and is recovered intact.
    pub fn into_io(self) -> io::Error {
        SourceError(Box::new(self)).into_io()
    }

    /// Recovers an `ImageError` that travelled through I/O.
    pub fn from_io(err: io::Error) -> Result<ImageError, io::Error> {
        let source = SourceError::from_io(err)?;
        match source.0.downcast::<ImageError>() {
            Ok(image) => Ok(*image),
            Err(other) => Err(SourceError(other).into_io()),
        }
    }
}

/// A descriptor (`{mediaType, digest, size}`), with its digest checked.
pub fn descriptor(value: &Value) -> Result<BlobRef, String> {
    let digest = value["digest"]
        .as_str()
        .ok_or_else(|| "a descriptor has no digest".to_string())?;
    Ok(BlobRef {
        digest: Digest::parse(digest)?,
        size: value["size"].as_u64(),
        media_type: value["mediaType"].as_str().unwrap_or("").to_string(),
    })
}

pub(crate) fn too_big(
    image: &str,
    what: &'static str,
    digest: impl std::fmt::Display,
) -> ImageError {
    ImageError::BadDocument {
        image: image.to_string(),
        what,
        digest: digest.to_string(),
        detail: format!("it is over {MAX_DOCUMENT_BYTES} bytes"),
        hint: "this is not an image document; check the image",
    }
}

/// An I/O error while reading a blob: the `ImageError` it carries, or one naming the blob.
pub(crate) fn io_error(err: io::Error, image: &str, digest: impl std::fmt::Display) -> ImageError {
    ImageError::from_io(err).unwrap_or_else(|err| ImageError::Io {
        image: image.to_string(),
        path: PathBuf::from(digest.to_string()),
        source: err,
    })
}

/// Checks a whole document against the digest (and size) its descriptor gave.
pub fn check_document(image: &str, blob: &BlobRef, bytes: &[u8]) -> Result<(), ImageError> {
    let actual = Digest::of(bytes);
    let size_ok = blob.size.is_none_or(|s| s == bytes.len() as u64);
    if actual != blob.digest || !size_ok {
        return Err(ImageError::DigestMismatch {
            image: image.to_string(),
            what: "manifest",
            digest: blob.digest.to_string(),
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
    digest: Digest,
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

    pub fn new(
        inner: R,
        image: &str,
        what: &'static str,
        digest: &Digest,
        size: Option<u64>,
    ) -> Self {
        VerifyingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
            digest: digest.clone(),
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
            digest: self.digest.to_string(),
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
            return Err(self.mismatch(format!(
                "more than the {size} bytes its descriptor declares"
            )));
        }
        if n == 0 && !self.checked {
            self.checked = true;
            let actual = Digest::from_raw(&self.hasher.clone().finalize().into());
            if self.size.is_some_and(|s| s != self.count) || actual != self.digest {
                return Err(self.mismatch(format!("got {actual}, {} bytes", self.count)));
            }
        }
        Ok(n)
    }
}

/// Reads a blob to the end through its digest check: when a layer fails to decompress or untar,
/// this tells a damaged blob (the real cause, named by digest) from a malformed one.
pub fn verify_blob(store: &dyn ImageStore, blob: &BlobRef) -> Result<(), ImageError> {
    let mut reader = store.open_blob(blob)?;
    io::copy(&mut reader, &mut io::sink()).map_err(|e| io_error(e, store.name(), &blob.digest))?;
    Ok(())
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
        digest: layer.blob.digest.to_string(),
        problem,
        hint: "layerport reads tar and tar+gzip layers; convert the image, e.g. `skopeo copy --dest-compress-format gzip`",
    };
    let mt = layer.blob.media_type.as_str();
    if mt.contains("zstd") {
        return Err(unsupported(format!(
            "zstd compression ({mt}) is not supported"
        )));
    }
    if mt.contains("foreign") || mt.contains("windows") {
        return Err(unsupported(format!("{mt} is not a Linux layer")));
    }
    let raw = store.open_blob(&layer.blob)?;
    let mut raw = io::BufReader::with_capacity(256 * 1024, raw);
    let head =
        io::BufRead::fill_buf(&mut raw).map_err(|e| io_error(e, image, &layer.blob.digest))?;
    let tar: Box<dyn Read + Send + 'a> = match sniff_compression(head) {
        // MultiGzDecoder reads its input to the end (looking for another member), so the blob's
        // own digest check at end of stream always runs.
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        Compression::None => Box::new(raw),
        Compression::Zstd => return Err(unsupported("zstd compression is not supported".into())),
    };
    Ok(Box::new(VerifyingReader::new(
        tar,
        image,
        "uncompressed layer (diff_id)",
        &layer.diff_id,
        None,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_of(bytes: &[u8]) -> Digest {
        Digest::of(bytes)
    }

    #[test]
    fn verifying_reader_accepts_good_and_refuses_bad_bytes() {
        let data = b"layer bytes".to_vec();
        let good = BlobRef {
            digest: digest_of(&data),
            size: Some(data.len() as u64),
            media_type: String::new(),
        };
        let mut out = Vec::new();
        VerifyingReader::blob(&data[..], "img", &good)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);

        let tampered = b"layer bytez".to_vec();
        let err = VerifyingReader::blob(&tampered[..], "img", &good)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        let err = ImageError::from_io(err).unwrap();
        assert!(err.to_string().contains(good.digest.as_str()), "{err}");

        let short = BlobRef {
            size: Some(3),
            ..good
        };
        let err = VerifyingReader::blob(&data[..], "img", &short)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(
            ImageError::from_io(err)
                .unwrap()
                .to_string()
                .contains("more than the 3 bytes")
        );
    }

    #[test]
    fn sniffs_compression() {
        assert_eq!(sniff_compression(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            sniff_compression(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(sniff_compression(b"opt/\0\0"), Compression::None);
    }
}
