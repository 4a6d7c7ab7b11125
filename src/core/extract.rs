//! Extracts a layer tree into a directory the way Lambda lays layers out in /opt: built in a sibling
//! temporary directory, then moved into place, so a failure leaves the destination as it was.
//!
//! Into an existing, non-empty directory the move is a merge: everything that could stop it is
//! checked first (a directory where the destination has a file, a directory that may not be
//! written), and each step is journaled so that a failure half-way is rolled back. Directory modes
//! are applied only once everything is in place, so a read-only directory of the layer (0555)
//! never stops its own extraction or the clean-up.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use filetime::FileTime;
use tracing::warn;

use crate::core::error::{LayerError, Result};
use crate::core::layer_tree::LayerTree;
use crate::core::layer_zip::{Budget, EntryKind, MAX_PATH_BYTES, ZipLayer};
use crate::core::staging::Staging;

const WRITE_HINT: &str = "check that this directory can be written by this user (permissions, a read-only mount, immutable files) and has free space; the destination was left as it was";

#[derive(Debug, Clone, Copy, Default)]
pub struct ExtractStats {
    pub files: usize,
    pub bytes: u64,
}

/// Names errors after what the user gave: the zip an entry comes from and the destination.
struct Names<'a> {
    zips: Vec<String>,
    tree: &'a LayerTree,
    dest: &'a Path,
}

impl Names<'_> {
    /// A write failure for `rel` (a path of the layer), in the destination directory `dir`.
    fn write_error(&self, rel: &str, dir: &Path, source: io::Error) -> LayerError {
        let zip = match self.tree.get(rel) {
            Some(item) => self.zips[item.source].clone(),
            None => self.zips.join(", "),
        };
        LayerError::WriteEntry {
            zip,
            entry: if rel.is_empty() {
                ".".into()
            } else {
                rel.into()
            },
            dir: dir.to_path_buf(),
            source,
            hint: WRITE_HINT,
        }
    }

    /// The destination directory that holds `rel`.
    fn dir_of(&self, rel: &str) -> PathBuf {
        match rel.rsplit_once('/') {
            Some((parent, _)) => self.dest.join(parent),
            None => self.dest.to_path_buf(),
        }
    }
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
    let names = Names {
        zips: zips.iter().map(|z| z.name.clone()).collect(),
        tree,
        dest,
    };
    let staging = Staging::next_to(dest)?;
    let result = extract_staged(zips, &names, &staging, max_unzipped, mtime_override);
    // The staging directory may hold directories of the destination that were replaced (backups):
    // they need not be writable, but must go with it.
    make_removable(staging.path());
    let mut staging = staging;
    if result.is_ok() {
        staging.keep_parents();
    }
    result
}

fn extract_staged<R: Read + Seek>(
    zips: &mut [ZipLayer<R>],
    names: &Names<'_>,
    staging: &Staging,
    max_unzipped: u64,
    mtime_override: Option<u64>,
) -> Result<ExtractStats> {
    let dest = names.dest;
    let root = staging.path().join("tree");
    fs::create_dir(&root).map_err(|e| names.write_error("", dest, e))?;
    let stats = write_tree(zips, names, &root, mtime_override, max_unzipped)?;

    let empty_dest = match fs::read_dir(dest) {
        Ok(mut listing) => listing.next().is_none(),
        Err(_) => true,
    };
    let mut merged_into = HashSet::new();
    if empty_dest {
        // rename(2) replaces an empty directory atomically.
        fs::rename(&root, dest).map_err(|e| names.write_error("", dest, e))?;
    } else {
        // Everything that could stop the merge half-way is found before anything moves.
        check_merge(&root, dest, "", names, &mut merged_into)?;
        let backups = staging.path().join("replaced");
        fs::create_dir(&backups).map_err(|e| names.write_error("", dest, e))?;
        let mut journal = Vec::new();
        if let Err(e) = merge_move(&root, dest, "", &backups, &mut journal, names) {
            roll_back(journal);
            return Err(e);
        }
    }
    finish_dirs(names, &merged_into, mtime_override)?;
    Ok(stats)
}

fn write_tree<R: Read + Seek>(
    zips: &mut [ZipLayer<R>],
    names: &Names<'_>,
    root: &Path,
    mtime_override: Option<u64>,
    max_unzipped: u64,
) -> Result<ExtractStats> {
    let mut budgets: Vec<Budget> = zips.iter().map(|_| Budget::new(max_unzipped)).collect();
    let mut stats = ExtractStats::default();
    for (path, item) in names.tree {
        let target = root.join(path);
        // The system refuses longer paths; say so in terms of the destination, not the staging.
        let longest = target
            .as_os_str()
            .len()
            .max(names.dest.join(path).as_os_str().len());
        if longest >= MAX_PATH_BYTES {
            return Err(LayerError::bad_entry(
                &names.zips[item.source],
                path,
                format!(
                    "would need a path of {longest} bytes under {}, over the system's limit of {MAX_PATH_BYTES}",
                    names.dest.display()
                ),
                "extract into a directory with a shorter path",
            ));
        }
        ensure_real_parent(root, &target)?;
        let failed = |e| names.write_error(path, &names.dir_of(path), e);
        let entry = &item.entry;
        match &entry.kind {
            EntryKind::Dir => fs::create_dir(&target).map_err(failed)?,
            EntryKind::Symlink { target: link } => {
                std::os::unix::fs::symlink(link, &target).map_err(failed)?;
                let t = FileTime::from_unix_time(mtime_override.unwrap_or(entry.mtime) as i64, 0);
                let _ = filetime::set_symlink_file_times(&target, t, t);
            }
            EntryKind::File { index, .. } => {
                let file = File::options()
                    .write(true)
                    .create_new(true)
                    .open(&target)
                    .map_err(failed)?;
                let mut out = BufWriter::new(file);
                stats.bytes += zips[item.source].copy_file(
                    path,
                    *index,
                    &mut budgets[item.source],
                    &mut out,
                )?;
                stats.files += 1;
                let file = out.into_inner().map_err(|e| failed(e.into_error()))?;
                file.set_permissions(fs::Permissions::from_mode(entry.mode))
                    .map_err(failed)?;
                let t = FileTime::from_unix_time(mtime_override.unwrap_or(entry.mtime) as i64, 0);
                filetime::set_file_handle_times(&file, Some(t), Some(t)).map_err(failed)?;
            }
        }
    }
    Ok(stats)
}

/// Directory modes and times last, deepest first, in the destination: writing children would
/// change them, and a read-only directory must not stop the move. Directories that were already
/// in the destination (merged into) keep theirs.
fn finish_dirs(names: &Names<'_>, merged_into: &HashSet<String>, mtime: Option<u64>) -> Result<()> {
    for (path, item) in names.tree.iter().rev() {
        if item.entry.kind != EntryKind::Dir || merged_into.contains(path) {
            continue;
        }
        let target = names.dest.join(path);
        let failed = |e| names.write_error(path, &target, e);
        fs::set_permissions(&target, fs::Permissions::from_mode(item.entry.mode))
            .map_err(failed)?;
        let t = FileTime::from_unix_time(mtime.unwrap_or(item.entry.mtime) as i64, 0);
        filetime::set_file_times(&target, t, t).map_err(failed)?;
    }
    Ok(())
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

fn child_rel(rel: &str, name: &std::ffi::OsStr) -> String {
    let name = name.to_string_lossy();
    if rel.is_empty() {
        name.into_owned()
    } else {
        format!("{rel}/{name}")
    }
}

/// Refuses a merge that would put one of `from`'s directories where `to` has a file or a symlink
/// (a directory cannot replace those by rename, and a symlink is never written through), or that
/// would write into a directory of `to` this process cannot write. Records the directories that
/// merge into existing ones.
fn check_merge(
    from: &Path,
    to: &Path,
    rel: &str,
    names: &Names<'_>,
    merged_into: &mut HashSet<String>,
) -> Result<()> {
    let read = |e| LayerError::io(from, e);
    let mut probed = false;
    for item in fs::read_dir(from).map_err(read)? {
        let item = item.map_err(read)?;
        let child = child_rel(rel, &item.file_name());
        if !probed {
            // Something will be created or replaced in `to`: prove it can be, before any move.
            probe_writable(to).map_err(|e| names.write_error(&child, to, e))?;
            probed = true;
        }
        if !item.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let dst = to.join(item.file_name());
        match fs::symlink_metadata(&dst) {
            Ok(meta) if meta.is_dir() => {
                merged_into.insert(child.clone());
                check_merge(&item.path(), &dst, &child, names, merged_into)?;
            }
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

/// Creates and removes a file in `dir`: the only reliable test that it can be written (modes,
/// ACLs, read-only mounts and immutable flags all count).
fn probe_writable(dir: &Path) -> io::Result<()> {
    tempfile::Builder::new()
        .prefix(".layerport-probe-")
        .tempfile_in(dir)
        .map(drop)
}

/// One completed step of a merge, undone in reverse order on failure.
enum Step {
    /// Our entry now at `dst`.
    Moved(PathBuf),
    /// What the destination had at `dst`, set aside at `backup`.
    SetAside { dst: PathBuf, backup: PathBuf },
}

/// Moves `from`'s children into the existing directory `to`: directories merge, the rest replaces
/// (what it replaces is set aside, not deleted, until the whole merge succeeded).
fn merge_move(
    from: &Path,
    to: &Path,
    rel: &str,
    backups: &Path,
    journal: &mut Vec<Step>,
    names: &Names<'_>,
) -> Result<()> {
    let read = |e| LayerError::io(from, e);
    for item in fs::read_dir(from).map_err(read)? {
        let item = item.map_err(read)?;
        let child = child_rel(rel, &item.file_name());
        let failed = |e| names.write_error(&child, to, e);
        let src = item.path();
        let dst = to.join(item.file_name());
        let src_is_dir = item.file_type().map(|t| t.is_dir()).unwrap_or(false);
        match fs::symlink_metadata(&dst) {
            Ok(meta) if meta.is_dir() && src_is_dir => {
                merge_move(&src, &dst, &child, backups, journal, names)?
            }
            Ok(_) => {
                let backup = backups.join(journal.len().to_string());
                fs::rename(&dst, &backup).map_err(failed)?;
                journal.push(Step::SetAside {
                    dst: dst.clone(),
                    backup,
                });
                fs::rename(&src, &dst).map_err(failed)?;
                journal.push(Step::Moved(dst));
            }
            Err(_) => {
                fs::rename(&src, &dst).map_err(failed)?;
                journal.push(Step::Moved(dst));
            }
        }
    }
    Ok(())
}

/// Undoes a failed merge: our entries are removed, what they replaced is put back.
fn roll_back(journal: Vec<Step>) {
    for step in journal.into_iter().rev() {
        let undone = match &step {
            Step::Moved(dst) => match fs::symlink_metadata(dst) {
                Ok(meta) if meta.is_dir() => fs::remove_dir_all(dst),
                _ => fs::remove_file(dst),
            },
            Step::SetAside { dst, backup } => fs::rename(backup, dst),
        };
        if let Err(e) = undone {
            let path = match &step {
                Step::Moved(p) | Step::SetAside { dst: p, .. } => p,
            };
            warn!("could not undo the extraction at {}: {e}", path.display());
        }
    }
}

/// Makes every directory under `dir` writable by its owner so the whole tree can be removed.
fn make_removable(dir: &Path) {
    let Ok(listing) = fs::read_dir(dir) else {
        return;
    };
    for item in listing.flatten() {
        if item.file_type().is_ok_and(|t| t.is_dir()) {
            let path = item.path();
            if let Ok(meta) = fs::symlink_metadata(&path)
                && meta.permissions().mode() & 0o700 != 0o700
            {
                let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o700));
            }
            make_removable(&path);
        }
    }
}
