//! All-or-nothing output: everything is built in a temporary directory beside the destination and
//! moved into place by rename, so a failure leaves nothing behind.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use crate::core::error::{LayerError, Result};

pub struct Staging {
    dir: Option<tempfile::TempDir>,
    /// Parent directories we created for the destination, deepest last; removed again on failure.
    created_parents: Vec<PathBuf>,
}

impl Staging {
    /// Creates a staging directory on the same filesystem as `dest` (so renames are atomic),
    /// creating `dest`'s missing parent directories.
    pub fn next_to(dest: &Path) -> Result<Self> {
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut created_parents = Vec::new();
        let mut missing = Vec::new();
        let mut cursor = parent.as_path();
        while !cursor.as_os_str().is_empty() && !cursor.exists() {
            missing.push(cursor.to_path_buf());
            match cursor.parent() {
                Some(p) => cursor = p,
                None => break,
            }
        }
        for dir in missing.into_iter().rev() {
            match fs::create_dir(&dir) {
                Ok(()) => created_parents.push(dir),
                // Another writer (a concurrent batch job) made it meanwhile: it is not ours to remove.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => {}
                Err(e) => {
                    return Err(LayerError::Output {
                        what: "cannot create the directory",
                        path: dir.clone(),
                        problem: e.to_string(),
                        hint: "check that the destination's parent is writable",
                    });
                }
            }
        }
        let dir = tempfile::Builder::new()
            .prefix(".layerport-")
            .tempdir_in(&parent)
            .map_err(|e| LayerError::Output {
                what: "cannot create a working directory in",
                path: parent.clone(),
                problem: e.to_string(),
                hint: "check that the destination's directory is writable",
            })?;
        Ok(Staging {
            dir: Some(dir),
            created_parents,
        })
    }

    /// A staging directory in the system's temp dir, for output that leaves the machine (a push).
    pub fn in_temp() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("layerport-")
            .tempdir()
            .map_err(|e| LayerError::io(std::env::temp_dir(), e))?;
        Ok(Staging {
            dir: Some(dir),
            created_parents: Vec::new(),
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("staging in use").path()
    }

    /// Renames the whole staging directory to `dest` (which must not exist, or be an empty directory).
    pub fn commit_as_dir(mut self, dest: &Path) -> Result<()> {
        let dir = self.dir.take().expect("staging in use");
        let from = dir.keep();
        fs::rename(&from, dest).map_err(|e| {
            let _ = fs::remove_dir_all(&from);
            LayerError::Output {
                what: "cannot move the finished output to",
                path: dest.to_path_buf(),
                problem: e.to_string(),
                hint: "the destination must be a new or empty directory",
            }
        })?;
        self.created_parents.clear();
        Ok(())
    }

    /// Marks the destination's parents as wanted: the output landed by another route.
    pub fn keep_parents(&mut self) {
        self.created_parents.clear();
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        drop(self.dir.take());
        for dir in self.created_parents.iter().rev() {
            let _ = fs::remove_dir(dir);
        }
    }
}

/// Writes `bytes` to `dest` through a temporary file in the same directory and a rename.
pub fn write_file_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".layerport-")
        .tempfile_in(dir)
        .map_err(|e| LayerError::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| LayerError::io(dest, e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| LayerError::io(dest, e))?;
    tmp.persist(dest)
        .map_err(|e| LayerError::io(dest, e.error))?;
    Ok(())
}

/// `-` as an output path: the data goes to stdout (where the format allows it).
pub fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Refuses an existing output that is not a regular file: the output is replaced by rename, which
/// would silently put a regular file where a device, a FIFO or a socket was (`/dev/null`!).
pub fn check_output_file(path: &Path, what: &'static str) -> Result<()> {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(LayerError::Output {
                what,
                path: path.to_path_buf(),
                problem: format!("cannot inspect it: {e}"),
                hint: "check the path and the permissions of its directories",
            });
        }
    };
    if meta.is_file() {
        return Ok(());
    }
    let t = meta.file_type();
    let kind = if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(LayerError::Output {
        what,
        path: path.to_path_buf(),
        problem: format!("it exists and is {kind}, not a regular file that could be replaced"),
        hint: "give the path of a new or regular file (it is replaced whole), or `-` to write to stdout",
    })
}

/// Refuses `-` when stdout is a terminal: an archive or a zip there is only noise (and can upset it).
pub fn check_stdout_output(what: &'static str) -> Result<()> {
    use std::io::IsTerminal;
    if io::stdout().is_terminal() {
        return Err(LayerError::Output {
            what,
            path: PathBuf::from("-"),
            problem: "stdout is a terminal".into(),
            hint: "redirect stdout to a file or a pipe (`> image.tar`, `| docker load`), or give a file path",
        });
    }
    Ok(())
}

/// Sends a finished output file to stdout (`-`): only once it is complete, so a failure before
/// this point leaves stdout empty.
pub fn copy_to_stdout(path: &Path) -> Result<()> {
    let mut file = fs::File::open(path).map_err(|e| LayerError::io(path, e))?;
    let mut out = io::stdout().lock();
    io::copy(&mut file, &mut out).map_err(LayerError::WriteOutput)?;
    out.flush().map_err(LayerError::WriteOutput)
}
