//! Conversions shared by the images of one run (`batch`): the same zips, placed the same way with
//! the same options, are converted once, and the blob is linked into every image that needs it.
//! The check before a push reads each such layer once too: its scan is kept by digest.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::core::apply::ApplyError;
use crate::core::digest::Digest;
use crate::core::error::LayerError;
use crate::core::layer_build::BuildOptions;
use crate::core::layer_gzip::LayerDigests;
use crate::core::warnings::Warning;
use crate::oci::check::FileScan;

/// How many scanned paths are kept for the checks (about 150 bytes each): a batch over hundreds
/// of large layers scans the ones past this again rather than hold them all.
const SCANNED_PATHS_KEPT: usize = 400_000;

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
type ScanSlot = Arc<OnceLock<Option<Arc<FileScan>>>>;

pub struct LayerCache {
    dir: tempfile::TempDir,
    slots: Mutex<HashMap<LayerKey, Slot>>,
    scans: Mutex<Scans>,
}

#[derive(Default)]
struct Scans {
    slots: HashMap<Digest, ScanSlot>,
    paths: usize,
}

impl LayerCache {
    pub fn new() -> std::io::Result<Self> {
        Ok(LayerCache {
            dir: tempfile::Builder::new()
                .prefix("layerport-layers-")
                .tempdir()?,
            slots: Mutex::new(HashMap::new()),
            scans: Mutex::new(Scans::default()),
        })
    }

    /// The scan of the layer `digest` on its own: made by `scan` the first time (concurrent
    /// callers wait for it), then shared. A failed scan is not kept: `scan` runs again and reports.
    pub fn scan(
        &self,
        digest: &Digest,
        scan: impl Fn() -> Result<FileScan, ApplyError>,
    ) -> Result<Arc<FileScan>, ApplyError> {
        let slot = {
            let mut scans = self.scans.lock().expect("no panics while locked");
            match scans.slots.get(digest) {
                Some(slot) => Arc::clone(slot),
                None if scans.paths >= SCANNED_PATHS_KEPT => return scan().map(Arc::new),
                None => Arc::clone(scans.slots.entry(digest.clone()).or_default()),
            }
        };
        let kept = slot.get_or_init(|| {
            let made = scan().ok().map(Arc::new);
            if let Some(s) = &made {
                self.scans.lock().expect("no panics while locked").paths += s.nodes.len();
            }
            made
        });
        match kept {
            Some(s) => Ok(Arc::clone(s)),
            None => scan().map(Arc::new),
        }
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
