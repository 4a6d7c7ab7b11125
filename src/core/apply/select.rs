//! The subtree at `--path`, checked before anything is zipped: a non-empty directory within
//! Lambda's unzipped-size limit, or a request for another pass when its contents were not kept.

use std::collections::{BTreeMap, HashMap};

use super::{AppliedTree, Content, Node, NodeKind, Selection, resolve_in, subtree_keys, within};
use crate::core::warnings::Warning;

/// Where Lambda extracts a layer: absolute symlink targets are judged against it.
const LAYER_MOUNT: &str = "opt";

/// One zip entry's worth: a path relative to the selected directory, and its node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub name: String,
    pub node: Node,
}

/// The selected subtree, or the selection a further pass must keep because contents it needs
/// were not spooled (the path leads through a symlink, or a hardlink reaches outside it).
pub enum Selected {
    Items {
        /// The real path of the selected directory (after symlinks), relative to the image root.
        root: String,
        items: Vec<Item>,
        unzipped: u64,
        warnings: Vec<Warning>,
    },
    AgainWith(Selection),
}

/// What the subtree at `--path` fails to be.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error(
        "{image}: /{path} {problem}\n  hint: choose a directory of the image with --path (its top level holds: {top})"
    )]
    NotADirectory {
        image: String,
        path: String,
        problem: String,
        top: String,
    },
    #[error(
        "{image} has nothing at /{path}{how}; its top level holds: {top}\n  hint: choose the directory to zip with --path, e.g. --path /{first}"
    )]
    Empty {
        image: String,
        path: String,
        how: &'static str,
        top: String,
        first: String,
    },
    #[error(
        "{image}: /{path} holds {size} bytes unzipped, {over} bytes ({:.1} MiB) over Lambda's limit of {limit}{first}; the biggest directories: {biggest}\n  hint: Lambda refuses layers over 262144000 bytes unzipped; remove what the function does not need, or split it into several layers (zip subdirectories with --path)",
        *.over as f64 / 1048576.0
    )]
    TooLarge {
        image: String,
        path: String,
        size: u64,
        over: u64,
        limit: u64,
        biggest: String,
        /// Where the limit was first passed, when the layers were read.
        first: String,
    },
    #[error(
        "{image}: layer {layer}: entry {entry:?} took the files under /{path} to {size} bytes unzipped, over Lambda's limit of {limit}, and was not kept (a later layer removes some of them)\n  hint: Lambda refuses layers over 262144000 bytes unzipped; build the image so that /{path} never holds more (remove files in the layer that adds them)"
    )]
    Overflow {
        image: String,
        path: String,
        layer: String,
        entry: String,
        size: u64,
        limit: u64,
    },
}

impl AppliedTree {
    /// The subtree at `path` (relative, `""` for the root), checked: a non-empty directory whose
    /// unzipped size is within `limit`.
    pub fn select(&mut self, path: &str, limit: u64) -> Result<Selected, SelectError> {
        let parts: Vec<String> = path
            .split('/')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        let top = self.top_level();
        // A directory to suggest: the first one at the top level that is not the one asked for.
        let first = top
            .split(", ")
            .filter_map(|n| n.strip_suffix('/'))
            .find(|n| *n != path)
            .unwrap_or("opt")
            .to_string();
        let real = match resolve_in(&mut self.nodes, &parts, None, &mut 0) {
            Err(problem) => {
                return Err(SelectError::NotADirectory {
                    image: self.image.clone(),
                    path: path.to_string(),
                    problem: format!("cannot be zipped: it {problem}"),
                    top,
                });
            }
            Ok(None) => {
                return Err(SelectError::Empty {
                    image: self.image.clone(),
                    path: path.to_string(),
                    how: " (no such directory)",
                    top,
                    first,
                });
            }
            Ok(Some(real)) => real,
        };
        if !real.is_empty()
            && self
                .nodes
                .get(&real)
                .is_none_or(|n| n.kind != NodeKind::Dir)
        {
            return Err(SelectError::NotADirectory {
                image: self.image.clone(),
                path: path.to_string(),
                problem: "is not a directory".into(),
                top,
            });
        }
        if !self.keep.keeps(&real) {
            return Ok(Selected::AgainWith(Selection::Under(real)));
        }
        let strip = if real.is_empty() { 0 } else { real.len() + 1 };
        let mut items = Vec::new();
        let mut unzipped = 0u64;
        let mut missing_content = false;
        for key in subtree_keys(&self.nodes, &real) {
            let node = self.nodes[&key].clone();
            match &node.kind {
                NodeKind::File(c) => {
                    unzipped += c.size();
                    missing_content |= matches!(c, Content::NotKept { .. });
                }
                NodeKind::Symlink(t) => unzipped += t.len() as u64,
                NodeKind::Dir => {}
            }
            items.push(Item {
                name: key[strip..].to_string(),
                node,
            });
        }
        if items.is_empty() {
            return Err(SelectError::Empty {
                image: self.image.clone(),
                path: path.to_string(),
                how: " (an empty directory)",
                top,
                first,
            });
        }
        if unzipped > limit {
            let over = unzipped - limit;
            return Err(SelectError::TooLarge {
                image: self.image.clone(),
                path: path.to_string(),
                size: unzipped,
                over,
                limit,
                biggest: biggest_dirs(&items),
                first: self
                    .overflow
                    .as_ref()
                    .map(|o| format!(" (first passed in layer {} at {:?})", o.layer, o.entry))
                    .unwrap_or_default(),
            });
        }
        if let Some(o) = &self.overflow
            && missing_content
        {
            return Err(SelectError::Overflow {
                image: self.image.clone(),
                path: path.to_string(),
                layer: o.layer.clone(),
                entry: o.entry.clone(),
                size: o.size,
                limit,
            });
        }
        if missing_content {
            // Hard links copy files from outside: keep those too, and only when that does not
            // settle it (a chain of links), everything.
            let next = match &self.keep {
                Selection::Under(dir) if !self.wanted.is_empty() => Selection::UnderWith {
                    dir: dir.clone(),
                    files: self.wanted.clone(),
                },
                _ => Selection::Everything,
            };
            return Ok(Selected::AgainWith(next));
        }
        let warnings = items
            .iter()
            .filter_map(|item| match &item.node.kind {
                NodeKind::Symlink(t) if points_outside(&item.name, t) => {
                    Some(Warning::symlink_outside(&item.name, t))
                }
                _ => None,
            })
            .collect();
        Ok(Selected::Items {
            root: real,
            items,
            unzipped,
            warnings,
        })
    }

    /// The image's top-level names (`bin/`, `app.py`, ...), for messages.
    fn top_level(&self) -> String {
        let names: Vec<String> = self
            .nodes
            .iter()
            .filter(|(k, _)| !k.contains('/'))
            .map(|(k, n)| match n.kind {
                NodeKind::Dir => format!("{k}/"),
                _ => k.clone(),
            })
            .collect();
        match names.len() {
            0 => "nothing".into(),
            n if n > 30 => format!("{}, ... ({n} names)", names[..30].join(", ")),
            _ => names.join(", "),
        }
    }
}

/// A symlink the zip carries that will not resolve inside the layer once Lambda puts it at /opt.
fn points_outside(name: &str, target: &str) -> bool {
    if let Some(abs) = target.strip_prefix('/') {
        let mut parts: Vec<&str> = Vec::new();
        for p in abs.split('/') {
            match p {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                p => parts.push(p),
            }
        }
        return !within(&parts.join("/"), LAYER_MOUNT);
    }
    crate::core::paths::symlink_escapes(name, target)
}

/// The five biggest directories by unzipped bytes, skipping one whose single subdirectory holds
/// nearly all of it (the subdirectory says more).
fn biggest_dirs(items: &[Item]) -> String {
    // Each size goes to its parent directory, and totals are then carried up deepest first (a
    // directory's descendants all sort after it): no walk over every ancestor of every item,
    // which costs the square of the depth.
    let mut own: HashMap<&str, u64> = HashMap::new();
    for item in items {
        let size = match &item.node.kind {
            NodeKind::File(c) => c.size(),
            NodeKind::Symlink(t) => t.len() as u64,
            NodeKind::Dir => 0,
        };
        if let Some((parent, _)) = item.name.rsplit_once('/') {
            *own.entry(parent).or_default() += size;
        }
    }
    let mut dirs: Vec<&str> = own.keys().copied().collect();
    dirs.sort_unstable_by(|a, b| b.cmp(a));
    for dir in dirs {
        let total = own[dir];
        if let Some((parent, _)) = dir.rsplit_once('/') {
            *own.entry(parent).or_default() += total;
        }
    }
    let sizes: BTreeMap<&str, u64> = own.into_iter().collect();
    let mut biggest_child: BTreeMap<&str, u64> = BTreeMap::new();
    for (dir, size) in &sizes {
        let parent = dir.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
        let e = biggest_child.entry(parent).or_default();
        *e = (*e).max(*size);
    }
    let mut ranked: Vec<(&str, u64)> = sizes
        .iter()
        .filter(|(dir, size)| {
            biggest_child
                .get(*dir)
                .is_none_or(|c| (*c as f64) < 0.9 * (**size as f64))
        })
        .map(|(d, s)| (*d, *s))
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    if ranked.is_empty() {
        return "none (the files are all at the top level)".into();
    }
    ranked
        .iter()
        .take(5)
        .map(|(d, s)| format!("{d}/ ({:.1} MiB)", *s as f64 / 1048576.0))
        .collect::<Vec<_>>()
        .join(", ")
}
