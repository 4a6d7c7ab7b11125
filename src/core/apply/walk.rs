//! Walking the applied tree: keys below a directory, and resolving an entry's parent path to a
//! real directory, following symlinks inside the root as container runtimes do, within the
//! kernel's bounds (PATH_MAX, 40 links) so a hostile layer cannot make a walk long.

use std::collections::BTreeMap;

use super::{MAX_RESOLVE_STEPS, MAX_SYMLINK_HOPS, Node, NodeKind};
use crate::core::tar_guard::{PATH_MAX, shorten};

/// Keys strictly below `path` (`""` is the root: every key).
pub(crate) fn subtree_keys<'a>(
    nodes: &'a BTreeMap<String, Node>,
    path: &str,
) -> Box<dyn Iterator<Item = String> + 'a> {
    if path.is_empty() {
        return Box::new(nodes.keys().cloned());
    }
    // '0' is the byte after '/': the range holds exactly the keys starting with "path/".
    Box::new(
        nodes
            .range(format!("{path}/")..format!("{path}0"))
            .map(|(k, _)| k.clone()),
    )
}

/// Why a path cannot be resolved to a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ResolveError {
    NotADirectory(String),
    SymlinkLoop(String),
    TooLong(String),
}

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolveError::NotADirectory(p) => {
                write!(f, "needs /{p} to be a directory, but it is a file")
            }
            ResolveError::TooLong(p) => {
                write!(
                    f,
                    "leads through symlinks to a path longer than PATH_MAX ({PATH_MAX}) or through too many components (/{p})"
                )
            }
            ResolveError::SymlinkLoop(p) => {
                write!(f, "leads through too many symlinks (a loop at /{p}?)")
            }
        }
    }
}

/// `key_bytes` grows by the keys of the directories created.
pub(crate) fn resolve_in(
    nodes: &mut BTreeMap<String, Node>,
    parts: &[String],
    create_in_layer: Option<usize>,
    key_bytes: &mut u64,
) -> Result<Option<String>, ResolveError> {
    // The common case in one lookup: a key's ancestors are always directories, so a path that is
    // a directory as written (no `..`) needs no walk (which costs the square of its depth).
    if !parts.iter().any(|p| p == "..") {
        let direct = parts
            .iter()
            .filter(|p| !p.is_empty() && *p != ".")
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("/");
        if direct.is_empty() || nodes.get(&direct).is_some_and(|n| n.kind == NodeKind::Dir) {
            return Ok(Some(direct));
        }
    }
    // The real path so far, and where each of its components starts (for `..`).
    let mut real = String::new();
    let mut starts: Vec<usize> = Vec::new();
    let mut pending: std::collections::VecDeque<String> = parts.iter().cloned().collect();
    let mut hops = 0;
    let mut steps = 0;
    while let Some(part) = pending.pop_front() {
        match part.as_str() {
            "" | "." => continue,
            ".." => {
                if let Some(start) = starts.pop() {
                    real.truncate(start.saturating_sub(1));
                }
                continue;
            }
            _ => {}
        }
        let candidate = join(&real, &part);
        // Symlinks can make a walk long: bounded as the kernel bounds it (PATH_MAX, 40 links).
        steps += 1;
        if candidate.len() > PATH_MAX || steps > MAX_RESOLVE_STEPS {
            return Err(ResolveError::TooLong(shorten(candidate.as_bytes())));
        }
        match nodes.get(&candidate).map(|n| &n.kind) {
            Some(NodeKind::Dir) => {
                starts.push(if real.is_empty() { 0 } else { real.len() + 1 });
                real = candidate;
            }
            Some(NodeKind::Symlink(target)) => {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    return Err(ResolveError::SymlinkLoop(candidate));
                }
                if target.starts_with('/') {
                    real.clear();
                    starts.clear();
                }
                for t in target.split('/').rev() {
                    pending.push_front(t.to_string());
                }
            }
            Some(NodeKind::File(_)) => {
                return Err(ResolveError::NotADirectory(candidate));
            }
            None => match create_in_layer {
                Some(layer) => {
                    *key_bytes += candidate.len() as u64;
                    nodes.insert(
                        candidate.clone(),
                        Node {
                            kind: NodeKind::Dir,
                            mode: 0o755,
                            layer,
                        },
                    );
                    starts.push(if real.is_empty() { 0 } else { real.len() + 1 });
                    real = candidate;
                }
                None => return Ok(None),
            },
        }
    }
    Ok(Some(real))
}

pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// An entry name's components: a leading `/` or `./` is dropped, `.` and empty parts are skipped,
/// `..` and NUL are refused (they could reach outside the image root).
pub(crate) fn split_path(raw: &[u8]) -> Result<Vec<String>, &'static str> {
    if raw.contains(&0) {
        return Err("contains a NUL byte");
    }
    let text = String::from_utf8_lossy(raw);
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("contains '..' and would escape the image root"),
            p => parts.push(p.to_string()),
        }
    }
    Ok(parts)
}
