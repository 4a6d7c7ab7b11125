//! layerport: moves AWS Lambda layers between their two packagings, layer zips and OCI image layers.
//!
//! The core (`layer_zip`, `layer_tree`, `layer_build`, `tar_writer`, `image`, `oci_layout`,
//! `docker_archive`) is synchronous and knows nothing of AWS, HTTP or the command line; `cli` and
//! `commands` sit at the edge and wire the core to the user's inputs.

pub mod apply;
pub mod arn;
pub mod aws;
pub mod cache;
pub mod canonical_json;
pub mod cli;
pub mod commands;
pub mod deflate_splice;
pub mod digest;
pub mod docker_archive;
pub mod download;
pub mod error;
pub mod extract;
pub mod fetch_arn;
pub mod file_range;
pub mod image;
pub mod image_source;
pub mod inputs;
pub mod layer_build;
pub mod layer_gzip;
pub mod layer_tree;
pub mod layer_zip;
pub mod logging;
pub mod modes;
pub mod oci_layout;
pub mod paths;
pub mod platform;
pub mod progress;
pub mod publish;
pub mod raw_deflate;
pub mod redact;
pub mod registry;
pub mod staging;
pub mod tar_writer;
pub mod warnings;
pub mod zip_writer;

pub use commands::run;
pub use error::LayerError;
