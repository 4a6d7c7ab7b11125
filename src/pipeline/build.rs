//! Builds the image's new layers: each group of zips (one zip, or all of them with `--squash`)
//! becomes one layer blob as soon as its zips are there, several groups side by side, while the
//! other ARNs are still downloading.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::{Mutex, OnceLock, mpsc};

use anyhow::{Context, Result};
use tracing::{info, warn};

use super::inputs::LocalLayer;
use super::layer_cache::{LayerCache, LayerKey};
use crate::core::error::LayerError;
use crate::core::layer_build::{BuildOptions, write_layer};
use crate::core::layer_gzip::LayerDigests;
use crate::core::layer_gzip::Source;
use crate::core::layer_tree;
use crate::core::layer_zip::{EntryKind, MAX_PATH_BYTES, ZipLayer, shown_name};
use crate::core::warnings::Warning;
use crate::oci::image::AddedLayer;
use crate::oci::platform::Platform;

/// `--platform`, else the layers' single CompatibleArchitectures, else amd64 (with a note).
pub(super) fn choose_platform(requested: Option<Platform>, layers: &[LocalLayer]) -> Platform {
    let mut from_layers = Vec::new();
    for layer in layers {
        if let [arch] = layer.compatible_architectures.as_slice()
            && let Some(p) = Platform::from_lambda_architecture(arch)
        {
            from_layers.push((layer.display.clone(), p));
        }
    }
    if let Some(requested) = requested {
        for (name, p) in &from_layers {
            if *p != requested {
                warn!(
                    "{name} is built for {} only, but --platform is {requested}; the image uses {requested}",
                    p.lambda_architecture()
                );
            }
        }
        return requested;
    }
    if let Some((first_name, first)) = from_layers.first() {
        for (name, p) in &from_layers[1..] {
            if p != first {
                warn!(
                    "{first_name} is {} only but {name} is {} only; using {first}",
                    first.lambda_architecture(),
                    p.lambda_architecture()
                );
            }
        }
        return first.clone();
    }
    info!("no --platform and no layer architecture: building linux/amd64");
    Platform::amd64()
}

pub(super) type Built = (AddedLayer, Vec<Warning>);

/// Where layer blobs go: the image's blob directory, through the run's shared conversions if any.
#[derive(Clone, Copy)]
pub(super) struct Destination<'a> {
    pub blobs: &'a Path,
    pub cache: Option<&'a LayerCache>,
}

/// Inputs that become one layer: their indices, where their contents go, and whether only one
/// root entry of the zip is taken.
#[derive(Debug, Clone)]
pub(super) struct Group {
    pub members: Vec<usize>,
    pub prefix: String,
    pub only: Option<String>,
}

/// What the conversion loop waits for: a layer argument resolved, or a layer blob built.
pub(super) enum Event {
    Layer(usize, anyhow::Result<LocalLayer>),
    Built(usize, Result<Built, LayerError>),
}

/// Converts each group of zips into one layer blob in `blobs` as soon as all its zips are there
/// (downloads still running for the others), several groups side by side; `on_built` hears of each
/// blob as it is finished. Returns the layers and the results in input order.
pub(super) fn build_as_ready(
    layer_count: usize,
    groups: &[Group],
    opts: &BuildOptions,
    into: Destination<'_>,
    tx: mpsc::Sender<Event>,
    events: mpsc::Receiver<Event>,
    mut on_built: impl FnMut(usize, &AddedLayer),
) -> Result<(Vec<LocalLayer>, Vec<Built>)> {
    // Groups are built side by side, and each shares out the remaining threads to its own jobs.
    let side_by_side = opts.threads.min(groups.len()).max(1);
    let per_group = BuildOptions {
        threads: (opts.threads / side_by_side).max(1),
        ..opts.clone()
    };
    let slots: Vec<OnceLock<LocalLayer>> = (0..layer_count).map(|_| OnceLock::new()).collect();
    let mut missing: Vec<usize> = groups.iter().map(|g| g.members.len()).collect();
    let mut built: Vec<Option<Built>> = (0..groups.len()).map(|_| None).collect();
    let (work_tx, work_rx) = mpsc::channel::<usize>();
    let work_rx = Mutex::new(work_rx);
    let outcome = std::thread::scope(|scope| {
        for _ in 0..side_by_side {
            let tx = tx.clone();
            let (work_rx, slots, per_group) = (&work_rx, &slots, &per_group);
            scope.spawn(move || {
                loop {
                    let next = work_rx.lock().expect("no panics while locked").recv();
                    let Ok(g) = next else { return };
                    let group: Vec<&LocalLayer> = groups[g]
                        .members
                        .iter()
                        .map(|&i| {
                            slots[i]
                                .get()
                                .expect("a group starts once its zips are there")
                        })
                        .collect();
                    let result = build_one(&group, &groups[g], per_group, into);
                    if tx.send(Event::Built(g, result)).is_err() {
                        return;
                    }
                }
            });
        }
        let mut gather = || {
            let mut done = 0;
            while done < groups.len() {
                match events.recv().context("a layer download stopped")? {
                    Event::Layer(i, layer) => {
                        let _ = slots[i].set(layer?);
                        for (g, group) in groups.iter().enumerate() {
                            if group.members.contains(&i) {
                                missing[g] -= 1;
                                if missing[g] == 0 {
                                    let _ = work_tx.send(g);
                                }
                            }
                        }
                    }
                    Event::Built(g, result) => {
                        let result = result?;
                        on_built(g, &result.0);
                        built[g] = Some(result);
                        done += 1;
                    }
                }
            }
            anyhow::Ok(())
        };
        let outcome = gather();
        // Workers leave once the queue is closed, on success and on the first error alike; the
        // scope waits for them.
        drop(work_tx);
        outcome
    });
    outcome?;
    Ok((
        slots
            .into_iter()
            .map(|s| s.into_inner().expect("every layer arrived"))
            .collect(),
        built
            .into_iter()
            .map(|b| b.expect("every group was built"))
            .collect(),
    ))
}

fn build_one(
    group: &[&LocalLayer],
    spec: &Group,
    opts: &BuildOptions,
    into: Destination<'_>,
) -> Result<Built, LayerError> {
    let Destination { blobs, cache } = into;
    let opts = &BuildOptions {
        prefix: spec.prefix.clone(),
        ..opts.clone()
    };
    let (digests, warnings) = match cache {
        Some(cache) => {
            let zips = group.iter().map(|l| l.source.sha256_hex.clone()).collect();
            let key = LayerKey::new(zips, spec.only.clone(), opts);
            cache.get_or_build(key, blobs, |dir| write_blob(group, spec, opts, dir))?
        }
        None => write_blob(group, spec, opts, blobs)?,
    };
    Ok((
        AddedLayer {
            digests,
            sources: group.iter().map(|l| l.source.clone()).collect(),
        },
        warnings,
    ))
}

/// Converts the group's zips into one layer blob in `blobs`, named by its digest.
fn write_blob(
    group: &[&LocalLayer],
    spec: &Group,
    opts: &BuildOptions,
    blobs: &Path,
) -> Result<(LayerDigests, Vec<Warning>), LayerError> {
    let mut zips = Vec::with_capacity(group.len());
    let mut sources = Vec::with_capacity(group.len());
    for layer in group {
        let path = &layer.path;
        let file = File::open(path).map_err(|e| LayerError::io(path, e))?;
        sources.push(Source {
            name: layer.display.clone(),
            file: file.try_clone().map_err(|e| LayerError::io(path, e))?,
        });
        zips.push(ZipLayer::open(
            &layer.display,
            std::io::BufReader::new(file),
            opts.max_unzipped,
        )?);
    }
    let mut tree = if zips.len() == 1 {
        layer_tree::single(0, &zips[0].entries)
    } else {
        layer_tree::merge(zips.iter().map(|z| &z.entries))
    };
    if let Some(only) = &spec.only {
        tree.retain(|path, _| path == only);
        if !matches!(
            tree.get(only).map(|e| &e.entry.kind),
            Some(EntryKind::File { .. })
        ) {
            return Err(LayerError::bad_entry(
                &group[0].display,
                only,
                "is not a regular file in the zip",
                "give a zip whose root holds it as a file (not a directory or a symlink)",
            ));
        }
    }
    // Each path was checked alone; under the prefix (`opt/…`) it must still fit PATH_MAX, or the
    // layer would hold a path no one can extract.
    if let Some((path, item)) = tree
        .iter()
        .find(|(path, _)| opts.prefix.len() + 1 + path.len() > MAX_PATH_BYTES)
    {
        return Err(LayerError::bad_entry(
            &zips[item.source].name,
            &shown_name(path.as_bytes()),
            format!(
                "would be a path of {} bytes under /{}, over the limit of {MAX_PATH_BYTES}",
                opts.prefix.len() + 1 + path.len(),
                opts.prefix
            ),
            "shorten the entry's path (or --prefix); no filesystem can hold it",
        ));
    }
    let mut warnings = Vec::new();
    for z in &zips {
        for w in &z.warnings {
            let mut w = w.clone();
            w.message = format!("{}: {}", z.name, w.message);
            warnings.push(w);
        }
    }
    let tmp = tempfile::Builder::new()
        .prefix("layer-")
        .suffix(".partial")
        .tempfile_in(blobs)
        .map_err(|e| LayerError::io(blobs, e))?;
    let (out, digests) = write_layer(&sources, &tree, opts, BufWriter::new(tmp))?;
    let tmp = out
        .into_inner()
        .map_err(|e| LayerError::io(blobs, e.into_error()))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| LayerError::io(tmp.path(), e))?;
    let final_path = blobs.join(digests.digest.hex());
    tmp.persist(&final_path)
        .map_err(|e| LayerError::io(&final_path, e.error))?;
    Ok((digests, warnings))
}
