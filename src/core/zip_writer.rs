//! A deterministic zip writer for Lambda layer zips: entries in the caller's order, unix modes
//! ("version made by" Unix), one fixed DOS timestamp, no extra fields, deflate — compressed on a
//! pool of threads (which may have started before the entry list was known), yet byte-identical
//! whatever the thread count, because each file is compressed on its own and written in order.

use std::io::{self, Read, Write};

use crate::core::digest::HashingWriter;
use crate::core::file_range::FileRange;
use crate::core::layer_zip::{S_IFDIR, S_IFLNK, S_IFREG};

pub use compressor::{Compressor, Content, Submitter};
use compressor::{Failure, Piece};

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
const MSDOS_DIRECTORY: u32 = 0x10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    /// A regular file, whose bytes are at `Content` in the compressor's contents file.
    File(Content),
    Symlink {
        target: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipEntry {
    /// Relative, `/`-separated, without a trailing `/` (added for directories).
    pub name: String,
    pub kind: EntryKind,
    /// Permission bits; setuid/setgid/sticky are dropped.
    pub mode: u32,
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
        "cannot keep the compressed data of {entry:?} in a scratch file: {source}\n  hint: check free space next to the output file"
    )]
    Scratch {
        entry: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot start {threads} compression threads: {source}\n  hint: run with a lower --threads"
    )]
    Threads {
        threads: usize,
        #[source]
        source: io::Error,
    },
    #[error(
        "{entry:?} needs zip64 sizes, which this writer does not produce\n  hint: no Lambda layer can be this large; zip less"
    )]
    TooLarge { entry: String },
}

/// Writes `entries` (in the given order, which must be sorted by the caller) as a zip to `out`,
/// their contents compressed by `compressor` (which may already hold some of them).
pub fn write_zip<W: Write>(
    out: W,
    entries: &[ZipEntry],
    compressor: &mut Compressor,
    opts: &ZipOptions,
) -> Result<(W, ZipSummary), ZipWriteError> {
    for entry in entries {
        if let EntryKind::File(content) = entry.kind {
            compressor.submit(content);
        }
    }
    let threads = opts.threads.max(1);
    compressor
        .grow_to(threads)
        .map_err(|source| ZipWriteError::Threads { threads, source })?;
    let mut writer = Writer {
        out: HashingWriter::new(out),
        central: Vec::new(),
        time: opts.time,
        entries: 0,
        unzipped: 0,
    };
    for entry in entries {
        let prepared = prepare(entry, compressor)?;
        writer.entry(entry, prepared, compressor)?;
    }
    writer.finish()
}

/// An entry ready to be written: its CRC and size, and its compressed pieces if deflate paid off.
struct Prepared {
    crc: u32,
    size: u64,
    deflated: Option<(Vec<Piece>, u64)>,
}

fn prepare(entry: &ZipEntry, compressor: &Compressor) -> Result<Prepared, ZipWriteError> {
    let content = match &entry.kind {
        EntryKind::Dir => {
            return Ok(Prepared {
                crc: 0,
                size: 0,
                deflated: None,
            });
        }
        EntryKind::Symlink { target } => {
            return Ok(Prepared {
                crc: crc32fast::hash(target.as_bytes()),
                size: target.len() as u64,
                deflated: None,
            });
        }
        EntryKind::File(content) => *content,
    };
    if content.len == 0 {
        return Ok(Prepared {
            crc: 0,
            size: 0,
            deflated: None,
        });
    }
    let pieces = compressor
        .wait(content)
        .map_err(|failure| failed(entry, failure))?;
    let mut crc = crc32fast::Hasher::new();
    for piece in &pieces {
        crc.combine(&crc32fast::Hasher::new_with_initial_len(
            piece.crc, piece.len,
        ));
    }
    let compressed: u64 = pieces.iter().map(|p| p.compressed).sum();
    // Incompressible data is stored: smaller, and still a function of the content alone.
    Ok(Prepared {
        crc: crc.finalize(),
        size: content.len,
        deflated: (compressed < content.len).then_some((pieces, compressed)),
    })
}

fn read_error(entry: &ZipEntry, source: io::Error) -> ZipWriteError {
    ZipWriteError::Read {
        entry: entry.name.clone(),
        source,
        hint: "the temporary copy of the image's files is unreadable; check the disk and run again",
    }
}

fn failed(entry: &ZipEntry, failure: Failure) -> ZipWriteError {
    match failure.into_io() {
        (true, source) => read_error(entry, source),
        (false, source) => ZipWriteError::Scratch {
            entry: entry.name.clone(),
            source,
        },
    }
}

struct Writer<W> {
    out: HashingWriter<W>,
    central: Vec<u8>,
    time: DosTime,
    entries: u64,
    unzipped: u64,
}

impl<W: Write> Writer<W> {
    fn entry(
        &mut self,
        entry: &ZipEntry,
        prepared: Prepared,
        compressor: &Compressor,
    ) -> Result<(), ZipWriteError> {
        let write_err = |source| ZipWriteError::Write { source };
        let name = match entry.kind {
            EntryKind::Dir => format!("{}/", entry.name),
            _ => entry.name.clone(),
        };
        let (method, compressed) = match &prepared.deflated {
            Some((_, compressed)) => (METHOD_DEFLATED, *compressed),
            None => (METHOD_STORED, prepared.size),
        };
        let offset = self.out.count();
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
            EntryKind::File(_) => (S_IFREG | (entry.mode & 0o777)) << 16,
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

        match (&entry.kind, &prepared.deflated) {
            (_, Some((pieces, _))) => {
                for piece in pieces {
                    let mut bytes = FileRange::new(compressor.store(), piece.at, piece.compressed);
                    let copied = io::copy(&mut bytes, &mut self.out).map_err(write_err)?;
                    if copied != piece.compressed {
                        return Err(write_err(io::Error::other(
                            "the scratch file of compressed data lost bytes",
                        )));
                    }
                }
            }
            (EntryKind::Symlink { target }, None) => {
                self.out.write_all(target.as_bytes()).map_err(write_err)?
            }
            (EntryKind::File(content), None) if content.len > 0 => {
                self.copy_stored(entry, *content, prepared.crc, compressor)?
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

    /// A stored file is read again from the contents rather than kept: it may be large.
    fn copy_stored(
        &mut self,
        entry: &ZipEntry,
        content: Content,
        crc: u32,
        compressor: &Compressor,
    ) -> Result<(), ZipWriteError> {
        let read_err = |source| read_error(entry, source);
        let mut reader = FileRange::new(compressor.contents(), content.offset, content.len);
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
        let cd_offset = self.out.count();
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
        let (inner, sha256, count) = self.out.finish_raw();
        Ok((
            inner,
            ZipSummary {
                entries: self.entries as usize,
                size: count,
                sha256,
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

mod compressor;
#[cfg(test)]
mod tests;
