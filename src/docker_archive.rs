//! Writes a `docker load` archive: `manifest.json`, the config, and each layer as an uncompressed tar
//! (what `docker save` writes), inflated from the gzip blobs while copying.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Write};
use std::path::Path;

use serde_json::json;

use crate::canonical_json::to_canonical_bytes;
use crate::digest::hex_part;
use crate::error::{LayerError, Result};
use crate::image::{AddedLayer, BuiltImage};
use crate::oci_layout::blob_path;
use crate::staging::Staging;
use crate::tar_writer::TarWriter;

/// Archive members get a fixed time so the archive itself is reproducible.
const MEMBER_MTIME: u64 = 0;

/// Writes the archive for `image` to `dest`; the gzip layer blobs are in `staging` under `blobs/sha256/`.
pub fn write(
    staging: Staging,
    dest: &Path,
    image: &BuiltImage,
    layers: &[AddedLayer],
    repo_tag: Option<&str>,
) -> Result<()> {
    let root = staging.path().to_path_buf();
    let tmp_path = root.join("archive.tar");
    let file = File::create(&tmp_path).map_err(|e| LayerError::io(&tmp_path, e))?;
    let io_err = |e| LayerError::io(dest, e);
    let mut tar = TarWriter::new(BufWriter::new(file));
    let config_name = format!("blobs/sha256/{}", hex_part(&image.config_digest));
    let layer_names: Vec<String> = layers
        .iter()
        .map(|l| format!("blobs/sha256/{}", hex_part(&l.digests.diff_id)))
        .collect();
    let manifest = to_canonical_bytes(&json!([{
        "Config": config_name,
        "RepoTags": repo_tag.map(|t| vec![t.to_string()]).unwrap_or_default(),
        "Layers": layer_names,
    }]));
    tar.dir("blobs", 0o755, MEMBER_MTIME).map_err(io_err)?;
    tar.dir("blobs/sha256", 0o755, MEMBER_MTIME)
        .map_err(io_err)?;
    member(&mut tar, &config_name, &image.config).map_err(io_err)?;
    let mut written = std::collections::BTreeSet::new();
    for (layer, name) in layers.iter().zip(&layer_names) {
        if !written.insert(name.clone()) {
            continue;
        }
        let gz_path = blob_path(&root, &layer.digests.digest);
        let gz = File::open(&gz_path).map_err(|e| LayerError::io(&gz_path, e))?;
        let mut inflate = flate2::read::GzDecoder::new(BufReader::new(gz));
        tar.begin_file(name, 0o644, MEMBER_MTIME, layer.digests.tar_size)
            .map_err(io_err)?;
        io::copy(&mut inflate, &mut tar).map_err(io_err)?;
        tar.end_file().map_err(io_err)?;
    }
    member(&mut tar, "manifest.json", &manifest).map_err(io_err)?;
    let mut out = tar.finish().map_err(io_err)?;
    out.flush().map_err(io_err)?;
    out.into_inner()
        .map_err(|e| io_err(e.into_error()))?
        .sync_all()
        .map_err(io_err)?;
    fs::rename(&tmp_path, dest).map_err(|e| LayerError::Output {
        what: "cannot move the finished archive to",
        path: dest.to_path_buf(),
        problem: e.to_string(),
        hint: "check that the destination is a writable file path",
    })?;
    let mut staging = staging;
    staging.keep_parents();
    Ok(())
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
