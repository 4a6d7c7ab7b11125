//! Warnings found while reading a layer: things that convert, but that a user should know about.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// A stable, machine-readable kind: `mode-fixed`, `made-executable`, `not-executable`,
    /// `symlink-outside`, `duplicate`, `backslash`, `skipped`.
    pub code: &'static str,
    pub path: String,
    pub message: String,
}

impl Warning {
    fn new(code: &'static str, path: &str, message: String) -> Self {
        Warning {
            code,
            path: path.to_string(),
            message,
        }
    }

    pub fn mode_fixed(path: &str, from: u32, to: u32) -> Self {
        Self::new(
            "mode-fixed",
            path,
            format!("{path}: mode {from:04o} → {to:04o} (Lambda runs code as a non-owner user)"),
        )
    }

    pub fn made_executable(path: &str) -> Self {
        Self::new(
            "made-executable",
            path,
            format!(
                "{path}: the zip has no unix modes; made executable (0755) because Lambda must run it"
            ),
        )
    }

    pub fn not_executable(path: &str) -> Self {
        Self::new(
            "not-executable",
            path,
            format!("{path}: not executable, but Lambda runs it; `chmod 755` it before zipping"),
        )
    }

    pub fn symlink_outside(path: &str, target: &str) -> Self {
        Self::new(
            "symlink-outside",
            path,
            format!(
                "{path}: symlink points outside the layer ({target}); it resolves only if the target exists at run time"
            ),
        )
    }

    pub fn duplicate(path: &str) -> Self {
        Self::new(
            "duplicate",
            path,
            format!("{path}: appears more than once in the zip; the last one wins"),
        )
    }

    pub fn backslash(raw: &str, path: &str) -> Self {
        Self::new(
            "backslash",
            path,
            format!("{raw:?}: backslash separators (a Windows tool) converted to {path:?}"),
        )
    }

    pub fn skipped_special(path: &str, file_type: u32) -> Self {
        Self::new(
            "skipped",
            path,
            format!(
                "{path}: special file (type {file_type:06o}) skipped; layers hold files, directories and symlinks"
            ),
        )
    }
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}
