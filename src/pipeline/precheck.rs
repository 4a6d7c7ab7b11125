//! The check before a push: the rules of `oci::check` on the image about to be tagged — its config
//! and manifest, and the layers layerport built (read back from their blobs) — so that an image
//! Lambda would refuse is never tagged. Base layers are not read again: `layerport check` reads
//! a whole image. In a batch, each distinct layer is scanned once and its scan laid over the
//! others' for every image that has it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use tracing::warn;

use super::layer_cache::LayerCache;
use crate::core::apply::{ApplyError, Node, NodeKind};
use crate::core::error::SourceError;
use crate::oci::check::{
    CheckOptions, FileScan, Finding, ImageFacts, Level, check_documents, check_files, scan_layers,
    summarize,
};
use crate::oci::image::{AddedLayer, BuiltImage};
use crate::oci::platform::Platform;

/// An image Lambda would refuse, stopped before its manifest was written.
#[derive(Debug, thiserror::Error)]
#[error(
    "{target}: not pushed, Lambda would refuse it:\n{}\n  hint: fix the above, or pass --no-check to push it anyway",
    listing(findings)
)]
pub struct CheckFailed {
    pub target: String,
    pub findings: Vec<Finding>,
}

fn listing(findings: &[Finding]) -> String {
    findings
        .iter()
        .filter(|f| f.level == Level::Error)
        .map(|f| format!("  {f}").replace('\n', "\n  "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What the pipeline knows of the image it is about to write.
pub struct Prepared<'a> {
    pub target: &'a str,
    pub image: &'a BuiltImage,
    pub added: &'a [AddedLayer],
    pub blob_dir: &'a Path,
    pub platform: &'a Platform,
    /// Whether the image has a base (whose layers are not scanned).
    pub has_base: bool,
    /// Scans shared with the other images of the run.
    pub cache: Option<&'a LayerCache>,
}

/// Runs the checks; warnings are logged, errors stop the push.
pub fn check_before_push(
    prepared: &Prepared<'_>,
    options: &CheckOptions,
) -> anyhow::Result<Vec<Finding>> {
    let image = prepared.image;
    let config: serde_json::Value = serde_json::from_slice(&image.config)?;
    let facts = ImageFacts {
        name: prepared.target.to_string(),
        manifest_media_type: image.manifest_media_type.clone(),
        layers: image
            .layer_descriptors
            .iter()
            .map(|d| {
                let field = |k: &str| d[k].as_str().unwrap_or_default().to_string();
                (field("mediaType"), field("digest"))
            })
            .collect(),
        config: config.clone(),
        platform: prepared.platform.clone(),
    };
    let mut findings = check_documents(&facts, None, options);
    let scan = match prepared.cache {
        Some(cache) => scan_each_once(prepared, cache)?,
        None => {
            let layers = prepared.added.iter().map(|l| layer_tar(prepared, l));
            scan_layers(prepared.target, layers, !prepared.has_base)?
        }
    };
    findings.extend(check_files(prepared.target, &scan, &config, options));
    let findings = summarize(findings);
    for f in findings.iter().filter(|f| f.level == Level::Warning) {
        warn!("{f}");
    }
    if findings.iter().any(|f| f.level == Level::Error) {
        return Err(CheckFailed {
            target: prepared.target.to_string(),
            findings,
        }
        .into());
    }
    Ok(findings)
}

fn layer_tar(
    prepared: &Prepared<'_>,
    layer: &AddedLayer,
) -> Result<(String, Box<dyn Read + Send>), ApplyError> {
    let path = prepared.blob_dir.join(layer.digests.digest.hex());
    let file = File::open(&path).map_err(|e| ApplyError::Source(SourceError(Box::new(e))))?;
    let tar: Box<dyn Read + Send> = Box::new(flate2::read::GzDecoder::new(BufReader::new(file)));
    Ok((layer.digests.digest.to_string(), tar))
}

/// Each added layer scanned alone (once per run, through the cache), then laid over each other.
fn scan_each_once(prepared: &Prepared<'_>, cache: &LayerCache) -> Result<FileScan, ApplyError> {
    let scans = prepared
        .added
        .iter()
        .map(|layer| {
            cache.scan(&layer.digests.digest, || {
                scan_layers(prepared.target, [layer_tar(prepared, layer)], false)
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(overlay(&scans, !prepared.has_base))
}

/// The tree that applying the layers in order gives, from their scans alone. Layers layerport
/// builds from zips have no whiteouts, so a later layer only adds and replaces: a path that is not
/// a directory replaces whatever was there, subtree included.
fn overlay(scans: &[Arc<FileScan>], complete: bool) -> FileScan {
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    for scan in scans {
        for (path, node) in &scan.nodes {
            if !matches!(node.kind, NodeKind::Dir) {
                let below = format!("{path}/");
                let replaced: Vec<String> = nodes
                    .range::<String, _>(&below..)
                    .take_while(|(p, _)| p.starts_with(&below))
                    .map(|(p, _)| p.clone())
                    .collect();
                for p in replaced {
                    nodes.remove(&p);
                }
            }
            nodes.insert(path.clone(), node.clone());
        }
    }
    FileScan {
        nodes,
        uncompressed: scans.iter().map(|s| s.uncompressed).sum(),
        complete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::apply::Content;

    fn scan(entries: &[(&str, NodeKind, u32)], uncompressed: u64) -> Arc<FileScan> {
        Arc::new(FileScan {
            nodes: entries
                .iter()
                .map(|(p, k, m)| (p.to_string(), Node::new(k.clone(), *m)))
                .collect(),
            uncompressed,
            complete: false,
        })
    }

    fn file() -> NodeKind {
        NodeKind::File(Content::NotKept { size: 1 })
    }

    #[test]
    fn a_later_layer_replaces_paths_and_a_file_replaces_a_whole_directory() {
        let lower = scan(
            &[
                ("opt", NodeKind::Dir, 0o755),
                ("opt/lib", NodeKind::Dir, 0o755),
                ("opt/lib/a.py", file(), 0o600),
                ("opt/lib2", NodeKind::Dir, 0o755),
                ("opt/run", file(), 0o700),
            ],
            100,
        );
        let upper = scan(
            &[
                ("opt", NodeKind::Dir, 0o755),
                ("opt/lib", file(), 0o644),
                ("opt/run", file(), 0o755),
            ],
            20,
        );
        let merged = overlay(&[lower, upper], true);
        let paths: Vec<(&str, u32)> = merged
            .nodes
            .iter()
            .map(|(p, n)| (p.as_str(), n.mode))
            .collect();
        assert_eq!(
            paths,
            [
                ("opt", 0o755),
                ("opt/lib", 0o644),
                ("opt/lib2", 0o755),
                ("opt/run", 0o755)
            ]
        );
        assert_eq!(merged.uncompressed, 120);
        assert!(merged.complete);
    }
}
