//! Registry adapters at the edge: references, credentials, the distribution client, base images and
//! pushes. The conversion core never sees any of it.

pub mod auth;
mod challenge;
pub mod client;
pub mod push;
pub mod reference;
pub mod store;
