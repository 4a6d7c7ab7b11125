//! `layerport inspect LAYER`: what a layer zip holds, its verified unzipped size against Lambda's
//! limit, and the warnings a conversion would give.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, sink};

use anyhow::Result;
use serde_json::json;

use super::{print_json, print_line, resolve_layers};
use crate::cli::{GlobalArgs, InspectArgs};
use crate::error::LayerError;
use crate::layer_zip::{Budget, EntryKind, LAMBDA_UNZIPPED_LIMIT, ZipLayer};

pub fn run(global: &GlobalArgs, args: &InspectArgs) -> Result<()> {
    let mut resolved = resolve_layers(global, std::slice::from_ref(&args.target))?;
    let layer = resolved.layers.remove(0);
    let file = File::open(&layer.path).map_err(|e| LayerError::io(&layer.path, e))?;
    let zip_size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut zip = ZipLayer::open(
        &layer.display,
        BufReader::new(file),
        args.limits.max_unzipped,
    )?;

    // Inflate everything once: sizes are measured, and CRCs checked, on the real bytes.
    let mut budget = Budget::new(args.limits.max_unzipped);
    let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
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
                *sizes.entry(top).or_default() += n;
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

    if global.json {
        let listing: Vec<_> = zip
            .entries
            .iter()
            .map(|(path, e)| {
                let (kind, size, target) = match &e.kind {
                    EntryKind::Dir => ("directory", None, None),
                    EntryKind::File { size, .. } => ("file", Some(*size), None),
                    EntryKind::Symlink { target } => ("symlink", None, Some(target.clone())),
                };
                json!({
                    "path": path,
                    "type": kind,
                    "mode": format!("{:04o}", e.mode),
                    "size": size,
                    "target": target,
                    "mtime": e.mtime,
                    "synthesized": e.synthesized,
                })
            })
            .collect();
        return print_json(&json!({
            "source": layer.source.label,
            "sha256": layer.source.sha256_hex,
            "codeSha256": layer.source.code_sha256,
            "zipSize": zip_size,
            "unzippedSize": unzipped,
            "lambdaLimit": LAMBDA_UNZIPPED_LIMIT,
            "percentOfLimit": (percent * 100.0).round() / 100.0,
            "withinLimit": unzipped <= LAMBDA_UNZIPPED_LIMIT,
            "unixModes": zip.has_unix_modes,
            "files": files,
            "directories": dirs,
            "synthesizedDirectories": synthesized,
            "symlinks": links,
            "topLevel": sizes,
            "warnings": zip.warnings,
            "entries": listing,
        }));
    }
    let mut out = vec![
        format!("{}", layer.display),
        format!(
            "  sha256      {} (CodeSha256 {})",
            layer.source.sha256_hex, layer.source.code_sha256
        ),
        format!(
            "  entries     {files} files, {dirs} directories ({synthesized} not listed in the zip), {links} symlinks"
        ),
        format!("  zip size    {zip_size} bytes"),
        format!(
            "  unzipped    {unzipped} bytes, {percent:.1}% of Lambda's {LAMBDA_UNZIPPED_LIMIT}-byte limit{}",
            if unzipped > LAMBDA_UNZIPPED_LIMIT {
                " (OVER THE LIMIT)"
            } else {
                ""
            }
        ),
        format!(
            "  unix modes  {}",
            if zip.has_unix_modes {
                "yes"
            } else {
                "no (made on Windows?): modes are 0644, 0755 where Lambda must run the file"
            }
        ),
    ];
    for (top, size) in &sizes {
        out.push(format!("  {size:>12}  {top}"));
    }
    if zip.warnings.is_empty() {
        out.push("  warnings    none".into());
    } else {
        out.push(format!("  warnings    {}", zip.warnings.len()));
        for w in &zip.warnings {
            out.push(format!("    - {}", w.message));
        }
    }
    print_line(&out.join("\n"))
}
