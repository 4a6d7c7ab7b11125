//! The command line (clap): parsing only; `commands` does the work.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

use crate::core::layer_zip::LAMBDA_UNZIPPED_LIMIT;

mod examples;

#[derive(Debug, Parser)]
#[command(
    name = "layerport",
    version,
    about = "Move AWS Lambda layers between zip and OCI image packagings",
    long_about = "Move AWS Lambda layers between their two packagings: layer zips (by ARN or local file) \
                  become OCI tar+gzip layers rooted at /opt, pushed to a registry (such as Amazon ECR) or \
                  written as OCI layouts or docker archives; and an image's /opt becomes a layer zip again.\n\n\
                  stdout carries data only (digests, paths, JSON); messages go to stderr."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes, each under its own heading so that a command's `--help` lists its
/// own options first and these after them, never mixed in.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Default AWS region (a layer ARN is always fetched in its own region)
    #[arg(long, global = true, value_name = "REGION", help_heading = AWS_HEADING)]
    pub region: Option<String>,
    /// AWS shared-config profile
    #[arg(long, global = true, value_name = "NAME", help_heading = AWS_HEADING)]
    pub profile: Option<String>,
    /// Do not read or write the download cache of layer zips
    #[arg(long, global = true, help_heading = AWS_HEADING)]
    pub no_cache: bool,
    /// Print one JSON document on stdout (an error too: {"error": {...}, "hint": ...})
    #[arg(long, global = true, help_heading = OUTPUT_HEADING)]
    pub json: bool,
    /// Only errors on stderr
    #[arg(short, long, global = true, conflicts_with = "verbose", help_heading = OUTPUT_HEADING)]
    pub quiet: bool,
    /// More detail on stderr (-vv for debug). LAYERPORT_LOG=FILTER sets any tracing filter instead
    /// (e.g. debug, or trace for the AWS SDK's traces); secrets are redacted at every level
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = OUTPUT_HEADING)]
    pub verbose: u8,
}

pub const AWS_HEADING: &str = "AWS options";
pub const REGISTRY_HEADING: &str = "Registry options";
pub const OUTPUT_HEADING: &str = "Output options";

/// How registries are reached: only on the commands that read or write images (not on `fetch`,
/// which talks to AWS alone). Also accepted before the command name, as it always was.
#[derive(Debug, Args, Clone, Default)]
pub struct RegistryArgs {
    /// Talk plain HTTP (no TLS) to this registry host[:port] (repeatable; for loopback registries)
    #[arg(long = "plain-http", value_name = "HOST", help_heading = REGISTRY_HEADING)]
    pub plain_http: Vec<String>,
    /// How to authenticate to registries: ECR hosts via GetAuthorizationToken, else the Docker
    /// config, else anonymous (auto, the default); or force one
    #[arg(long, value_enum, value_name = "MODE", help_heading = REGISTRY_HEADING)]
    pub registry_auth: Option<RegistryAuth>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build an image from layer zips: one OCI layer per zip, rooted at /opt
    #[command(after_help = examples::IMAGE)]
    Image(ImageArgs),
    /// Extract layers, in order, into a directory (for a Dockerfile RUN step)
    #[command(after_help = examples::FETCH)]
    Fetch(FetchArgs),
    /// Turn an image's /opt (or --path) into a deterministic Lambda layer zip, optionally published
    #[command(after_help = examples::ZIP)]
    Zip(ZipArgs),
    /// Show what a layer zip or an image holds: entries, platforms, layers, sizes, warnings
    #[command(after_help = examples::INSPECT)]
    Inspect(InspectArgs),
    /// Will Lambda accept and run this image? Findings with ids, levels and fixes (exit 1 on errors)
    #[command(after_help = examples::CHECK)]
    Check(CheckArgs),
    /// Turn a zip function into an image function: its code, layers and runtime's base image,
    /// pushed to ECR, then (optionally) a new or updated image function
    #[command(after_help = examples::MIGRATE)]
    Migrate(MigrateArgs),
    /// Run many image, migrate and zip jobs from one TOML (or JSON) plan: shared downloads and
    /// conversions, resumable, shardable; one JSON line per job on stdout
    #[command(after_help = examples::BATCH)]
    Batch(BatchArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell) on stdout
    #[command(after_help = examples::COMPLETIONS)]
    Completions(CompletionsArgs),
    /// Print the man page (roff) of layerport, or of one of its commands, on stdout
    #[command(after_help = examples::MAN)]
    Man(ManArgs),
}

impl Command {
    /// The registry options given after the command name (commands that use no registry have none).
    pub fn registry(&self) -> Option<&RegistryArgs> {
        match self {
            Command::Image(a) => Some(&a.registry),
            Command::Zip(a) => Some(&a.registry),
            Command::Inspect(a) => Some(&a.registry),
            Command::Check(a) => Some(&a.registry),
            Command::Migrate(a) => Some(&a.registry),
            Command::Batch(a) => Some(&a.registry),
            Command::Fetch(_) | Command::Completions(_) | Command::Man(_) => None,
        }
    }
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// A command whose own page to print (e.g. image); the main page when left out
    #[arg(value_name = "COMMAND")]
    pub command: Option<String>,
}

#[derive(Debug, Args)]
pub struct BatchArgs {
    /// The plan: [defaults] and [[job]] tables (name, kind = image|migrate|zip, and the command's
    /// options with `_` for `-`)
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    /// Jobs at once (default 4: enough to keep two cores and the network busy)
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub jobs: Option<usize>,
    /// Run only shard K of N (1-based), by a stable hash of each job's name; also from
    /// AWS_BATCH_JOB_ARRAY_INDEX (with --shard-count) or CI_NODE_INDEX/CI_NODE_TOTAL
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// The number of shards, with AWS_BATCH_JOB_ARRAY_INDEX
    #[arg(long, value_name = "N")]
    pub shard_count: Option<u64>,
    /// Check the plan and say what each job would do; write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Start no more jobs once one has failed
    #[arg(long)]
    pub fail_fast: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RegistryAuth {
    Auto,
    Ecr,
    Docker,
    Anonymous,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("output").required(true).args(["push", "oci_layout", "docker_archive"])))]
pub struct ImageArgs {
    /// Layer version ARNs or .zip files, applied in order (a later one overrides an earlier one)
    #[arg(required = true, value_name = "LAYER")]
    pub layers: Vec<String>,
    /// Push the image to a registry (ECR or any OCI registry), e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/fn:v1
    #[arg(long, value_name = "REF")]
    pub push: Option<String>,
    /// Build on this base image (e.g. public.ecr.aws/lambda/python:3.12); its config is inherited
    #[arg(long, value_name = "REF")]
    pub base: Option<String>,
    /// With --push to ECR: create the repository if it does not exist
    #[arg(long, requires = "push")]
    pub create_repository: bool,
    /// With --push: skip the checks Lambda makes (single manifest, media types, size, modes, and
    /// with --base Entrypoint/Cmd), which otherwise stop a push that Lambda would refuse
    #[arg(long, requires = "push")]
    pub no_check: bool,
    /// Write an OCI image layout to DIR, tagged TAG in its index.json
    #[arg(long, value_name = "DIR[:TAG]")]
    pub oci_layout: Option<String>,
    /// Write a `docker load` archive to FILE, named TAG (e.g. myimg:v1); `-` streams it to stdout
    #[arg(long, value_name = "FILE[:TAG]", allow_hyphen_values = true)]
    pub docker_archive: Option<String>,
    /// linux/amd64 or linux/arm64 (default: the layer's architecture, else linux/amd64)
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Merge all layers into one, later ones overriding earlier ones
    #[arg(long)]
    pub squash: bool,
    /// Where layer contents go in the image
    #[arg(long, default_value = "/opt", value_name = "DIR")]
    pub prefix: String,
    /// Compress every file afresh at gzip LEVEL (1-9, default 6) instead of reusing the zip's
    /// deflate data as it is; slower, sometimes smaller, and the layer digest differs
    #[arg(
        long,
        value_name = "LEVEL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "6",
        value_parser = clap::value_parser!(u32).range(1..=9)
    )]
    pub recompress: Option<u32>,
    /// Compression threads (default: all cores); the bytes are the same whatever the count
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Refuse a zip that inflates to more than this many bytes (Lambda's limit by default)
    #[arg(long, default_value_t = LAMBDA_UNZIPPED_LIMIT, value_name = "BYTES")]
    pub max_unzipped: u64,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Layer version ARNs or .zip files, applied in order
    #[arg(required = true, value_name = "LAYER")]
    pub layers: Vec<String>,
    /// Directory to extract into (created if missing)
    #[arg(long, value_name = "DIR")]
    pub dest: PathBuf,
    #[command(flatten)]
    pub limits: LimitArgs,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A layer (a layer version ARN or a .zip file) or an image (a registry reference,
    /// oci:DIR[:TAG] or docker-archive:FILE[:NAME])
    #[arg(value_name = "LAYER|IMAGE")]
    pub target: String,
    /// The platform to show from a multi-platform image (default linux/amd64)
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("function_action").args(["create_function", "update_function"])))]
pub struct MigrateArgs {
    /// The function: a name, NAME:QUALIFIER, or a (qualified) function ARN
    #[arg(value_name = "FUNCTION")]
    pub function: String,
    /// Where to push the image (an ECR repository for Lambda), e.g.
    /// 123456789012.dkr.ecr.us-east-1.amazonaws.com/orders:v1
    #[arg(long, value_name = "REF")]
    pub push: String,
    /// Base image instead of the runtime's AWS base image (any source: registry, oci:, docker-archive:)
    #[arg(long, value_name = "REF")]
    pub base: Option<String>,
    /// linux/amd64 or linux/arm64 (default: the function's architecture)
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Create a new image function NAME from the pushed image, with the old one's configuration
    #[arg(long, value_name = "NAME")]
    pub create_function: Option<String>,
    /// Point the existing image function NAME at the pushed image
    #[arg(long, value_name = "NAME")]
    pub update_function: Option<String>,
    /// Print the plan (base, platform, layers, handler, what would be created) and write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Write the function's environment variables into the image config (readable by anyone who
    /// can pull it; by default they move to the new function's configuration)
    #[arg(long)]
    pub bake_env: bool,
    /// Skip the checks Lambda makes before the image is tagged
    #[arg(long)]
    pub no_check: bool,
    /// Create the ECR repository if it does not exist
    #[arg(long)]
    pub create_repository: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The image: a registry reference, oci:DIR[:TAG] or docker-archive:FILE[:NAME]
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// The function's architecture: x86_64 or arm64 (picks it from an index, and must match)
    #[arg(long, value_name = "ARCH", value_parser = ["x86_64", "arm64"])]
    pub architecture: Option<String>,
    /// The handler (module.function), else the image's Cmd
    #[arg(long, value_name = "HANDLER")]
    pub handler: Option<String>,
    /// The runtime (e.g. python3.12, nodejs20.x, provided.al2023), else guessed from the image
    #[arg(long, value_name = "RUNTIME")]
    pub runtime: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct ZipArgs {
    /// The image: a registry reference, oci:DIR[:TAG] or docker-archive:FILE
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// The layer zip to write; `-` streams it to stdout
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
    /// The directory of the image that becomes the zip's root
    #[arg(long, default_value = "/opt", value_name = "DIR")]
    pub path: String,
    /// Platform to pick from a multi-platform image (default linux/amd64)
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Compression threads (default: all cores; while the layers are read, one of them reads);
    /// the bytes are the same whatever the count
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Publish the zip as a new version of this layer (nothing is published if the newest version
    /// already has the same content)
    #[arg(long, value_name = "NAME")]
    pub publish: Option<String>,
    /// With --publish: a compatible runtime (repeatable), e.g. python3.12
    #[arg(
        long = "compatible-runtime",
        value_name = "RUNTIME",
        requires = "publish"
    )]
    pub compatible_runtimes: Vec<String>,
    /// With --publish: x86_64 or arm64 (default: from the image platform)
    #[arg(
        long = "compatible-architecture",
        value_name = "ARCH",
        requires = "publish"
    )]
    pub compatible_architectures: Vec<String>,
    /// With --publish: the layer version description
    #[arg(long, value_name = "TEXT", requires = "publish")]
    pub description: Option<String>,
    /// With --publish: the layer version license
    #[arg(long, value_name = "TEXT", requires = "publish")]
    pub license_info: Option<String>,
    /// With --publish: upload through this S3 bucket (same region; needed over 50 MB)
    #[arg(long, value_name = "BUCKET", requires = "publish")]
    pub s3_bucket: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}
