//! The command line (clap): parsing only; `commands` does the work.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

use crate::layer_zip::LAMBDA_UNZIPPED_LIMIT;

#[derive(Debug, Parser)]
#[command(
    name = "layerport",
    version,
    about = "Move AWS Lambda layers between zip and OCI image packagings",
    long_about = "Move AWS Lambda layers between their two packagings: layer zips (by ARN or local file) \
                  become OCI tar+gzip layers rooted at /opt, written as OCI layouts or docker archives.\n\n\
                  stdout carries data only (digests, paths, JSON); messages go to stderr."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Default AWS region (a layer ARN is always fetched in its own region)
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,
    /// AWS shared-config profile
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// Print one JSON document on stdout
    #[arg(long, global = true)]
    pub json: bool,
    /// Only errors on stderr
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More detail on stderr (-vv for debug)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Do not read or write the download cache
    #[arg(long, global = true)]
    pub no_cache: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build an image from layer zips: one OCI layer per zip, rooted at /opt
    Image(ImageArgs),
    /// Extract layers, in order, into a directory (for a Dockerfile RUN step)
    Fetch(FetchArgs),
    /// Show what a layer zip holds: entries, sizes against Lambda's limit, warnings
    Inspect(InspectArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RegistryAuth {
    Auto,
    Ecr,
    Docker,
    Anonymous,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("output").required(true).args(["oci_layout", "docker_archive"])))]
pub struct ImageArgs {
    /// Layer version ARNs or .zip files, applied in order (a later one overrides an earlier one)
    #[arg(required = true, value_name = "LAYER")]
    pub layers: Vec<String>,
    /// Write an OCI image layout to DIR, tagged TAG in its index.json
    #[arg(long, value_name = "DIR[:TAG]")]
    pub oci_layout: Option<String>,
    /// Write a `docker load` archive to FILE, named TAG (e.g. myimg:v1)
    #[arg(long, value_name = "FILE[:TAG]")]
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
    #[command(flatten)]
    pub limits: LimitArgs,
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
    /// A layer version ARN or a .zip file
    #[arg(value_name = "LAYER")]
    pub target: String,
    #[command(flatten)]
    pub limits: LimitArgs,
}
