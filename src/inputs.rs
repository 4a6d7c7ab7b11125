//! Turns LAYER arguments (ARNs or zip paths) into checked local zip files with their identity.

use std::path::{Path, PathBuf};

use base64::Engine;

use crate::arn::LayerArn;
use crate::digest::sha256_file;
use crate::error::{LayerError, Result};
use crate::image::LayerSource;

/// A LAYER argument as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerRef {
    Zip(PathBuf),
    Arn(LayerArn),
}

impl LayerRef {
    /// Anything starting with `arn:` must be a valid layer ARN (a usage error otherwise).
    pub fn parse(arg: &str) -> Result<Self> {
        if arg.starts_with("arn:") {
            return arg.parse().map(LayerRef::Arn).map_err(LayerError::Usage);
        }
        Ok(LayerRef::Zip(PathBuf::from(arg)))
    }
}

/// A layer zip on local disk, verified, with where it came from.
#[derive(Debug, Clone)]
pub struct LocalLayer {
    /// How messages name it: the path as given, or the ARN.
    pub display: String,
    pub path: PathBuf,
    pub source: LayerSource,
    /// From `GetLayerVersionByArn`; empty for local zips.
    pub compatible_architectures: Vec<String>,
}

/// Checks a local zip path and computes its sha256 (streamed).
pub fn local_zip(path: &Path) -> Result<LocalLayer> {
    let display = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| LayerError::Output {
        what: "cannot read layer",
        path: path.to_path_buf(),
        problem: e.to_string(),
        hint: "give a layer version ARN (arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION) or the path of a .zip file",
    })?;
    if !meta.is_file() {
        return Err(LayerError::Output {
            what: "cannot read layer",
            path: path.to_path_buf(),
            problem: "it is not a regular file".into(),
            hint: "give the path of a layer .zip file",
        });
    }
    let sha = sha256_file(path).map_err(|e| LayerError::io(path, e))?;
    let label = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| display.clone());
    Ok(LocalLayer {
        display,
        path: path.to_path_buf(),
        source: source_for(label, &sha),
        compatible_architectures: Vec::new(),
    })
}

pub fn source_for(label: String, sha: &[u8; 32]) -> LayerSource {
    LayerSource {
        label,
        code_sha256: base64::engine::general_purpose::STANDARD.encode(sha),
        sha256_hex: crate::digest::hex(sha),
    }
}
