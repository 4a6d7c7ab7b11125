//! OCI image layouts (`oci-layout`, `index.json`, `blobs/sha256/…`), read from a directory or from
//! the members of a tar (a docker 25+ `docker save` archive or an `oci-archive`).

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::source::{
    BlobRef, Document, ImageError, ImageStore, MAX_BLOB_BYTES, MAX_DOCUMENT_BYTES, OCI_INDEX,
    VerifyingReader, check_document, descriptor, too_big,
};

/// The annotation naming an image's tag in a layout's index.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A member's bytes and its size.
pub(crate) type Member<'a> = (Box<dyn Read + Send + 'a>, u64);

/// Read access to the files of a layout, wherever they are.
pub(crate) trait Members: Send + Sync {
    /// The member at `rel` (a `/`-separated relative path) and its size, or `None` if absent.
    fn open(&self, rel: &str) -> Result<Option<Member<'_>>, ImageError>;
}

/// Files under a directory. Only regular files inside it are members: a FIFO or device would block
/// or never end, and a symlink leading out of the layout would read files it does not own.
pub(crate) struct DirMembers {
    pub image: String,
    pub root: PathBuf,
}

impl Members for DirMembers {
    fn open(&self, rel: &str) -> Result<Option<Member<'_>>, ImageError> {
        let path = self.root.join(rel);
        let io = |source| ImageError::Io {
            image: self.image.clone(),
            path: path.clone(),
            source,
        };
        let refuse = |problem: String| {
            ImageError::Source {
            image: self.image.clone(),
            problem: format!("{rel} {problem}"),
            hint: "only regular files inside the layout are read; copy the image again (e.g. `skopeo copy`) to get a plain layout".into(),
        }
        };
        // Symlinks are resolved without opening anything (opening a FIFO blocks until a writer comes).
        let real = match std::fs::canonicalize(&path) {
            Ok(real) => real,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let root = std::fs::canonicalize(&self.root).map_err(io)?;
        if !real.starts_with(&root) {
            return Err(refuse(format!(
                "leads out of the layout (to {})",
                real.display()
            )));
        }
        let kind = std::fs::symlink_metadata(&real).map_err(io)?.file_type();
        if !kind.is_file() {
            return Err(refuse(format!(
                "is {}, not a regular file",
                describe_kind(kind)
            )));
        }
        let file = open_regular(&real).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            // Replaced between the check and the open.
            return Err(refuse(format!(
                "is {}, not a regular file",
                describe_kind(meta.file_type())
            )));
        }
        Ok(Some((Box::new(file), meta.len())))
    }
}

/// Opens a path already checked to be a regular file, without following a symlink put in its place.
pub(crate) fn open_regular(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// "a FIFO", "a directory", ...: what a path is, for messages.
pub(crate) fn describe_kind(kind: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_symlink() {
        "a symlink"
    } else if kind.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

/// Reads a whole small member (index.json, manifest.json), or `None` if absent.
pub(crate) fn read_member<M: Members + ?Sized>(
    members: &M,
    image: &str,
    rel: &str,
) -> Result<Option<Vec<u8>>, ImageError> {
    let Some((mut reader, size)) = members.open(rel)? else {
        return Ok(None);
    };
    if size > MAX_DOCUMENT_BYTES {
        return Err(too_big(image, "file", rel));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    reader
        .read_to_end(&mut bytes)
        .map_err(|source| ImageError::Io {
            image: image.to_string(),
            path: PathBuf::from(rel),
            source,
        })?;
    Ok(Some(bytes))
}

/// The logic of an OCI layout over any [`Members`]: which image `TAG` names, and verified blobs.
pub(crate) struct Layout<M> {
    pub image: String,
    pub members: M,
    pub tag: Option<String>,
}

impl<M: Members> Layout<M> {
    pub fn root(&self) -> Result<Document, ImageError> {
        let source = |problem: String, hint: &str| ImageError::Source {
            image: self.image.clone(),
            problem,
            hint: hint.to_string(),
        };
        let bytes = read_member(&self.members, &self.image, "index.json")?
            .ok_or_else(|| source("it has no index.json".into(), "give an OCI image layout (e.g. written by `skopeo copy ... oci:DIR:TAG` or `layerport image --oci-layout`)"))?;
        let index: Value = serde_json::from_slice(&bytes).map_err(|e| {
            source(
                format!("index.json is not valid JSON ({e})"),
                "repair or rewrite the layout",
            )
        })?;
        let entries: Vec<Value> = index["manifests"].as_array().cloned().unwrap_or_default();
        let name_of = |d: &Value| d["annotations"][REF_NAME].as_str().map(str::to_string);
        let tags: Vec<String> = entries.iter().filter_map(name_of).collect();
        let listed = if tags.is_empty() {
            "it has no tagged images".to_string()
        } else {
            format!("its tags: {}", tags.join(", "))
        };
        let chosen: Vec<Value> = match &self.tag {
            Some(tag) => entries
                .iter()
                .filter(|d| name_of(d).as_deref() == Some(tag.as_str()))
                .cloned()
                .collect(),
            None => entries.clone(),
        };
        match (chosen.as_slice(), &self.tag) {
            ([], Some(tag)) => Err(source(
                format!("no image is tagged {tag:?} in index.json ({listed})"),
                "name one of the tags after the directory, e.g. oci:DIR:TAG",
            )),
            ([], None) => Err(source(
                "index.json lists no images".into(),
                "the layout is empty; write an image into it first",
            )),
            ([one], _) => {
                let blob = descriptor(one).map_err(|e| {
                    source(format!("index.json: {e}"), "repair or rewrite the layout")
                })?;
                self.manifest(&blob)
            }
            (several, _) if several.iter().all(|d| d["platform"].is_object()) => {
                // Several platforms of one image listed directly: treat them as an image index.
                let doc = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": several});
                Ok(Document {
                    media_type: OCI_INDEX.to_string(),
                    bytes: serde_json::to_vec(&doc).expect("JSON values serialise"),
                })
            }
            _ => Err(source(
                format!(
                    "index.json lists {} images; say which ({listed})",
                    chosen.len()
                ),
                "name a tag after the directory, e.g. oci:DIR:TAG",
            )),
        }
    }

    pub fn manifest(&self, blob: &BlobRef) -> Result<Document, ImageError> {
        let rel = blob_rel(blob);
        let bytes = read_member(&self.members, &self.image, &rel)?.ok_or_else(|| {
            ImageError::MissingBlob {
                image: self.image.clone(),
                digest: blob.digest.to_string(),
            }
        })?;
        check_document(&self.image, blob, &bytes)?;
        Ok(Document {
            media_type: blob.media_type.clone(),
            bytes,
        })
    }

    pub fn open_blob(&self, blob: &BlobRef) -> Result<Box<dyn Read + Send + '_>, ImageError> {
        let (reader, size) =
            self.members
                .open(&blob_rel(blob))?
                .ok_or_else(|| ImageError::MissingBlob {
                    image: self.image.clone(),
                    digest: blob.digest.to_string(),
                })?;
        // No image Lambda runs has a blob this big; reading one would take hours.
        if size > MAX_BLOB_BYTES {
            return Err(ImageError::Source {
                image: self.image.clone(),
                problem: format!(
                    "blob {} is {size} bytes, more than Lambda's 10 GiB image limit",
                    blob.digest
                ),
                hint: "the image is malformed or hostile; rebuild it".into(),
            });
        }
        // The file's size is known: a mismatch with the descriptor fails now, not after reading it all.
        if blob.size.is_some_and(|s| s != size) {
            return Err(ImageError::DigestMismatch {
                image: self.image.clone(),
                what: "blob",
                digest: blob.digest.to_string(),
                detail: format!(
                    "it is {size} bytes, its descriptor says {}",
                    blob.size.unwrap_or_default()
                ),
            });
        }
        Ok(Box::new(VerifyingReader::blob(reader, &self.image, blob)))
    }
}

/// `blobs/sha256/<hex>`; the digest was checked to be 64 hex digits, so this stays inside the layout.
fn blob_rel(blob: &BlobRef) -> String {
    format!("blobs/sha256/{}", blob.digest.hex())
}

/// `oci:DIR[:TAG]`: an OCI image layout directory.
pub struct OciLayoutStore {
    layout: Layout<DirMembers>,
}

impl OciLayoutStore {
    pub fn open(dir: &Path, tag: Option<&str>) -> Result<Self, ImageError> {
        let image = match tag {
            Some(t) => format!("oci:{}:{t}", dir.display()),
            None => format!("oci:{}", dir.display()),
        };
        // index.json need only exist here: reading it says what is wrong with one that is not a file.
        if !dir.join("oci-layout").is_file()
            || std::fs::symlink_metadata(dir.join("index.json")).is_err()
        {
            let problem = if dir.is_dir() {
                "it is not an OCI image layout (no oci-layout or index.json file)"
            } else {
                "no such directory"
            };
            return Err(ImageError::Source {
                image,
                problem: problem.to_string(),
                hint: "give an OCI image layout directory (e.g. from `skopeo copy ... oci:DIR:TAG`); for a `docker save` file use docker-archive:FILE".into(),
            });
        }
        Ok(OciLayoutStore {
            layout: Layout {
                image: image.clone(),
                members: DirMembers {
                    image,
                    root: dir.to_path_buf(),
                },
                tag: tag.map(str::to_string),
            },
        })
    }
}

impl ImageStore for OciLayoutStore {
    fn name(&self) -> &str {
        &self.layout.image
    }
    fn root(&self) -> Result<Document, ImageError> {
        self.layout.root()
    }
    fn manifest(&self, blob: &BlobRef) -> Result<Document, ImageError> {
        self.layout.manifest(blob)
    }
    fn open_blob(&self, blob: &BlobRef) -> Result<Box<dyn Read + Send + '_>, ImageError> {
        self.layout.open_blob(blob)
    }
}
