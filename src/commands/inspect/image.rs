//! `layerport inspect IMAGE`: what an image from any source holds — its platforms, the chosen
//! platform's layers with their sizes and sources (layerport's annotations and the history), its
//! config (variable names only: values may be secrets), and the /opt tree a layer zip would get.
//! Every layer is streamed once; nothing is kept in memory but the tree's shape.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Result;
use serde::Serialize;
use serde_json::Value;

use super::top_level_table;
use crate::context::Context;
use crate::core::apply::{ApplyError, NodeKind};
use crate::core::error::SourceError;
use crate::core::layer_zip::LAMBDA_UNZIPPED_LIMIT;
use crate::oci::check::{index_facts, scan_layers};
use crate::oci::platform::Platform;
use crate::oci::reference::ImageSpec;
use crate::oci::resolve::resolve;
use crate::oci::source::{BlobRef, LayerBlob, open_layer};
use crate::pipeline::open_image;
use crate::printer::{bytes, human_size};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageReport {
    /// `image` (a layer zip's report says `layer`).
    pub kind: &'static str,
    pub image: String,
    /// Every platform the reference offers (one for a single image).
    pub platforms: Vec<String>,
    /// Attestation manifests in the index (Lambda refuses an index that carries them).
    pub attestations: usize,
    /// The platform shown.
    pub platform: String,
    pub manifest_digest: String,
    pub manifest_media_type: String,
    pub compressed_size: u64,
    /// Bytes of the layers' tar streams (of those that could be read).
    pub uncompressed_size: u64,
    pub layers: Vec<ImageLayer>,
    /// The layer zips layerport built the image from, by input order (its annotations).
    pub sources: Vec<LayerSourceInfo>,
    pub config: ConfigSummary,
    /// The /opt tree as `layerport zip` would package it.
    pub opt: OptSummary,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageLayer {
    pub digest: String,
    pub media_type: String,
    /// As stored (compressed), from the manifest.
    pub size: Option<u64>,
    /// The tar stream's size; `None` for a layer that cannot be read (zstd, foreign).
    pub uncompressed_size: Option<u64>,
    pub diff_id: String,
    /// What made it, from the config's history (`layerport: deps.zip sha256:…`, a Dockerfile step).
    pub created_by: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerSourceInfo {
    pub input: usize,
    pub source: String,
    pub code_sha256: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigSummary {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    /// Names of the environment variables; their values are not shown.
    pub env_names: Vec<String>,
    pub labels: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OptSummary {
    pub files: usize,
    pub directories: usize,
    pub symlinks: usize,
    /// File bytes under /opt (what a layer zip unpacks to).
    pub bytes: u64,
    pub percent_of_limit: f64,
    pub within_limit: bool,
    pub top_level: BTreeMap<String, u64>,
}

pub fn inspect(ctx: &Context, spec: &ImageSpec, wanted: Option<&Platform>) -> Result<ImageReport> {
    let store = open_image(ctx, spec)?;
    let root = store.root()?;
    let root_value: Value = serde_json::from_slice(&root.bytes).unwrap_or_default();
    let index = index_facts(&root.media_type, &root_value);
    // A single image of another platform is shown as it is, not refused.
    let image = resolve(store.as_ref(), index.as_ref().and(wanted))?;
    let manifest: Value = if index.is_some() {
        let blob = BlobRef {
            digest: image.manifest_digest.clone(),
            size: None,
            media_type: image.manifest_media_type.clone(),
        };
        serde_json::from_slice(&store.manifest(&blob)?.bytes).unwrap_or_default()
    } else {
        root_value
    };
    let counters: Vec<Arc<AtomicU64>> = image.layers.iter().map(|_| Arc::default()).collect();
    let readable: Vec<(&LayerBlob, &Arc<AtomicU64>)> = image
        .layers
        .iter()
        .zip(&counters)
        .filter(|(l, _)| can_read(l))
        .collect();
    let streams = readable.iter().map(|(layer, counter)| {
        let tar = open_layer(store.as_ref(), layer)
            .map_err(|e| ApplyError::Source(SourceError(Box::new(e))))?;
        let counted: Box<dyn Read + Send> = Box::new(Counted {
            inner: tar,
            count: Arc::clone(counter),
        });
        Ok((layer.blob.digest.to_string(), counted))
    });
    let complete = readable.len() == image.layers.len();
    let scan = scan_layers(&image.name, streams, complete)?;

    let history = layer_history(&image.config);
    let layers: Vec<ImageLayer> = image
        .layers
        .iter()
        .zip(&counters)
        .enumerate()
        .map(|(i, (layer, count))| ImageLayer {
            digest: layer.blob.digest.to_string(),
            media_type: layer.blob.media_type.clone(),
            size: layer.blob.size,
            uncompressed_size: can_read(layer).then(|| count.load(Ordering::Relaxed)),
            diff_id: layer.diff_id.to_string(),
            created_by: history.get(i).cloned().flatten(),
        })
        .collect();
    let platforms = match &index {
        Some(facts) => facts.platforms.clone(),
        None => vec![image.platform.to_string()],
    };
    Ok(ImageReport {
        kind: "image",
        image: image.name.clone(),
        platforms,
        attestations: index.as_ref().map_or(0, |f| f.attestations.len()),
        platform: image.platform.to_string(),
        manifest_digest: image.manifest_digest.to_string(),
        manifest_media_type: image.manifest_media_type.clone(),
        compressed_size: layers.iter().filter_map(|l| l.size).sum(),
        uncompressed_size: scan.uncompressed,
        layers,
        sources: sources(&manifest, &image.config),
        config: config_summary(&image.config),
        opt: opt_summary(&scan.nodes),
    })
}

/// Layers the core can unpack (zstd and foreign ones are listed, not read).
fn can_read(layer: &LayerBlob) -> bool {
    let mt = &layer.blob.media_type;
    !(mt.contains("zstd") || mt.contains("foreign") || mt.contains("nondistributable"))
}

struct Counted<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// `created_by` (else `comment`) of each history entry that made a layer, in layer order.
fn layer_history(config: &Value) -> Vec<Option<String>> {
    config["history"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|h| h["empty_layer"].as_bool() != Some(true))
        .map(|h| {
            h["created_by"]
                .as_str()
                .or(h["comment"].as_str())
                .map(str::to_string)
        })
        .collect()
}

/// `dev.layerport.layer.N.source` / `.code-sha256`: in the manifest's annotations, or in the
/// config's labels on a Docker-typed image (whose manifests carry no annotations).
fn sources(manifest: &Value, config: &Value) -> Vec<LayerSourceInfo> {
    let mut by_input: BTreeMap<usize, LayerSourceInfo> = BTreeMap::new();
    for map in [&manifest["annotations"], &config["config"]["Labels"]] {
        let Some(map) = map.as_object() else { continue };
        for (key, value) in map {
            let Some(rest) = key.strip_prefix("dev.layerport.layer.") else {
                continue;
            };
            let Some((index, field)) = rest.split_once('.') else {
                continue;
            };
            let (Ok(input), Some(value)) = (index.parse::<usize>(), value.as_str()) else {
                continue;
            };
            let entry = by_input.entry(input).or_insert_with(|| LayerSourceInfo {
                input,
                source: String::new(),
                code_sha256: None,
            });
            match field {
                "source" => entry.source = value.to_string(),
                "code-sha256" => entry.code_sha256 = Some(value.to_string()),
                _ => {}
            }
        }
    }
    by_input.into_values().collect()
}

fn config_summary(config: &Value) -> ConfigSummary {
    let c = &config["config"];
    let strings = |v: &Value| -> Option<Vec<String>> {
        v.as_array().map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
    };
    let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    ConfigSummary {
        entrypoint: strings(&c["Entrypoint"]),
        cmd: strings(&c["Cmd"]),
        working_dir: text(&c["WorkingDir"]),
        user: text(&c["User"]),
        env_names: strings(&c["Env"])
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.split('=').next().unwrap_or_default().to_string())
            .collect(),
        labels: c["Labels"].as_object().map_or(0, |m| m.len()),
    }
}

fn opt_summary(nodes: &BTreeMap<String, crate::core::apply::Node>) -> OptSummary {
    let mut summary = OptSummary {
        files: 0,
        directories: 0,
        symlinks: 0,
        bytes: 0,
        percent_of_limit: 0.0,
        within_limit: true,
        top_level: BTreeMap::new(),
    };
    for (path, node) in nodes {
        let Some(rel) = path.strip_prefix("opt/") else {
            continue;
        };
        let top = rel.split('/').next().unwrap_or(rel).to_string();
        match &node.kind {
            NodeKind::Dir => summary.directories += 1,
            NodeKind::Symlink(_) => summary.symlinks += 1,
            NodeKind::File(content) => {
                summary.files += 1;
                summary.bytes += content.size();
                *summary.top_level.entry(top).or_default() += content.size();
            }
        }
    }
    let percent = summary.bytes as f64 * 100.0 / LAMBDA_UNZIPPED_LIMIT as f64;
    summary.percent_of_limit = (percent * 100.0).round() / 100.0;
    summary.within_limit = summary.bytes <= LAMBDA_UNZIPPED_LIMIT;
    summary
}

impl ImageReport {
    pub fn text(&self) -> String {
        let mut out = vec![
            self.image.clone(),
            format!(
                "  platform    {} (of {}{})",
                self.platform,
                self.platforms.join(", "),
                match self.attestations {
                    0 => String::new(),
                    n => format!("; and {n} attestation manifest(s)"),
                }
            ),
            format!(
                "  manifest    {} ({})",
                self.manifest_digest, self.manifest_media_type
            ),
            format!(
                "  size        {} compressed, {} uncompressed",
                bytes(self.compressed_size),
                bytes(self.uncompressed_size)
            ),
            format!("  layers      {}", self.layers.len()),
            format!(
                "    {:>3}  {:>10}  {:>12}  {:<19}  SOURCE",
                "#", "COMPRESSED", "UNCOMPRESSED", "DIGEST"
            ),
        ];
        out.extend(self.layer_lines());
        out.extend(self.config_lines());
        let opt = &self.opt;
        out.push(format!(
            "  /opt        {} files, {} directories, {} symlinks; {}: {:.1}% of Lambda's layer limit of {}{}",
            opt.files,
            opt.directories,
            opt.symlinks,
            bytes(opt.bytes),
            opt.percent_of_limit,
            bytes(LAMBDA_UNZIPPED_LIMIT),
            if opt.within_limit {
                ""
            } else {
                " (OVER THE LIMIT)"
            }
        ));
        out.extend(top_level_table(&opt.top_level, "/opt"));
        out.join("\n")
    }

    /// One row per layer, then the inputs layerport recorded.
    fn layer_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            let size = |n: Option<u64>| n.map_or("?".to_string(), human_size);
            out.push(format!(
                "    {:>3}  {:>10}  {:>12}  {:<19}  {}",
                i + 1,
                size(layer.size),
                match layer.uncompressed_size {
                    Some(n) => human_size(n),
                    None => "unread".into(),
                },
                short_digest(&layer.digest),
                layer.created_by.as_deref().unwrap_or("-")
            ));
        }
        for s in &self.sources {
            out.push(format!(
                "  input {}     {}{}",
                s.input,
                s.source,
                s.code_sha256
                    .as_ref()
                    .map(|c| format!(" (CodeSha256 {c})"))
                    .unwrap_or_default()
            ));
        }
        out
    }

    /// Entrypoint, Cmd, working directory, user and the names (only) of the variables.
    fn config_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let list = |v: &Option<Vec<String>>| match v {
            Some(items) => format!("{items:?}"),
            None => "(none)".into(),
        };
        out.push(format!("  entrypoint  {}", list(&self.config.entrypoint)));
        out.push(format!("  cmd         {}", list(&self.config.cmd)));
        if let Some(dir) = &self.config.working_dir {
            out.push(format!("  workdir     {dir}"));
        }
        if let Some(user) = &self.config.user {
            out.push(format!("  user        {user}"));
        }
        out.push(format!(
            "  env         {} (values not shown)",
            if self.config.env_names.is_empty() {
                "(none)".to_string()
            } else {
                self.config.env_names.join(", ")
            }
        ));
        out
    }
}

/// `sha256:0123456789ab` — enough to tell layers apart in a table (JSON has the whole digest).
fn short_digest(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}
