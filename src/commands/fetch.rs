//! `layerport fetch LAYER... --dest DIR`: layers extracted in order into DIR, atomically.

use std::fs::File;
use std::io::BufReader;

use anyhow::Result;
use serde_json::json;
use tracing::{info, warn};

use super::{print_json, print_line, resolve_layers, source_date_epoch};
use crate::cli::{FetchArgs, GlobalArgs};
use crate::error::LayerError;
use crate::extract;
use crate::layer_tree;
use crate::layer_zip::ZipLayer;

pub fn run(global: &GlobalArgs, args: &FetchArgs) -> Result<()> {
    let mtime_override = source_date_epoch()?;
    let resolved = resolve_layers(global, &args.layers)?;
    let layers = &resolved.layers;
    let mut zips = Vec::with_capacity(layers.len());
    for layer in layers {
        let file = File::open(&layer.path).map_err(|e| LayerError::io(&layer.path, e))?;
        let zip = ZipLayer::open(
            &layer.display,
            BufReader::new(file),
            args.limits.max_unzipped,
        )?;
        for w in &zip.warnings {
            warn!("{}: {}", zip.name, w.message);
        }
        zips.push(zip);
    }
    let tree = layer_tree::merge(zips.iter().map(|z| &z.entries));
    let stats = extract::extract_into(
        &mut zips,
        &tree,
        &args.dest,
        args.limits.max_unzipped,
        mtime_override,
    )?;
    info!(
        "extracted {} layer(s) into {}: {} files, {} bytes",
        layers.len(),
        args.dest.display(),
        stats.files,
        stats.bytes
    );
    if global.json {
        print_json(&json!({
            "dest": args.dest.display().to_string(),
            "files": stats.files,
            "bytes": stats.bytes,
            "layers": layers.iter().map(|l| json!({
                "source": l.source.label,
                "codeSha256": l.source.code_sha256,
            })).collect::<Vec<_>>(),
        }))
    } else {
        print_line(&args.dest.display().to_string())
    }
}
