//! Big compressed entries that must be compressed fresh (deflate under `--recompress`, deflate64
//! always) would keep one thread busy for the whole file: inflating is sequential. So one worker
//! inflates such an entry into an anonymous scratch file while the others compress it, 1 MiB job
//! by 1 MiB job, as soon as each part is there. The plain bytes are the same either way, so the
//! output still depends only on the plan.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::error::LayerError;

use super::{EntryRef, Job, Source};

/// The progress of every unpack job of a plan, shared by the workers.
pub(super) struct Unpacks {
    slots: Vec<Mutex<Progress>>,
    /// Signalled whenever any unpack makes progress or ends.
    progressed: Condvar,
}

#[derive(Default)]
struct Progress {
    file: Option<Arc<File>>,
    /// Plain bytes written to `file` so far.
    written: u64,
    /// Set when the unpack ended: checked (size and CRC) or failed.
    outcome: Option<Result<(), Failure>>,
}

/// An unpack's failure, kept in a form every waiting job can turn into its own error.
#[derive(Debug, Clone)]
enum Failure {
    Entry { problem: String, hint: String },
    Scratch(io::ErrorKind, String),
}

impl Failure {
    fn from_error(e: LayerError) -> Failure {
        match e {
            LayerError::BadEntry { problem, hint, .. } => Failure::Entry { problem, hint },
            LayerError::WriteOutput(e) => Failure::Scratch(e.kind(), e.to_string()),
            other => Failure::Scratch(io::ErrorKind::Other, other.to_string()),
        }
    }

    fn to_error(&self, source: &Source, entry: &EntryRef) -> LayerError {
        match self {
            Failure::Entry { problem, hint } => {
                LayerError::bad_entry(&source.name, &entry.path, problem.clone(), hint.clone())
            }
            Failure::Scratch(kind, message) => LayerError::WriteOutput(io::Error::new(
                *kind,
                format!("scratch file for {:?}: {message}", &*entry.path),
            )),
        }
    }
}

impl Unpacks {
    pub(super) fn for_jobs(jobs: &[Job]) -> Self {
        let count = jobs
            .iter()
            .filter(|j| matches!(j, Job::Unpack { .. }))
            .count();
        Unpacks {
            slots: (0..count).map(|_| Mutex::default()).collect(),
            progressed: Condvar::new(),
        }
    }

    fn lock(&self, slot: usize) -> MutexGuard<'_, Progress> {
        self.slots[slot].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs unpack `slot`: `inflate` is handed a sink for the entry's plain bytes, in order, and
    /// must check the entry's size and CRC before it returns.
    pub(super) fn run(
        &self,
        slot: usize,
        inflate: impl FnOnce(&mut dyn FnMut(&[u8]) -> Result<(), LayerError>) -> Result<(), LayerError>,
    ) {
        let outcome = (|| {
            let file = Arc::new(tempfile::tempfile().map_err(LayerError::WriteOutput)?);
            self.lock(slot).file = Some(Arc::clone(&file));
            let mut at = 0u64;
            inflate(&mut |plain: &[u8]| {
                file.write_all_at(plain, at)
                    .map_err(LayerError::WriteOutput)?;
                let before = at;
                at += plain.len() as u64;
                self.lock(slot).written = at;
                // Waiters want whole jobs' worth: wake them once per MiB, not once per read.
                if before >> 20 != at >> 20 {
                    self.progressed.notify_all();
                }
                Ok(())
            })
        })();
        self.lock(slot).outcome = Some(outcome.map_err(Failure::from_error));
        self.progressed.notify_all();
    }

    /// Waits until bytes `..end` of unpack `slot` are written (and, for the entry's last bytes,
    /// until the entry has passed its checks), then returns the file they are in.
    pub(super) fn wait(
        &self,
        slot: usize,
        end: u64,
        source: &Source,
        entry: &EntryRef,
    ) -> Result<Arc<File>, LayerError> {
        let mut progress = self.lock(slot);
        loop {
            if let Some(Err(failure)) = &progress.outcome {
                return Err(failure.to_error(source, entry));
            }
            let checked = matches!(progress.outcome, Some(Ok(())));
            if progress.written >= end && (end < entry.size || checked) {
                let file = progress.file.as_ref().expect("written bytes are in a file");
                return Ok(Arc::clone(file));
            }
            progress = self
                .progressed
                .wait(progress)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}
