//! Where a built image goes, behind one trait whatever the transport — an OCI layout, a docker
//! archive, or a registry (`registry::push`) — mirroring `source::ImageStore`, which reads them.
//!
//! The pipeline writes each new layer blob into `blob_dir()` and tells the sink as soon as it is
//! complete, so a push can upload it while the next layers are still being built; `finish` gets the
//! config and manifest last, so nothing names a blob that is not there yet.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::core::digest::Digest;
use crate::core::layer_gzip::LayerDigests;
use crate::oci::image::{AddedLayer, BaseImage, BuiltImage};
use crate::oci::reference::ImageRef;

/// Any error a sink can meet; each names what it could not write and says what to do.
pub type SinkError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Where the user asked the image to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkSpec {
    OciLayout { dir: PathBuf, tag: Option<String> },
    DockerArchive { file: PathBuf, tag: Option<String> },
    Registry(ImageRef),
}

impl SinkSpec {
    /// `--docker-archive -`: the archive is streamed to stdout.
    pub fn writes_to_stdout(&self) -> bool {
        matches!(self, SinkSpec::DockerArchive { file, .. } if crate::core::staging::is_stdout(file))
    }
}

impl fmt::Display for SinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (transport, path, tag) = match self {
            SinkSpec::Registry(r) => return write!(f, "{r}"),
            SinkSpec::OciLayout { dir, tag } => ("oci:", dir, tag),
            SinkSpec::DockerArchive { file, tag } => ("docker-archive:", file, tag),
        };
        write!(f, "{transport}{}", path.display())?;
        if let Some(t) = tag {
            write!(f, ":{t}")?;
        }
        Ok(())
    }
}

/// The kind of destination, as reports name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SinkKind {
    OciLayout,
    DockerArchive,
    Registry,
}

/// What happened to one blob of a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobStatus {
    /// Sent by us.
    Uploaded,
    /// Already in the target repository.
    Exists,
    /// Mounted from another repository of the same registry (no bytes sent).
    Mounted,
    /// Copied from the base image's registry or local store.
    Copied,
}

#[derive(Debug, Clone, Serialize)]
pub struct BlobReport {
    pub digest: Digest,
    pub size: u64,
    pub status: BlobStatus,
}

/// What a push did, blob by blob.
#[derive(Debug, Clone)]
pub struct PushReport {
    pub blobs: Vec<BlobReport>,
    /// False when the tag already pointed at this exact manifest.
    pub manifest_pushed: bool,
}

/// What a finished write reports.
#[derive(Debug, Clone)]
pub struct SinkReport {
    pub kind: SinkKind,
    /// How to name the written image: `oci:DIR:TAG`, `docker-archive:FILE:TAG`, `REPO@DIGEST`.
    pub reference: String,
    pub push: Option<PushReport>,
}

/// Everything `finish` needs: the config and manifest, the base it was built on, and the layers
/// added to it (in order; their blobs are in `blob_dir`).
pub struct FinishedImage<'a> {
    pub built: &'a BuiltImage,
    pub base: Option<&'a BaseImage>,
    pub added: &'a [AddedLayer],
}

pub trait ImageSink {
    /// How messages name the destination (`oci:DIR:TAG`, `REGISTRY/REPO:TAG`).
    fn describe(&self) -> String;
    /// Where the pipeline writes new layer blobs, each named by its digest's hex.
    fn blob_dir(&self) -> &Path;
    /// The base is known: its layers may start moving (a push starts their transfers at once).
    fn start_base(&mut self, base: &BaseImage) -> Result<(), SinkError>;
    /// Added layer `index` is complete in `blob_dir`.
    fn layer_ready(&mut self, index: usize, layer: &LayerDigests) -> Result<(), SinkError>;
    /// Writes the rest and makes the image visible at its destination, all or nothing.
    fn finish(self: Box<Self>, image: FinishedImage<'_>) -> Result<SinkReport, SinkError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_print_as_users_write_them() {
        let layout = SinkSpec::OciLayout {
            dir: "out/x".into(),
            tag: Some("v1".into()),
        };
        assert_eq!(layout.to_string(), "oci:out/x:v1");
        let archive = SinkSpec::DockerArchive {
            file: "img.tar".into(),
            tag: None,
        };
        assert_eq!(archive.to_string(), "docker-archive:img.tar");
        assert_eq!(
            serde_json::to_value(SinkKind::OciLayout).unwrap(),
            "oci-layout"
        );
        assert_eq!(serde_json::to_value(BlobStatus::Exists).unwrap(), "exists");
    }
}
