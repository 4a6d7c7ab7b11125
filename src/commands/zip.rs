//! `layerport zip IMAGE -o FILE`: an image's /opt becomes a deterministic Lambda layer zip.

use anyhow::Result;

use crate::cli::{GlobalArgs, ZipArgs};
use crate::error::LayerError;

pub fn run(_global: &GlobalArgs, args: &ZipArgs) -> Result<()> {
    Err(LayerError::Usage(format!("{}: `layerport zip` is not built yet", args.image)).into())
}
