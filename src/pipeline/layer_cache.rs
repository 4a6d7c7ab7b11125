//! Conversions shared by the images of one run (`batch`): the same zips, placed the same way with
//! the same options, are converted once, and the blob is linked into every image that needs it.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::core::error::LayerError;
use crate::core::layer_build::BuildOptions;
use crate::core::layer_gzip::LayerDigests;
use crate::core::warnings::Warning;

/// What decides a layer's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LayerKey {
    /// The sha256 (hex) of each zip, in order.
    pub zips: Vec<String>,
    pub prefix: String,
    pub only: Option<String>,
    pub gzip_level: u32,
    pub recompress: bool,
    pub mtime_override: Option<u64>,
    pub max_unzipped: u64,
}

impl LayerKey {
    pub fn new(zips: Vec<String>, only: Option<String>, opts: &BuildOptions) -> Self {
        LayerKey {
            zips,
            prefix: opts.prefix.clone(),
            only,
            gzip_level: opts.gzip_level,
            recompress: opts.recompress,
            mtime_override: opts.mtime_override,
            max_unzipped: opts.max_unzipped,
        }
    }
}

type Built = (LayerDigests, Vec<Warning>);
type Slot = Arc<OnceLock<Result<Built, String>>>;

pub struct LayerCache {
    dir: tempfile::TempDir,
    slots: Mutex<HashMap<LayerKey, Slot>>,
}

impl LayerCache {
    pub fn new() -> std::io::Result<Self> {
        Ok(LayerCache {
            dir: tempfile::Builder::new()
                .prefix("layerport-layers-")
                .tempdir()?,
            slots: Mutex::new(HashMap::new()),
        })
    }

    /// The layer for `key`: built by `build` (into the given directory) the first time, waited
    /// for by concurrent callers, then linked (or copied) into `blobs`.
    pub fn get_or_build(
        &self,
        key: LayerKey,
        blobs: &Path,
        build: impl FnOnce(&Path) -> Result<Built, LayerError>,
    ) -> Result<Built, LayerError> {
        let slot = {
            let mut slots = self.slots.lock().expect("no panics while locked");
            Arc::clone(slots.entry(key).or_default())
        };
        let built = slot
            .get_or_init(|| build(self.dir.path()).map_err(|e| e.to_string()))
            .clone()
            .map_err(LayerError::Earlier)?;
        let from = self.dir.path().join(built.0.digest.hex());
        let to = blobs.join(built.0.digest.hex());
        link_or_copy(&from, &to).map_err(|e| LayerError::io(&to, e))?;
        Ok(built)
    }
}

fn link_or_copy(from: &PathBuf, to: &Path) -> std::io::Result<()> {
    if to.exists() {
        return Ok(());
    }
    match fs::hard_link(from, to) {
        Ok(()) => Ok(()),
        Err(_) => fs::copy(from, to).map(|_| ()),
    }
}
