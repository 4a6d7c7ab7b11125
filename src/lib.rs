//! layerport: moves AWS Lambda code between its two packagings, layer zips and OCI image layers.
//!
//! The layers, from the bottom up (dependencies only point down):
//! - `core`: synchronous conversions over `Read`/`Write`/`Seek` (zip reading, tar writing, deflate
//!   splicing, layer building, zip writing, applying image layers); no tokio, HTTP, AWS or clap.
//! - `oci`: the image model, image sources and sinks (OCI layout, docker archive), references.
//! - `registry` and `aws`: the network adapters (distribution protocol; Lambda, ECR, S3).
//! - `pipeline`: layer inputs + an optional base → an image written to any sink.
//! - `commands`: one file per command, over resolved `settings` and a shared `context`.

pub mod aws;
pub mod batch;
pub mod cli;
pub mod commands;
pub mod context;
pub mod core;
pub mod logging;
pub mod migrate;
pub mod net;
pub mod oci;
pub mod pipeline;
pub mod printer;
pub mod progress;
pub mod registry;
pub mod settings;

pub use crate::core::error::LayerError;
pub use commands::run;
