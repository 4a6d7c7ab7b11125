//! `layerport inspect LAYER|IMAGE`: what a layer zip holds, its verified unzipped size against
//! Lambda's limit, and the warnings a conversion would give; or, for an image, its platforms,
//! layers and their sources, config and /opt tree (`inspect/image.rs`).

mod image;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, sink};

use anyhow::Result;
use serde::Serialize;

use crate::context::Context;
use crate::core::error::LayerError;
use crate::core::layer_zip::{Budget, EntryKind, LAMBDA_UNZIPPED_LIMIT, ZipLayer};
use crate::core::warnings::Warning;
use crate::pipeline::inputs::{LocalLayer, resolve_layers};
use crate::printer::{Report, bytes};
use crate::settings::{InspectSettings, InspectTarget};

pub use image::ImageReport;

/// A layer's report or an image's, each with its `kind`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum InspectReport {
    Layer(LayerReport),
    Image(ImageReport),
}

impl Report for InspectReport {
    fn text(&self) -> String {
        match self {
            InspectReport::Layer(r) => r.text(),
            InspectReport::Image(r) => r.text(),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerReport {
    #[serde(skip)]
    display: String,
    /// `layer` (an image's report says `image`).
    pub kind: &'static str,
    pub source: String,
    pub sha256: String,
    pub code_sha256: String,
    pub zip_size: u64,
    pub unzipped_size: u64,
    pub lambda_limit: u64,
    pub percent_of_limit: f64,
    pub within_limit: bool,
    pub unix_modes: bool,
    pub files: usize,
    pub directories: usize,
    pub synthesized_directories: usize,
    pub symlinks: usize,
    pub top_level: BTreeMap<String, u64>,
    pub warnings: Vec<Warning>,
    pub entries: Vec<EntryReport>,
}

#[derive(Debug, Serialize)]
pub struct EntryReport {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub mode: String,
    pub size: Option<u64>,
    pub target: Option<String>,
    pub mtime: u64,
    pub synthesized: bool,
}

pub fn run(settings: &InspectSettings, ctx: &Context) -> Result<InspectReport> {
    match &settings.target {
        InspectTarget::Layer(layer) => {
            let layer = resolve_layers(ctx, std::slice::from_ref(layer))?.remove(0);
            Ok(InspectReport::Layer(inspect(
                &layer,
                settings.max_unzipped,
            )?))
        }
        InspectTarget::Image(spec) => Ok(InspectReport::Image(image::inspect(
            ctx,
            spec,
            settings.platform.as_ref(),
        )?)),
    }
}

fn inspect(layer: &LocalLayer, max_unzipped: u64) -> Result<LayerReport> {
    let file = File::open(&layer.path).map_err(|e| LayerError::io(&layer.path, e))?;
    let zip_size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut zip = ZipLayer::open(&layer.display, BufReader::new(file), max_unzipped)?;

    // Inflate everything once: sizes are measured, and CRCs checked, on the real bytes.
    let mut budget = Budget::new(max_unzipped);
    let mut top_level: BTreeMap<String, u64> = BTreeMap::new();
    let (mut files, mut dirs, mut synthesized, mut links) = (0usize, 0usize, 0usize, 0usize);
    let entries: Vec<(String, EntryKind)> = zip
        .entries
        .iter()
        .map(|(p, e)| (p.clone(), e.kind.clone()))
        .collect();
    for (path, kind) in &entries {
        match kind {
            EntryKind::File { index, .. } => {
                files += 1;
                let n = zip.copy_file(path, *index, &mut budget, &mut sink())?;
                let top = path.split('/').next().unwrap_or(path).to_string();
                *top_level.entry(top).or_default() += n;
            }
            EntryKind::Dir => {
                dirs += 1;
                if zip.entries[path].synthesized {
                    synthesized += 1;
                }
            }
            EntryKind::Symlink { .. } => links += 1,
        }
    }
    let unzipped = budget.used;
    let percent = unzipped as f64 * 100.0 / LAMBDA_UNZIPPED_LIMIT as f64;
    let listing = zip
        .entries
        .iter()
        .map(|(path, e)| {
            let (kind, size, target) = match &e.kind {
                EntryKind::Dir => ("directory", None, None),
                EntryKind::File { size, .. } => ("file", Some(*size), None),
                EntryKind::Symlink { target } => ("symlink", None, Some(target.clone())),
            };
            EntryReport {
                path: path.clone(),
                kind,
                mode: format!("{:04o}", e.mode),
                size,
                target,
                mtime: e.mtime,
                synthesized: e.synthesized,
            }
        })
        .collect();
    Ok(LayerReport {
        display: layer.display.clone(),
        kind: "layer",
        source: layer.source.label.clone(),
        sha256: layer.source.sha256_hex.clone(),
        code_sha256: layer.source.code_sha256.clone(),
        zip_size,
        unzipped_size: unzipped,
        lambda_limit: LAMBDA_UNZIPPED_LIMIT,
        percent_of_limit: (percent * 100.0).round() / 100.0,
        within_limit: unzipped <= LAMBDA_UNZIPPED_LIMIT,
        unix_modes: zip.has_unix_modes,
        files,
        directories: dirs,
        synthesized_directories: synthesized,
        symlinks: links,
        top_level,
        warnings: zip.warnings.clone(),
        entries: listing,
    })
}

impl LayerReport {
    fn text(&self) -> String {
        let percent = self.unzipped_size as f64 * 100.0 / LAMBDA_UNZIPPED_LIMIT as f64;
        let mut out = vec![
            self.display.clone(),
            format!(
                "  sha256      {} (CodeSha256 {})",
                self.sha256, self.code_sha256
            ),
            format!(
                "  entries     {} files, {} directories ({} not listed in the zip), {} symlinks",
                self.files, self.directories, self.synthesized_directories, self.symlinks
            ),
            format!("  zip size    {}", bytes(self.zip_size)),
            format!(
                "  unzipped    {}: {percent:.1}% of Lambda's limit of {}{}",
                bytes(self.unzipped_size),
                bytes(LAMBDA_UNZIPPED_LIMIT),
                if self.within_limit {
                    ""
                } else {
                    " (OVER THE LIMIT)"
                }
            ),
            format!(
                "  unix modes  {}",
                if self.unix_modes {
                    "yes"
                } else {
                    "no (made on Windows?): modes are 0644, 0755 where Lambda must run the file"
                }
            ),
        ];
        out.extend(top_level_table(&self.top_level, "unzipped"));
        if self.warnings.is_empty() {
            out.push("  warnings    none".into());
        } else {
            out.push(format!("  warnings    {}", self.warnings.len()));
            for w in &self.warnings {
                out.push(format!("    - {}", w.message));
            }
        }
        out.join("\n")
    }
}

/// The top-level entries and their file bytes, as a table with labelled columns.
fn top_level_table(top_level: &BTreeMap<String, u64>, what: &str) -> Vec<String> {
    if top_level.is_empty() {
        return Vec::new();
    }
    let mut out = vec![format!("  top level ({what} file bytes under each entry):")];
    out.push(format!("    {:>12}  {:>10}  {}", "BYTES", "SIZE", "ENTRY"));
    for (top, size) in top_level {
        out.push(format!(
            "    {size:>12}  {:>10}  {top}",
            crate::printer::human_size(*size)
        ));
    }
    out
}
