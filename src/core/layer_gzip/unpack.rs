//! Big compressed entries that must be compressed fresh (deflate under `--recompress`, deflate64
//! always) would keep one thread busy for the whole file: inflating is sequential. So one worker
//! inflates such an entry into an anonymous scratch file while the others compress it, 1 MiB job
//! by 1 MiB job, as soon as each part is there. The plain bytes are the same either way, so the
//! output still depends only on the plan.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::FRESH_JOB_BYTES;
use crate::core::error::LayerError;

use super::{EntryRef, Job, Piece, Source};

/// The progress of every unpack job of a plan, shared by the workers.
pub(super) struct Unpacks {
    slots: Mutex<Vec<Progress>>,
    /// Signalled whenever an unpack passes a job boundary or ends.
    progressed: Condvar,
    /// How many times a waiter went to sleep: lets tests end an unpack only once jobs wait on it.
    #[cfg(test)]
    sleeps: std::sync::atomic::AtomicUsize,
}

struct Progress {
    file: Option<Arc<File>>,
    /// Plain bytes written to `file` so far.
    written: u64,
    /// Set when the unpack ended: checked (size and CRC) or failed.
    outcome: Option<Result<(), Failure>>,
    /// Pieces not read yet: the scratch file goes when the last one is done with it.
    pieces_left: usize,
}

/// An unpack's failure, kept in a form every waiting job can turn into its own error.
#[derive(Debug, Clone)]
enum Failure {
    Entry {
        problem: String,
        hint: String,
    },
    Scratch(io::ErrorKind, String),
    /// A panic, or an error inflating cannot produce: a bug.
    Bug,
    /// The unpack did not run: the layer already failed elsewhere.
    Abandoned,
}

impl Failure {
    fn from_error(e: LayerError) -> Failure {
        match e {
            LayerError::BadEntry { problem, hint, .. } => Failure::Entry { problem, hint },
            LayerError::Scratch { source, .. } => {
                Failure::Scratch(source.kind(), source.to_string())
            }
            // Inflating fails only on the entry or the scratch file.
            _ => Failure::Bug,
        }
    }

    fn to_error(&self, source: &Source, entry: &EntryRef) -> LayerError {
        match self {
            Failure::Entry { problem, hint } => {
                LayerError::bad_entry(&source.name, &entry.path, problem.clone(), hint.clone())
            }
            Failure::Scratch(kind, message) => {
                scratch_error(entry, io::Error::new(*kind, message.clone()))
            }
            Failure::Bug => super::bug(),
            Failure::Abandoned => {
                LayerError::WriteOutput(io::Error::other("stopped after an earlier failure"))
            }
        }
    }
}

pub(super) fn scratch_error(entry: &EntryRef, source: io::Error) -> LayerError {
    LayerError::Scratch {
        entry: entry.path.to_string(),
        source,
    }
}

impl Unpacks {
    pub(super) fn for_jobs(jobs: &[Job]) -> Self {
        let mut slots = Vec::new();
        for job in jobs {
            match job {
                Job::Unpack { slot, .. } => {
                    debug_assert_eq!(*slot, slots.len(), "slots are numbered in plan order");
                    slots.push(Progress {
                        file: None,
                        written: 0,
                        outcome: None,
                        pieces_left: 0,
                    });
                }
                Job::Fresh(pieces) => {
                    for piece in pieces {
                        if let Piece::Unpacked { slot, .. } = piece {
                            slots[*slot].pieces_left += 1;
                        }
                    }
                }
                Job::Splice(_) => {}
            }
        }
        Unpacks {
            slots: Mutex::new(slots),
            progressed: Condvar::new(),
            #[cfg(test)]
            sleeps: Default::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Progress>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn end(&self, slot: usize, outcome: Result<(), Failure>) {
        self.lock()[slot].outcome = Some(outcome);
        self.progressed.notify_all();
    }

    /// Ends unpack `slot` without running it, so that nothing waits for it.
    pub(super) fn abandon(&self, slot: usize) {
        self.end(slot, Err(Failure::Abandoned));
    }

    /// Runs unpack `slot`: `inflate` is handed a sink for the entry's plain bytes, in order, and
    /// must check the entry's size and CRC before it returns.
    pub(super) fn run(
        &self,
        slot: usize,
        entry: &EntryRef,
        inflate: impl FnOnce(&mut dyn FnMut(&[u8]) -> Result<(), LayerError>) -> Result<(), LayerError>,
    ) {
        // Even a bug must end the unpack, or the jobs waiting for it would wait forever.
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let file = tempfile::tempfile().map_err(|e| scratch_error(entry, e))?;
            let file = Arc::new(file);
            self.lock()[slot].file = Some(Arc::clone(&file));
            let mut at = 0u64;
            inflate(&mut |plain: &[u8]| {
                file.write_all_at(plain, at)
                    .map_err(|e| scratch_error(entry, e))?;
                let before = at;
                at += plain.len() as u64;
                self.lock()[slot].written = at;
                // Every piece but an entry's last ends on a job boundary (the last one waits for
                // the end, which always wakes it): wake waiters there, not after every read.
                if before / FRESH_JOB_BYTES != at / FRESH_JOB_BYTES {
                    self.progressed.notify_all();
                }
                Ok(())
            })
        }))
        .unwrap_or_else(|_| Err(super::bug()));
        self.end(slot, outcome.map_err(Failure::from_error));
    }

    /// Waits until bytes `..end` of unpack `slot` are written (and, for the entry's last bytes,
    /// until the entry has passed its checks), then returns the file they are in. Each piece
    /// calls [`Unpacks::done`] after reading.
    pub(super) fn wait(
        &self,
        slot: usize,
        end: u64,
        source: &Source,
        entry: &EntryRef,
    ) -> Result<Arc<File>, LayerError> {
        let mut slots = self.lock();
        loop {
            let progress = &slots[slot];
            if let Some(Err(failure)) = &progress.outcome {
                return Err(failure.to_error(source, entry));
            }
            let checked = matches!(progress.outcome, Some(Ok(())));
            if progress.written >= end && (end < entry.size || checked) {
                let file = progress.file.as_ref().expect("written bytes are in a file");
                return Ok(Arc::clone(file));
            }
            #[cfg(test)]
            self.sleeps
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            slots = self
                .progressed
                .wait(slots)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// One piece of unpack `slot` is read: the last one lets the scratch file go.
    pub(super) fn done(&self, slot: usize) {
        let mut slots = self.lock();
        let progress = &mut slots[slot];
        progress.pieces_left = progress.pieces_left.saturating_sub(1);
        if progress.pieces_left == 0 {
            progress.file = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::layer_zip::{EntryData, ZipMethod};

    fn entry(size: u64) -> EntryRef {
        EntryRef {
            source: 0,
            path: Arc::from("lib/big.so"),
            data: EntryData {
                start: 0,
                compressed: 0,
                method: ZipMethod::Deflated,
            },
            size,
            crc32: 0,
        }
    }

    fn plan(entry: &EntryRef, slots: usize, pieces: u64) -> Vec<Job> {
        let mut jobs = Vec::new();
        for slot in 0..slots {
            jobs.push(Job::Unpack {
                entry: entry.clone(),
                slot,
            });
            let len = entry.size / pieces;
            jobs.extend((0..pieces).map(|k| {
                Job::Fresh(vec![Piece::Unpacked {
                    entry: entry.clone(),
                    slot,
                    offset: k * len,
                    len,
                }])
            }));
        }
        jobs
    }

    fn source() -> Source {
        Source {
            name: "layer.zip".into(),
            file: tempfile::tempfile().unwrap(),
        }
    }

    #[test]
    fn pieces_get_their_bytes_and_the_last_one_frees_the_scratch_file() {
        let e = entry(10);
        let unpacks = Unpacks::for_jobs(&plan(&e, 1, 2));
        let src = source();
        std::thread::scope(|s| {
            let second = s.spawn(|| {
                let file = unpacks.wait(0, 10, &src, &e).unwrap();
                let mut buf = [0u8; 5];
                file.read_exact_at(&mut buf, 5).unwrap();
                buf
            });
            unpacks.run(0, &e, |sink| {
                sink(b"01234")?;
                sink(b"56789")
            });
            assert_eq!(&second.join().unwrap(), b"56789");
        });
        unpacks.wait(0, 5, &src, &e).unwrap();
        unpacks.done(0);
        assert!(
            unpacks.lock()[0].file.is_some(),
            "one piece is still to read"
        );
        unpacks.done(0);
        assert!(unpacks.lock()[0].file.is_none());
    }

    #[test]
    fn waiters_are_released_when_an_unpack_fails_is_abandoned_or_panics() {
        let e = entry(10);
        let unpacks = Unpacks::for_jobs(&plan(&e, 3, 2));
        let src = source();
        std::thread::scope(|s| {
            let waiters: Vec<_> = (0..3)
                .map(|slot| {
                    let (unpacks, src, e) = (&unpacks, &src, &e);
                    s.spawn(move || unpacks.wait(slot, 5, src, e).unwrap_err().to_string())
                })
                .collect();
            // End them only once all three are asleep, so that it is the wake-up that frees them.
            while unpacks.sleeps.load(std::sync::atomic::Ordering::SeqCst) < 3 {
                std::thread::yield_now();
            }
            unpacks.run(0, &e, |_| {
                Err(LayerError::bad_entry(
                    "layer.zip",
                    "lib/big.so",
                    "is corrupt: x",
                    "y",
                ))
            });
            unpacks.abandon(1);
            unpacks.run(2, &e, |_| panic!("injected for the test"));
            let errors: Vec<String> = waiters.into_iter().map(|w| w.join().unwrap()).collect();
            assert!(
                errors[0].contains("layer.zip") && errors[0].contains("lib/big.so"),
                "{}",
                errors[0]
            );
            assert!(errors[1].contains("earlier failure"), "{}", errors[1]);
            assert!(errors[2].contains("unexpectedly"), "{}", errors[2]);
        });
    }
}
