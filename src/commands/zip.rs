//! `layerport zip IMAGE -o FILE`: an image's /opt (or --path) becomes a deterministic Lambda layer
//! zip, optionally published with PublishLayerVersion (idempotently).

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::Path;

use anyhow::Result;
use base64::Engine as _;
use serde_json::{Value, json};
use tracing::{info, warn};

use super::registries::Registries;
use super::{print_json, print_line, source_date_epoch};
use crate::apply::{
    AppliedTree, Applier, ApplyError, Content, Item, NodeKind, Selected, Selection,
};
use crate::aws::{AwsSettings, load_sdk_config};
use crate::cli::{GlobalArgs, ZipArgs};
use crate::error::LayerError;
use crate::image_source::{self, ImageSpec, ImageStore, ResolvedImage};
use crate::layer_zip::LAMBDA_UNZIPPED_LIMIT;
use crate::platform::Platform;
use crate::publish::{self, PublishRequest, Published};
use crate::registry::reference::ImageRef;
use crate::registry::store::RegistryStore;
use crate::staging::Staging;
use crate::warnings::Warning;
use crate::zip_writer::{
    self, Compressor, DosTime, EntryKind, ZipEntry, ZipOptions, ZipSummary, ZipWriteError,
    write_zip,
};

/// At most: the --path subtree, then its real location (behind a symlink), then everything.
const MAX_PASSES: usize = 3;

pub fn run(global: &GlobalArgs, args: &ZipArgs) -> Result<()> {
    let platform = args
        .platform
        .as_deref()
        .map(str::parse::<Platform>)
        .transpose()
        .map_err(LayerError::Usage)?;
    let path = normalize_path(&args.path).map_err(LayerError::Usage)?;
    let threads = match args.threads {
        Some(0) => return Err(LayerError::Usage("--threads must be at least 1".into()).into()),
        Some(n) => n,
        None => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
    };
    for arch in &args.compatible_architectures {
        if arch != "x86_64" && arch != "arm64" {
            return Err(LayerError::Usage(format!(
                "--compatible-architecture {arch:?}: Lambda architectures are x86_64 and arm64"
            ))
            .into());
        }
    }
    let time = source_date_epoch()?
        .map(DosTime::from_unix)
        .unwrap_or(DosTime::MIN);
    if args.output.is_dir() {
        return Err(LayerError::Output {
            what: "cannot write the zip to",
            path: args.output.clone(),
            problem: "it is a directory".into(),
            hint: "give a file path such as layer.zip",
        }
        .into());
    }

    let store = open_store(global, &ImageSpec::parse(&args.image))?;
    let image = image_source::resolve(store.as_ref(), platform.as_ref())?;
    info!(
        "{}: {}, {} layer(s)",
        image.name,
        image.platform,
        image.layers.len()
    );

    let staging = Staging::next_to(&args.output)?;
    let (tree, items, unzipped, select_warnings, mut compressor) =
        apply_and_select(store.as_ref(), &image, &path, staging.path(), threads)?;
    let mut warnings = tree.warnings.clone();
    warnings.extend(select_warnings);
    for w in &warnings {
        warn!("{}", w.message);
    }

    let zip_tmp = staging.path().join("layer.zip");
    let (zip_file, summary) =
        write_layer_zip(&tree, &items, &zip_tmp, &mut compressor, threads, time)?;
    // Freeing the spool and the compressed pieces (over 100 MB of page cache for a big layer)
    // takes as long as syncing the zip, so both happen at once.
    let spool = staging.path().join("spool");
    let release = std::thread::spawn(move || {
        drop(compressor);
        drop(tree);
        // What is left is removed with the staging directory.
        let _ = fs::remove_file(spool);
    });
    let synced = zip_file.sync_all();
    let _ = release.join();
    synced.map_err(|e| LayerError::io(&zip_tmp, e))?;
    fs::rename(&zip_tmp, &args.output).map_err(|e| LayerError::Output {
        what: "cannot move the finished zip to",
        path: args.output.clone(),
        problem: e.to_string(),
        hint: "check that the destination is a writable file path",
    })?;
    let mut staging = staging;
    staging.keep_parents();
    drop(staging);
    info!(
        "wrote {}: {} entries, {} bytes ({unzipped} unzipped)",
        args.output.display(),
        summary.entries,
        summary.size
    );

    // The zip is complete and stays even if publishing fails: it can be published again as is.
    let published = match &args.publish {
        Some(name) => Some(publish_zip(global, args, name, &summary, &image)?),
        None => None,
    };

    let hex = crate::digest::hex(&summary.sha256);
    if global.json {
        let mut doc = json!({
            "zip": args.output.display().to_string(),
            "size": summary.size,
            "sha256": hex,
            "codeSha256": base64::engine::general_purpose::STANDARD.encode(summary.sha256),
            "unzippedSize": unzipped,
            "entries": summary.entries,
            "image": image.name,
            "platform": image.platform.to_string(),
            "path": format!("/{path}"),
            "warnings": warnings,
        });
        if let Some(p) = &published {
            doc["layerVersionArn"] = Value::String(p.layer_version_arn.clone());
            doc["layerVersion"] = json!(p.version);
            doc["published"] = Value::Bool(p.created);
            if let Some((bucket, key)) = &p.s3_object {
                doc["s3Object"] = Value::String(format!("s3://{bucket}/{key}"));
            }
        }
        print_json(&doc)
    } else {
        match &published {
            Some(p) => print_line(&p.layer_version_arn),
            None => print_line(&args.output.display().to_string()),
        }
    }
}

/// The store for IMAGE: a local layout or archive, or a registry (same auth as pushing).
fn open_store(global: &GlobalArgs, spec: &ImageSpec) -> Result<Box<dyn ImageStore>> {
    let ImageSpec::Registry(reference) = spec else {
        return Ok(image_source::open_local(spec)?);
    };
    // `ImageSpec::parse` has already taken off any `docker://`.
    let image = ImageRef::parse(reference).map_err(LayerError::Usage)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let client = runtime.block_on(Registries::new(global).client(&image))?;
    Ok(Box::new(RegistryStore::new(image, client, runtime)?))
}

/// `/opt`, `opt/`, `/var/task` → `opt`, `var/task`; `/` → the whole image.
fn normalize_path(path: &str) -> Result<String, String> {
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(format!(
                    "--path {path:?} contains '..'; give a plain absolute directory such as /opt"
                ));
            }
            p if p.contains('\0') => return Err(format!("--path {path:?} contains a NUL byte")),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

type Chosen = (AppliedTree, Vec<Item>, u64, Vec<Warning>, Compressor);

/// Applies the layers, keeping only the --path subtree's contents; applies them again, keeping
/// more, when that subtree turns out to be reached through a symlink or to hold hardlinks to files
/// outside it.
///
/// While a layer is being read, `threads - 1` other threads already compress the kept files (the
/// zip's bytes do not depend on it); files that a later layer replaces are compressed for nothing.
/// A pass that keeps everything compresses only what the zip needs, once it is known.
fn apply_and_select(
    store: &dyn ImageStore,
    image: &ResolvedImage,
    path: &str,
    scratch: &Path,
    threads: usize,
) -> Result<Chosen> {
    let mut keep = Selection::Under(path.to_string());
    for pass in 1..=MAX_PASSES {
        let spool_path = scratch.join("spool");
        let mut applier = Applier::new(&image.name, keep.clone(), &spool_path)?;
        let spool_reader = File::open(&spool_path).map_err(|e| LayerError::io(&spool_path, e))?;
        let mut compressor =
            Compressor::new(spool_reader, scratch).map_err(|e| LayerError::Output {
                what: "cannot create a scratch file in",
                path: scratch.to_path_buf(),
                problem: e.to_string(),
                hint: "check free space and permissions next to the output file",
            })?;
        // With one thread there is nobody to compress while the layers are read.
        if threads > 1 && matches!(keep, Selection::Under(_)) {
            compressor
                .grow_to(threads - 1)
                .map_err(|source| ZipWriteError::Threads { threads, source })?;
            let submitter = compressor.submitter();
            applier.on_spooled(move |r| {
                submitter.submit(zip_writer::Content {
                    offset: r.offset,
                    len: r.len,
                })
            });
        }
        for (i, layer) in image.layers.iter().enumerate() {
            info!(
                "applying layer {}/{} {}{}",
                i + 1,
                image.layers.len(),
                layer.blob.digest,
                layer
                    .blob
                    .size
                    .map(|s| format!(" ({s} bytes)"))
                    .unwrap_or_default()
            );
            let reader = image_source::open_layer(store, layer)?;
            if let Err(e) = applier.apply_layer(i, &layer.blob.digest, reader) {
                if matches!(e, ApplyError::BadTar { .. }) {
                    image_source::verify_blob(store, &layer.blob)?;
                }
                return Err(e.into());
            }
        }
        let mut tree = applier.finish()?;
        match tree.select(path, LAMBDA_UNZIPPED_LIMIT)? {
            Selected::Items {
                items,
                unzipped,
                warnings,
                ..
            } => return Ok((tree, items, unzipped, warnings, compressor)),
            Selected::AgainWith(next) if pass < MAX_PASSES && next != keep => {
                info!(
                    "/{path} needs files from elsewhere in the image (a symlink or hardlinks); applying the layers again"
                );
                keep = next;
            }
            Selected::AgainWith(_) => break,
        }
    }
    // Keeping everything always resolves; reaching this means the tree changed between passes.
    Err(anyhow::anyhow!(
        "{}: the contents of /{path} could not be collected after {MAX_PASSES} passes\n  hint: this is a bug in layerport; please report it with the image",
        image.name
    ))
}

/// Writes the zip to `dest`, not yet synced to disk.
fn write_layer_zip(
    tree: &AppliedTree,
    items: &[Item],
    dest: &Path,
    compressor: &mut Compressor,
    threads: usize,
    time: DosTime,
) -> Result<(File, ZipSummary)> {
    let mut entries = Vec::with_capacity(items.len());
    for item in items {
        let kind = match &item.node.kind {
            NodeKind::Dir => EntryKind::Dir,
            NodeKind::Symlink(target) => EntryKind::Symlink {
                target: target.clone(),
            },
            NodeKind::File(Content::Spooled(r)) => EntryKind::File(zip_writer::Content {
                offset: r.offset,
                len: r.len,
            }),
            NodeKind::File(Content::NotKept { .. }) => {
                // `select` asks for another pass instead of returning such items.
                anyhow::bail!(
                    "{}: the content of /{} was not collected\n  hint: this is a bug in layerport; please report it with the image",
                    tree.image,
                    item.name
                );
            }
        };
        entries.push(ZipEntry {
            name: item.name.clone(),
            kind,
            mode: item.node.mode & 0o777,
        });
    }
    let file = File::create(dest).map_err(|e| LayerError::io(dest, e))?;
    let opts = ZipOptions { threads, time };
    let (out, summary) = write_zip(
        BufWriter::with_capacity(1 << 20, file),
        &entries,
        compressor,
        &opts,
    )?;
    let file = out
        .into_inner()
        .map_err(|e| LayerError::io(dest, e.into_error()))?;
    Ok((file, summary))
}

fn publish_zip(
    global: &GlobalArgs,
    args: &ZipArgs,
    name: &str,
    summary: &ZipSummary,
    image: &ResolvedImage,
) -> Result<Published> {
    let architectures = if args.compatible_architectures.is_empty() {
        match image.platform.architecture.as_str() {
            "amd64" => vec!["x86_64".to_string()],
            "arm64" => vec!["arm64".to_string()],
            other => {
                warn!(
                    "the image is for {other}, which Lambda does not run; publishing without compatible architectures"
                );
                Vec::new()
            }
        }
    } else {
        args.compatible_architectures.clone()
    };
    let request = PublishRequest {
        layer_name: name.to_string(),
        zip: args.output.clone(),
        zip_size: summary.size,
        sha256: summary.sha256,
        compatible_runtimes: args.compatible_runtimes.clone(),
        compatible_architectures: architectures,
        description: args.description.clone(),
        license_info: args.license_info.clone(),
        s3_bucket: args.s3_bucket.clone(),
    };
    let settings = AwsSettings {
        profile: global.profile.clone(),
        region: global.region.clone(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let published = runtime.block_on(async {
        let config = load_sdk_config(&settings).await;
        publish::publish(&config, &request).await
    })?;
    if published.created {
        info!("published {}", published.layer_version_arn);
    }
    Ok(published)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(normalize_path("/opt").unwrap(), "opt");
        assert_eq!(normalize_path("var/task/").unwrap(), "var/task");
        assert_eq!(normalize_path("/").unwrap(), "");
        assert!(normalize_path("/opt/../etc").is_err());
    }
}
