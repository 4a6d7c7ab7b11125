//! The image model and its local transports: references, platforms, canonical JSON, building a
//! config and manifest, reading images (`source`: OCI layouts, docker archives) and writing them
//! (`layout_sink`, `archive_sink`). Registries plug into the same source and sink traits.

pub mod archive;
pub mod archive_sink;
pub mod canonical_json;
pub mod check;
pub mod image;
pub mod layout;
pub mod layout_sink;
pub mod platform;
pub mod reference;
pub mod resolve;
pub mod sink;
pub mod source;
