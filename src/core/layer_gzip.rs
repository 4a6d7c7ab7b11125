//! Compresses a layer's tar stream into one gzip member on a pool of threads: a plan of jobs —
//! zip entries whose deflate streams are spliced as they are, and runs of tar headers and other data
//! compressed fresh — run in parallel and are reassembled and hashed in order, so the bytes depend
//! only on the plan, never on the thread count or timing.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use flate2::{Compress, Compression, FlushCompress};
use sha2::{Digest as _, Sha256};

use crate::core::deflate_splice::{RawInflater, SpliceError, SpliceSink, splice};
use crate::core::digest::{Digest, HashingWriter};
use crate::core::error::{LayerError, Result};
use crate::core::file_range::FileRange;
use crate::core::layer_zip::{
    EntryData, ZipMethod, crc_mismatch, inflates_too_much, size_mismatch,
};
use crate::core::raw_deflate::deflate_into;
use crate::core::tar_writer::{self, TarKind};
use unpack::Unpacks;

/// The identity of a written layer blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDigests {
    /// sha256 of the gzip blob.
    pub digest: Digest,
    pub size: u64,
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    pub tar_size: u64,
}

/// Plain bytes gathered into one fresh-compression job: big enough that a job's start-up cost
/// does not matter, small enough that a layer splits into many jobs for the threads.
pub(crate) const FRESH_JOB_BYTES: u64 = 1024 * 1024;

mod unpack;

/// Plain bytes (or deflate bytes) gathered before a worker hands a chunk to the writer.
const CHUNK: usize = 256 * 1024;
/// Chunks a worker may run ahead of the writer on one job.
const CHUNKS_AHEAD: usize = 4;

/// A zip the jobs read from, by positioned reads so that every thread can share it.
pub struct Source {
    /// How errors name the zip (the path or ARN the user gave).
    pub name: String,
    pub file: File,
}

/// A zip entry's data, with what it must inflate to.
#[derive(Debug, Clone)]
pub struct EntryRef {
    pub source: usize,
    /// The entry's path inside its zip, for error messages.
    pub path: Arc<str>,
    pub data: EntryData,
    pub size: u64,
    pub crc32: u32,
}

/// A tar header, rendered by the worker so the plan stays small.
#[derive(Debug, Clone)]
pub struct HeaderSpec {
    pub name: String,
    pub kind: TarKind,
    pub mode: u32,
    pub mtime: u64,
    pub size: u64,
    pub link: String,
}

#[derive(Debug, Clone)]
pub enum Piece {
    Header(Box<HeaderSpec>),
    Zeros(usize),
    /// Bytes `offset..offset + len` of a stored entry's data.
    Stored {
        entry: EntryRef,
        offset: u64,
        len: u64,
    },
    /// A whole compressed entry, inflated and compressed again.
    Inflate(EntryRef),
    /// Plain bytes `offset..offset + len` of a big compressed entry that unpack job `slot`
    /// inflates into a scratch file.
    Unpacked {
        entry: EntryRef,
        slot: usize,
        offset: u64,
        len: u64,
    },
}

#[derive(Debug, Clone)]
pub enum Job {
    /// Pieces compressed fresh into deflate blocks that end byte-aligned and non-final.
    Fresh(Vec<Piece>),
    /// A deflate entry whose own compressed stream is reused.
    Splice(EntryRef),
    /// Inflates a big compressed entry for the `Unpacked` pieces of later jobs; adds nothing to
    /// the stream itself.
    Unpack { entry: EntryRef, slot: usize },
}

enum Msg {
    Data {
        plain: Vec<u8>,
        deflate: Vec<u8>,
    },
    /// The CRC of part of a stored entry split across jobs.
    Part {
        zip: String,
        entry: EntryRef,
        crc: crc32fast::Hasher,
        last: bool,
    },
    Done,
    Failed(LayerError),
}

/// The gzip header: no name, no time, OS 255 ("unknown"), so nothing depends on the host.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
/// An empty final block (fixed Huffman, end-of-block only), after which the trailer follows.
const FINAL_EMPTY_BLOCK: [u8; 2] = [0x03, 0x00];

/// Runs `jobs` on `threads` workers and writes the gzip member they make to `out`.
pub fn write_gzip<W: Write>(
    jobs: &[Job],
    sources: &[Source],
    threads: usize,
    level: u32,
    out: W,
) -> Result<(W, LayerDigests)> {
    let threads = threads.clamp(1, jobs.len().max(1));
    let (order_tx, order_rx) = sync_channel::<Receiver<Msg>>(threads * 2);
    let next = Mutex::new(0usize);
    let unpacks = Unpacks::for_jobs(jobs);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let order_tx = order_tx.clone();
            let next = &next;
            let unpacks = &unpacks;
            scope.spawn(move || {
                let mut worker = Worker::new(sources, unpacks, level);
                loop {
                    let (index, tx) = {
                        let mut next = next.lock().expect("no panics while locked");
                        if *next >= jobs.len() {
                            return;
                        }
                        let index = *next;
                        *next += 1;
                        let (tx, rx) = sync_channel(CHUNKS_AHEAD);
                        // In job order, because the lock is held: the writer reads them in turn.
                        if order_tx.send(rx).is_err() {
                            return;
                        }
                        (index, tx)
                    };
                    let mut out = Outbox::new(tx);
                    if let Job::Unpack { entry, slot } = &jobs[index] {
                        // Nothing for the writer: it moves on while this worker inflates, and the
                        // jobs that need the bytes wait for them (and report any failure).
                        if out.send(Msg::Done).is_err() {
                            unpacks.abandon(*slot);
                            return;
                        }
                        worker.unpack(entry, *slot);
                        continue;
                    }
                    // A bug becomes this job's error (exit 1, with a message), not a panic of
                    // the whole scope.
                    let result =
                        catch_unwind(AssertUnwindSafe(|| worker.run(&jobs[index], &mut out)))
                            .unwrap_or_else(|_| Err(Stop::Failed(bug())));
                    let last = match result {
                        Ok(()) => Msg::Done,
                        Err(Stop::Failed(e)) => Msg::Failed(e),
                        Err(Stop::WriterGone) => return,
                    };
                    if out.send(last).is_err() {
                        return;
                    }
                }
            });
        }
        drop(order_tx);
        assemble(jobs.len(), order_rx, out)
    })
}

/// The writer side: takes each job's chunks in order, hashes and writes them.
fn assemble<W: Write>(
    job_count: usize,
    order: Receiver<Receiver<Msg>>,
    out: W,
) -> Result<(W, LayerDigests)> {
    let out_err = LayerError::WriteOutput;
    let mut blob = HashingWriter::new(out);
    blob.write_all(&GZIP_HEADER).map_err(out_err)?;
    let mut diff = Sha256::new();
    let mut crc = crc32fast::Hasher::new();
    let mut tar_size: u64 = 0;
    let mut split_entry: Option<crc32fast::Hasher> = None;
    for _ in 0..job_count {
        let job = order.recv().map_err(|_| worker_died())?;
        loop {
            match job.recv().map_err(|_| worker_died())? {
                Msg::Data { plain, deflate } => {
                    diff.update(&plain);
                    crc.update(&plain);
                    tar_size += plain.len() as u64;
                    blob.write_all(&deflate).map_err(out_err)?;
                }
                Msg::Part {
                    zip,
                    entry,
                    crc: part,
                    last,
                } => {
                    let whole = match split_entry.take() {
                        Some(mut so_far) => {
                            so_far.combine(&part);
                            so_far
                        }
                        None => part,
                    };
                    if !last {
                        split_entry = Some(whole);
                    } else if whole.finalize() != entry.crc32 {
                        return Err(crc_mismatch(&zip, &entry.path));
                    }
                }
                Msg::Done => break,
                Msg::Failed(e) => return Err(e),
            }
        }
    }
    blob.write_all(&FINAL_EMPTY_BLOCK).map_err(out_err)?;
    blob.write_all(&crc.finalize().to_le_bytes())
        .map_err(out_err)?;
    // ISIZE is the length modulo 2^32.
    blob.write_all(&(tar_size as u32).to_le_bytes())
        .map_err(out_err)?;
    let (out, digest, size) = blob.finish();
    Ok((
        out,
        LayerDigests {
            digest,
            size,
            diff_id: Digest::from_raw(&diff.finalize().into()),
            tar_size,
        },
    ))
}

/// What a compression thread that panicked reports.
pub(crate) fn bug() -> LayerError {
    LayerError::WriteOutput(io::Error::other(
        "a compression thread failed unexpectedly (a bug in layerport; please report it)",
    ))
}

fn worker_died() -> LayerError {
    LayerError::WriteOutput(io::Error::other(
        "a compression thread stopped unexpectedly",
    ))
}

/// Why a worker stopped a job early.
enum Stop {
    Failed(LayerError),
    /// The writer stopped (it failed elsewhere); nothing more to do.
    WriterGone,
}

impl From<LayerError> for Stop {
    fn from(e: LayerError) -> Self {
        Stop::Failed(e)
    }
}

/// A job's outgoing chunks.
struct Outbox {
    tx: SyncSender<Msg>,
    plain: Vec<u8>,
    deflate: Vec<u8>,
}

impl Outbox {
    fn new(tx: SyncSender<Msg>) -> Self {
        Outbox {
            tx,
            plain: Vec::new(),
            deflate: Vec::new(),
        }
    }

    fn flush(&mut self) -> std::result::Result<(), Stop> {
        if self.plain.is_empty() && self.deflate.is_empty() {
            return Ok(());
        }
        let msg = Msg::Data {
            plain: std::mem::replace(&mut self.plain, Vec::with_capacity(CHUNK)),
            deflate: std::mem::replace(&mut self.deflate, Vec::with_capacity(CHUNK)),
        };
        self.tx.send(msg).map_err(|_| Stop::WriterGone)
    }

    fn flush_if_full(&mut self) -> std::result::Result<(), Stop> {
        if self.plain.len() >= CHUNK || self.deflate.len() >= CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn send(&mut self, msg: Msg) -> std::result::Result<(), Stop> {
        self.flush()?;
        self.tx.send(msg).map_err(|_| Stop::WriterGone)
    }
}

/// A worker's reusable state: one compressor, inflaters and buffers.
struct Worker<'a> {
    sources: &'a [Source],
    unpacks: &'a Unpacks,
    compress: Compress,
    raw_inflater: RawInflater,
    buf: Vec<u8>,
    header: Vec<u8>,
}

impl<'a> Worker<'a> {
    fn new(sources: &'a [Source], unpacks: &'a Unpacks, level: u32) -> Self {
        Worker {
            sources,
            unpacks,
            compress: Compress::new(Compression::new(level), false),
            raw_inflater: RawInflater::new(),
            buf: vec![0u8; 64 * 1024],
            header: Vec::with_capacity(2048),
        }
    }

    fn run(&mut self, job: &Job, out: &mut Outbox) -> std::result::Result<(), Stop> {
        match job {
            Job::Fresh(pieces) => self.fresh(pieces, out),
            Job::Splice(entry) => self.splice(entry, out),
            Job::Unpack { .. } => unreachable!("unpack jobs are run before this"),
        }
    }

    fn fresh(&mut self, pieces: &[Piece], out: &mut Outbox) -> std::result::Result<(), Stop> {
        self.compress.reset();
        for piece in pieces {
            match piece {
                Piece::Header(h) => {
                    let mut header = std::mem::take(&mut self.header);
                    header.clear();
                    tar_writer::write_header(
                        &mut header,
                        &h.name,
                        h.kind,
                        h.mode,
                        h.mtime,
                        h.size,
                        &h.link,
                    )
                    .expect("writing to a Vec cannot fail");
                    self.feed(&header, out)?;
                    self.header = header;
                }
                Piece::Zeros(n) => {
                    let zeros = [0u8; tar_writer::END_OF_ARCHIVE];
                    self.feed(&zeros[..*n], out)?;
                }
                Piece::Stored { entry, offset, len } => self.stored(entry, *offset, *len, out)?,
                Piece::Inflate(entry) => self.inflate(entry, out)?,
                Piece::Unpacked {
                    entry,
                    slot,
                    offset,
                    len,
                } => self.unpacked(entry, *slot, *offset, *len, out)?,
            }
        }
        deflate_into(
            &mut self.compress,
            &[],
            &mut out.deflate,
            FlushCompress::Sync,
        );
        Ok(())
    }

    /// Adds plain bytes to the job: to the writer's hashes, and to the compressor.
    fn feed(&mut self, bytes: &[u8], out: &mut Outbox) -> std::result::Result<(), Stop> {
        out.plain.extend_from_slice(bytes);
        deflate_into(
            &mut self.compress,
            bytes,
            &mut out.deflate,
            FlushCompress::None,
        );
        out.flush_if_full()
    }

    fn stored(
        &mut self,
        entry: &EntryRef,
        offset: u64,
        len: u64,
        out: &mut Outbox,
    ) -> std::result::Result<(), Stop> {
        let source = &self.sources[entry.source];
        let mut crc = crc32fast::Hasher::new();
        let mut buf = std::mem::take(&mut self.buf);
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(buf.len() as u64) as usize;
            let at = entry.data.start + offset + done;
            if let Err(e) = source.file.read_exact_at(&mut buf[..n], at) {
                self.buf = buf;
                return Err(unreadable(source, entry, &e).into());
            }
            crc.update(&buf[..n]);
            self.feed(&buf[..n], out)?;
            done += n as u64;
        }
        self.buf = buf;
        if offset == 0 && len == entry.size {
            if crc.finalize() != entry.crc32 {
                return Err(crc_mismatch(&source.name, &entry.path).into());
            }
            return Ok(());
        }
        out.send(Msg::Part {
            zip: source.name.clone(),
            entry: entry.clone(),
            crc,
            last: offset + len == entry.size,
        })
    }

    /// A compressed entry recompressed fresh: deflate under `--recompress`, or deflate64 always.
    fn inflate(&mut self, entry: &EntryRef, out: &mut Outbox) -> std::result::Result<(), Stop> {
        let source = &self.sources[entry.source];
        let mut buf = std::mem::take(&mut self.buf);
        let result = inflate_entry(source, entry, &mut buf, &mut |plain| self.feed(plain, out));
        self.buf = buf;
        result
    }

    /// Inflates a big compressed entry into the scratch file of unpack `slot`.
    fn unpack(&mut self, entry: &EntryRef, slot: usize) {
        let source = &self.sources[entry.source];
        let buf = &mut self.buf;
        self.unpacks
            .run(slot, entry, |sink| inflate_entry(source, entry, buf, sink));
    }

    /// Feeds plain bytes `offset..offset + len` of an unpacked entry, once they are there.
    fn unpacked(
        &mut self,
        entry: &EntryRef,
        slot: usize,
        offset: u64,
        len: u64,
        out: &mut Outbox,
    ) -> std::result::Result<(), Stop> {
        let source = &self.sources[entry.source];
        let file = self.unpacks.wait(slot, offset + len, source, entry)?;
        let mut buf = std::mem::take(&mut self.buf);
        let mut done = 0u64;
        let result = loop {
            if done == len {
                break Ok(());
            }
            let n = (len - done).min(buf.len() as u64) as usize;
            if let Err(e) = file.read_exact_at(&mut buf[..n], offset + done) {
                break Err(unpack::scratch_error(entry, e).into());
            }
            if let Err(stop) = self.feed(&buf[..n], out) {
                break Err(stop);
            }
            done += n as u64;
        };
        self.buf = buf;
        drop(file);
        self.unpacks.done(slot);
        result
    }

    fn splice(&mut self, entry: &EntryRef, out: &mut Outbox) -> std::result::Result<(), Stop> {
        let source = &self.sources[entry.source];
        let mut input = FileRange::new(&source.file, entry.data.start, entry.data.compressed);
        let mut sink = SpliceOut {
            out,
            crc: crc32fast::Hasher::new(),
            writer_gone: false,
        };
        let result = splice(&mut self.raw_inflater, &mut input, entry.size, &mut sink);
        let total = match result {
            Ok(n) => n,
            Err(_) if sink.writer_gone => return Err(Stop::WriterGone),
            Err(SpliceError::TooLong(_)) => {
                return Err(inflates_too_much(&source.name, &entry.path, entry.size).into());
            }
            Err(SpliceError::Read(e)) => return Err(unreadable(source, entry, &e).into()),
            Err(e) => return Err(corrupt(source, entry, &e).into()),
        };
        let crc = sink.crc.finalize();
        check_inflated(source, entry, total, crc)?;
        Ok(())
    }
}

struct SpliceOut<'o> {
    out: &'o mut Outbox,
    crc: crc32fast::Hasher,
    writer_gone: bool,
}

impl SpliceOut<'_> {
    fn flush_if_full(&mut self) -> io::Result<()> {
        self.out.flush_if_full().map_err(|_| {
            self.writer_gone = true;
            io::Error::other("writer gone")
        })
    }
}

impl SpliceSink for SpliceOut<'_> {
    fn plain(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.crc.update(bytes);
        self.out.plain.extend_from_slice(bytes);
        self.flush_if_full()
    }

    fn deflate(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.deflate.extend_from_slice(bytes);
        self.flush_if_full()
    }
}

/// Inflates a deflate or deflate64 entry, handing its plain bytes to `each` in order, and checks
/// its size and CRC.
fn inflate_entry<E: From<LayerError>>(
    source: &Source,
    entry: &EntryRef,
    buf: &mut [u8],
    each: &mut dyn FnMut(&[u8]) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let raw = FileRange::new(&source.file, entry.data.start, entry.data.compressed);
    let mut reader: Box<dyn Read + '_> = match entry.data.method {
        ZipMethod::Deflate64 => Box::new(deflate64::Deflate64Decoder::new(raw)),
        _ => Box::new(flate2::read::DeflateDecoder::new(raw)),
    };
    let mut crc = crc32fast::Hasher::new();
    let mut total = 0u64;
    loop {
        let n = match reader.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(corrupt(source, entry, &e).into()),
        };
        total += n as u64;
        if total > entry.size {
            return Err(inflates_too_much(&source.name, &entry.path, entry.size).into());
        }
        crc.update(&buf[..n]);
        each(&buf[..n])?;
    }
    if total != entry.size {
        return Err(size_mismatch(&source.name, &entry.path, total, entry.size).into());
    }
    if crc.finalize() != entry.crc32 {
        return Err(crc_mismatch(&source.name, &entry.path).into());
    }
    Ok(())
}

fn check_inflated(
    source: &Source,
    entry: &EntryRef,
    total: u64,
    crc: u32,
) -> std::result::Result<(), Stop> {
    if total != entry.size {
        return Err(size_mismatch(&source.name, &entry.path, total, entry.size).into());
    }
    if crc != entry.crc32 {
        return Err(crc_mismatch(&source.name, &entry.path).into());
    }
    Ok(())
}

fn corrupt(source: &Source, entry: &EntryRef, e: &dyn std::fmt::Display) -> LayerError {
    LayerError::bad_entry(
        &source.name,
        &entry.path,
        format!("is corrupt: {e}"),
        "the archive is damaged; download or build it again",
    )
}

fn unreadable(source: &Source, entry: &EntryRef, e: &io::Error) -> LayerError {
    LayerError::bad_entry(
        &source.name,
        &entry.path,
        format!("cannot be read: {e}"),
        "check that the zip file is still there and readable",
    )
}
