//! `layerport image`: layer zips → one OCI layer each (or one with --squash) → pushed to a registry,
//! or written as an OCI layout or docker archive.

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, mpsc};

use anyhow::{Context, Result};
use serde_json::json;
use tracing::{info, warn};

use std::sync::Arc;

use super::registries::Registries;
use super::{parse_layers, print_json, print_line, source_date_epoch, start_layers};
use crate::cli::{GlobalArgs, ImageArgs};
use crate::digest::hex_part;
use crate::docker_archive;
use crate::error::LayerError;
use crate::image::BaseImage;
use crate::image::{AddedLayer, build_image};
use crate::image_source::{self, ResolvedImage};
use crate::inputs::LocalLayer;
use crate::layer_build::{BuildOptions, write_layer};
use crate::layer_gzip::Source;
use crate::layer_tree;
use crate::layer_zip::ZipLayer;
use crate::oci_layout::{self, LayoutTarget};
use crate::paths::normalize_prefix;
use crate::platform::Platform;
use crate::registry::client::RegistryClient;
use crate::registry::push::{
    BlobSource, BlobUploads, PushBlob, PushReport, PushTarget, ensure_ecr_repository, put_manifest,
};
use crate::registry::reference::ImageRef;
use crate::registry::store::RegistryStore;
use crate::staging::Staging;
use crate::warnings::Warning;

enum Output {
    Layout { dir: PathBuf, tag: Option<String> },
    Archive { file: PathBuf, tag: Option<String> },
    Push(ImageRef),
}

pub fn run(global: &GlobalArgs, args: &ImageArgs) -> Result<()> {
    let output = parse_output(args)?;
    let prefix = normalize_prefix(&args.prefix).map_err(LayerError::Usage)?;
    let requested_platform = args
        .platform
        .as_deref()
        .map(str::parse::<Platform>)
        .transpose()
        .map_err(LayerError::Usage)?;
    let base_ref = args
        .base
        .as_deref()
        .map(|b| ImageRef::parse(b.strip_prefix("docker://").unwrap_or(b)))
        .transpose()
        .map_err(LayerError::Usage)?;
    if base_ref.is_some() && matches!(output, Output::Archive { .. }) {
        return Err(LayerError::Usage(
            "--base with --docker-archive is not supported yet\n  hint: use --oci-layout or --push with --base".into(),
        )
        .into());
    }
    let defaults = BuildOptions::default();
    let threads = match args.threads {
        Some(0) => return Err(LayerError::Usage("--threads must be at least 1".into()).into()),
        Some(n) => n,
        None => defaults.threads,
    };
    let opts = BuildOptions {
        prefix,
        mtime_override: source_date_epoch()?,
        max_unzipped: args.limits.max_unzipped,
        gzip_level: args.recompress.unwrap_or(defaults.gzip_level),
        recompress: args.recompress.is_some(),
        threads,
    };
    let refs = parse_layers(&args.layers)?;
    let layer_count = refs.len();

    let (staging, layout_target) = match &output {
        Output::Layout { dir, .. } => {
            let target = oci_layout::check_target(dir)?;
            (Staging::next_to(dir)?, Some(target))
        }
        Output::Archive { file, .. } => {
            if file.is_dir() {
                return Err(LayerError::Output {
                    what: "cannot write a docker archive to",
                    path: file.clone(),
                    problem: "it is a directory".into(),
                    hint: "give a file path such as image.tar",
                }
                .into());
            }
            (Staging::next_to(file)?, None)
        }
        Output::Push(_) => (Staging::in_temp()?, None),
    };
    let blobs = staging.path().join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(|e| LayerError::io(&blobs, e))?;

    // One runtime for downloads, the base image and uploads; conversions run on plain threads.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let rt = &runtime;
    let registries = Registries::new(global);
    let base = match &base_ref {
        Some(r) => {
            info!("pulling base image {r}");
            let client = rt.block_on(registries.client(r))?;
            let store =
                RegistryStore::with_handle(r.clone(), Arc::clone(&client), rt.handle().clone())?;
            let resolved = image_source::resolve(&store, requested_platform.as_ref())?;
            Some((client, base_image(resolved)))
        }
        None => None,
    };
    let base_layer_count = base.as_ref().map_or(0, |(_, b)| b.layers.len());

    // The push target is ready before any layer is built, so each blob uploads as soon as it exists.
    let mut uploads = match &output {
        Output::Push(target) => Some(start_push(
            rt,
            &registries,
            args,
            target,
            &base,
            base_ref.as_ref(),
            staging.path(),
        )?),
        _ => None,
    };

    let groups: Vec<Vec<usize>> = if args.squash {
        vec![(0..layer_count).collect()]
    } else {
        (0..layer_count).map(|i| vec![i]).collect()
    };
    let (tx, events) = mpsc::channel();
    let ready = tx.clone();
    let _fetcher = start_layers(global, refs, rt.handle(), move |i, r| {
        let _ = ready.send(Event::Layer(i, r));
    })?;
    let (layers, built) = build_as_ready(
        layer_count,
        &groups,
        &opts,
        &blobs,
        tx,
        events,
        |g, layer| {
            if let Some((_, up)) = &mut uploads {
                up.start(
                    base_layer_count + g,
                    PushBlob {
                        digest: layer.digests.digest.clone(),
                        size: layer.digests.size,
                        source: BlobSource::File(blobs.join(hex_part(&layer.digests.digest))),
                    },
                );
            }
        },
    )?;
    let layers = &layers;
    let mut added = Vec::new();
    for (group, (layer, warnings)) in groups.iter().zip(built) {
        for w in &warnings {
            warn!("{}", w.message);
        }
        info!(
            "layer {} from {} ({} bytes)",
            layer.digests.digest,
            group
                .iter()
                .map(|&i| layers[i].display.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            layer.digests.size
        );
        added.push((layer, warnings));
    }
    let image_layers: Vec<AddedLayer> = added.iter().map(|(l, _)| l.clone()).collect();
    // A base fixes the platform: `resolve` already refused one that differs from --platform.
    let platform = match &base {
        Some((_, b)) => b.platform.clone(),
        None => choose_platform(requested_platform, layers),
    };
    let image = build_image(&image_layers, &platform, base.as_ref().map(|(_, b)| b));

    let mut push_report = None;
    let (kind, shown) = match &output {
        Output::Layout { dir, tag } => {
            if let (Some((client, b)), Some(r)) = (&base, &base_ref) {
                rt.block_on(copy_base_layers(client, r, &b.layers, &blobs))?;
            }
            oci_layout::write(
                staging,
                dir,
                layout_target.unwrap_or(LayoutTarget::New),
                &image,
                tag.as_deref(),
            )?;
            ("oci-layout", format_dest("oci:", dir, tag.as_deref()))
        }
        Output::Archive { file, tag } => {
            docker_archive::write(staging, file, &image, &image_layers, tag.as_deref())?;
            (
                "docker-archive",
                format_dest("docker-archive:", file, tag.as_deref()),
            )
        }
        Output::Push(target) => {
            let (to, mut up) = uploads.take().expect("a push starts its uploads");
            let config_path = blobs.join(hex_part(&image.config_digest));
            fs::write(&config_path, &image.config).map_err(|e| LayerError::io(&config_path, e))?;
            up.start(
                base_layer_count + image_layers.len(),
                PushBlob {
                    digest: image.config_digest.clone(),
                    size: image.config.len() as u64,
                    source: BlobSource::File(config_path),
                },
            );
            let report = rt.block_on(async {
                let blobs = up.finish().await?;
                let manifest_pushed = put_manifest(
                    &to,
                    &image.manifest,
                    &image.manifest_media_type,
                    &image.manifest_digest,
                )
                .await?;
                anyhow::Ok(PushReport {
                    blobs,
                    manifest_pushed,
                })
            })?;
            let uploaded = report.blobs.iter().filter(|b| b.status != "exists").count();
            info!(
                "pushed {target}: {uploaded} of {} blobs transferred{}",
                report.blobs.len(),
                if report.manifest_pushed {
                    ""
                } else {
                    ", tag already up to date"
                }
            );
            push_report = Some(report);
            (
                "registry",
                format!("{}@{}", target.name(), image.manifest_digest),
            )
        }
    };
    info!(
        "wrote {shown} ({platform}, {} layer(s) added)",
        image_layers.len()
    );

    if global.json {
        let layers_json: Vec<_> = added
            .iter()
            .map(|(l, warnings)| {
                json!({
                    "digest": l.digests.digest,
                    "diffId": l.digests.diff_id,
                    "size": l.digests.size,
                    "uncompressedSize": l.digests.tar_size,
                    "sources": l.sources.iter().map(|s| json!({
                        "source": s.label,
                        "codeSha256": s.code_sha256,
                        "sha256": s.sha256_hex,
                    })).collect::<Vec<_>>(),
                    "warnings": warnings,
                })
            })
            .collect();
        let mut doc = json!({
            "output": {"kind": kind, "reference": shown},
            "manifestDigest": image.manifest_digest,
            "configDigest": image.config_digest,
            "platform": platform.to_string(),
            "layers": layers_json,
        });
        if let Some(r) = &push_report {
            doc["blobs"] = serde_json::to_value(&r.blobs)?;
            doc["manifestPushed"] = json!(r.manifest_pushed);
        }
        print_json(&doc)
    } else if matches!(output, Output::Push(_)) {
        print_line(&shown)
    } else {
        print_line(&image.manifest_digest)
    }
}

/// What the base contributes to the image being built.
fn base_image(resolved: ResolvedImage) -> BaseImage {
    let layers = resolved
        .layers
        .iter()
        .map(|l| {
            json!({
                "mediaType": l.blob.media_type,
                "digest": l.blob.digest,
                "size": l.blob.size,
            })
        })
        .collect();
    BaseImage {
        name: resolved.name,
        config: resolved.config,
        layers,
        docker_media_types: resolved.docker_media_types,
        platform: resolved.platform,
    }
}

/// Creates the ECR repository if asked, connects to the target, and starts moving the base's layers.
fn start_push(
    rt: &tokio::runtime::Runtime,
    registries: &Registries,
    args: &ImageArgs,
    target: &ImageRef,
    base: &Option<(Arc<RegistryClient>, BaseImage)>,
    base_ref: Option<&ImageRef>,
    scratch: &Path,
) -> Result<(Arc<PushTarget>, BlobUploads)> {
    let client = rt.block_on(async {
        if args.create_repository {
            let region = registries.ecr_region(target).await.ok_or_else(|| {
                LayerError::Usage(if registries.forces_ecr() {
                    "--create-repository needs a region: pass --region or set AWS_REGION".into()
                } else {
                    format!(
                        "--create-repository creates Amazon ECR repositories, and {} is not an ECR registry host; drop the flag, or add --registry-auth ecr (with --region) if it is an ECR behind another name",
                        target.registry
                    )
                })
            })?;
            if ensure_ecr_repository(registries.sdk().await, &region, &target.repository).await? {
                info!("created ECR repository {} in {region}", target.repository);
            }
        }
        registries.client(target).await
    })?;
    let to = Arc::new(PushTarget {
        target: client,
        image: target.clone(),
        base: base
            .as_ref()
            .zip(base_ref)
            .map(|((c, _), r)| (Arc::clone(c), r.clone())),
        scratch: scratch.to_path_buf(),
    });
    let mut uploads = BlobUploads::new(Arc::clone(&to), rt.handle().clone());
    if let Some((_, b)) = base {
        for (i, d) in b.layers.iter().enumerate() {
            uploads.start(
                i,
                PushBlob {
                    digest: d["digest"].as_str().unwrap_or_default().to_string(),
                    size: d["size"].as_u64().unwrap_or(0),
                    source: BlobSource::Base,
                },
            );
        }
    }
    Ok((to, uploads))
}

/// Brings the base image's layer blobs into the layout being written (verified while streaming).
async fn copy_base_layers(
    client: &RegistryClient,
    base: &ImageRef,
    descriptors: &[serde_json::Value],
    blobs: &Path,
) -> Result<()> {
    for d in descriptors {
        let digest = d["digest"].as_str().unwrap_or_default();
        let dest = blobs.join(hex_part(digest));
        if !dest.exists() {
            client
                .download_blob(&base.repository, digest, d["size"].as_u64(), &dest)
                .await?;
        }
    }
    Ok(())
}

fn parse_output(args: &ImageArgs) -> Result<Output> {
    if let Some(target) = &args.push {
        let target = ImageRef::parse(target.strip_prefix("docker://").unwrap_or(target))
            .map_err(LayerError::Usage)?;
        return Ok(Output::Push(target));
    }
    if let Some(spec) = &args.oci_layout {
        let (dir, tag) = split_dest(spec);
        if let Some(tag) = &tag {
            oci_layout::check_tag(tag).map_err(LayerError::Usage)?;
        }
        return Ok(Output::Layout { dir, tag });
    }
    let spec = args.docker_archive.as_ref().ok_or_else(|| {
        LayerError::Usage("give --oci-layout DIR[:TAG] or --docker-archive FILE[:TAG]".into())
    })?;
    let (file, tag) = split_dest(spec);
    let tag = tag
        .map(|t| docker_archive::normalize_repo_tag(&t))
        .transpose()
        .map_err(LayerError::Usage)?;
    Ok(Output::Archive { file, tag })
}

/// `DIR:TAG` splits at the first `:` (as skopeo's `oci:` transport does).
fn split_dest(spec: &str) -> (PathBuf, Option<String>) {
    match spec.split_once(':') {
        Some((path, tag)) if !tag.is_empty() => (PathBuf::from(path), Some(tag.to_string())),
        Some((path, _)) => (PathBuf::from(path), None),
        None => (PathBuf::from(spec), None),
    }
}

fn format_dest(transport: &str, path: &Path, tag: Option<&str>) -> String {
    match tag {
        Some(t) => format!("{transport}{}:{t}", path.display()),
        None => format!("{transport}{}", path.display()),
    }
}

/// `--platform`, else the layers' single CompatibleArchitectures, else amd64 (with a note).
fn choose_platform(requested: Option<Platform>, layers: &[LocalLayer]) -> Platform {
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

type Built = (AddedLayer, Vec<Warning>);

/// What the conversion loop waits for: a layer argument resolved, or a layer blob built.
enum Event {
    Layer(usize, anyhow::Result<LocalLayer>),
    Built(usize, Result<Built, LayerError>),
}

/// Converts each group of zips into one layer blob in `blobs` as soon as all its zips are there
/// (downloads still running for the others), several groups side by side; `on_built` hears of each
/// blob as it is finished. Returns the layers and the results in input order.
fn build_as_ready(
    layer_count: usize,
    groups: &[Vec<usize>],
    opts: &BuildOptions,
    blobs: &Path,
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
    let mut missing: Vec<usize> = groups.iter().map(|g| g.len()).collect();
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
                        .iter()
                        .map(|&i| {
                            slots[i]
                                .get()
                                .expect("a group starts once its zips are there")
                        })
                        .collect();
                    let result = build_one(&group, per_group, blobs, g);
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
                        for (g, members) in groups.iter().enumerate() {
                            if members.contains(&i) {
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
    opts: &BuildOptions,
    blobs: &Path,
    n: usize,
) -> Result<Built, LayerError> {
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
    let tree = if zips.len() == 1 {
        layer_tree::single(0, &zips[0].entries)
    } else {
        layer_tree::merge(zips.iter().map(|z| &z.entries))
    };
    let mut warnings = Vec::new();
    for z in &zips {
        for w in &z.warnings {
            let mut w = w.clone();
            w.message = format!("{}: {}", z.name, w.message);
            warnings.push(w);
        }
    }
    let tmp = blobs.join(format!("layer-{n}.partial"));
    let file = File::create(&tmp).map_err(|e| LayerError::io(&tmp, e))?;
    let (out, digests) = write_layer(&sources, &tree, opts, BufWriter::new(file))?;
    out.into_inner()
        .map_err(|e| LayerError::io(&tmp, e.into_error()))?
        .sync_all()
        .map_err(|e| LayerError::io(&tmp, e))?;
    let final_path = blobs.join(hex_part(&digests.digest));
    fs::rename(&tmp, &final_path).map_err(|e| LayerError::io(&final_path, e))?;
    Ok((
        AddedLayer {
            digests,
            sources: group.iter().map(|l| l.source.clone()).collect(),
        },
        warnings,
    ))
}
