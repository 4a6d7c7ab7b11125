//! Writes a `docker load` archive: `manifest.json`, the config, and each layer as an uncompressed tar
//! (what `docker save` writes), inflated from the gzip blobs — and a base image's layers read from
//! its store — while copying.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::core::error::{LayerError, Result};
use crate::core::layer_gzip::LayerDigests;
use crate::core::staging::{
    Staging, check_output_file, check_stdout_output, copy_to_stdout, is_stdout,
};
use crate::core::tar_writer::TarWriter;
use crate::oci::canonical_json::to_canonical_bytes;
use crate::oci::image::{BaseImage, BuiltImage};
use crate::oci::layout_sink::blob_path;
use crate::oci::sink::{FinishedImage, ImageSink, SinkError, SinkKind, SinkReport, SinkSpec};
use crate::oci::source::{io_error, open_layer};

/// Archive members get a fixed time so the archive itself is reproducible.
const MEMBER_MTIME: u64 = 0;

/// A docker archive being written: gzip blobs are staged beside the destination file.
pub struct ArchiveSink {
    file: PathBuf,
    tag: Option<String>,
    staging: Staging,
    blobs: PathBuf,
}

impl ArchiveSink {
    /// Refuses anything but a regular file as the destination and prepares the staging directory
    /// next to it (in TMPDIR for `-`, stdout).
    pub fn create(file: &Path, tag: Option<&str>) -> Result<Self> {
        let staging = if is_stdout(file) {
            check_stdout_output("cannot write a docker archive to")?;
            Staging::in_temp()?
        } else {
            check_output_file(file, "cannot write a docker archive to")?;
            Staging::next_to(file)?
        };
        let blobs = staging.path().join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(|e| LayerError::io(&blobs, e))?;
        Ok(ArchiveSink {
            file: file.to_path_buf(),
            tag: tag.map(str::to_string),
            staging,
            blobs,
        })
    }
}

impl ImageSink for ArchiveSink {
    fn describe(&self) -> String {
        SinkSpec::DockerArchive {
            file: self.file.clone(),
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
        let reference = SinkSpec::DockerArchive {
            file: self.file.clone(),
            tag: self.tag.clone(),
        }
        .to_string();
        write(self.staging, &self.file, &image, self.tag.as_deref())?;
        Ok(SinkReport {
            kind: SinkKind::DockerArchive,
            reference,
            push: None,
        })
    }
}

/// One layer of the archive: where its uncompressed tar comes from.
enum LayerTar<'a> {
    /// A gzip blob we built, with its tar size.
    Built(&'a LayerDigests),
    /// A base layer, read (and checked against its diff_id) from the base's store.
    Base(&'a BaseImage, usize),
}

/// Writes the archive for `image` to `dest`; the gzip layer blobs are in `staging` under `blobs/sha256/`.
fn write(
    staging: Staging,
    dest: &Path,
    image: &FinishedImage<'_>,
    repo_tag: Option<&str>,
) -> std::result::Result<(), SinkError> {
    let root = staging.path().to_path_buf();
    let tmp_path = root.join("archive.tar");
    let file = File::create(&tmp_path).map_err(|e| LayerError::io(&tmp_path, e))?;
    let io_err = |e| LayerError::io(dest, e);
    let mut tar = TarWriter::new(BufWriter::new(file));
    let built: &BuiltImage = image.built;
    let config_name = format!("blobs/sha256/{}", built.config_digest.hex());
    let mut layers: Vec<(String, LayerTar)> = Vec::new();
    if let Some(base) = image.base {
        for (i, layer) in base.layers.iter().enumerate() {
            let name = format!("blobs/sha256/{}", layer.diff_id.hex());
            layers.push((name, LayerTar::Base(base, i)));
        }
    }
    for layer in image.added {
        let name = format!("blobs/sha256/{}", layer.digests.diff_id.hex());
        layers.push((name, LayerTar::Built(&layer.digests)));
    }
    let manifest = to_canonical_bytes(&json!([{
        "Config": config_name,
        "RepoTags": repo_tag.map(|t| vec![t.to_string()]).unwrap_or_default(),
        "Layers": layers.iter().map(|(name, _)| name).collect::<Vec<_>>(),
    }]));
    tar.dir("blobs", 0o755, MEMBER_MTIME).map_err(io_err)?;
    tar.dir("blobs/sha256", 0o755, MEMBER_MTIME)
        .map_err(io_err)?;
    member(&mut tar, &config_name, &built.config).map_err(io_err)?;
    let mut written = std::collections::BTreeSet::new();
    for (name, layer) in &layers {
        if !written.insert(name.clone()) {
            continue;
        }
        match layer {
            LayerTar::Built(digests) => {
                let gz_path = blob_path(&root, &digests.digest);
                let gz = File::open(&gz_path).map_err(|e| LayerError::io(&gz_path, e))?;
                let mut inflate = flate2::read::GzDecoder::new(BufReader::new(gz));
                tar.begin_file(name, 0o644, MEMBER_MTIME, digests.tar_size)
                    .map_err(io_err)?;
                io::copy(&mut inflate, &mut tar).map_err(io_err)?;
                tar.end_file().map_err(io_err)?;
            }
            LayerTar::Base(base, i) => {
                let mut spooled = spool_base_layer(base, *i, &root)?;
                let size = spooled.seek(io::SeekFrom::End(0)).map_err(io_err)?;
                spooled.rewind().map_err(io_err)?;
                tar.begin_file(name, 0o644, MEMBER_MTIME, size)
                    .map_err(io_err)?;
                io::copy(&mut BufReader::new(spooled), &mut tar).map_err(io_err)?;
                tar.end_file().map_err(io_err)?;
            }
        }
    }
    member(&mut tar, "manifest.json", &manifest).map_err(io_err)?;
    let mut out = tar.finish().map_err(io_err)?;
    out.flush().map_err(io_err)?;
    out.into_inner()
        .map_err(|e| io_err(e.into_error()))?
        .sync_all()
        .map_err(io_err)?;
    if is_stdout(dest) {
        copy_to_stdout(&tmp_path)?;
    } else {
        fs::rename(&tmp_path, dest).map_err(|e| LayerError::Output {
            what: "cannot move the finished archive to",
            path: dest.to_path_buf(),
            problem: e.to_string(),
            hint: "check that the destination is a writable file path",
        })?;
    }
    let mut staging = staging;
    staging.keep_parents();
    Ok(())
}

/// A base layer's uncompressed tar, in an anonymous file in `scratch`: a tar member's size is
/// written before its bytes, and a compressed layer's tar size is known only once inflated.
fn spool_base_layer(
    base: &BaseImage,
    index: usize,
    scratch: &Path,
) -> std::result::Result<File, SinkError> {
    let layer = &base.layers[index];
    let mut file = tempfile::tempfile_in(scratch).map_err(|e| LayerError::io(scratch, e))?;
    let mut tar: Box<dyn Read + Send + '_> = open_layer(base.store.as_ref(), layer)?;
    io::copy(&mut tar, &mut file).map_err(|e| io_error(e, &base.name, &layer.blob.digest))?;
    Ok(file)
}

fn member<W: Write>(tar: &mut TarWriter<W>, name: &str, bytes: &[u8]) -> io::Result<()> {
    tar.begin_file(name, 0o644, MEMBER_MTIME, bytes.len() as u64)?;
    tar.write_all(bytes)?;
    tar.end_file()
}

/// Normalises a docker tag: `name` → `name:latest`; refuses what `docker load` would refuse.
pub fn normalize_repo_tag(tag: &str) -> std::result::Result<String, String> {
    let (repo, version) = match tag.rsplit_once(':') {
        Some((r, v)) if !v.contains('/') => (r, v),
        _ => (tag, "latest"),
    };
    let repo_ok = !repo.is_empty()
        && repo.split('/').all(|part| {
            !part.is_empty()
                && part.bytes().all(|b| {
                    b.is_ascii_lowercase()
                        || b.is_ascii_digit()
                        || matches!(b, b'.' | b'_' | b'-' | b':')
                })
        });
    let version_ok = !version.is_empty()
        && version.len() <= 128
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if repo_ok && version_ok {
        Ok(format!("{repo}:{version}"))
    } else {
        Err(format!(
            "invalid image name {tag:?}: use lowercase name[:tag], e.g. myimg:v1"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        assert_eq!(normalize_repo_tag("myimg").unwrap(), "myimg:latest");
        assert_eq!(normalize_repo_tag("myimg:v1").unwrap(), "myimg:v1");
        assert_eq!(
            normalize_repo_tag("localhost:5000/a/b:v2").unwrap(),
            "localhost:5000/a/b:v2"
        );
        assert!(normalize_repo_tag("MyImg:v1").is_err());
        assert!(normalize_repo_tag("img:bad tag").is_err());
    }
}
