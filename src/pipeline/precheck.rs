//! The check before a push: the rules of `oci::check` on the image about to be tagged — its config
//! and manifest, and the layers layerport built (read back from their blobs) — so that an image
//! Lambda would refuse is never tagged. Base layers are not read again: `layerport check` reads
//! a whole image.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use tracing::warn;

use crate::core::apply::ApplyError;
use crate::core::error::SourceError;
use crate::oci::check::{
    CheckOptions, Finding, ImageFacts, Level, check_documents, check_files, scan_layers, summarize,
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
    let layers = prepared.added.iter().map(|l| {
        let path = prepared.blob_dir.join(l.digests.digest.hex());
        let file = File::open(&path).map_err(|e| ApplyError::Source(SourceError(Box::new(e))))?;
        let tar: Box<dyn Read + Send> =
            Box::new(flate2::read::GzDecoder::new(BufReader::new(file)));
        Ok((l.digests.digest.to_string(), tar))
    });
    let scan = scan_layers(prepared.target, layers, !prepared.has_base)?;
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
