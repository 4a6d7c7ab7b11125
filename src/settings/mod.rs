//! The command line resolved once into the types the commands use: every flag is checked here, so
//! a usage error (exit 2) is found before any work, and no command below this point sees clap.

pub mod plan;
pub mod shard;

use std::path::{Path, PathBuf};

use crate::aws::AwsSettings;
use crate::aws::functions::FunctionRef;
use crate::cli::{self, Cli, Command};
use crate::core::error::LayerError;
use crate::core::layer_build::BuildOptions;
use crate::core::paths::normalize_prefix;
use crate::core::zip_writer::DosTime;
use crate::migrate::{FunctionAction, MigrateOptions};
use crate::oci::archive_sink::normalize_repo_tag;
use crate::oci::check::CheckOptions;
use crate::oci::image::ImageExtras;
use crate::oci::layout_sink::check_tag;
use crate::oci::platform::Platform;
use crate::oci::reference::{ImageRef, ImageSpec};
use crate::oci::sink::SinkSpec;
use crate::pipeline::inputs::LayerRef;
use crate::pipeline::{ImageRequest, LayerInput};
use crate::registry::auth::{AuthMode, ecr_region};
use shard::Shard;

pub use crate::context::{GlobalSettings, RegistrySettings};

/// Everything a run needs to know from its command line and environment.
#[derive(Debug)]
pub struct Settings {
    pub global: GlobalSettings,
    pub command: CommandSettings,
}

#[derive(Debug)]
pub enum CommandSettings {
    Image(ImageSettings),
    Fetch(FetchSettings),
    Zip(ZipSettings),
    Inspect(InspectSettings),
    Check(CheckSettings),
    Migrate(MigrateOptions),
    Batch(BatchSettings),
    /// Print the completion script for this shell.
    Completions(clap_complete::Shell),
    /// Print the man page of layerport, or of this command.
    Man(Option<String>),
}

#[derive(Debug)]
pub struct CheckSettings {
    pub image: ImageSpec,
    pub options: CheckOptions,
}

#[derive(Debug)]
pub struct ImageSettings {
    pub request: ImageRequest,
    pub output: SinkSpec,
    pub create_repository: bool,
}

#[derive(Debug)]
pub struct FetchSettings {
    pub layers: Vec<LayerRef>,
    pub dest: PathBuf,
    pub max_unzipped: u64,
    pub mtime_override: Option<u64>,
}

#[derive(Debug)]
pub struct InspectSettings {
    pub target: InspectTarget,
    /// The platform to show from an index.
    pub platform: Option<Platform>,
    pub max_unzipped: u64,
}

/// What `inspect` looks at.
#[derive(Debug)]
pub enum InspectTarget {
    Layer(LayerRef),
    Image(ImageSpec),
}

#[derive(Debug)]
pub struct ZipSettings {
    pub image: ImageSpec,
    pub output: PathBuf,
    /// The image directory that becomes the zip root, relative (`opt`; `` for the whole image).
    pub path: String,
    pub platform: Option<Platform>,
    pub threads: usize,
    pub time: DosTime,
    pub publish: Option<PublishSettings>,
}

#[derive(Debug, Clone)]
pub struct PublishSettings {
    pub layer_name: String,
    pub compatible_runtimes: Vec<String>,
    /// Empty: taken from the image's platform.
    pub compatible_architectures: Vec<String>,
    pub description: Option<String>,
    pub license_info: Option<String>,
    pub s3_bucket: Option<String>,
}

/// How the plan runs.
#[derive(Debug)]
pub struct BatchSettings {
    pub plan: PathBuf,
    pub jobs: Vec<plan::Job>,
    /// Jobs at once.
    pub concurrency: usize,
    pub shard: Option<Shard>,
    pub dry_run: bool,
    pub fail_fast: bool,
}

fn usage(message: impl Into<String>) -> LayerError {
    LayerError::Usage(message.into())
}

impl Settings {
    /// Checks and resolves the parsed command line (and `SOURCE_DATE_EPOCH` where it applies).
    pub fn from_cli(cli: &Cli) -> Result<Settings, LayerError> {
        let g = &cli.global;
        let global = GlobalSettings {
            aws: AwsSettings {
                profile: g.profile.clone(),
                region: g.region.clone(),
            },
            json: g.json,
            quiet: g.quiet,
            verbose: g.verbose,
            use_cache: !g.no_cache,
            registry: registry_settings(&cli.registry, cli.command.registry()),
        };
        let mut global = global;
        let command = match &cli.command {
            Command::Batch(args) => CommandSettings::Batch(batch_settings(args, &mut global)?),
            Command::Image(args) => {
                CommandSettings::Image(image_settings(args, global.registry.auth)?)
            }
            Command::Fetch(args) => CommandSettings::Fetch(FetchSettings {
                layers: parse_layers(&args.layers)?,
                dest: args.dest.clone(),
                max_unzipped: args.limits.max_unzipped,
                mtime_override: source_date_epoch()?,
            }),
            Command::Zip(args) => CommandSettings::Zip(zip_settings(args)?),
            Command::Check(args) => CommandSettings::Check(CheckSettings {
                image: ImageSpec::parse(&args.image).map_err(usage)?,
                options: CheckOptions {
                    platform: args
                        .architecture
                        .as_deref()
                        .and_then(Platform::from_lambda_architecture),
                    handler: args.handler.clone(),
                    runtime: args.runtime.clone(),
                    runnable: true,
                    handler_in_scanned_layers: false,
                },
            }),
            Command::Migrate(args) => CommandSettings::Migrate(migrate_options(args)?),
            Command::Inspect(args) => CommandSettings::Inspect(InspectSettings {
                target: inspect_target(&args.target)?,
                platform: parse_platform(args.platform.as_deref())?,
                max_unzipped: args.limits.max_unzipped,
            }),
            Command::Completions(args) => CommandSettings::Completions(args.shell),
            Command::Man(args) => CommandSettings::Man(args.command.clone()),
        };
        if global.json && writes_to_stdout(&command) {
            return Err(usage(
                "--json cannot be used when the output is `-`: stdout carries the archive or zip itself\n  hint: drop --json (messages go to stderr), or write to a file and use --json",
            ));
        }
        Ok(Settings { global, command })
    }
}

/// Registry options given before the command name and after it: hosts from both, and the mode
/// given after it over the one given before.
fn registry_settings(
    before: &cli::RegistryArgs,
    after: Option<&cli::RegistryArgs>,
) -> RegistrySettings {
    let mut plain_http = before.plain_http.clone();
    let mut auth = before.registry_auth;
    if let Some(after) = after {
        plain_http.extend(after.plain_http.iter().cloned());
        auth = after.registry_auth.or(auth);
    }
    RegistrySettings {
        plain_http,
        auth: match auth.unwrap_or(cli::RegistryAuth::Auto) {
            cli::RegistryAuth::Auto => AuthMode::Auto,
            cli::RegistryAuth::Ecr => AuthMode::Ecr,
            cli::RegistryAuth::Docker => AuthMode::Docker,
            cli::RegistryAuth::Anonymous => AuthMode::Anonymous,
        },
    }
}

/// `inspect`'s argument: a layer ARN or zip, or an image. A zip is told by its name (`.zip`) or
/// its first bytes; anything else is an image reference (and a local path without `oci:` or
/// `docker-archive:` is refused with a hint, like every IMAGE argument).
fn inspect_target(arg: &str) -> Result<InspectTarget, LayerError> {
    let transport = ["oci:", "docker-archive:", "docker://"]
        .iter()
        .any(|t| arg.starts_with(t));
    if !transport && (arg.starts_with("arn:") || looks_like_zip(Path::new(arg))) {
        return Ok(InspectTarget::Layer(LayerRef::parse(arg)?));
    }
    Ok(InspectTarget::Image(ImageSpec::parse(arg).map_err(usage)?))
}

/// Named `*.zip`, or a file that starts as a zip does (`PK\x03\x04`, or `PK\x05\x06` when empty).
fn looks_like_zip(path: &Path) -> bool {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"))
    {
        return true;
    }
    let mut head = [0u8; 4];
    path.is_file()
        && std::fs::File::open(path)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
            .is_ok()
        && (head == *b"PK\x03\x04" || head == *b"PK\x05\x06")
}

/// The command streams its output (an archive or a zip) to stdout: `-`.
pub fn writes_to_stdout(command: &CommandSettings) -> bool {
    match command {
        CommandSettings::Image(s) => s.output.writes_to_stdout(),
        CommandSettings::Zip(z) => crate::core::staging::is_stdout(&z.output),
        _ => false,
    }
}

/// Parses LAYER arguments (ARNs or zip paths) without touching the network or the files.
pub fn parse_layers(args: &[String]) -> Result<Vec<LayerRef>, LayerError> {
    args.iter().map(|a| LayerRef::parse(a)).collect()
}

fn image_settings(args: &cli::ImageArgs, auth: AuthMode) -> Result<ImageSettings, LayerError> {
    let defaults = BuildOptions::default();
    let build = BuildOptions {
        prefix: normalize_prefix(&args.prefix).map_err(usage)?,
        mtime_override: source_date_epoch()?,
        max_unzipped: args.limits.max_unzipped,
        gzip_level: args.recompress.unwrap_or(defaults.gzip_level),
        recompress: args.recompress.is_some(),
        threads: threads(args.threads)?,
    };
    let base = args
        .base
        .as_deref()
        .map(ImageSpec::parse)
        .transpose()
        .map_err(usage)?;
    let output = image_output(args)?;
    if args.create_repository
        && let SinkSpec::Registry(target) = &output
        && auth != AuthMode::Ecr
        && ecr_region(&target.registry).is_none()
    {
        return Err(usage(format!(
            "--create-repository creates Amazon ECR repositories, and {} is not an ECR registry host; drop the flag, or add --registry-auth ecr (with --region) if it is an ECR behind another name",
            target.registry
        )));
    }
    Ok(ImageSettings {
        request: ImageRequest {
            layers: parse_layers(&args.layers)?
                .into_iter()
                .map(LayerInput::whole)
                .collect(),
            base,
            platform: parse_platform(args.platform.as_deref())?,
            squash: args.squash,
            build,
            extras: ImageExtras::default(),
            check: push_check(args),
        },
        output,
        create_repository: args.create_repository,
    })
}

fn image_output(args: &cli::ImageArgs) -> Result<SinkSpec, LayerError> {
    if let Some(target) = &args.push {
        if !target.starts_with("docker://") {
            refuse_local_push(target)?;
        }
        let target = target.strip_prefix("docker://").unwrap_or(target);
        return Ok(SinkSpec::Registry(ImageRef::parse(target).map_err(usage)?));
    }
    if let Some(spec) = &args.oci_layout {
        let (dir, tag) = split_dest(spec);
        if let Some(tag) = &tag {
            check_tag(tag).map_err(usage)?;
        }
        return Ok(SinkSpec::OciLayout { dir, tag });
    }
    let spec = args
        .docker_archive
        .as_ref()
        .ok_or_else(|| usage("give --oci-layout DIR[:TAG] or --docker-archive FILE[:TAG]"))?;
    let (file, tag) = split_dest(spec);
    let tag = tag
        .map(|t| normalize_repo_tag(&t))
        .transpose()
        .map_err(usage)?;
    Ok(SinkSpec::DockerArchive { file, tag })
}

/// Loads and checks the whole plan (a bad plan is a usage error: exit 2, before any work); its
/// `[defaults]` global options apply where the command line did not set them.
fn batch_settings(
    args: &cli::BatchArgs,
    global: &mut GlobalSettings,
) -> Result<BatchSettings, LayerError> {
    let plan = plan::load(&args.plan).map_err(|e| usage(e.to_string()))?;
    apply_plan_globals(&plan.globals, global)
        .map_err(|e| usage(format!("{}: [defaults]: {e}", args.plan.display())))?;
    let shard = match &args.shard {
        Some(text) => Some(Shard::parse(text).map_err(usage)?),
        None => Shard::from_env(|k| std::env::var(k).ok(), args.shard_count).map_err(usage)?,
    };
    if args.jobs == Some(0) {
        return Err(usage("-j must be at least 1"));
    }
    Ok(BatchSettings {
        plan: args.plan.clone(),
        jobs: plan.jobs,
        concurrency: args.jobs.unwrap_or(4),
        shard,
        dry_run: args.dry_run,
        fail_fast: args.fail_fast,
    })
}

fn apply_plan_globals(
    globals: &serde_json::Map<String, serde_json::Value>,
    global: &mut GlobalSettings,
) -> Result<(), String> {
    let text = |k: &str| -> Result<Option<String>, String> {
        match globals.get(k) {
            None => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!("`{k}` must be a string, not {other}")),
        }
    };
    if global.aws.region.is_none() {
        global.aws.region = text("region")?;
    }
    if global.aws.profile.is_none() {
        global.aws.profile = text("profile")?;
    }
    if let Some(mode) = text("registry_auth")?
        && global.registry.auth == AuthMode::Auto
    {
        global.registry.auth = match mode.as_str() {
            "auto" => AuthMode::Auto,
            "ecr" => AuthMode::Ecr,
            "docker" => AuthMode::Docker,
            "anonymous" => AuthMode::Anonymous,
            other => {
                return Err(format!(
                    "registry_auth {other:?} is not auto, ecr, docker or anonymous"
                ));
            }
        };
    }
    match globals.get("plain_http") {
        None => {}
        Some(serde_json::Value::String(h)) => global.registry.plain_http.push(h.clone()),
        Some(serde_json::Value::Array(hosts)) => {
            for h in hosts {
                let h = h
                    .as_str()
                    .ok_or("`plain_http` holds host names (strings)")?;
                global.registry.plain_http.push(h.to_string());
            }
        }
        Some(other) => {
            return Err(format!(
                "`plain_http` must be a host or a list of hosts, not {other}"
            ));
        }
    }
    if globals.get("no_cache") == Some(&serde_json::Value::Bool(true)) {
        global.use_cache = false;
    }
    Ok(())
}

/// `--push out/fn:v1` beside an existing `out/fn` directory means a layout, not a registry: said
/// at once rather than after DNS lookups and retries against Docker Hub.
fn refuse_local_push(target: &str) -> Result<(), LayerError> {
    let dir = target.rsplit_once(':').map_or(target, |(d, _)| d);
    let path = Path::new(dir);
    let local = path.is_dir() && (dir.contains('/') || path.join("oci-layout").is_file());
    if local || target.starts_with(['/', '.']) {
        return Err(usage(format!(
            "--push {target:?} names a local path; --push writes to a registry\n  hint: to write an OCI \
             layout there, `layerport image` takes --oci-layout {target}; to push, give \
             HOST/REPOSITORY[:TAG] (docker://... forces a registry reference)"
        )));
    }
    Ok(())
}

fn migrate_options(args: &cli::MigrateArgs) -> Result<MigrateOptions, LayerError> {
    if !args.push.starts_with("docker://") {
        refuse_local_push(&args.push)?;
    }
    let target = args.push.strip_prefix("docker://").unwrap_or(&args.push);
    let action = match (&args.create_function, &args.update_function) {
        (Some(name), _) => FunctionAction::Create(name.clone()),
        (_, Some(name)) => FunctionAction::Update(name.clone()),
        _ => FunctionAction::Nothing,
    };
    if args.no_check {
        tracing::warn!("--no-check: the image is pushed without the checks Lambda will make");
    }
    Ok(MigrateOptions {
        function: FunctionRef::parse(&args.function).map_err(usage)?,
        target: ImageRef::parse(target).map_err(usage)?,
        base: args
            .base
            .as_deref()
            .map(ImageSpec::parse)
            .transpose()
            .map_err(usage)?,
        platform: parse_platform(args.platform.as_deref())?,
        action,
        dry_run: args.dry_run,
        bake_env: args.bake_env,
        check: !args.no_check,
        create_repository: args.create_repository,
        build: BuildOptions {
            mtime_override: source_date_epoch()?,
            ..BuildOptions::default()
        },
    })
}

/// The checks before a push: all of them on a base (a function's image), only what Lambda
/// accepts for a layers-only image (which has no Cmd by design, for `COPY --from`).
fn push_check(args: &cli::ImageArgs) -> Option<CheckOptions> {
    args.push.as_ref()?;
    if args.no_check {
        tracing::warn!("--no-check: the image is pushed without the checks Lambda will make");
        return None;
    }
    Some(CheckOptions {
        runnable: args.base.is_some(),
        ..Default::default()
    })
}

/// `DIR:TAG` splits at the first `:` (as skopeo's `oci:` transport does).
fn split_dest(spec: &str) -> (PathBuf, Option<String>) {
    match spec.split_once(':') {
        Some((path, tag)) if !tag.is_empty() => (PathBuf::from(path), Some(tag.to_string())),
        Some((path, _)) => (PathBuf::from(path), None),
        None => (PathBuf::from(spec), None),
    }
}

fn zip_settings(args: &cli::ZipArgs) -> Result<ZipSettings, LayerError> {
    for arch in &args.compatible_architectures {
        if arch != "x86_64" && arch != "arm64" {
            return Err(usage(format!(
                "--compatible-architecture {arch:?}: Lambda architectures are x86_64 and arm64"
            )));
        }
    }
    let time = source_date_epoch()?
        .map(DosTime::from_unix)
        .unwrap_or(DosTime::MIN);
    if args.publish.is_some() && crate::core::staging::is_stdout(&args.output) {
        return Err(usage(
            "--publish needs the zip in a file, not `-o -` (stdout)\n  hint: give -o layer.zip to publish it",
        ));
    }
    let publish = args.publish.as_ref().map(|name| PublishSettings {
        layer_name: name.clone(),
        compatible_runtimes: args.compatible_runtimes.clone(),
        compatible_architectures: args.compatible_architectures.clone(),
        description: args.description.clone(),
        license_info: args.license_info.clone(),
        s3_bucket: args.s3_bucket.clone(),
    });
    Ok(ZipSettings {
        image: ImageSpec::parse(&args.image).map_err(usage)?,
        output: args.output.clone(),
        path: normalize_path(&args.path).map_err(usage)?,
        platform: parse_platform(args.platform.as_deref())?,
        threads: threads(args.threads)?,
        time,
        publish,
    })
}

fn parse_platform(platform: Option<&str>) -> Result<Option<Platform>, LayerError> {
    platform
        .map(str::parse::<Platform>)
        .transpose()
        .map_err(usage)
}

/// `--threads`: at least 1; all cores when not given.
fn threads(requested: Option<usize>) -> Result<usize, LayerError> {
    match requested {
        Some(0) => Err(usage("--threads must be at least 1")),
        Some(n) => Ok(n),
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
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

/// `SOURCE_DATE_EPOCH`, when set to a whole number of seconds.
fn source_date_epoch() -> Result<Option<u64>, LayerError> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => v.trim().parse().map(Some).map_err(|_| {
            usage(format!(
                "SOURCE_DATE_EPOCH={v:?} is not a whole number of seconds since 1970"
            ))
        }),
        Err(_) => Ok(None),
    }
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

    #[test]
    fn registry_options_before_and_after_the_command_combine() {
        use clap::Parser;
        let cli = Cli::try_parse_from([
            "layerport",
            "--plain-http",
            "a:5000",
            "--registry-auth",
            "docker",
            "zip",
            "oci:x",
            "-o",
            "y.zip",
            "--plain-http",
            "b:5000",
            "--registry-auth",
            "anonymous",
        ])
        .unwrap();
        let settings = Settings::from_cli(&cli).unwrap();
        assert_eq!(settings.global.registry.plain_http, ["a:5000", "b:5000"]);
        assert_eq!(settings.global.registry.auth, AuthMode::Anonymous);
        let cli =
            Cli::try_parse_from(["layerport", "--registry-auth", "ecr", "check", "oci:x"]).unwrap();
        let settings = Settings::from_cli(&cli).unwrap();
        assert_eq!(settings.global.registry.auth, AuthMode::Ecr);
        // fetch talks to AWS only: no registry options after its name.
        assert!(
            Cli::try_parse_from([
                "layerport",
                "fetch",
                "a.zip",
                "--dest",
                "d",
                "--plain-http",
                "h"
            ])
            .is_err()
        );
    }

    #[test]
    fn destinations_split_at_the_first_colon() {
        assert_eq!(
            split_dest("out/x:v1"),
            (PathBuf::from("out/x"), Some("v1".into()))
        );
        assert_eq!(split_dest("out/x:"), (PathBuf::from("out/x"), None));
        assert_eq!(split_dest("out/x"), (PathBuf::from("out/x"), None));
    }
}
