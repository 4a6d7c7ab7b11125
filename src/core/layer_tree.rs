//! The set of entries one output layer holds: a single zip's, or several zips merged with Lambda's
//! later-wins semantics (`--squash`).

use std::collections::BTreeMap;

use crate::core::layer_zip::{EntryKind, PlannedEntry};

/// An entry of the output layer and the input zip its data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    pub source: usize,
    pub entry: PlannedEntry,
}

/// Paths relative to the layer root, sorted by bytes (a parent always sorts before its children).
pub type LayerTree = BTreeMap<String, TreeEntry>;

/// The entries of one zip, unchanged.
pub fn single(source: usize, entries: &BTreeMap<String, PlannedEntry>) -> LayerTree {
    entries
        .iter()
        .map(|(path, entry)| {
            (
                path.clone(),
                TreeEntry {
                    source,
                    entry: entry.clone(),
                },
            )
        })
        .collect()
}

/// Applies the zips in order: a later file replaces an earlier file, symlink or whole directory; a
/// later directory replaces an earlier file or symlink and merges with an earlier directory.
pub fn merge<'a>(
    layers: impl IntoIterator<Item = &'a BTreeMap<String, PlannedEntry>>,
) -> LayerTree {
    let mut tree = LayerTree::new();
    for (source, entries) in layers.into_iter().enumerate() {
        // Sorted order puts a directory before its children, so replacing an earlier file by a
        // directory happens before the children land inside it.
        for (path, entry) in entries {
            let is_dir = entry.kind == EntryKind::Dir;
            let replaced_dir = tree
                .get(path)
                .is_some_and(|old| old.entry.kind == EntryKind::Dir);
            if replaced_dir && !is_dir {
                remove_subtree(&mut tree, path);
            }
            if replaced_dir && is_dir && entry.synthesized {
                // A directory this zip did not list keeps the earlier layer's metadata.
                continue;
            }
            tree.insert(
                path.clone(),
                TreeEntry {
                    source,
                    entry: entry.clone(),
                },
            );
        }
    }
    tree
}

fn remove_subtree(tree: &mut LayerTree, dir: &str) {
    let prefix = format!("{dir}/");
    let doomed: Vec<String> = tree
        .range(prefix.clone()..)
        .take_while(|(p, _)| p.starts_with(&prefix))
        .map(|(p, _)| p.clone())
        .collect();
    for p in doomed {
        tree.remove(&p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(index: usize) -> PlannedEntry {
        PlannedEntry {
            kind: EntryKind::File {
                index,
                size: 1,
                crc32: 0,
                data: crate::core::layer_zip::EntryData {
                    start: 0,
                    compressed: 1,
                    method: crate::core::layer_zip::ZipMethod::Stored,
                },
            },
            mode: 0o644,
            mtime: 0,
            synthesized: false,
        }
    }

    fn dir() -> PlannedEntry {
        PlannedEntry {
            kind: EntryKind::Dir,
            mode: 0o755,
            mtime: 0,
            synthesized: false,
        }
    }

    fn layer(items: &[(&str, PlannedEntry)]) -> BTreeMap<String, PlannedEntry> {
        items
            .iter()
            .map(|(p, e)| (p.to_string(), e.clone()))
            .collect()
    }

    #[test]
    fn later_file_wins() {
        let a = layer(&[("f", file(0))]);
        let b = layer(&[("f", file(7))]);
        let t = merge([&a, &b]);
        assert_eq!(t["f"].source, 1);
    }

    #[test]
    fn file_replaces_directory_and_its_children() {
        let a = layer(&[("d", dir()), ("d/x", file(0)), ("d2", dir())]);
        let b = layer(&[("d", file(0))]);
        let t = merge([&a, &b]);
        assert!(matches!(t["d"].entry.kind, EntryKind::File { .. }));
        assert!(!t.contains_key("d/x"));
        assert!(t.contains_key("d2"));
    }

    #[test]
    fn directory_replaces_file() {
        let a = layer(&[("p", file(0))]);
        let b = layer(&[("p", dir()), ("p/child", file(1))]);
        let t = merge([&a, &b]);
        assert_eq!(t["p"].entry.kind, EntryKind::Dir);
        assert_eq!(t["p/child"].source, 1);
    }

    #[test]
    fn directories_merge() {
        let a = layer(&[("d", dir()), ("d/a", file(0))]);
        let b = layer(&[("d", dir()), ("d/b", file(0))]);
        let t = merge([&a, &b]);
        assert!(t.contains_key("d/a") && t.contains_key("d/b"));
    }
}
