//! The OCI distribution protocol at the edge: transport with retries, auth challenges and
//! credentials, reading images from a registry (`remote`) and pushing them (`push`).

pub mod auth;
mod challenge;
pub mod client;
pub mod errors;
pub mod push;
pub mod remote;
mod transport;
