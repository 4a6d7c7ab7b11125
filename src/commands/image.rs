//! `layerport image`: layer zips → one OCI layer each (or one with --squash), on an optional base,
//! pushed to a registry or written as an OCI layout or docker archive.

use anyhow::Result;
use serde::Serialize;

use crate::context::Context;
use crate::core::digest::Digest;
use crate::core::warnings::Warning;
use crate::oci::sink::{BlobReport, SinkKind};
use crate::pipeline::{self, BuiltLayer, ImageOutcome};
use crate::printer::Report;
use crate::settings::ImageSettings;

pub fn run(settings: &ImageSettings, ctx: &Context) -> Result<ImageReport> {
    let sink = pipeline::open_sink(ctx, &settings.output, settings.create_repository)?;
    let outcome = pipeline::run(ctx, &settings.request, sink)?;
    let mut report = ImageReport::new(outcome);
    report.to_stdout = settings.output.writes_to_stdout();
    Ok(report)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageReport {
    pub output: OutputReport,
    pub manifest_digest: Digest,
    pub config_digest: Digest,
    pub platform: String,
    pub layers: Vec<LayerReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blobs: Option<Vec<BlobReport>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_pushed: Option<bool>,
    /// The archive itself went to stdout (`--docker-archive -`): nothing may follow it there.
    #[serde(skip)]
    pub to_stdout: bool,
}

#[derive(Debug, Serialize)]
pub struct OutputReport {
    pub kind: SinkKind,
    pub reference: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerReport {
    pub digest: Digest,
    pub diff_id: Digest,
    pub size: u64,
    pub uncompressed_size: u64,
    pub sources: Vec<SourceReport>,
    pub warnings: Vec<Warning>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceReport {
    pub source: String,
    pub code_sha256: String,
    pub sha256: String,
}

impl ImageReport {
    fn new(outcome: ImageOutcome) -> Self {
        let layers = outcome.layers.into_iter().map(layer_report).collect();
        let push = outcome.written.push;
        ImageReport {
            output: OutputReport {
                kind: outcome.written.kind,
                reference: outcome.written.reference,
            },
            manifest_digest: outcome.image.manifest_digest,
            config_digest: outcome.image.config_digest,
            platform: outcome.platform.to_string(),
            layers,
            manifest_pushed: push.as_ref().map(|p| p.manifest_pushed),
            blobs: push.map(|p| p.blobs),
            to_stdout: false,
        }
    }
}

fn layer_report(built: BuiltLayer) -> LayerReport {
    let digests = built.layer.digests;
    LayerReport {
        digest: digests.digest,
        diff_id: digests.diff_id,
        size: digests.size,
        uncompressed_size: digests.tar_size,
        sources: built
            .layer
            .sources
            .into_iter()
            .map(|s| SourceReport {
                source: s.label,
                code_sha256: s.code_sha256,
                sha256: s.sha256_hex,
            })
            .collect(),
        warnings: built.warnings,
    }
}

impl Report for ImageReport {
    /// A push prints the pushed `repository@digest`; a local image its manifest digest.
    fn text(&self) -> String {
        match self.output.kind {
            SinkKind::Registry => self.output.reference.clone(),
            _ => self.manifest_digest.to_string(),
        }
    }

    fn streamed(&self) -> bool {
        self.to_stdout
    }
}
