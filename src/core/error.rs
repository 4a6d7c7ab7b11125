//! Typed errors of the conversion core: each names the input (zip, entry, directory) and says what to do.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong turning a layer zip into a layer, or writing an image.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Writing into the destination failed (a directory that may not be written, a full disk).
    #[error("{zip}: cannot write entry {entry:?} into {dir}: {source}\n  hint: {hint}")]
    WriteEntry {
        zip: String,
        entry: String,
        dir: PathBuf,
        #[source]
        source: io::Error,
        hint: &'static str,
    },

    #[error("{zip} is not a readable zip archive ({detail})\n  hint: {hint}")]
    NotAZip {
        zip: String,
        detail: String,
        hint: &'static str,
    },

    #[error("{zip}: entry {entry:?} {problem}\n  hint: {hint}")]
    BadEntry {
        zip: String,
        entry: String,
        problem: String,
        hint: String,
    },

    #[error(
        "{zip}: unzipped content exceeds {limit} bytes (read {seen} bytes so far, at entry {entry:?})\n  hint: Lambda refuses layers over 262144000 bytes unzipped; split the layer, or raise --max-unzipped if this is not for Lambda"
    )]
    TooLarge {
        zip: String,
        entry: String,
        limit: u64,
        seen: u64,
    },

    #[error(
        "{zip}: entries declare {declared} bytes unzipped, over the limit of {limit}\n  hint: Lambda refuses layers over 262144000 bytes unzipped; split the layer, or raise --max-unzipped if this is not for Lambda"
    )]
    DeclaredTooLarge {
        zip: String,
        limit: u64,
        declared: u64,
    },

    #[error(
        "cannot write the layer: {0}\n  hint: check free space and permissions where the output goes"
    )]
    WriteOutput(#[source] io::Error),

    #[error(
        "cannot use a scratch file for entry {entry:?}: {source}\n  hint: check free space in the temporary directory (TMPDIR, else /tmp)"
    )]
    Scratch {
        entry: String,
        #[source]
        source: io::Error,
    },

    #[error("{zip}: the zip has no entries\n  hint: a layer zip needs at least one file")]
    Empty { zip: String },

    #[error("{0}")]
    Usage(String),

    /// The failure of an earlier attempt at the same work (a conversion shared by several images).
    #[error("{0}")]
    Earlier(String),

    #[error("{what} {path}: {problem}\n  hint: {hint}")]
    Output {
        what: &'static str,
        path: PathBuf,
        problem: String,
        hint: &'static str,
    },
}

impl LayerError {
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        LayerError::Io {
            path: path.into(),
            source,
        }
    }

    pub fn bad_entry(
        zip: &str,
        entry: &str,
        problem: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        LayerError::BadEntry {
            zip: zip.to_string(),
            entry: entry.to_string(),
            problem: problem.into(),
            hint: hint.into(),
        }
    }
}

pub type Result<T, E = LayerError> = std::result::Result<T, E>;

/// A failure of whatever feeds a reader the core consumes (an image store's digest check, a
/// download), carried through `io::Read` intact so that it is reported as the source's own error
/// rather than as a malformed tar or zip.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct SourceError(pub Box<dyn std::error::Error + Send + Sync>);

impl SourceError {
    /// Wraps this error so it travels through `io::Read` (tar and gzip readers).
    pub fn into_io(self) -> io::Error {
        io::Error::other(self)
    }

    /// Recovers a `SourceError` that travelled through I/O; any other I/O error is given back.
    pub fn from_io(err: io::Error) -> std::result::Result<SourceError, io::Error> {
        if err.get_ref().is_some_and(|e| e.is::<SourceError>()) {
            let inner = err.into_inner().expect("checked above");
            return Ok(*inner.downcast::<SourceError>().expect("checked above"));
        }
        Err(err)
    }
}
