//! Extracts a layer tree into a directory the way Lambda lays layers out in /opt: built in a sibling
//! temporary directory, then moved into place, so a failure leaves the destination as it was.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Seek};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use filetime::FileTime;

use crate::core::error::{LayerError, Result};
use crate::core::layer_tree::LayerTree;
use crate::core::layer_zip::{Budget, EntryKind, ZipLayer};
use crate::core::staging::Staging;

#[derive(Debug, Clone, Copy, Default)]
pub struct ExtractStats {
    pub files: usize,
    pub bytes: u64,
}

/// Extracts `tree` into `dest` (created if missing). An existing `dest` keeps its other content;
/// layer entries replace what is at their paths.
pub fn extract_into<R: Read + Seek>(
    zips: &mut [ZipLayer<R>],
    tree: &LayerTree,
    dest: &Path,
    max_unzipped: u64,
    mtime_override: Option<u64>,
) -> Result<ExtractStats> {
    if dest.exists() && !dest.is_dir() {
        return Err(LayerError::Output {
            what: "cannot extract into",
            path: dest.to_path_buf(),
            problem: "it exists and is not a directory".into(),
            hint: "give a directory path for --dest",
        });
    }
    let staging = Staging::next_to(dest)?;
    let root = staging.path().join("tree");
    fs::create_dir(&root).map_err(|e| LayerError::io(&root, e))?;
    let stats = write_tree(zips, tree, &root, max_unzipped, mtime_override)?;

    let empty_dest = match fs::read_dir(dest) {
        Ok(mut listing) => listing.next().is_none(),
        Err(_) => true,
    };
    if empty_dest {
        if dest.is_dir() {
            fs::remove_dir(dest).map_err(|e| LayerError::io(dest, e))?;
        }
        fs::rename(&root, dest).map_err(|e| LayerError::io(dest, e))?;
    } else {
        // Everything that could stop the merge half-way is found before anything moves.
        check_merge(&root, dest)?;
        merge_move(&root, dest)?;
    }
    let mut staging = staging;
    staging.keep_parents();
    Ok(stats)
}

fn write_tree<R: Read + Seek>(
    zips: &mut [ZipLayer<R>],
    tree: &LayerTree,
    root: &Path,
    max_unzipped: u64,
    mtime_override: Option<u64>,
) -> Result<ExtractStats> {
    let mut budgets: Vec<Budget> = zips.iter().map(|_| Budget::new(max_unzipped)).collect();
    let mut stats = ExtractStats::default();
    for (path, item) in tree {
        let target = root.join(path);
        ensure_real_parent(root, &target)?;
        let entry = &item.entry;
        match &entry.kind {
            EntryKind::Dir => {
                fs::create_dir(&target).map_err(|e| LayerError::io(&target, e))?;
            }
            EntryKind::Symlink { target: link } => {
                std::os::unix::fs::symlink(link, &target)
                    .map_err(|e| LayerError::io(&target, e))?;
                let t = FileTime::from_unix_time(mtime_override.unwrap_or(entry.mtime) as i64, 0);
                let _ = filetime::set_symlink_file_times(&target, t, t);
            }
            EntryKind::File { index, .. } => {
                let file = File::options()
                    .write(true)
                    .create_new(true)
                    .open(&target)
                    .map_err(|e| LayerError::io(&target, e))?;
                let mut out = BufWriter::new(file);
                stats.bytes += zips[item.source].copy_file(
                    path,
                    *index,
                    &mut budgets[item.source],
                    &mut out,
                )?;
                stats.files += 1;
                let file = out
                    .into_inner()
                    .map_err(|e| LayerError::io(&target, e.into_error()))?;
                file.set_permissions(fs::Permissions::from_mode(entry.mode))
                    .map_err(|e| LayerError::io(&target, e))?;
                let t = FileTime::from_unix_time(mtime_override.unwrap_or(entry.mtime) as i64, 0);
                filetime::set_file_handle_times(&file, Some(t), Some(t))
                    .map_err(|e| LayerError::io(&target, e))?;
            }
        }
    }
    // Directory modes and times last, deepest first: writing children would change them.
    for (path, item) in tree.iter().rev() {
        if item.entry.kind == EntryKind::Dir {
            let target = root.join(path);
            fs::set_permissions(&target, fs::Permissions::from_mode(item.entry.mode))
                .map_err(|e| LayerError::io(&target, e))?;
            let t = FileTime::from_unix_time(mtime_override.unwrap_or(item.entry.mtime) as i64, 0);
            filetime::set_file_times(&target, t, t).map_err(|e| LayerError::io(&target, e))?;
        }
    }
    Ok(stats)
}

/// Defence in depth: the tree was checked, but never write below anything that is not a real directory.
fn ensure_real_parent(root: &Path, target: &Path) -> Result<()> {
    let parent = target.parent().unwrap_or(root);
    let meta = fs::symlink_metadata(parent).map_err(|e| LayerError::io(parent, e))?;
    if !meta.is_dir() || !parent.starts_with(root) {
        return Err(LayerError::Output {
            what: "refusing to write",
            path: target.to_path_buf(),
            problem: "its parent is not a real directory inside the destination".into(),
            hint: "report this: the layer tree should have prevented it",
        });
    }
    Ok(())
}

/// Refuses a merge that would put one of `from`'s directories where `to` has a file or a symlink:
/// a directory cannot replace those by rename, and a symlink is never written through.
fn check_merge(from: &Path, to: &Path) -> Result<()> {
    for item in fs::read_dir(from).map_err(|e| LayerError::io(from, e))? {
        let item = item.map_err(|e| LayerError::io(from, e))?;
        if !item.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let dst = to.join(item.file_name());
        match fs::symlink_metadata(&dst) {
            Ok(meta) if meta.is_dir() => check_merge(&item.path(), &dst)?,
            Ok(meta) => {
                let what = if meta.file_type().is_symlink() {
                    "a symlink"
                } else {
                    "a file"
                };
                return Err(LayerError::Output {
                    what: "cannot extract a directory of the layers to",
                    path: dst,
                    problem: format!("the destination already has {what} there"),
                    hint: "remove it from the destination, or fetch into an empty directory",
                });
            }
            Err(_) => {}
        }
    }
    Ok(())
}

/// Moves `from`'s children into the existing directory `to`: directories merge, the rest replaces.
fn merge_move(from: &Path, to: &Path) -> Result<()> {
    for item in fs::read_dir(from).map_err(|e| LayerError::io(from, e))? {
        let item = item.map_err(|e| LayerError::io(from, e))?;
        let src: PathBuf = item.path();
        let dst = to.join(item.file_name());
        let src_is_dir = item.file_type().map(|t| t.is_dir()).unwrap_or(false);
        match fs::symlink_metadata(&dst) {
            Ok(meta) if meta.is_dir() && src_is_dir => merge_move(&src, &dst)?,
            Ok(meta) if meta.is_dir() => {
                fs::remove_dir_all(&dst).map_err(|e| LayerError::io(&dst, e))?;
                fs::rename(&src, &dst).map_err(|e| LayerError::io(&dst, e))?;
            }
            _ => fs::rename(&src, &dst).map_err(|e| LayerError::io(&dst, e))?,
        }
    }
    Ok(())
}
