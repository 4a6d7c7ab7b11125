//! `docker save` archives (`docker-archive:FILE[:NAME]`), legacy (`manifest.json` naming a config and
//! layer files, compressed or not) and docker 25+ (the same plus an OCI layout), read in place: the
//! tar is indexed once and each member is read by seeking to it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::Path;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::layout::{Layout, Member, Members, describe_kind, open_regular, read_member};
use super::resolve::MAX_LAYERS;
use super::source::{
    BlobRef, Compression, Document, ImageError, ImageStore, OCI_CONFIG, OCI_MANIFEST,
    VerifyingReader, io_error, sniff_compression,
};
use crate::core::digest::Digest;
use crate::core::tar_guard::{OversizedRecord, TarGuard, read_up_to};

const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Members an archive may have (each is indexed in memory; `docker save` writes a few per layer).
const MAX_MEMBERS: usize = 100_000;
/// Links between members (older `docker save` links duplicate layers) are followed this far.
const MAX_LINK_HOPS: usize = 8;

/// The members of an uncompressed tar file, by normalised name: where each one's bytes start.
pub(crate) struct TarMembers {
    /// Opened once (checked to be a regular file) and read with positioned reads.
    file: File,
    files: HashMap<String, (u64, u64)>,
}

impl TarMembers {
    fn index(image: &str, path: &Path) -> Result<Self, ImageError> {
        let io = |source| ImageError::Io {
            image: image.to_string(),
            path: path.to_path_buf(),
            source,
        };
        let not_tar = |detail: String| ImageError::Source {
            image: image.to_string(),
            problem: format!("it is not a readable tar archive ({detail})"),
            hint:
                "give the file `docker save` wrote (uncompressed; gunzip it first if it is .tar.gz)"
                    .into(),
        };
        let not_tar = |e: io::Error| match OversizedRecord::from_io(&e) {
            Some(record) => ImageError::Source {
                image: image.to_string(),
                problem: format!("entry {:?} has {record}", record.entry),
                hint: "the archive is malformed or hostile; save the image again".into(),
            },
            None => not_tar(e.to_string()),
        };
        // The path checked by `open` may be a symlink to the archive: open what it leads to.
        let real = std::fs::canonicalize(path).map_err(io)?;
        let file = open_regular(&real).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(not_regular(image, describe_kind(meta.file_type())));
        }
        let mut head = [0u8; 4];
        let n = (&file).read(&mut head).map_err(io)?;
        if sniff_compression(&head[..n]) != Compression::None {
            return Err(not_tar(io::Error::other("it is compressed")));
        }
        (&file).rewind().map_err(io)?;
        let mut archive = tar::Archive::new(TarGuard::new(BufReader::new(&file)));
        let mut files = HashMap::new();
        let mut links = HashMap::new();
        for entry in archive.entries().map_err(not_tar)? {
            let entry = entry.map_err(not_tar)?;
            if files.len() + links.len() >= MAX_MEMBERS {
                return Err(ImageError::Source {
                    image: image.to_string(),
                    problem: format!("it has more than {MAX_MEMBERS} members"),
                    hint: "`docker save` writes a few per layer; this is not a docker archive, or a hostile one".into(),
                });
            }
            let name = normalize(&String::from_utf8_lossy(&entry.path_bytes()));
            let kind = entry.header().entry_type();
            if kind.is_file() || kind == tar::EntryType::Continuous {
                files.insert(name, (entry.raw_file_position(), entry.size()));
            } else if kind.is_symlink() || kind.is_hard_link() {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                // A symlink is relative to its own directory; a hard link names a member.
                let target = if kind.is_symlink() && !target.starts_with('/') {
                    let dir = name.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                    normalize(&format!("{dir}/{target}"))
                } else {
                    normalize(&target)
                };
                links.insert(name, target);
            }
        }
        for (name, mut target) in links.clone() {
            for _ in 0..MAX_LINK_HOPS {
                match links.get(&target) {
                    Some(next) => target = next.clone(),
                    None => break,
                }
            }
            if let Some(&at) = files.get(&target) {
                files.insert(name, at);
            }
        }
        drop(archive);
        Ok(TarMembers { file, files })
    }
}

/// `./a/../b` → `b`; names in archives are relative to the archive root.
fn normalize(name: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

impl Members for TarMembers {
    fn open(&self, rel: &str) -> Result<Option<Member<'_>>, ImageError> {
        let Some(&(offset, size)) = self.files.get(rel) else {
            return Ok(None);
        };
        let reader = At {
            file: &self.file,
            pos: offset,
            end: offset.saturating_add(size),
        };
        Ok(Some((Box::new(BufReader::new(reader)), size)))
    }
}

/// A member's bytes, read with positioned reads from the one open archive file.
struct At<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let want = buf
            .len()
            .min((self.end - self.pos).try_into().unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

fn not_regular(image: &str, kind: &str) -> ImageError {
    ImageError::Source {
        image: image.to_string(),
        problem: format!("it is {kind}, not a regular file"),
        hint: "give the file `docker save` wrote (save to a file first: a pipe or device cannot be read in place)".into(),
    }
}

/// An image described by `manifest.json`, presented as an OCI manifest built from it.
struct Legacy {
    image: String,
    members: TarMembers,
    manifest: Document,
    /// Blob digest → member name.
    blobs: HashMap<Digest, String>,
}

enum Inner {
    Legacy(Legacy),
    Oci(Layout<TarMembers>),
}

/// `docker-archive:FILE[:NAME]`: what `docker save` (any version) or `layerport image --docker-archive` writes.
pub struct DockerArchiveStore {
    inner: Inner,
}

impl DockerArchiveStore {
    /// Indexes the archive and, for a `manifest.json` archive, works out every blob's digest.
    /// `name` picks one image of an archive holding several (`repo:tag` as `docker save` listed it).
    pub fn open(file: &Path, name: Option<&str>) -> Result<Self, ImageError> {
        let image = match name {
            Some(n) => format!("docker-archive:{}:{n}", file.display()),
            None => format!("docker-archive:{}", file.display()),
        };
        match std::fs::metadata(file) {
            Ok(meta) if meta.is_file() => {}
            Ok(meta) if meta.is_dir() => {
                return Err(ImageError::Source {
                    image,
                    problem: "it is a directory".into(),
                    hint: "give the file `docker save` wrote; for an OCI layout directory use oci:DIR[:TAG]".into(),
                });
            }
            Ok(meta) => return Err(not_regular(&image, describe_kind(meta.file_type()))),
            Err(_) => {
                return Err(ImageError::Source {
                    image,
                    problem: "no such file".into(),
                    hint: "give the file `docker save` wrote; for an OCI layout directory use oci:DIR[:TAG]".into(),
                });
            }
        }
        let members = TarMembers::index(&image, file)?;
        // manifest.json lists exactly the images whose blobs were saved; docker 25+'s index.json may
        // also list platforms whose blobs are absent, so it is only the fallback.
        if let Some(bytes) = read_member(&members, &image, "manifest.json")? {
            let legacy = Legacy::new(image, members, &bytes, name)?;
            return Ok(DockerArchiveStore {
                inner: Inner::Legacy(legacy),
            });
        }
        if members.files.contains_key("index.json") {
            return Ok(DockerArchiveStore {
                inner: Inner::Oci(Layout {
                    image,
                    members,
                    tag: name.map(str::to_string),
                }),
            });
        }
        Err(ImageError::Source {
            image,
            problem: "it has neither manifest.json nor index.json: not a docker archive".into(),
            hint: "give the file `docker save` wrote".into(),
        })
    }
}

impl Legacy {
    fn new(
        image: String,
        members: TarMembers,
        bytes: &[u8],
        name: Option<&str>,
    ) -> Result<Self, ImageError> {
        let source = |problem: String, hint: &str| ImageError::Source {
            image: image.clone(),
            problem,
            hint: hint.to_string(),
        };
        let damaged = "the archive is damaged; save the image again";
        let entries: Vec<Value> = serde_json::from_slice::<Value>(bytes)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .ok_or_else(|| source("manifest.json is not a JSON list of images".into(), damaged))?;
        let tags_of = |e: &Value| -> Vec<String> {
            e["RepoTags"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|t| t.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let all_tags: Vec<String> = entries.iter().flat_map(tags_of).collect();
        let entry = match name {
            Some(n) => {
                let wanted = if n.rsplit_once(':').is_some_and(|(_, t)| !t.contains('/')) {
                    n.to_string()
                } else {
                    format!("{n}:latest")
                };
                entries
                    .iter()
                    .find(|e| {
                        tags_of(e).iter().any(|t| {
                            *t == wanted
                                || t.strip_prefix("docker.io/library/") == Some(wanted.as_str())
                        })
                    })
                    .ok_or_else(|| {
                        source(
                            format!("no image is named {n:?} (it has: {})", list(&all_tags)),
                            "name one of those after the file, e.g. docker-archive:FILE:repo:tag",
                        )
                    })?
            }
            None => match entries.as_slice() {
                [one] => one,
                [] => return Err(source("manifest.json lists no images".into(), damaged)),
                _ => {
                    return Err(source(
                        format!(
                            "it holds {} images (named: {})",
                            entries.len(),
                            list(&all_tags)
                        ),
                        "name one after the file, e.g. docker-archive:FILE:repo:tag",
                    ));
                }
            },
        };
        let missing = |what: &str, rel: &str| {
            source(
                format!("manifest.json names {what} {rel:?}, which is not in the archive"),
                damaged,
            )
        };
        let config_rel = entry["Config"]
            .as_str()
            .map(normalize)
            .ok_or_else(|| source("manifest.json has no Config".into(), damaged))?;
        let config = read_member(&members, &image, &config_rel)?
            .ok_or_else(|| missing("config", &config_rel))?;
        let config_digest = Digest::of(&config);
        let diff_ids: Vec<String> = serde_json::from_slice::<Value>(&config)
            .ok()
            .and_then(|c| c["rootfs"]["diff_ids"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|d| d.as_str().map(str::to_string))
            .collect();
        let mut blobs = HashMap::from([(config_digest.clone(), config_rel)]);
        let mut layers = Vec::new();
        let layer_rels = entry["Layers"].as_array().cloned().unwrap_or_default();
        if layer_rels.len() > MAX_LAYERS {
            return Err(source(
                format!(
                    "manifest.json lists {} layers, over the {MAX_LAYERS} any container runtime can stack",
                    layer_rels.len()
                ),
                damaged,
            ));
        }
        for (i, rel) in layer_rels.iter().enumerate() {
            let rel = normalize(rel.as_str().unwrap_or_default());
            let (mut reader, size) = members.open(&rel)?.ok_or_else(|| missing("layer", &rel))?;
            let mut head = [0u8; 4];
            let n = read_up_to(&mut reader, &mut head).map_err(|e| io_error(e, &image, &rel))?;
            drop(reader);
            let compression = sniff_compression(&head[..n]);
            let content_addressed = rel
                .strip_prefix("blobs/sha256/")
                .and_then(|hex| Digest::parse(&format!("sha256:{hex}")).ok());
            let diff_id = diff_ids.get(i).and_then(|d| Digest::parse(d).ok());
            let digest = match (content_addressed, compression, diff_id) {
                (Some(d), _, _) => d,
                // An uncompressed layer's digest is its diff_id (checked while it is read).
                (None, Compression::None, Some(diff_id)) => diff_id,
                _ => hash_member(&members, &image, &rel)?,
            };
            let media_type = match compression {
                Compression::None => OCI_LAYER_TAR,
                Compression::Gzip => OCI_LAYER_GZIP,
                Compression::Zstd => OCI_LAYER_ZSTD,
            };
            layers.push(json!({"mediaType": media_type, "digest": digest, "size": size}));
            blobs.insert(digest, rel);
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
            "layers": layers,
        });
        Ok(Legacy {
            image,
            members,
            manifest: Document {
                media_type: OCI_MANIFEST.to_string(),
                bytes: serde_json::to_vec(&manifest).expect("JSON values serialise"),
            },
            blobs,
        })
    }
}

fn list(tags: &[String]) -> String {
    if tags.is_empty() {
        "no names".into()
    } else {
        tags.join(", ")
    }
}

/// The digest of a compressed member that is not stored under its digest (one extra read).
fn hash_member(members: &TarMembers, image: &str, rel: &str) -> Result<Digest, ImageError> {
    let (mut reader, _) = members.open(rel)?.ok_or_else(|| ImageError::MissingBlob {
        image: image.to_string(),
        digest: rel.to_string(),
    })?;
    let mut hasher = Sha256::new();
    io::copy(&mut reader, &mut hasher).map_err(|e| io_error(e, image, rel))?;
    Ok(Digest::from_raw(&hasher.finalize().into()))
}

impl ImageStore for DockerArchiveStore {
    fn name(&self) -> &str {
        match &self.inner {
            Inner::Legacy(l) => &l.image,
            Inner::Oci(l) => &l.image,
        }
    }

    fn root(&self) -> Result<Document, ImageError> {
        match &self.inner {
            Inner::Legacy(l) => Ok(l.manifest.clone()),
            Inner::Oci(l) => l.root(),
        }
    }

    fn manifest(&self, blob: &BlobRef) -> Result<Document, ImageError> {
        match &self.inner {
            Inner::Legacy(l) => Err(ImageError::MissingBlob {
                image: l.image.clone(),
                digest: blob.digest.to_string(),
            }),
            Inner::Oci(l) => l.manifest(blob),
        }
    }

    fn open_blob(&self, blob: &BlobRef) -> Result<Box<dyn Read + Send + '_>, ImageError> {
        match &self.inner {
            Inner::Legacy(l) => {
                let missing = || ImageError::MissingBlob {
                    image: l.image.clone(),
                    digest: blob.digest.to_string(),
                };
                let rel = l.blobs.get(&blob.digest).ok_or_else(missing)?;
                let (reader, _) = l.members.open(rel)?.ok_or_else(missing)?;
                Ok(Box::new(VerifyingReader::blob(reader, &l.image, blob)))
            }
            Inner::Oci(l) => l.open_blob(blob),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_member_names() {
        assert_eq!(normalize("./manifest.json"), "manifest.json");
        assert_eq!(normalize("abc/../def/layer.tar"), "def/layer.tar");
        assert_eq!(normalize("/blobs//sha256/x"), "blobs/sha256/x");
    }
}
