//! Will Lambda accept and run this image? The checks Lambda makes late (at CreateFunction, or at
//! the first invoke), made before a push: one single-platform manifest without attestations,
//! supported media types, the architecture, the uncompressed size, Entrypoint/Cmd, the handler's
//! file, modes the non-owner user Lambda runs as can read and run, symlinks that stay inside the
//! image, and no credential-like variables in the config (named, never shown).
//!
//! Each finding has a stable id, a level and a fix. The same rules serve `layerport check IMAGE`
//! (every layer streamed once) and the check before a push (the layers layerport adds).

mod documents;
mod files;
mod handler;

use std::fmt;

use serde::Serialize;
use serde_json::Value;

pub use documents::{ImageFacts, IndexFacts, check_documents, index_facts};
pub use files::{check_files, scan_layers};

use std::collections::BTreeMap;

use crate::core::apply::Node;
use crate::oci::platform::Platform;

/// The applied tree of the scanned layers and their uncompressed size.
pub struct FileScan {
    pub nodes: BTreeMap<String, Node>,
    /// Bytes of the layers' tar streams.
    pub uncompressed: u64,
    /// The scanned layers are the whole image (not only the layers layerport adds).
    pub complete: bool,
}

/// Lambda's limit on an image's uncompressed size, all layers included.
pub const LAMBDA_IMAGE_LIMIT: u64 = 10 * 1024 * 1024 * 1024;

/// Stable identifiers of the checks, for scripts and for `--json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckId {
    /// The reference names an image index (a multi-platform list), not one image manifest.
    ImageIndex,
    /// The index carries build attestations (provenance, SBOM).
    AttestationManifest,
    ManifestMediaType,
    LayerMediaType,
    /// The image's architecture is not the one the function runs on.
    Architecture,
    /// Lambda runs only linux/amd64 and linux/arm64.
    UnsupportedPlatform,
    ImageTooLarge,
    NoEntrypointOrCmd,
    HandlerMissing,
    NotReadable,
    NotExecutable,
    SymlinkEscapes,
    CredentialVariable,
}

impl CheckId {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckId::ImageIndex => "image-index",
            CheckId::AttestationManifest => "attestation-manifest",
            CheckId::ManifestMediaType => "manifest-media-type",
            CheckId::LayerMediaType => "layer-media-type",
            CheckId::Architecture => "architecture",
            CheckId::UnsupportedPlatform => "unsupported-platform",
            CheckId::ImageTooLarge => "image-too-large",
            CheckId::NoEntrypointOrCmd => "no-entrypoint-or-cmd",
            CheckId::HandlerMissing => "handler-missing",
            CheckId::NotReadable => "not-readable",
            CheckId::NotExecutable => "not-executable",
            CheckId::SymlinkEscapes => "symlink-escapes",
            CheckId::CredentialVariable => "credential-variable",
        }
    }
}

impl fmt::Display for CheckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Lambda will refuse the image, or the function will fail.
    Error,
    /// Likely a mistake, or a risk; Lambda may still run it.
    Warning,
}

/// One thing found wrong with an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub id: CheckId,
    pub level: Level,
    /// What it is about: a path in the image, a digest, a variable's name (never its value).
    pub subject: String,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        write!(
            f,
            "{level}[{}] {}: {}\n  fix: {}",
            self.id, self.subject, self.message, self.fix
        )
    }
}

/// What the image is meant to be.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// The function's architecture (`--architecture`), when known.
    pub platform: Option<Platform>,
    /// The handler (`--handler`), else the image's Cmd.
    pub handler: Option<String>,
    /// The runtime (`--runtime`, e.g. python3.12), else guessed from the image.
    pub runtime: Option<String>,
    /// The image is a function's (Entrypoint/Cmd and the handler are checked), not only a set of
    /// layers for `COPY --from`.
    pub runnable: bool,
    /// The handler must be in the scanned layers, even when they are not the whole image (a
    /// migrated function's code is in the layers layerport adds).
    pub handler_in_scanned_layers: bool,
}

/// At most this many findings of one kind are listed; the rest are counted.
const MAX_PER_CHECK: usize = 20;

/// Sorts findings (errors first, then by id and subject) and folds long runs of one check.
pub fn summarize(mut findings: Vec<Finding>) -> Vec<Finding> {
    findings.sort_by(|a, b| (a.level, a.id, &a.subject).cmp(&(b.level, b.id, &b.subject)));
    let mut out: Vec<Finding> = Vec::with_capacity(findings.len());
    let mut run = 0;
    let mut folded = 0;
    for f in findings {
        let same = out
            .last()
            .is_some_and(|l| l.id == f.id && l.level == f.level);
        run = if same { run + 1 } else { 0 };
        if run >= MAX_PER_CHECK {
            folded += 1;
            continue;
        }
        if folded > 0 {
            fold_note(&mut out, folded);
            folded = 0;
        }
        out.push(f);
    }
    if folded > 0 {
        fold_note(&mut out, folded);
    }
    out
}

fn fold_note(out: &mut [Finding], folded: usize) {
    if let Some(last) = out.last_mut() {
        last.message
            .push_str(&format!(" (and {folded} more like it, not listed)"));
    }
}

/// True when any finding is an error.
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.level == Level::Error)
}

fn finding(
    id: CheckId,
    level: Level,
    subject: impl Into<String>,
    message: impl Into<String>,
    fix: impl Into<String>,
) -> Finding {
    Finding {
        id,
        level,
        subject: subject.into(),
        message: message.into(),
        fix: fix.into(),
    }
}

/// The config's `config` object (Entrypoint, Cmd, Env...), or null.
fn runtime_config(config: &Value) -> &Value {
    &config["config"]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(id: CheckId, subject: &str) -> Finding {
        finding(id, Level::Error, subject, "m", "x")
    }

    #[test]
    fn long_runs_are_folded_and_errors_come_first() {
        let mut all: Vec<Finding> = (0..25)
            .map(|i| f(CheckId::NotReadable, &format!("opt/f{i:02}")))
            .collect();
        all.push(finding(
            CheckId::SymlinkEscapes,
            Level::Warning,
            "opt/l",
            "m",
            "x",
        ));
        all.push(f(CheckId::ImageIndex, "img"));
        let out = summarize(all);
        assert_eq!(out[0].id, CheckId::ImageIndex);
        let unreadable: Vec<_> = out
            .iter()
            .filter(|x| x.id == CheckId::NotReadable)
            .collect();
        assert_eq!(unreadable.len(), MAX_PER_CHECK);
        assert!(unreadable.last().unwrap().message.contains("and 5 more"));
        assert_eq!(out.last().unwrap().id, CheckId::SymlinkEscapes);
        assert!(has_errors(&out));
        assert_eq!(
            serde_json::to_value(CheckId::NoEntrypointOrCmd).unwrap(),
            CheckId::NoEntrypointOrCmd.as_str()
        );
    }
}
