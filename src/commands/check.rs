//! `layerport check IMAGE`: will Lambda accept and run this image? Reads the image from any
//! source, streams each layer once, and reports findings (exit 1 when any is an error).

use std::io::Read;

use anyhow::Result;
use serde::Serialize;
use tracing::info;

use crate::context::Context;
use crate::core::apply::ApplyError;
use crate::oci::check::{
    self, Finding, ImageFacts, Level, check_documents, check_files, index_facts, scan_layers,
};
use crate::oci::resolve::{ResolvedImage, resolve};
use crate::oci::source::{ImageStore, LayerBlob, open_layer};
use crate::pipeline::open_image;
use crate::printer::Report;
use crate::settings::CheckSettings;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    pub image: String,
    pub platform: String,
    pub manifest_digest: String,
    /// Uncompressed bytes of the layers that could be read.
    pub uncompressed_size: u64,
    pub errors: usize,
    pub warnings: usize,
    pub findings: Vec<Finding>,
}

impl Report for CheckReport {
    /// A line per finding, then a summary.
    fn text(&self) -> String {
        let mut lines: Vec<String> = self.findings.iter().map(Finding::to_string).collect();
        lines.push(format!(
            "{}: {} error(s), {} warning(s) ({}, {})",
            self.image, self.errors, self.warnings, self.platform, self.manifest_digest
        ));
        lines.join("\n")
    }

    fn exit_code(&self) -> u8 {
        u8::from(self.errors > 0)
    }
}

pub fn run(settings: &CheckSettings, ctx: &Context) -> Result<CheckReport> {
    let store = open_image(ctx, &settings.image)?;
    let root = store.root()?;
    let root_value: serde_json::Value = serde_json::from_slice(&root.bytes).unwrap_or_default();
    let index = index_facts(&root.media_type, &root_value);
    let options = &settings.options;
    // A single image of another architecture is a finding, not a failure to read it.
    let wanted = index.as_ref().and(options.platform.as_ref());
    let image = resolve(store.as_ref(), wanted)?;
    let facts = ImageFacts {
        name: image.name.clone(),
        manifest_media_type: image.manifest_media_type.clone(),
        layers: image
            .layers
            .iter()
            .map(|l| (l.blob.media_type.clone(), l.blob.digest.to_string()))
            .collect(),
        config: image.config.clone(),
        platform: image.platform.clone(),
    };
    let mut findings = check_documents(&facts, index.as_ref(), options);
    let readable: Vec<&LayerBlob> = image.layers.iter().filter(|l| can_read(l)).collect();
    info!(
        "{}: reading {} of {} layer(s)",
        image.name,
        readable.len(),
        image.layers.len()
    );
    let complete = readable.len() == image.layers.len();
    let scan = scan_layers(
        &image.name,
        layer_streams(store.as_ref(), &readable),
        complete,
    )?;
    findings.extend(check_files(&image.name, &scan, &image.config, options));
    Ok(report(
        &image,
        scan.uncompressed,
        check::summarize(findings),
    ))
}

/// Layers the core can unpack (zstd and foreign ones are reported, not read).
fn can_read(layer: &LayerBlob) -> bool {
    let mt = &layer.blob.media_type;
    !(mt.contains("zstd") || mt.contains("foreign") || mt.contains("nondistributable"))
}

fn layer_streams<'a>(
    store: &'a dyn ImageStore,
    layers: &'a [&'a LayerBlob],
) -> impl Iterator<Item = Result<(String, Box<dyn Read + Send + 'a>), ApplyError>> + 'a {
    layers.iter().map(move |layer| {
        let tar = open_layer(store, layer)
            .map_err(|e| ApplyError::Source(crate::core::error::SourceError(Box::new(e))))?;
        Ok((layer.blob.digest.to_string(), tar))
    })
}

fn report(image: &ResolvedImage, uncompressed: u64, findings: Vec<Finding>) -> CheckReport {
    let count = |level| findings.iter().filter(|f| f.level == level).count();
    CheckReport {
        image: image.name.clone(),
        platform: image.platform.to_string(),
        manifest_digest: image.manifest_digest.to_string(),
        uncompressed_size: uncompressed,
        errors: count(Level::Error),
        warnings: count(Level::Warning),
        findings,
    }
}
