//! `layerport fetch LAYER... --dest DIR`: layers extracted in order into DIR, atomically.

use std::fs::File;
use std::io::BufReader;

use anyhow::Result;
use serde::Serialize;
use tracing::{info, warn};

use crate::context::Context;
use crate::core::error::LayerError;
use crate::core::extract;
use crate::core::layer_tree;
use crate::core::layer_zip::ZipLayer;
use crate::pipeline::inputs::resolve_layers;
use crate::printer::Report;
use crate::settings::FetchSettings;

#[derive(Debug, Serialize)]
pub struct FetchReport {
    pub dest: String,
    pub files: usize,
    pub bytes: u64,
    pub layers: Vec<FetchedSource>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchedSource {
    pub source: String,
    pub code_sha256: String,
}

impl Report for FetchReport {
    fn text(&self) -> String {
        self.dest.clone()
    }
}

pub fn run(settings: &FetchSettings, ctx: &Context) -> Result<FetchReport> {
    let layers = resolve_layers(ctx, &settings.layers)?;
    let mut zips = Vec::with_capacity(layers.len());
    for layer in &layers {
        let file = File::open(&layer.path).map_err(|e| LayerError::io(&layer.path, e))?;
        let zip = ZipLayer::open(&layer.display, BufReader::new(file), settings.max_unzipped)?;
        for w in &zip.warnings {
            warn!("{}: {}", zip.name, w.message);
        }
        zips.push(zip);
    }
    let tree = layer_tree::merge(zips.iter().map(|z| &z.entries));
    let stats = extract::extract_into(
        &mut zips,
        &tree,
        &settings.dest,
        settings.max_unzipped,
        settings.mtime_override,
    )?;
    info!(
        "extracted {} layer(s) into {}: {} files, {} bytes",
        layers.len(),
        settings.dest.display(),
        stats.files,
        stats.bytes
    );
    Ok(FetchReport {
        dest: settings.dest.display().to_string(),
        files: stats.files,
        bytes: stats.bytes,
        layers: layers
            .iter()
            .map(|l| FetchedSource {
                source: l.source.label.clone(),
                code_sha256: l.source.code_sha256.clone(),
            })
            .collect(),
    })
}
