//! `migrate`: a zip function becomes an image function. Reads the function (and its layers'
//! CodeSha256), resolves the base, and either finds the target tag already built from the same
//! inputs ("up to date"), or builds the image through the shared pipeline — code, layers and
//! checks — and pushes it; then creates or updates the image function, and lists what must move by
//! hand.

mod plan;
mod runtimes;

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;
use tracing::{info, warn};

use crate::aws::fetch::FetchSource;
use crate::aws::function_extras::ManualStep;
use crate::aws::function_write::NewFunction;
use crate::aws::functions::{FunctionInfo, FunctionRef};
use crate::context::Context;
use crate::core::digest::Digest;
use crate::core::layer_build::BuildOptions;
use crate::core::layer_zip::{EntryKind, ZipLayer};
use crate::oci::check::CheckOptions;
use crate::oci::image::ImageExtras;
use crate::oci::platform::Platform;
use crate::oci::reference::{ImageRef, ImageSpec};
use crate::oci::sink::SinkSpec;
use crate::pipeline::fingerprint::{INPUTS_ANNOTATION, existing_image, pin};
use crate::pipeline::inputs::LayerRef;
use crate::pipeline::{self, ImageRequest};
use plan::Function;

/// What the user asked of the migration.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    pub function: FunctionRef,
    pub target: ImageRef,
    pub base: Option<ImageSpec>,
    pub platform: Option<Platform>,
    pub action: FunctionAction,
    pub dry_run: bool,
    pub bake_env: bool,
    pub check: bool,
    pub create_repository: bool,
    pub build: BuildOptions,
}

/// What to do with Lambda once the image is pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FunctionAction {
    Nothing,
    Create(String),
    Update(String),
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(
        "{function} is already an image function\n  hint: Lambda cannot change a function's package type; build new images with `layerport image`, and point it at one with --update-function"
    )]
    AlreadyImage { function: String },
    #[error("{function}: {message}")]
    Unsupported { function: String, message: String },
    #[error("{function} has no runtime\n  hint: give the base image with --base")]
    NoRuntime { function: String },
    #[error("{function} has no handler\n  hint: set the function's handler first")]
    NoHandler { function: String },
    #[error(
        "{function} uses a custom runtime, but neither its code nor its layers hold a `bootstrap` at their root\n  hint: add the executable `bootstrap` to the function's code"
    )]
    NoBootstrap { function: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MigrationStatus {
    /// `--dry-run`: nothing written.
    Planned,
    /// The target tag already holds an image built from the same inputs: nothing pushed.
    UpToDate,
    Pushed,
}

/// What the migration did (or, with `--dry-run`, would do).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Migration {
    pub function: String,
    pub runtime: String,
    pub handler: String,
    pub platform: String,
    pub base: String,
    pub base_digest: Digest,
    pub layers: Vec<String>,
    pub status: MigrationStatus,
    /// `REPOSITORY@DIGEST` of the pushed (or existing) image; none for a dry run.
    pub image: Option<String>,
    /// The function's variables, by name: moved to the new function's configuration, or baked.
    pub environment: Vec<String>,
    pub environment_baked: bool,
    pub function_action: Option<FunctionActionReport>,
    pub manual_steps: Vec<ManualStep>,
    pub bytes_downloaded: u64,
    pub bytes_uploaded: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionActionReport {
    /// `created`, `updated`, `unchanged`, or `would-create` / `would-update` for a dry run.
    pub action: &'static str,
    pub name: String,
    pub arn: Option<String>,
}

pub fn run(ctx: &Context, options: &MigrateOptions) -> Result<Migration> {
    let aws = ctx.aws();
    let region = ctx.block_on(aws.function_region(&options.function))?;
    let info = ctx.block_on(aws.get_function(&options.function.name, &region))?;
    let layers = ctx.block_on(layer_versions(ctx, &info))?;
    let function = Function::new(
        &info,
        layers,
        options.base.is_some(),
        options.platform.as_ref(),
    )?;
    let base_spec = function.base(options.base.as_ref())?;
    info!(
        "{}: runtime {} → base {base_spec} ({})",
        function.arn, function.runtime, function.platform
    );
    let base = pipeline::open_base(ctx, &base_spec, Some(&function.platform))?;
    let baked = options.bake_env.then_some(&info.environment);
    if let Some(env) = baked.filter(|e| !e.is_empty()) {
        warn!(
            "--bake-env: {} written into the image config, readable by anyone who can pull it",
            env.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    let annotations = plan::annotations(&function, &base_spec, &base.manifest_digest, baked);
    let inputs = Digest::parse(&annotations[INPUTS_ANNOTATION]).expect("a digest we made");
    let target = SinkSpec::Registry(options.target.clone());
    let existing = existing_image(ctx, &target, &inputs)?;
    let (mut downloaded, mut uploaded) = (0, 0);
    let (status, image) = match existing {
        Some(image) => {
            info!(
                "{}: up to date (built from the same inputs)",
                options.target
            );
            (MigrationStatus::UpToDate, Some(image))
        }
        None if options.dry_run => (MigrationStatus::Planned, None),
        None => {
            let request = request(
                ctx,
                options,
                &info,
                &function,
                &base_spec,
                &base,
                annotations,
            )?;
            let sink = pipeline::open_sink(
                ctx,
                &SinkSpec::Registry(options.target.clone()),
                options.create_repository,
            )?;
            let outcome = pipeline::run(ctx, &request, sink)?;
            downloaded = outcome.downloaded;
            uploaded = outcome.uploaded();
            (MigrationStatus::Pushed, Some(outcome.written.reference))
        }
    };
    let function_action = act_on_function(ctx, options, &info, &function, image.as_deref())?;
    let manual_steps = match &options.action {
        FunctionAction::Update(_) => Vec::new(),
        _ => ctx.block_on(aws.manual_steps(&info)),
    };
    for s in &manual_steps {
        warn!("to move by hand: {}: {}", s.kind, s.detail);
    }
    Ok(Migration {
        function: function.arn.clone(),
        runtime: function.runtime.clone(),
        handler: function.handler.clone(),
        platform: function.platform.to_string(),
        base: base_spec.to_string(),
        base_digest: base.manifest_digest.clone(),
        layers: function.layers.iter().map(|(arn, _)| arn.clone()).collect(),
        status,
        image,
        environment: info.environment.keys().cloned().collect(),
        environment_baked: options.bake_env,
        function_action,
        manual_steps,
        bytes_downloaded: downloaded,
        bytes_uploaded: uploaded,
    })
}

/// Each layer version's ARN and CodeSha256 (GetLayerVersionByArn; nothing is downloaded).
async fn layer_versions(ctx: &Context, info: &FunctionInfo) -> Result<Vec<(String, String)>> {
    let mut out = Vec::with_capacity(info.layer_arns.len());
    for text in &info.layer_arns {
        let arn = text.parse().map_err(|e: crate::aws::arn::ArnError| {
            anyhow::anyhow!("{}: layer {text}: {e}", info.arn)
        })?;
        let version = ctx.aws().get_layer_version(&arn).await?;
        out.push((text.clone(), version.code_sha256));
    }
    Ok(out)
}

/// The pipeline request: inputs, the pinned base, Cmd, perhaps Env, annotations, checks.
fn request(
    ctx: &Context,
    options: &MigrateOptions,
    info: &FunctionInfo,
    function: &Function,
    base_spec: &ImageSpec,
    base: &crate::oci::image::BaseImage,
    annotations: BTreeMap<String, String>,
) -> Result<ImageRequest> {
    let layer_refs: Vec<LayerRef> = function
        .layers
        .iter()
        .map(|(arn, _)| arn.parse().map(|a| LayerRef::Remote(FetchSource::Layer(a))))
        .collect::<Result<_, crate::aws::arn::ArnError>>()
        .map_err(|e| anyhow::anyhow!(e))?;
    let code = plan::code_source(info);
    let inputs = if runtimes::is_custom(&function.runtime) {
        custom_runtime_inputs(ctx, function, code, layer_refs)?
    } else {
        plan::inputs(code, layer_refs, None)
    };
    let env = if options.bake_env {
        info.environment.clone().into_iter().collect()
    } else {
        Vec::new()
    };
    Ok(ImageRequest {
        layers: inputs,
        base: Some(pin(base_spec, &base.manifest_digest)),
        platform: Some(function.platform.clone()),
        squash: false,
        build: options.build.clone(),
        extras: ImageExtras {
            cmd: Some(vec![function.handler.clone()]),
            env,
            annotations,
        },
        check: options.check.then(|| CheckOptions {
            platform: Some(function.platform.clone()),
            handler: Some(function.handler.clone()),
            runtime: Some(function.runtime.clone()),
            runnable: true,
            handler_in_scanned_layers: true,
        }),
    })
}

/// A custom runtime's inputs: the code and layers are fetched first, to find the `bootstrap` to
/// copy (the code's, else the last layer's that has one, as Lambda looks for it).
fn custom_runtime_inputs(
    ctx: &Context,
    function: &Function,
    code: LayerRef,
    layers: Vec<LayerRef>,
) -> Result<Vec<crate::pipeline::LayerInput>> {
    let mut all = vec![code];
    all.extend(layers);
    let fetched: Vec<LayerRef> = all
        .into_iter()
        .map(|r| match r {
            LayerRef::Remote(source) => {
                let f = ctx.block_on(ctx.fetcher()?.fetch(&source))?;
                Ok(LayerRef::Fetched(f))
            }
            other => Ok(other),
        })
        .collect::<Result<_>>()?;
    let has_bootstrap = |r: &LayerRef| -> Result<bool> {
        let LayerRef::Fetched(f) = r else {
            return Ok(false);
        };
        let file = std::fs::File::open(&f.path)?;
        let zip = ZipLayer::open(&f.label, std::io::BufReader::new(file), u64::MAX)?;
        Ok(matches!(
            zip.entries.get("bootstrap").map(|e| &e.kind),
            Some(EntryKind::File { .. })
        ))
    };
    let mut from = None;
    if has_bootstrap(&fetched[0])? {
        from = Some(0);
    } else {
        for (i, r) in fetched.iter().enumerate().skip(1).rev() {
            if has_bootstrap(r)? {
                from = Some(i);
                break;
            }
        }
    }
    let from = from.ok_or_else(|| MigrateError::NoBootstrap {
        function: function.arn.clone(),
    })?;
    let mut rest = fetched.into_iter();
    let code = rest.next().expect("the code is first");
    Ok(plan::inputs(code, rest.collect(), Some(from)))
}

/// Creates or updates the image function (`--create-function` / `--update-function`).
fn act_on_function(
    ctx: &Context,
    options: &MigrateOptions,
    info: &FunctionInfo,
    function: &Function,
    image: Option<&str>,
) -> Result<Option<FunctionActionReport>> {
    let report = |action, name: &str, arn| FunctionActionReport {
        action,
        name: name.to_string(),
        arn,
    };
    let (name, image) = match (&options.action, image) {
        (FunctionAction::Nothing, _) => return Ok(None),
        (FunctionAction::Create(name), None) => {
            return Ok(Some(report("would-create", name, None)));
        }
        (FunctionAction::Update(name), None) => {
            return Ok(Some(report("would-update", name, None)));
        }
        (action, Some(image)) => (action, image),
    };
    let digest = image.rsplit_once('@').map_or(image, |(_, d)| d);
    Ok(Some(match name {
        FunctionAction::Create(name) => {
            let new = NewFunction {
                name,
                image_uri: image,
                architecture: function.platform.lambda_architecture(),
                from: &info.configuration,
                tags: &info.tags.clone().into_iter().collect(),
            };
            let arn = ctx.block_on(ctx.aws().create_image_function(&function.region, &new))?;
            report("created", name, Some(arn))
        }
        FunctionAction::Update(name) => {
            let updated = ctx.block_on(ctx.aws().update_image_function(
                name,
                &function.region,
                image,
                digest,
            ))?;
            report(if updated { "updated" } else { "unchanged" }, name, None)
        }
        FunctionAction::Nothing => unreachable!("handled above"),
    }))
}
