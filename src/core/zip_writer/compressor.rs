//! Compresses regular-file contents on a pool of threads as soon as they exist — while an image's
//! layers are still being read, before the zip's entry list is known — into a scratch file, keyed
//! by where the bytes are in the contents file. A file is cut into pieces that depend on its size
//! alone, so the zip's bytes do not depend on which thread compressed what, or when.
//!
//! Files larger than a piece stay one deflate stream: each piece but the last ends byte-aligned and
//! non-final (sync flush), and each starts with the previous 32 KiB of the file as its dictionary.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, FlushCompress};

use crate::core::raw_deflate::deflate_into;

/// Files larger than this are compressed in pieces of this size.
pub(super) const PIECE: u64 = 1024 * 1024;
const DICTIONARY: u64 = 32 * 1024;
const DEFLATE_LEVEL: u32 = 6;

/// Where a regular file's bytes are in the contents file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Content {
    pub offset: u64,
    pub len: u64,
}

/// One compressed piece: the CRC and length of its plain bytes, and where its deflate bytes are
/// in the scratch store.
#[derive(Debug, Clone, Copy)]
pub(super) struct Piece {
    pub(super) crc: u32,
    pub(super) len: u64,
    pub(super) at: u64,
    pub(super) compressed: u64,
}

/// Why a piece could not be compressed; kept as text so every entry sharing the content can
/// report it.
#[derive(Debug, Clone)]
pub(super) enum Failure {
    /// The contents file could not be read.
    Read(io::ErrorKind, String),
    /// The scratch store could not be written.
    Store(io::ErrorKind, String),
}

/// The compression pool. Dropping it stops the workers (after the piece each is on).
pub struct Compressor {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

/// Hands contents to a [`Compressor`] from elsewhere (the code that writes the contents file).
#[derive(Clone)]
pub struct Submitter(Arc<Shared>);

struct Shared {
    /// Read with positioned reads only: the writer of the file may still be appending to it.
    contents: File,
    store: File,
    store_len: AtomicU64,
    state: Mutex<State>,
    /// Workers wait here for pieces to compress.
    work: Condvar,
    /// The zip writer waits here for results.
    done: Condvar,
}

#[derive(Default)]
struct State {
    queue: VecDeque<(Content, u64)>,
    jobs: HashMap<Content, Vec<Option<Result<Piece, Failure>>>>,
    /// What the zip writer waits for: only the piece that completes it wakes the writer (a
    /// wake-up per piece would take the writer's core from the workers thousands of times).
    awaited: Option<Content>,
    stop: bool,
}

impl Compressor {
    /// A pool without workers (see [`Compressor::grow_to`]) over `contents`, keeping compressed
    /// bytes in an anonymous file in `scratch`.
    pub fn new(contents: File, scratch: &Path) -> io::Result<Self> {
        Ok(Compressor {
            shared: Arc::new(Shared {
                contents,
                store: tempfile::tempfile_in(scratch)?,
                store_len: AtomicU64::new(0),
                state: Mutex::new(State::default()),
                work: Condvar::new(),
                done: Condvar::new(),
            }),
            workers: Vec::new(),
        })
    }

    /// Starts workers until there are `threads`.
    pub fn grow_to(&mut self, threads: usize) -> io::Result<()> {
        while self.workers.len() < threads {
            let shared = Arc::clone(&self.shared);
            let handle = std::thread::Builder::new()
                .name(format!("zip-deflate-{}", self.workers.len()))
                .spawn(move || shared.work())?;
            self.workers.push(handle);
        }
        Ok(())
    }

    pub fn submitter(&self) -> Submitter {
        Submitter(Arc::clone(&self.shared))
    }

    /// Queues `content` for compression unless it already is (or is empty).
    pub fn submit(&self, content: Content) {
        self.shared.submit(content);
    }

    pub(super) fn contents(&self) -> &File {
        &self.shared.contents
    }

    pub(super) fn store(&self) -> &File {
        &self.shared.store
    }

    /// The pieces of a submitted `content`, once all are compressed.
    pub(super) fn wait(&self, content: Content) -> Result<Vec<Piece>, Failure> {
        let mut state = self.shared.lock();
        loop {
            let slots = state
                .jobs
                .get(&content)
                .expect("contents are submitted before they are waited for");
            if slots.iter().all(Option::is_some) {
                let pieces = slots.iter().flatten().cloned().collect();
                state.awaited = None;
                return pieces;
            }
            state.awaited = Some(content);
            state = self
                .shared
                .done
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Drop for Compressor {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.work.notify_all();
        for worker in self.workers.drain(..) {
            // A worker that panicked has nothing left to clean up.
            let _ = worker.join();
        }
    }
}

impl Submitter {
    pub fn submit(&self, content: Content) {
        self.0.submit(content);
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn submit(&self, content: Content) {
        if content.len == 0 {
            return;
        }
        let mut state = self.lock();
        if state.jobs.contains_key(&content) {
            return;
        }
        let pieces = content.len.div_ceil(PIECE);
        state.jobs.insert(content, vec![None; pieces as usize]);
        state.queue.extend((0..pieces).map(|p| (content, p)));
        drop(state);
        self.work.notify_all();
    }

    fn work(&self) {
        let mut deflater = Deflater::new();
        loop {
            let (content, piece) = {
                let mut state = self.lock();
                loop {
                    if state.stop {
                        return;
                    }
                    if let Some(task) = state.queue.pop_front() {
                        break task;
                    }
                    state = self.work.wait(state).unwrap_or_else(|e| e.into_inner());
                }
            };
            // Even a bug must fill the slot, or the writer would wait for it forever.
            let result = catch_unwind(AssertUnwindSafe(|| {
                deflater
                    .piece(&self.contents, content, piece)
                    .and_then(|(crc, len)| self.keep(&deflater.out, crc, len))
            }))
            .unwrap_or_else(|_| {
                Err(Failure::Read(
                    io::ErrorKind::Other,
                    "a compression thread failed unexpectedly (a bug in layerport; please report it)"
                        .into(),
                ))
            });
            let mut state = self.lock();
            let slots = state
                .jobs
                .get_mut(&content)
                .expect("queued contents have their slots");
            slots[piece as usize] = Some(result);
            let complete = slots.iter().all(Option::is_some);
            if complete && state.awaited == Some(content) {
                self.done.notify_one();
            }
        }
    }

    /// Appends compressed bytes to the store (positioned, so workers need no lock to write).
    fn keep(&self, bytes: &[u8], crc: u32, len: u64) -> Result<Piece, Failure> {
        let at = self
            .store_len
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.store
            .write_all_at(bytes, at)
            .map_err(|e| Failure::Store(e.kind(), e.to_string()))?;
        Ok(Piece {
            crc,
            len,
            at,
            compressed: bytes.len() as u64,
        })
    }
}

/// One worker's buffers, reused from piece to piece.
struct Deflater {
    plain: Vec<u8>,
    out: Vec<u8>,
}

impl Deflater {
    fn new() -> Self {
        Deflater {
            plain: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Compresses piece `piece` of `content` into `self.out`: raw deflate primed with the 32 KiB
    /// before it, ending byte-aligned (sync flush) unless it is the file's last piece. Returns the
    /// CRC and length of its plain bytes.
    fn piece(
        &mut self,
        contents: &File,
        content: Content,
        piece: u64,
    ) -> Result<(u32, u64), Failure> {
        let offset = piece * PIECE;
        let len = PIECE.min(content.len - offset);
        let dict_len = offset.min(DICTIONARY);
        self.plain.resize((dict_len + len) as usize, 0);
        read_exact_at(
            contents,
            &mut self.plain,
            content.offset + offset - dict_len,
        )
        .map_err(|e| Failure::Read(e.kind(), e.to_string()))?;
        let (dictionary, plain) = self.plain.split_at(dict_len as usize);
        // A fresh state per piece (with zlib-rs it measured no slower than a reset here).
        let mut compress = Compress::new(Compression::new(DEFLATE_LEVEL), false);
        if !dictionary.is_empty() {
            compress
                .set_dictionary(dictionary)
                .expect("a dictionary before any input is accepted");
        }
        let flush = if offset + len == content.len {
            FlushCompress::Finish
        } else {
            FlushCompress::Sync
        };
        self.out.clear();
        deflate_into(&mut compress, plain, &mut self.out, flush);
        Ok((crc32fast::hash(plain), len))
    }
}

/// `read_exact_at`, with an error that says how much was there.
fn read_exact_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], at + got as u64) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "read {got} of the {} bytes at offset {at}: the file is shorter than expected",
                        buf.len()
                    ),
                ));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Failure {
    pub(super) fn into_io(self) -> (bool, io::Error) {
        match self {
            Failure::Read(kind, message) => (true, io::Error::new(kind, message)),
            Failure::Store(kind, message) => (false, io::Error::new(kind, message)),
        }
    }
}
