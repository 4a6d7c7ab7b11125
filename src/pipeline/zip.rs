//! An image's /opt (or --path) becomes a deterministic Lambda layer zip, optionally published with
//! PublishLayerVersion (idempotently): the work of `layerport zip` and of a plan's zip jobs.

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::Path;

use anyhow::Result;
use base64::Engine as _;
use serde::Serialize;
use tracing::{info, warn};

use super::open_image;
use crate::aws;
use crate::aws::publish::{PublishRequest, Published};
use crate::context::Context;
use crate::core::apply::{
    AppliedTree, Applier, ApplyError, Content, Item, NodeKind, Selected, Selection,
};
use crate::core::error::LayerError;
use crate::core::layer_zip::LAMBDA_UNZIPPED_LIMIT;
use crate::core::staging::{
    Staging, check_output_file, check_stdout_output, copy_to_stdout, is_stdout,
};
use crate::core::warnings::Warning;
use crate::core::zip_writer::{
    self, Compressor, DosTime, EntryKind, ZipEntry, ZipOptions, ZipSummary, ZipWriteError,
    write_zip,
};
use crate::oci::resolve::{ResolvedImage, resolve};
use crate::oci::source::{self, ImageStore};
use crate::settings::{PublishSettings, ZipSettings};

/// At most: the --path subtree, then its real location (behind a symlink), then with the files
/// its hard links copy from elsewhere, then (links to links) everything.
const MAX_PASSES: usize = 4;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ZipReport {
    pub zip: String,
    pub size: u64,
    pub sha256: String,
    pub code_sha256: String,
    pub unzipped_size: u64,
    pub entries: usize,
    pub image: String,
    pub platform: String,
    pub path: String,
    pub warnings: Vec<Warning>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub published: Option<PublishedReport>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedReport {
    pub layer_version_arn: String,
    pub layer_version: i64,
    /// False when the newest version already held this zip.
    pub published: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_object: Option<String>,
}

pub fn run(settings: &ZipSettings, ctx: &Context) -> Result<ZipReport> {
    let output = &settings.output;
    if is_stdout(output) {
        check_stdout_output("cannot write the zip to")?;
    } else {
        check_output_file(output, "cannot write the zip to")?;
    }
    let store = open_image(ctx, &settings.image)?;
    let image = resolve(store.as_ref(), settings.platform.as_ref())?;
    info!(
        "{}: {}, {} layer(s)",
        image.name,
        image.platform,
        image.layers.len()
    );
    let (summary, unzipped, warnings) = write_zip_file(settings, store.as_ref(), &image)?;
    info!(
        "wrote {}: {} entries, {} bytes ({unzipped} unzipped)",
        output.display(),
        summary.entries,
        summary.size
    );

    // The zip is complete and stays even if publishing fails: it can be published again as is.
    let published = match &settings.publish {
        Some(p) => Some(publish_zip(ctx, settings, p, &summary, &image)?),
        None => None,
    };
    Ok(ZipReport {
        zip: output.display().to_string(),
        size: summary.size,
        sha256: crate::core::digest::hex(&summary.sha256),
        code_sha256: base64::engine::general_purpose::STANDARD.encode(summary.sha256),
        unzipped_size: unzipped,
        entries: summary.entries,
        image: image.name.clone(),
        platform: image.platform.to_string(),
        path: format!("/{}", settings.path),
        warnings,
        published: published.map(|p| PublishedReport {
            layer_version_arn: p.layer_version_arn,
            layer_version: p.version,
            published: p.created,
            s3_object: p
                .s3_object
                .map(|(bucket, key)| format!("s3://{bucket}/{key}")),
        }),
    })
}

/// Applies the image and writes the zip beside the output, then renames it into place.
fn write_zip_file(
    settings: &ZipSettings,
    store: &dyn ImageStore,
    image: &ResolvedImage,
) -> Result<(ZipSummary, u64, Vec<Warning>)> {
    let output = &settings.output;
    let threads = settings.threads;
    let staging = if is_stdout(output) {
        Staging::in_temp()?
    } else {
        Staging::next_to(output)?
    };
    let (mut tree, items, unzipped, select_warnings, mut compressor) =
        apply_and_select(store, image, &settings.path, staging.path(), threads)?;
    // The items hold what the zip needs: the whole image's tree can go (a tree of a million
    // entries would otherwise be held three times over while the zip is written).
    drop(std::mem::take(&mut tree.nodes));
    let mut warnings = tree.warnings.clone();
    warnings.extend(select_warnings);
    for w in &warnings {
        warn!("{}", w.message);
    }

    let zip_tmp = staging.path().join("layer.zip");
    let (zip_file, summary) = write_layer_zip(
        &tree,
        items,
        &zip_tmp,
        &mut compressor,
        threads,
        settings.time,
    )?;
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
    if is_stdout(output) {
        copy_to_stdout(&zip_tmp)?;
    } else {
        fs::rename(&zip_tmp, output).map_err(|e| LayerError::Output {
            what: "cannot move the finished zip to",
            path: output.clone(),
            problem: e.to_string(),
            hint: "check that the destination is a writable file path",
        })?;
    }
    let mut staging = staging;
    staging.keep_parents();
    Ok((summary, unzipped, warnings))
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
        applier.limit_spool(LAMBDA_UNZIPPED_LIMIT);
        applier.limit_input(crate::oci::check::LAMBDA_IMAGE_LIMIT);
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
            let reader = source::open_layer(store, layer)?;
            if let Err(e) = applier.apply_layer(i, layer.blob.digest.as_str(), reader) {
                if matches!(e, ApplyError::BadTar { .. }) {
                    source::verify_blob(store, &layer.blob)?;
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
    items: Vec<Item>,
    dest: &Path,
    compressor: &mut Compressor,
    threads: usize,
    time: DosTime,
) -> Result<(File, ZipSummary)> {
    let mut entries = Vec::with_capacity(items.len());
    for item in items {
        let kind = match item.node.kind {
            NodeKind::Dir => EntryKind::Dir,
            NodeKind::Symlink(target) => EntryKind::Symlink { target },
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
            name: item.name,
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
    ctx: &Context,
    settings: &ZipSettings,
    publish: &PublishSettings,
    summary: &ZipSummary,
    image: &ResolvedImage,
) -> Result<Published> {
    let architectures = if publish.compatible_architectures.is_empty() {
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
        publish.compatible_architectures.clone()
    };
    let request = PublishRequest {
        layer_name: publish.layer_name.clone(),
        zip: settings.output.clone(),
        zip_size: summary.size,
        sha256: summary.sha256,
        compatible_runtimes: publish.compatible_runtimes.clone(),
        compatible_architectures: architectures,
        description: publish.description.clone(),
        license_info: publish.license_info.clone(),
        s3_bucket: publish.s3_bucket.clone(),
    };
    let published = ctx.block_on(aws::publish::publish(ctx.aws(), &request))?;
    if published.created {
        info!("published {}", published.layer_version_arn);
    }
    Ok(published)
}
