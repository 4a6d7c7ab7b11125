//! The image pipeline shared by `image`, `migrate` and `batch`: layer inputs (ARNs or zips) and an
//! optional base image (from any source) become an image written to any sink — downloads,
//! conversions and uploads overlapping, the manifest written last.

mod build;
pub mod fingerprint;
pub mod inputs;
pub mod layer_cache;
mod precheck;
pub mod zip;

use std::sync::{Arc, mpsc};

use anyhow::Result;
use tracing::{info, warn};

use crate::context::Context;
use crate::core::error::LayerError;
use crate::core::layer_build::BuildOptions;
use crate::core::warnings::Warning;
use crate::oci::archive::DockerArchiveStore;
use crate::oci::archive_sink::ArchiveSink;
use crate::oci::check::CheckOptions;
use crate::oci::image::{AddedLayer, BaseImage, BuiltImage, ImageExtras, build_image};
use crate::oci::layout::OciLayoutStore;
use crate::oci::layout_sink::LayoutSink;
use crate::oci::platform::Platform;
use crate::oci::reference::{ImageRef, ImageSpec};
use crate::oci::resolve::resolve;
use crate::oci::sink::{BlobStatus, FinishedImage, ImageSink, SinkReport, SinkSpec};
use crate::oci::source::ImageStore;
use crate::registry::push::RegistrySink;
use crate::registry::remote::RegistryStore;
use build::{Destination, Event, Group, build_as_ready, choose_platform};
use precheck::{Prepared, check_before_push};

use inputs::{LayerRef, LocalLayer};
pub use precheck::CheckFailed;

/// One input of an image: a layer zip, and where its contents go.
#[derive(Debug, Clone)]
pub struct LayerInput {
    pub source: LayerRef,
    /// Where the zip's root lands (`opt`, `var/task`); `None`: the request's `build.prefix`.
    pub prefix: Option<String>,
    /// Only this entry of the zip's root (a custom runtime's `bootstrap`, copied from the code).
    pub only: Option<String>,
}

impl LayerInput {
    /// A whole zip at the request's prefix.
    pub fn whole(source: LayerRef) -> Self {
        LayerInput {
            source,
            prefix: None,
            only: None,
        }
    }
}

/// What to build: the layers, in order, and what they go on.
#[derive(Debug, Clone)]
pub struct ImageRequest {
    pub layers: Vec<LayerInput>,
    pub base: Option<ImageSpec>,
    /// `--platform`: picks from a multi-platform base, or is the image's platform.
    pub platform: Option<Platform>,
    /// One layer for all inputs instead of one each.
    pub squash: bool,
    pub build: BuildOptions,
    /// Cmd, Env and annotations beyond the layers' own.
    pub extras: ImageExtras,
    /// Check the image the way Lambda will before the manifest is written.
    pub check: Option<CheckOptions>,
}

/// One added layer and the warnings its zips gave.
#[derive(Debug, Clone)]
pub struct BuiltLayer {
    pub layer: AddedLayer,
    pub warnings: Vec<Warning>,
}

/// What the pipeline made and where it went.
#[derive(Debug)]
pub struct ImageOutcome {
    pub image: BuiltImage,
    pub platform: Platform,
    pub layers: Vec<BuiltLayer>,
    pub written: SinkReport,
    /// Bytes downloaded for the inputs (each download counted once per run).
    pub downloaded: u64,
}

impl ImageOutcome {
    /// Bytes sent to the registry (uploads and copies; mounts and blobs already there send none).
    pub fn uploaded(&self) -> u64 {
        self.written.push.as_ref().map_or(0, |p| {
            p.blobs
                .iter()
                .filter(|b| matches!(b.status, BlobStatus::Uploaded | BlobStatus::Copied))
                .map(|b| b.size)
                .sum()
        })
    }
}

/// Opens an image for reading from wherever it lives: a local layout or archive, or a registry
/// (through the context's client for its host).
pub fn open_image(ctx: &Context, spec: &ImageSpec) -> Result<Arc<dyn ImageStore>> {
    let reference = match spec {
        ImageSpec::OciLayout { dir, tag } => {
            return Ok(Arc::new(OciLayoutStore::open(dir, tag.as_deref())?));
        }
        ImageSpec::DockerArchive { file, name } => {
            return Ok(Arc::new(DockerArchiveStore::open(file, name.as_deref())?));
        }
        ImageSpec::Registry(reference) => reference,
    };
    let client = ctx.block_on(ctx.registry(reference))?;
    client.will_use(&reference.repository, false);
    let store = RegistryStore::new(reference.clone(), client, ctx.handle().clone())?;
    Ok(Arc::new(store))
}

/// Opens the destination; for a registry, logs in (and creates the ECR repository if asked)
/// before any layer is built, so that each blob can upload as soon as it exists.
pub fn open_sink(
    ctx: &Context,
    spec: &SinkSpec,
    create_repository: bool,
) -> Result<Box<dyn ImageSink>> {
    Ok(match spec {
        SinkSpec::OciLayout { dir, tag } => Box::new(LayoutSink::create(dir, tag.as_deref())?),
        SinkSpec::DockerArchive { file, tag } => {
            Box::new(ArchiveSink::create(file, tag.as_deref())?)
        }
        SinkSpec::Registry(target) => {
            let client = ctx.block_on(async {
                if create_repository {
                    create_ecr_repository(ctx, target).await?;
                }
                ctx.registry(target).await
            })?;
            client.will_use(&target.repository, true);
            Box::new(RegistrySink::new(
                client,
                target.clone(),
                Arc::clone(ctx.pushed_blobs()),
                ctx.handle().clone(),
            )?)
        }
    })
}

async fn create_ecr_repository(ctx: &Context, target: &ImageRef) -> Result<()> {
    let region = ctx.ecr_region(target).await.ok_or_else(|| {
        LayerError::Usage(
            "--create-repository needs a region: pass --region or set AWS_REGION".into(),
        )
    })?;
    if ctx
        .aws()
        .ensure_ecr_repository(&region, &target.repository)
        .await?
    {
        info!("created ECR repository {} in {region}", target.repository);
    }
    Ok(())
}

/// Reads the base image and narrows it to one platform (`--platform`, else linux/amd64).
pub fn open_base(
    ctx: &Context,
    spec: &ImageSpec,
    platform: Option<&Platform>,
) -> Result<BaseImage> {
    info!("reading base image {spec}");
    let store = open_image(ctx, spec)?;
    let resolved = resolve(store.as_ref(), platform)?;
    Ok(BaseImage::new(resolved, store))
}

/// Builds the image `request` describes into `sink`.
pub fn run(
    ctx: &Context,
    request: &ImageRequest,
    mut sink: Box<dyn ImageSink>,
) -> Result<ImageOutcome> {
    let base = match &request.base {
        Some(spec) => Some(open_base(ctx, spec, request.platform.as_ref())?),
        None => None,
    };
    if let Some(b) = &base {
        sink.start_base(b).map_err(anyhow::Error::from_boxed)?;
    }
    let (inputs, layers) = build_layers(ctx, request, sink.as_mut())?;
    // A base fixes the platform: `resolve` already refused one that differs from --platform.
    let platform = match &base {
        Some(b) => b.platform.clone(),
        None => choose_platform(request.platform.clone(), &inputs),
    };
    let added: Vec<AddedLayer> = layers.iter().map(|l| l.layer.clone()).collect();
    let image = build_image(&added, &platform, base.as_ref(), &request.extras);
    if let Some(options) = &request.check {
        let target = sink.describe();
        let prepared = Prepared {
            target: &target,
            image: &image,
            added: &added,
            blob_dir: sink.blob_dir(),
            platform: &platform,
            has_base: base.is_some(),
            cache: ctx.layer_cache(),
        };
        check_before_push(&prepared, options)?;
    }
    let written = sink
        .finish(FinishedImage {
            built: &image,
            base: base.as_ref(),
            added: &added,
        })
        .map_err(anyhow::Error::from_boxed)?;
    info!(
        "wrote {} ({platform}, {} layer(s) added)",
        written.reference,
        added.len()
    );
    Ok(ImageOutcome {
        image,
        platform,
        layers,
        written,
        downloaded: inputs.iter().map(|l| l.downloaded).sum(),
    })
}

/// Builds the request's layers into the sink's blob directory, each as soon as its zips are there,
/// telling the sink of each finished blob.
fn build_layers(
    ctx: &Context,
    request: &ImageRequest,
    sink: &mut dyn ImageSink,
) -> Result<(Vec<LocalLayer>, Vec<BuiltLayer>)> {
    let groups = groups(request);
    let (tx, events) = mpsc::channel();
    let ready = tx.clone();
    let sources: Vec<LayerRef> = request.layers.iter().map(|l| l.source.clone()).collect();
    inputs::start_layers(ctx, &sources, move |i, r| {
        let _ = ready.send(Event::Layer(i, r));
    })?;
    let blob_dir = sink.blob_dir().to_path_buf();
    let mut sink_failed = None;
    let (inputs, built) = build_as_ready(
        request.layers.len(),
        &groups,
        &request.build,
        Destination {
            blobs: &blob_dir,
            cache: ctx.layer_cache(),
        },
        tx,
        events,
        |g, layer| {
            if sink_failed.is_none()
                && let Err(e) = sink.layer_ready(g, &layer.digests)
            {
                sink_failed = Some(e);
            }
        },
    )?;
    if let Some(e) = sink_failed {
        return Err(anyhow::Error::from_boxed(e));
    }
    let mut layers = Vec::with_capacity(built.len());
    for (group, (layer, warnings)) in groups.iter().zip(built) {
        let group = &group.members;
        for w in &warnings {
            warn!("{}", w.message);
        }
        let names: Vec<&str> = group.iter().map(|&i| inputs[i].display.as_str()).collect();
        info!(
            "layer {} from {} ({} bytes)",
            layer.digests.digest,
            names.join(", "),
            layer.digests.size
        );
        layers.push(BuiltLayer { layer, warnings });
    }
    Ok((inputs, layers))
}

/// The layers to build: one per input, or one for all with `--squash`.
fn groups(request: &ImageRequest) -> Vec<Group> {
    let prefix = |l: &LayerInput| {
        l.prefix
            .clone()
            .unwrap_or_else(|| request.build.prefix.clone())
    };
    if request.squash {
        return vec![Group {
            members: (0..request.layers.len()).collect(),
            prefix: request.build.prefix.clone(),
            only: None,
        }];
    }
    request
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| Group {
            members: vec![i],
            prefix: prefix(l),
            only: l.only.clone(),
        })
        .collect()
}
