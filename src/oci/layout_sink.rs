//! Writes an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`): a new one by renaming a
//! finished staging directory into place, or an existing one by adding blobs and then the index.

use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::image::MediaType;
use serde_json::{Value, json};
use tracing::info;

use crate::core::digest::Digest;
use crate::core::error::{LayerError, Result};
use crate::core::layer_gzip::LayerDigests;
use crate::core::staging::{Staging, write_file_atomic};
use crate::oci::canonical_json::to_canonical_bytes;
use crate::oci::image::{BaseImage, BuiltImage};
use crate::oci::layout::REF_NAME;
use crate::oci::sink::{FinishedImage, ImageSink, SinkError, SinkKind, SinkReport, SinkSpec};

const LAYOUT_FILE: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// What is at the destination before we write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutTarget {
    New,
    Existing,
}

/// Checks the destination: new, an empty directory, or an existing OCI layout; anything else is refused.
pub fn check_target(dest: &Path) -> Result<LayoutTarget> {
    if !dest.exists() {
        return Ok(LayoutTarget::New);
    }
    let refuse = |problem: &str| LayerError::Output {
        what: "cannot write an OCI layout to",
        path: dest.to_path_buf(),
        problem: problem.to_string(),
        hint: "give a new directory, an empty one, or an existing OCI image layout",
    };
    if !dest.is_dir() {
        return Err(refuse("it exists and is not a directory"));
    }
    if dest.join("oci-layout").is_file() {
        check_existing(dest)?;
        return Ok(LayoutTarget::Existing);
    }
    let mut listing = fs::read_dir(dest).map_err(|e| LayerError::io(dest, e))?;
    if listing.next().is_some() {
        return Err(refuse(
            "it is a non-empty directory that is not an OCI layout",
        ));
    }
    Ok(LayoutTarget::New)
}

/// An existing layout we are about to add to, checked before anything is written: its index must
/// be readable, and its blob directories must be directories of its own (a symlink leading out of
/// it would have us write blobs elsewhere).
fn check_existing(dest: &Path) -> Result<()> {
    read_index(dest)?;
    let root = fs::canonicalize(dest).map_err(|e| LayerError::io(dest, e))?;
    for rel in ["blobs", "blobs/sha256"] {
        let path = dest.join(rel);
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue; // created when the blobs are added
        };
        let refuse = |problem: String| LayerError::Output {
            what: "cannot write an OCI layout to",
            path: dest.to_path_buf(),
            problem,
            hint: "blobs/ and blobs/sha256/ must be directories inside the layout; replace the link with a real directory, or write to a new layout",
        };
        let real = fs::canonicalize(&path).map_err(|e| LayerError::io(&path, e))?;
        if meta.file_type().is_symlink() && !real.starts_with(&root) {
            return Err(refuse(format!(
                "{rel} is a symlink leading out of the layout (to {})",
                real.display()
            )));
        }
        if !real.is_dir() {
            return Err(refuse(format!("{rel} is not a directory")));
        }
    }
    Ok(())
}

/// The layout's index.json, parsed; an unreadable one is refused before anything is written.
fn read_index(dest: &Path) -> Result<Value> {
    let index_path = dest.join("index.json");
    let bad = |problem: String| LayerError::Output {
        what: "cannot update",
        path: index_path.clone(),
        problem,
        hint: "repair or remove the layout's index.json, or write to a new layout",
    };
    match fs::symlink_metadata(&index_path) {
        Ok(meta) if !meta.is_file() => return Err(bad("it is not a regular file".into())),
        Ok(meta) if meta.len() > crate::oci::source::MAX_DOCUMENT_BYTES => {
            return Err(bad(format!(
                "it is {} bytes, too big for an index",
                meta.len()
            )));
        }
        Ok(_) => {}
        Err(e) => return Err(bad(format!("it cannot be read ({e})"))),
    }
    let existing = fs::read(&index_path).map_err(|e| LayerError::io(&index_path, e))?;
    let index: Value =
        serde_json::from_slice(&existing).map_err(|e| bad(format!("it is not valid JSON: {e}")))?;
    let manifests_ok = match index.get("manifests") {
        None => true,
        Some(m) => m.is_array(),
    };
    if !index.is_object() || !manifests_ok {
        return Err(bad(
            "it is not an OCI image index (an object with a \"manifests\" list)".into(),
        ));
    }
    Ok(index)
}

/// An OCI layout being written: new blobs go to a staging directory beside it.
pub struct LayoutSink {
    dir: PathBuf,
    tag: Option<String>,
    target: LayoutTarget,
    staging: Staging,
    blobs: PathBuf,
}

impl LayoutSink {
    /// Checks the destination and prepares the staging directory next to it.
    pub fn create(dir: &Path, tag: Option<&str>) -> Result<Self> {
        let target = check_target(dir)?;
        let staging = Staging::next_to(dir)?;
        let blobs = staging.path().join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(|e| LayerError::io(&blobs, e))?;
        Ok(LayoutSink {
            dir: dir.to_path_buf(),
            tag: tag.map(str::to_string),
            target,
            staging,
            blobs,
        })
    }

    /// Brings the base image's layer blobs into the staging directory (verified while copied).
    fn copy_base_layers(&self, base: &BaseImage) -> std::result::Result<(), SinkError> {
        for layer in &base.layers {
            let dest = self.blobs.join(layer.blob.digest.hex());
            if !dest.exists() {
                base.store.copy_blob_to(&layer.blob, &dest)?;
            }
        }
        Ok(())
    }
}

impl ImageSink for LayoutSink {
    fn describe(&self) -> String {
        SinkSpec::OciLayout {
            dir: self.dir.clone(),
            tag: self.tag.clone(),
        }
        .to_string()
    }

    fn blob_dir(&self) -> &Path {
        &self.blobs
    }

    fn start_base(&mut self, _base: &BaseImage) -> std::result::Result<(), SinkError> {
        Ok(())
    }

    fn layer_ready(&mut self, _: usize, _: &LayerDigests) -> std::result::Result<(), SinkError> {
        Ok(())
    }

    fn finish(
        self: Box<Self>,
        image: FinishedImage<'_>,
    ) -> std::result::Result<SinkReport, SinkError> {
        if let Some(base) = image.base {
            self.copy_base_layers(base)?;
        }
        let reference = SinkSpec::OciLayout {
            dir: self.dir.clone(),
            tag: self.tag.clone(),
        }
        .to_string();
        write(
            self.staging,
            &self.dir,
            self.target,
            image.built,
            self.tag.as_deref(),
        )?;
        Ok(SinkReport {
            kind: SinkKind::OciLayout,
            reference,
            push: None,
        })
    }
}

/// Blob path inside a layout (or a staging directory shaped like one).
pub fn blob_path(root: &Path, digest: &Digest) -> std::path::PathBuf {
    root.join("blobs").join("sha256").join(digest.hex())
}

/// Finishes the layout: `staging` already holds the layer blobs under `blobs/sha256/`.
fn write(
    mut staging: Staging,
    dest: &Path,
    target: LayoutTarget,
    image: &BuiltImage,
    tag: Option<&str>,
) -> Result<()> {
    let root = staging.path().to_path_buf();
    let write_blob = |digest: &Digest, bytes: &[u8]| {
        let path = blob_path(&root, digest);
        fs::write(&path, bytes).map_err(|e| LayerError::io(&path, e))
    };
    write_blob(&image.config_digest, &image.config)?;
    write_blob(&image.manifest_digest, &image.manifest)?;
    let descriptor = manifest_descriptor(image, tag);
    match target {
        LayoutTarget::New => {
            fs::write(root.join("oci-layout"), LAYOUT_FILE)
                .map_err(|e| LayerError::io(root.join("oci-layout"), e))?;
            let index = index_json(vec![descriptor]);
            fs::write(root.join("index.json"), index)
                .map_err(|e| LayerError::io(root.join("index.json"), e))?;
            if dest.is_dir() {
                // An empty directory: rename replaces it.
                fs::remove_dir(dest).map_err(|e| LayerError::io(dest, e))?;
            }
            staging.commit_as_dir(dest)
        }
        LayoutTarget::Existing => {
            // Checked again: the layout may have changed while the image was built.
            check_existing(dest)?;
            let index_path = dest.join("index.json");
            let mut index = read_index(dest)?;
            let blobs = dest.join("blobs").join("sha256");
            fs::create_dir_all(&blobs).map_err(|e| LayerError::io(&blobs, e))?;
            let staged = root.join("blobs").join("sha256");
            let items = fs::read_dir(&staged)
                .and_then(|d| d.collect::<std::io::Result<Vec<_>>>())
                .map_err(|e| LayerError::io(&staged, e))?;
            // Something other than a file where a blob goes would fail half-way through the moves.
            for item in &items {
                let to = blobs.join(item.file_name());
                if fs::symlink_metadata(&to).is_ok_and(|m| !m.is_file() && !m.is_symlink()) {
                    return Err(LayerError::Output {
                        what: "cannot write an OCI layout to",
                        path: dest.to_path_buf(),
                        problem: format!("{} exists and is not a regular file", to.display()),
                        hint: "remove it (a blob is a plain file named by its digest), or write to a new layout",
                    });
                }
            }
            for item in items {
                let to = blobs.join(item.file_name());
                // Always replaced: an existing blob whose bytes do not match its name would
                // otherwise make the new image unreadable.
                fs::rename(item.path(), &to).map_err(|e| LayerError::io(&to, e))?;
            }
            let mut manifests: Vec<Value> = index
                .get("manifests")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            manifests.retain(|m| {
                let name = m.pointer(&format!("/annotations/{}", REF_NAME.replace('/', "~1")));
                match tag {
                    Some(t) if name.and_then(Value::as_str) == Some(t) => {
                        let was = m.get("digest").and_then(Value::as_str).unwrap_or("?");
                        if was == image.manifest_digest.as_str() {
                            info!("tag {t} in {} already named this image", dest.display());
                        } else {
                            info!("replaced tag {t} in {} (was {was})", dest.display());
                        }
                        false
                    }
                    Some(_) => true,
                    None => {
                        !(name.is_none()
                            && m.get("digest").and_then(Value::as_str)
                                == Some(image.manifest_digest.as_str()))
                    }
                }
            });
            manifests.push(descriptor);
            index["manifests"] = Value::Array(manifests);
            write_file_atomic(&index_path, &to_canonical_bytes(&index))?;
            staging.keep_parents();
            Ok(())
        }
    }
}

fn manifest_descriptor(image: &BuiltImage, tag: Option<&str>) -> Value {
    let mut d = json!({
        "mediaType": MediaType::ImageManifest.to_string(),
        "digest": image.manifest_digest,
        "size": image.manifest.len(),
    });
    if let Some(tag) = tag {
        d["annotations"] = json!({ REF_NAME: tag });
    }
    d
}

fn index_json(manifests: Vec<Value>) -> Vec<u8> {
    to_canonical_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": MediaType::ImageIndex.to_string(),
        "manifests": manifests,
    }))
}

/// Checks an OCI layout tag (the part after `DIR:`).
pub fn check_tag(tag: &str) -> std::result::Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b':' | b'/' | b'@' | b'+')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid tag {tag:?}: use letters, digits, '.', '_' or '-' (at most 128 characters)"
        ))
    }
}
