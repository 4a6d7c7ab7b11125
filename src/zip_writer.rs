//! A deterministic zip writer for Lambda layer zips: entries in the caller's order, unix modes
//! ("version made by" Unix), one fixed DOS timestamp, no extra fields, deflate — compressed on a
//! pool of threads, yet byte-identical whatever the thread count, because each entry is compressed
//! on its own and written in order.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use flate2::Compression;
use flate2::write::DeflateEncoder;

use pieces::{join_pieces, plan_tasks, prepare_piece};
use sha2::{Digest, Sha256};

const LOCAL_HEADER: u32 = 0x0403_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const END_OF_CENTRAL_DIR: u32 = 0x0605_4b50;
const ZIP64_END_OF_CENTRAL_DIR: u32 = 0x0606_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
/// Unix (3) in the high byte, zip spec 2.0 in the low byte.
const VERSION_MADE_BY: u16 = (3 << 8) | 20;
const VERSION_NEEDED: u16 = 20;
const VERSION_ZIP64: u16 = 45;
const FLAG_UTF8: u16 = 1 << 11;
const METHOD_STORED: u16 = 0;
const METHOD_DEFLATED: u16 = 8;
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const MSDOS_DIRECTORY: u32 = 0x10;
/// Compressed data beyond this goes to a temporary file instead of memory; with at most
/// `2 × threads + 2` entries in flight, memory stays near `threads` MiB whatever the layer holds.
const SPILL_THRESHOLD: usize = 512 * 1024;
const DEFLATE_LEVEL: u32 = 6;
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File { size: u64 },
    Symlink { target: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipEntry {
    /// Relative, `/`-separated, without a trailing `/` (added for directories).
    pub name: String,
    pub kind: EntryKind,
    /// Permission bits; setuid/setgid/sticky are dropped.
    pub mode: u32,
}

/// Where entry contents come from; shared by the compression threads, so reads must not share a
/// cursor (the spool is read with positioned reads).
pub trait ContentSource: Sync {
    /// The content of `entries[index]`, a regular file.
    fn open(&self, index: usize) -> io::Result<Box<dyn Read + '_>>;

    /// The content of `entries[index]` from byte `offset` on.
    fn open_at(&self, index: usize, offset: u64) -> io::Result<Box<dyn Read + '_>> {
        let mut reader = self.open(index)?;
        let skipped = io::copy(&mut (&mut reader).take(offset), &mut io::sink())?;
        if skipped != offset {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(reader)
    }
}

/// A DOS date and time, the only timestamp the zip carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DosTime {
    pub time: u16,
    pub date: u16,
}

impl DosTime {
    /// 1980-01-01 00:00:00, the earliest DOS time.
    pub const MIN: DosTime = DosTime {
        time: 0,
        date: (1 << 5) | 1,
    };

    /// Seconds since 1970 (UTC) as a DOS time, clamped to 1980..=2107, rounded down to 2 seconds.
    pub fn from_unix(secs: u64) -> DosTime {
        let days = (secs / 86_400) as i64;
        let sod = secs % 86_400;
        // Civil date from days since 1970 (H. Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u16;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u16;
        let year = yoe + era * 400 + i64::from(month <= 2);
        if year < 1980 {
            return DosTime::MIN;
        }
        if year > 2107 {
            return DosTime {
                time: (23 << 11) | (59 << 5) | 29,
                date: (127 << 9) | (12 << 5) | 31,
            };
        }
        let (h, m, s) = (
            (sod / 3600) as u16,
            (sod % 3600 / 60) as u16,
            (sod % 60) as u16,
        );
        DosTime {
            time: (h << 11) | (m << 5) | (s / 2),
            date: (((year - 1980) as u16) << 9) | (month << 5) | day,
        }
    }
}

pub struct ZipOptions {
    /// Compression threads (at least 1); the output does not depend on it.
    pub threads: usize,
    pub time: DosTime,
    /// Where big compressed entries wait for their turn.
    pub scratch: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipSummary {
    pub entries: usize,
    /// Size of the zip file.
    pub size: u64,
    /// sha256 of the zip file (Lambda's CodeSha256 is its base64).
    pub sha256: [u8; 32],
    pub unzipped: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ZipWriteError {
    #[error("cannot read the content of {entry:?} while zipping: {source}\n  hint: {hint}")]
    Read {
        entry: String,
        #[source]
        source: io::Error,
        hint: &'static str,
    },
    #[error(
        "cannot write the zip: {source}\n  hint: check free space and permissions where the output goes"
    )]
    Write {
        #[source]
        source: io::Error,
    },
    #[error(
        "{entry:?} needs zip64 sizes, which this writer does not produce\n  hint: no Lambda layer can be this large; zip less"
    )]
    TooLarge { entry: String },
}

/// Writes `entries` (in the given order, which must be sorted by the caller) as a zip to `out`.
pub fn write_zip<W: Write>(
    out: W,
    entries: &[ZipEntry],
    source: &dyn ContentSource,
    opts: &ZipOptions,
) -> Result<(W, ZipSummary), ZipWriteError> {
    let tasks = plan_tasks(entries);
    // More threads than tasks would only wait.
    let threads = opts.threads.clamp(1, tasks.len().max(1));
    let window = threads * 2 + 2;
    let pipe = Pipeline {
        state: Mutex::new(PipeState {
            next: 0,
            written: 0,
            ready: BTreeMap::new(),
            abort: false,
        }),
        cv: Condvar::new(),
    };
    let mut writer = Writer {
        out: Counting::new(out),
        central: Vec::new(),
        time: opts.time,
        entries: 0,
        unzipped: 0,
    };
    let result = std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                pipe.work(tasks.len(), window, |t| {
                    let task = &tasks[t];
                    if task.pieces == 1 {
                        prepare(&entries[task.entry], task.entry, source, &opts.scratch)
                    } else {
                        prepare_piece(&entries[task.entry], task, source, &opts.scratch)
                    }
                })
            });
        }
        let mut next_task = 0;
        let result = (0..entries.len()).try_for_each(|i| {
            let pieces = tasks[next_task].pieces;
            let prepared = if pieces == 1 {
                pipe.take(next_task)?
            } else {
                join_pieces(&entries[i], &pipe, next_task, pieces, &opts.scratch)?
            };
            next_task += pieces;
            writer.entry(&entries[i], i, prepared, source)
        });
        // On success every worker has finished; on failure this stops them.
        pipe.abort();
        result
    });
    result?;
    writer.finish()
}

/// The compression work queue: workers take task indexes in order, at most `window` ahead of the
/// writer.
struct Pipeline {
    state: Mutex<PipeState>,
    cv: Condvar,
}

struct PipeState {
    next: usize,
    written: usize,
    ready: BTreeMap<usize, Result<Prepared, ZipWriteError>>,
    abort: bool,
}

impl Pipeline {
    fn lock(&self) -> std::sync::MutexGuard<'_, PipeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn work(
        &self,
        count: usize,
        window: usize,
        prepare: impl Fn(usize) -> Result<Prepared, ZipWriteError>,
    ) {
        loop {
            let i = {
                let mut st = self.lock();
                loop {
                    if st.abort || st.next >= count {
                        return;
                    }
                    if st.next < st.written + window {
                        break;
                    }
                    st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
                }
                st.next += 1;
                st.next - 1
            };
            let result = prepare(i);
            self.lock().ready.insert(i, result);
            self.cv.notify_all();
        }
    }

    fn take(&self, i: usize) -> Result<Prepared, ZipWriteError> {
        let mut st = self.lock();
        loop {
            if let Some(result) = st.ready.remove(&i) {
                st.written = i + 1;
                self.cv.notify_all();
                return result;
            }
            st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn abort(&self) {
        self.lock().abort = true;
        self.cv.notify_all();
    }
}

/// An entry ready to be written: its CRC, sizes and compressed bytes (if deflate paid off).
struct Prepared {
    crc: u32,
    size: u64,
    deflated: Option<Spill>,
}

fn prepare(
    entry: &ZipEntry,
    index: usize,
    source: &dyn ContentSource,
    scratch: &Path,
) -> Result<Prepared, ZipWriteError> {
    let size = match &entry.kind {
        EntryKind::Dir => 0,
        EntryKind::Symlink { target } => {
            return Ok(Prepared {
                crc: crc32fast::hash(target.as_bytes()),
                size: target.len() as u64,
                deflated: None,
            });
        }
        EntryKind::File { size } => *size,
    };
    if size == 0 {
        return Ok(Prepared {
            crc: 0,
            size: 0,
            deflated: None,
        });
    }
    let read_err = |source| ZipWriteError::Read {
        entry: entry.name.clone(),
        source,
        hint: "the temporary copy of the image's files is unreadable; check the disk and run again",
    };
    let mut reader = source.open(index).map_err(read_err)?;
    let mut encoder = DeflateEncoder::new(Spill::new(scratch), Compression::new(DEFLATE_LEVEL));
    let mut crc = crc32fast::Hasher::new();
    let mut seen = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(e)),
        };
        crc.update(&buf[..n]);
        seen += n as u64;
        encoder.write_all(&buf[..n]).map_err(read_err)?;
    }
    if seen != size {
        return Err(read_err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("read {seen} bytes, expected {size}"),
        )));
    }
    let spill = encoder.finish().map_err(read_err)?;
    // Incompressible data is stored: smaller, and still a function of the content alone.
    let deflated = (spill.len < size).then_some(spill);
    Ok(Prepared {
        crc: crc.finalize(),
        size,
        deflated,
    })
}

/// Compressed bytes: in memory while small, then in an anonymous temporary file.
struct Spill {
    scratch: PathBuf,
    memory: Vec<u8>,
    file: Option<File>,
    len: u64,
}

impl Spill {
    fn new(scratch: &Path) -> Self {
        Spill {
            scratch: scratch.to_path_buf(),
            memory: Vec::new(),
            file: None,
            len: 0,
        }
    }

    fn copy_to(mut self, out: &mut impl Write) -> io::Result<()> {
        match &mut self.file {
            Some(file) => {
                file.seek(SeekFrom::Start(0))?;
                let copied = io::copy(file, out)?;
                if copied != self.len {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "spilled data changed size",
                    ));
                }
                Ok(())
            }
            None => out.write_all(&self.memory),
        }
    }
}

impl Write for Spill {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.file.is_none() && self.memory.len() + buf.len() > SPILL_THRESHOLD {
            let mut file = tempfile::tempfile_in(&self.scratch)?;
            file.write_all(&self.memory)?;
            self.memory = Vec::new();
            self.file = Some(file);
        }
        match &mut self.file {
            Some(file) => file.write_all(buf)?,
            None => self.memory.extend_from_slice(buf),
        }
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Counts and hashes the bytes written.
struct Counting<W> {
    inner: W,
    count: u64,
    hasher: Sha256,
}

impl<W: Write> Counting<W> {
    fn new(inner: W) -> Self {
        Counting {
            inner,
            count: 0,
            hasher: Sha256::new(),
        }
    }
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct Writer<W> {
    out: Counting<W>,
    central: Vec<u8>,
    time: DosTime,
    entries: u64,
    unzipped: u64,
}

impl<W: Write> Writer<W> {
    fn entry(
        &mut self,
        entry: &ZipEntry,
        index: usize,
        prepared: Prepared,
        source: &dyn ContentSource,
    ) -> Result<(), ZipWriteError> {
        let write_err = |source| ZipWriteError::Write { source };
        let name = match entry.kind {
            EntryKind::Dir => format!("{}/", entry.name),
            _ => entry.name.clone(),
        };
        let (method, compressed) = match &prepared.deflated {
            Some(spill) => (METHOD_DEFLATED, spill.len),
            None => (METHOD_STORED, prepared.size),
        };
        let offset = self.out.count;
        let too_large = || ZipWriteError::TooLarge {
            entry: entry.name.clone(),
        };
        let size32 = u32::try_from(prepared.size)
            .ok()
            .filter(|s| *s != u32::MAX)
            .ok_or_else(too_large)?;
        let compressed32 = u32::try_from(compressed).map_err(|_| too_large())?;
        let offset32 = u32::try_from(offset)
            .ok()
            .filter(|o| *o != u32::MAX)
            .ok_or_else(too_large)?;
        let name_len = u16::try_from(name.len()).map_err(|_| too_large())?;
        let flags = if name.is_ascii() { 0 } else { FLAG_UTF8 };
        let external = match &entry.kind {
            EntryKind::Dir => ((S_IFDIR | (entry.mode & 0o777)) << 16) | MSDOS_DIRECTORY,
            EntryKind::File { .. } => (S_IFREG | (entry.mode & 0o777)) << 16,
            EntryKind::Symlink { .. } => (S_IFLNK | 0o777) << 16,
        };

        let mut local = Vec::with_capacity(30 + name.len());
        put32(&mut local, LOCAL_HEADER);
        put16(&mut local, VERSION_NEEDED);
        put16(&mut local, flags);
        put16(&mut local, method);
        put16(&mut local, self.time.time);
        put16(&mut local, self.time.date);
        put32(&mut local, prepared.crc);
        put32(&mut local, compressed32);
        put32(&mut local, size32);
        put16(&mut local, name_len);
        put16(&mut local, 0); // no extra fields
        local.extend_from_slice(name.as_bytes());
        self.out.write_all(&local).map_err(write_err)?;

        match (&entry.kind, prepared.deflated) {
            (_, Some(spill)) => spill.copy_to(&mut self.out).map_err(write_err)?,
            (EntryKind::Symlink { target }, None) => {
                self.out.write_all(target.as_bytes()).map_err(write_err)?
            }
            (EntryKind::File { size }, None) if *size > 0 => {
                self.copy_stored(entry, index, prepared.crc, source)?
            }
            _ => {}
        }

        let c = &mut self.central;
        put32(c, CENTRAL_HEADER);
        put16(c, VERSION_MADE_BY);
        put16(c, VERSION_NEEDED);
        put16(c, flags);
        put16(c, method);
        put16(c, self.time.time);
        put16(c, self.time.date);
        put32(c, prepared.crc);
        put32(c, compressed32);
        put32(c, size32);
        put16(c, name_len);
        put16(c, 0); // extra
        put16(c, 0); // comment
        put16(c, 0); // disk
        put16(c, 0); // internal attributes
        put32(c, external);
        put32(c, offset32);
        c.extend_from_slice(name.as_bytes());
        self.entries += 1;
        self.unzipped += prepared.size;
        Ok(())
    }

    /// A stored file is read again from the source rather than kept: it may be large.
    fn copy_stored(
        &mut self,
        entry: &ZipEntry,
        index: usize,
        crc: u32,
        source: &dyn ContentSource,
    ) -> Result<(), ZipWriteError> {
        let read_err = |source| ZipWriteError::Read {
            entry: entry.name.clone(),
            source,
            hint: "the temporary copy of the image's files is unreadable; check the disk and run again",
        };
        let mut reader = source.open(index).map_err(read_err)?;
        let mut hasher = crc32fast::Hasher::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_err(e)),
            };
            hasher.update(&buf[..n]);
            self.out
                .write_all(&buf[..n])
                .map_err(|source| ZipWriteError::Write { source })?;
        }
        if hasher.finalize() != crc {
            return Err(read_err(io::Error::other(
                "the content changed between two reads",
            )));
        }
        Ok(())
    }

    fn finish(mut self) -> Result<(W, ZipSummary), ZipWriteError> {
        let write_err = |source| ZipWriteError::Write { source };
        let cd_offset = self.out.count;
        let cd_size = self.central.len() as u64;
        let central = std::mem::take(&mut self.central);
        self.out.write_all(&central).map_err(write_err)?;
        let zip64 = self.entries >= 0xFFFF || cd_offset >= 0xFFFF_FFFF || cd_size >= 0xFFFF_FFFF;
        let mut tail = Vec::new();
        if zip64 {
            let record_offset = cd_offset + cd_size;
            put32(&mut tail, ZIP64_END_OF_CENTRAL_DIR);
            put64(&mut tail, 44); // size of the rest of this record
            put16(&mut tail, (3 << 8) | VERSION_ZIP64);
            put16(&mut tail, VERSION_ZIP64);
            put32(&mut tail, 0); // this disk
            put32(&mut tail, 0); // disk with the central directory
            put64(&mut tail, self.entries);
            put64(&mut tail, self.entries);
            put64(&mut tail, cd_size);
            put64(&mut tail, cd_offset);
            put32(&mut tail, ZIP64_LOCATOR);
            put32(&mut tail, 0);
            put64(&mut tail, record_offset);
            put32(&mut tail, 1); // total disks
        }
        put32(&mut tail, END_OF_CENTRAL_DIR);
        put16(&mut tail, 0);
        put16(&mut tail, 0);
        let count16 = u16::try_from(self.entries)
            .ok()
            .filter(|_| !zip64)
            .unwrap_or(0xFFFF);
        put16(&mut tail, count16);
        put16(&mut tail, count16);
        put32(
            &mut tail,
            u32::try_from(cd_size)
                .ok()
                .filter(|_| !zip64)
                .unwrap_or(0xFFFF_FFFF),
        );
        put32(
            &mut tail,
            u32::try_from(cd_offset)
                .ok()
                .filter(|_| !zip64)
                .unwrap_or(0xFFFF_FFFF),
        );
        put16(&mut tail, 0); // comment
        self.out.write_all(&tail).map_err(write_err)?;
        self.out.flush().map_err(write_err)?;
        let Counting {
            inner,
            count,
            hasher,
        } = self.out;
        Ok((
            inner,
            ZipSummary {
                entries: self.entries as usize,
                size: count,
                sha256: hasher.finalize().into(),
                unzipped: self.unzipped,
            },
        ))
    }
}

fn put16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn put32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn put64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}

mod pieces;
#[cfg(test)]
mod tests;
