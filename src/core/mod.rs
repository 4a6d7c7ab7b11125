//! The conversion core: synchronous, over files and `Read`/`Write`/`Seek`, knowing nothing of AWS,
//! HTTP, async runtimes or the command line — so every conversion can be tested and reasoned about alone.

pub mod apply;
pub mod deflate_splice;
pub mod digest;
pub mod error;
pub mod extract;
pub mod file_range;
pub mod layer_build;
pub mod layer_gzip;
pub mod layer_tree;
pub mod layer_zip;
pub mod modes;
pub mod paths;
pub mod raw_deflate;
pub mod staging;
pub mod tar_guard;
pub mod tar_writer;
pub mod warnings;
pub mod zip_writer;
