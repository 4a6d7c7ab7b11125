//! Turns LAYER arguments (ARNs or zip paths) into checked local zip files with their identity:
//! local zips at once, ARNs downloaded concurrently, each handed on as soon as it is there.

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use anyhow::Context as _;
use base64::Engine;

use crate::aws::fetch::{FetchSource, FetchedLayer};
use crate::context::Context;
use crate::core::digest::sha256_file;
use crate::core::error::{LayerError, Result};
use crate::oci::image::LayerSource;

/// Where a layer zip comes from: a local file, or Lambda (a layer version, a function's code).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LayerRef {
    Zip(PathBuf),
    Remote(FetchSource),
    /// Already downloaded and verified (a custom runtime's code, read for its `bootstrap`).
    Fetched(FetchedLayer),
}

impl LayerRef {
    /// A LAYER argument: anything starting with `arn:` must be a valid layer ARN (a usage error
    /// otherwise); the rest is a zip's path.
    pub fn parse(arg: &str) -> Result<Self> {
        if arg.starts_with("arn:") {
            let arn = arg
                .parse::<crate::aws::arn::LayerArn>()
                .map_err(|e| LayerError::Usage(e.to_string()))?;
            return Ok(LayerRef::Remote(FetchSource::Layer(arn)));
        }
        Ok(LayerRef::Zip(PathBuf::from(arg)))
    }
}

/// A layer zip on local disk, verified, with where it came from.
#[derive(Debug, Clone)]
pub struct LocalLayer {
    /// How messages name it: the path as given, or the ARN.
    pub display: String,
    pub path: PathBuf,
    pub source: LayerSource,
    /// From `GetLayerVersionByArn`; empty for local zips.
    pub compatible_architectures: Vec<String>,
    /// Bytes downloaded to get it (0 for a local or cached zip).
    pub downloaded: u64,
}

/// Checks a local zip path and computes its sha256 (streamed).
pub fn local_zip(path: &Path) -> Result<LocalLayer> {
    let display = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| LayerError::Output {
        what: "cannot read layer",
        path: path.to_path_buf(),
        problem: e.to_string(),
        hint: "give a layer version ARN (arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION) or the path of a .zip file",
    })?;
    if !meta.is_file() {
        return Err(LayerError::Output {
            what: "cannot read layer",
            path: path.to_path_buf(),
            problem: "it is not a regular file".into(),
            hint: "give the path of a layer .zip file",
        });
    }
    let sha = sha256_file(path).map_err(|e| LayerError::io(path, e))?;
    let label = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| display.clone());
    Ok(LocalLayer {
        display,
        path: path.to_path_buf(),
        source: source_for(label, &sha),
        compatible_architectures: Vec::new(),
        downloaded: 0,
    })
}

pub fn source_for(label: String, sha: &[u8; 32]) -> LayerSource {
    LayerSource {
        label,
        code_sha256: base64::engine::general_purpose::STANDARD.encode(sha),
        sha256_hex: crate::core::digest::hex(sha),
    }
}

impl LocalLayer {
    fn fetched(layer: FetchedLayer) -> Self {
        let label = layer.label;
        LocalLayer {
            display: label.clone(),
            path: layer.path,
            source: source_for(label, &layer.sha256),
            compatible_architectures: layer.compatible_architectures,
            downloaded: layer.downloaded,
        }
    }
}

/// Starts resolving layer sources: local zips at once, Lambda downloads concurrently on the
/// context's runtime, each distinct source once. `ready` gets each index and result as soon as it
/// is a verified local zip, in any order.
pub fn start_layers(
    ctx: &Context,
    refs: &[LayerRef],
    ready: impl Fn(usize, anyhow::Result<LocalLayer>) + Send + Sync + 'static,
) -> anyhow::Result<()> {
    // Each distinct source, with every index that names it.
    let mut distinct: Vec<(&LayerRef, Vec<usize>)> = Vec::new();
    for (i, r) in refs.iter().enumerate() {
        match distinct.iter_mut().find(|(seen, _)| *seen == r) {
            Some((_, indices)) => indices.push(i),
            None => distinct.push((r, vec![i])),
        }
    }
    let ready = Arc::new(
        move |indices: &[usize], result: anyhow::Result<LocalLayer>| {
            let (first, rest) = indices.split_first().expect("a source has an index");
            for &i in rest {
                let copy = match &result {
                    Ok(layer) => Ok(layer.clone()),
                    Err(e) => Err(anyhow::anyhow!("{e:#}")),
                };
                ready(i, copy);
            }
            ready(*first, result);
        },
    );
    let mut remote = Vec::new();
    let mut waiting = Vec::new();
    for (r, indices) in distinct {
        match r {
            LayerRef::Zip(path) => ready(&indices, local_zip(path).map_err(Into::into)),
            LayerRef::Fetched(layer) => ready(&indices, Ok(LocalLayer::fetched(layer.clone()))),
            LayerRef::Remote(source) => {
                remote.push((waiting.len(), source.clone()));
                waiting.push(indices);
            }
        }
    }
    if !remote.is_empty() {
        ctx.fetcher()?
            .fetch_each(remote, ctx.handle(), move |k, r| {
                ready(&waiting[k], r.map(LocalLayer::fetched))
            });
    }
    Ok(())
}

/// Resolves every LAYER to a verified local zip, in the order given (ARNs fetched concurrently).
pub fn resolve_layers(ctx: &Context, refs: &[LayerRef]) -> anyhow::Result<Vec<LocalLayer>> {
    let (tx, rx) = mpsc::channel();
    start_layers(ctx, refs, move |i, r| {
        let _ = tx.send((i, r));
    })?;
    let mut results: Vec<Option<LocalLayer>> = (0..refs.len()).map(|_| None).collect();
    for _ in 0..refs.len() {
        let (i, r) = rx.recv().context("a download task stopped")?;
        results[i] = Some(r?);
    }
    Ok(results.into_iter().flatten().collect())
}
