//! The checks on an image's files: its layers applied once (whiteouts and all, no contents kept),
//! then the tree read for sizes, modes the non-owner user can use, symlinks leaving the image, and
//! the handler's file.

use std::io::{self, Read};

use serde_json::Value;

use super::handler::check_handler;
use super::{CheckId, CheckOptions, FileScan, Finding, LAMBDA_IMAGE_LIMIT, Level, finding};
use crate::core::apply::{Applier, ApplyError, Node, NodeKind, Selection, within};

/// Counts what passes through.
struct Counting<'a, R> {
    inner: R,
    count: &'a mut u64,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        *self.count += n as u64;
        Ok(n)
    }
}

/// Applies `layers` (each a digest and its uncompressed tar stream, lowest first), keeping only
/// the tree's shape and modes.
pub fn scan_layers<'a>(
    image: &str,
    layers: impl IntoIterator<Item = Result<(String, Box<dyn Read + Send + 'a>), ApplyError>>,
    complete: bool,
) -> Result<FileScan, ApplyError> {
    let scratch = tempfile::tempdir().map_err(|source| ApplyError::Spool {
        path: std::env::temp_dir(),
        source,
    })?;
    let mut applier = Applier::new(image, Selection::Nothing, &scratch.path().join("spool"))?;
    let mut uncompressed = 0;
    for (i, layer) in layers.into_iter().enumerate() {
        let (digest, tar) = layer?;
        let counting = Counting {
            inner: tar,
            count: &mut uncompressed,
        };
        applier.apply_layer(i, &digest, counting)?;
    }
    let tree = applier.finish()?;
    Ok(FileScan {
        nodes: tree.nodes,
        uncompressed,
        complete,
    })
}

/// Size, modes, symlinks and the handler.
pub fn check_files(
    name: &str,
    scan: &FileScan,
    config: &Value,
    options: &CheckOptions,
) -> Vec<Finding> {
    let mut out = Vec::new();
    if scan.uncompressed > LAMBDA_IMAGE_LIMIT {
        out.push(finding(
            CheckId::ImageTooLarge,
            Level::Error,
            name,
            format!(
                "the layers hold {} bytes uncompressed, over Lambda's limit of {LAMBDA_IMAGE_LIMIT} (10 GiB)",
                scan.uncompressed
            ),
            "make the image smaller: fewer or smaller layers, or a slimmer base",
        ));
    }
    for (path, node) in &scan.nodes {
        check_mode(path, node, &mut out);
        if let NodeKind::Symlink(target) = &node.kind
            && escapes(path, target)
        {
            out.push(finding(
                CheckId::SymlinkEscapes,
                Level::Warning,
                format!("/{path}"),
                format!("the symlink points to {target:?}, which climbs out of the image's root"),
                "point it at a path inside the image",
            ));
        }
    }
    if options.runnable {
        out.extend(check_handler(scan, &config["config"], options));
    }
    out
}

/// Where Lambda's non-owner user must be able to read (and, for extensions and bootstraps, run).
fn check_mode(path: &str, node: &Node, out: &mut Vec<Finding>) {
    if !(within(path, "opt") || within(path, "var/task") || is_bootstrap(path)) {
        return;
    }
    let mode = node.mode;
    let (readable, what) = match node.kind {
        NodeKind::File(_) => (mode & 0o004 != 0, "file"),
        NodeKind::Dir => (mode & 0o005 == 0o005, "directory"),
        NodeKind::Symlink(_) => return,
    };
    let must_run = is_bootstrap(path) || is_extension(path);
    let runnable = mode & 0o001 != 0;
    if must_run && matches!(node.kind, NodeKind::File(_)) && !runnable {
        out.push(finding(
            CheckId::NotExecutable,
            Level::Error,
            format!("/{path}"),
            format!("it has mode {mode:04o}: Lambda's user, who does not own it, cannot run it"),
            "make it readable and executable by others (chmod o+rx)",
        ));
        return;
    }
    if !readable {
        out.push(finding(
            CheckId::NotReadable,
            Level::Error,
            format!("/{path}"),
            format!("the {what} has mode {mode:04o}: Lambda's user, who does not own it, cannot read it"),
            "make it readable by others (chmod o+r, and o+x for directories); `layerport image` does this for layer zips",
        ));
    }
}

fn is_bootstrap(path: &str) -> bool {
    matches!(
        path,
        "var/runtime/bootstrap" | "var/task/bootstrap" | "opt/bootstrap"
    )
}

/// A file Lambda starts as an extension: directly under /opt/extensions.
fn is_extension(path: &str) -> bool {
    path.strip_prefix("opt/extensions/")
        .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
}

/// Does `target`, read from the symlink at `path`, climb above the image's root?
fn escapes(path: &str, target: &str) -> bool {
    let mut depth: usize = if target.starts_with('/') {
        0
    } else {
        path.split('/').count() - 1
    };
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." if depth == 0 => return true,
            ".." => depth -= 1,
            _ => depth += 1,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::apply::Content;

    #[test]
    fn symlinks_that_climb_out_are_found() {
        assert!(escapes("opt/link", "/../.."));
        assert!(escapes("opt/link", "../../etc"));
        assert!(!escapes("opt/link", "../etc/passwd"));
        assert!(!escapes("opt/a/link", "/usr/lib/x"));
        assert!(!escapes("opt/link", "python/a.py"));
    }

    fn file(mode: u32) -> Node {
        Node::new(NodeKind::File(Content::NotKept { size: 1 }), mode)
    }

    #[test]
    fn modes_under_opt_and_var_task_and_bootstraps() {
        let mut out = Vec::new();
        check_mode("opt/python/a.py", &file(0o600), &mut out);
        check_mode("opt/extensions/ext", &file(0o744), &mut out);
        check_mode("var/runtime/bootstrap", &file(0o755), &mut out);
        check_mode("etc/shadow", &file(0o600), &mut out);
        check_mode("opt/extensions/ext-dir/helper", &file(0o644), &mut out);
        let ids: Vec<_> = out.iter().map(|f| (f.id, f.subject.as_str())).collect();
        assert_eq!(
            ids,
            [
                (CheckId::NotReadable, "/opt/python/a.py"),
                (CheckId::NotExecutable, "/opt/extensions/ext"),
            ]
        );
    }
}
