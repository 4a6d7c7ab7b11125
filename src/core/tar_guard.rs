//! Bounds what reading a tar can cost before any entry is seen: the tar crate reads a GNU long-name
//! or long-link record and a PAX header whole into memory, so a 1 GiB record in a 1 MB gzip layer
//! would be held whole. [`TarGuard`] follows the archive's structure as its bytes pass and fails on
//! such a record as soon as its header arrives. Also the path limits every tree we build honours.

use std::io::{self, Read};

/// Linux's PATH_MAX: no path the kernel could open is longer (a longer one is refused).
pub const PATH_MAX: usize = 4096;
/// Linux's NAME_MAX: the longest file name (one path component).
pub const NAME_MAX: usize = 255;
/// A GNU long name or link: a path and its NUL.
pub const MAX_LONG_NAME_RECORD: u64 = PATH_MAX as u64 + 1;
/// A PAX header holds the path and link target plus small attributes (times, ids, xattrs).
pub const MAX_PAX_RECORD: u64 = 64 * 1024;

const BLOCK: u64 = 512;
/// GNU sparse extension blocks one entry may have (21 regions each): far beyond any real file.
pub const MAX_SPARSE_EXT_BLOCKS: u64 = 4096;
/// `isextended` in a GNU sparse extension header (after 21 sparse descriptors of 24 bytes).
const EXT_IS_EXTENDED: usize = 504;

/// A tar header record over its limit (travels inside an `io::Error`).
#[derive(Debug, thiserror::Error)]
#[error(
    "{what} of {size} bytes (at byte {offset} of the tar), over the limit of {limit} bytes{why}"
)]
pub struct OversizedRecord {
    pub what: &'static str,
    /// Where the limit comes from.
    pub why: &'static str,
    pub size: u64,
    pub limit: u64,
    pub offset: u64,
    /// The entry it belongs to as far as known: the start of a long name, else the header's name.
    pub entry: String,
}

impl OversizedRecord {
    /// The record carried by an I/O error from a guarded reader, if that is what failed.
    pub fn from_io(err: &io::Error) -> Option<&OversizedRecord> {
        err.get_ref()
            .and_then(|e| e.downcast_ref::<OversizedRecord>())
    }
}

/// A tar stream longer than it may be (travels inside an `io::Error`).
#[derive(Debug, thiserror::Error)]
pub enum StreamTooLong {
    #[error("its tar runs past {limit} bytes, {why}")]
    Total { limit: u64, why: &'static str },
    #[error(
        "it has more than {MAX_TRAILING} bytes after its end-of-archive blocks (a tar pads to at most 10240)"
    )]
    Trailing,
}

impl StreamTooLong {
    pub fn from_io(err: &io::Error) -> Option<&StreamTooLong> {
        err.get_ref()
            .and_then(|e| e.downcast_ref::<StreamTooLong>())
    }
}

/// Bytes after the end-of-archive blocks that are read (for the digest) before giving up.
pub const MAX_TRAILING: u64 = 1 << 20;

/// Why a path from an archive is refused before it enters a tree.
pub fn path_problem(raw: &[u8]) -> Option<String> {
    if raw.len() > PATH_MAX {
        return Some(format!(
            "is a path of {} bytes, longer than PATH_MAX ({PATH_MAX})",
            raw.len()
        ));
    }
    raw.split(|b| *b == b'/')
        .find(|c| c.len() > NAME_MAX)
        .map(|c| {
            format!(
                "has a component of {} bytes, longer than NAME_MAX ({NAME_MAX})",
                c.len()
            )
        })
}

/// The first bytes of a long path, for messages.
pub fn shorten(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(&raw[..raw.len().min(120)]).into_owned();
    if raw.len() > 120 {
        format!("{text}...")
    } else {
        text
    }
}

enum State {
    /// Collecting a header block.
    Header,
    /// Collecting a GNU sparse extension block (`count` so far); the entry's data (`size` bytes)
    /// follows the last one.
    SparseExt { size: u64, count: u64 },
    /// Passing an entry's data (and padding) up to the next header.
    Skip,
    /// Passing a PAX header's data, kept to read its `size` key.
    Pax,
    /// After the end-of-archive block: everything passes.
    Done,
}

/// A reader over a tar stream that fails on an oversized header record.
pub struct TarGuard<R> {
    inner: R,
    state: State,
    /// Bytes passed so far.
    pos: u64,
    /// Where the current data (or the next header) ends.
    until: u64,
    block: Vec<u8>,
    pax: Vec<u8>,
    /// The size a PAX header gave the next entry (overriding its header, as the tar crate does).
    pax_size: Option<u64>,
    /// The name in the header of a sparse entry whose extension blocks are passing.
    sparse_entry: String,
    /// Bytes the stream may have, and what that limit is.
    limit: u64,
    limit_why: &'static str,
    /// Where the end-of-archive block ended.
    end: u64,
}

impl<R: Read> TarGuard<R> {
    pub fn new(inner: R) -> Self {
        TarGuard {
            inner,
            state: State::Header,
            pos: 0,
            until: 0,
            block: Vec::with_capacity(BLOCK as usize),
            pax: Vec::new(),
            pax_size: None,
            sparse_entry: String::new(),
            limit: u64::MAX,
            limit_why: "",
            end: 0,
        }
    }

    /// Fails once more than `limit` bytes have passed (`why` says where the limit comes from).
    pub fn with_limit(mut self, limit: u64, why: &'static str) -> Self {
        self.limit = limit;
        self.limit_why = why;
        self
    }

    /// Bytes passed so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Follows the structure over `bytes`, which start at `self.pos`.
    fn track(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        if self.pos.saturating_add(bytes.len() as u64) > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                StreamTooLong::Total {
                    limit: self.limit,
                    why: self.limit_why,
                },
            ));
        }
        while !bytes.is_empty() {
            match self.state {
                State::Done => {
                    self.pos += bytes.len() as u64;
                    if self.pos - self.end > MAX_TRAILING {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            StreamTooLong::Trailing,
                        ));
                    }
                    return Ok(());
                }
                State::Skip | State::Pax => {
                    let n = (self.until - self.pos).min(bytes.len() as u64) as usize;
                    if matches!(self.state, State::Pax) {
                        self.pax.extend_from_slice(&bytes[..n]);
                    }
                    self.pos += n as u64;
                    bytes = &bytes[n..];
                    if self.pos == self.until {
                        if matches!(self.state, State::Pax) {
                            self.pax_size = pax_size(&self.pax);
                            self.pax.clear();
                        }
                        self.state = State::Header;
                    }
                }
                State::Header | State::SparseExt { .. } => {
                    let n = (BLOCK as usize - self.block.len()).min(bytes.len());
                    self.block.extend_from_slice(&bytes[..n]);
                    self.pos += n as u64;
                    bytes = &bytes[n..];
                    if self.block.len() == BLOCK as usize {
                        self.block_done()?;
                        self.block.clear();
                    }
                }
            }
        }
        Ok(())
    }

    fn block_done(&mut self) -> io::Result<()> {
        if let State::SparseExt { size, count } = self.state {
            if self.block[EXT_IS_EXTENDED] == 0 {
                self.start_data(size, State::Skip);
            } else if count + 1 >= MAX_SPARSE_EXT_BLOCKS {
                // The tar crate keeps every region of a sparse file in memory.
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    OversizedRecord {
                        what: "a GNU sparse map",
                        why: " (4096 extension blocks)",
                        size: (count + 2) * BLOCK,
                        limit: MAX_SPARSE_EXT_BLOCKS * BLOCK,
                        offset: self.pos - BLOCK,
                        entry: std::mem::take(&mut self.sparse_entry),
                    },
                ));
            } else {
                self.state = State::SparseExt {
                    size,
                    count: count + 1,
                };
            }
            return Ok(());
        }
        if self.block.iter().all(|b| *b == 0) {
            self.state = State::Done;
            self.end = self.pos;
            return Ok(());
        }
        let header = tar::Header::from_byte_slice(&self.block);
        let Ok(mut size) = header.entry_size() else {
            // The tar reader reports a damaged header itself.
            self.state = State::Done;
            self.end = u64::MAX;
            return Ok(());
        };
        let kind = header.entry_type();
        const PATH: &str = " (a path longer than PATH_MAX, 4096)";
        let limit = if kind.is_gnu_longname() {
            Some(("a GNU long-name record", PATH, MAX_LONG_NAME_RECORD))
        } else if kind.is_gnu_longlink() {
            Some(("a GNU long-link record", PATH, MAX_LONG_NAME_RECORD))
        } else if kind.is_pax_local_extensions() || kind.is_pax_global_extensions() {
            Some(("a PAX header", "", MAX_PAX_RECORD))
        } else {
            None
        };
        if let Some((what, why, limit)) = limit {
            if size > limit {
                let entry = if kind.is_gnu_longname() {
                    // The start of the name itself says best which entry this is.
                    let mut head = vec![0u8; 120];
                    let n = read_up_to(&mut self.inner, &mut head).unwrap_or(0);
                    let head = &head[..n];
                    let end = head.iter().position(|b| *b == 0).unwrap_or(n);
                    format!("{}...", String::from_utf8_lossy(&head[..end]))
                } else {
                    String::from_utf8_lossy(&header.path_bytes()).into_owned()
                };
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    OversizedRecord {
                        what,
                        why,
                        size,
                        limit,
                        offset: self.pos - BLOCK,
                        entry,
                    },
                ));
            }
            let next = if kind.is_pax_local_extensions() {
                State::Pax
            } else {
                State::Skip
            };
            self.start_data(size, next);
            return Ok(());
        }
        if let Some(s) = self.pax_size.take() {
            size = s;
        }
        match header.as_gnu() {
            Some(gnu) if kind.is_gnu_sparse() && gnu.is_extended() => {
                self.sparse_entry = String::from_utf8_lossy(&header.path_bytes()).into_owned();
                self.state = State::SparseExt { size, count: 0 };
            }
            _ => self.start_data(size, State::Skip),
        }
        Ok(())
    }

    fn start_data(&mut self, size: u64, state: State) {
        let padded = size.div_ceil(BLOCK).saturating_mul(BLOCK);
        self.until = self.pos.saturating_add(padded);
        if padded == 0 && matches!(state, State::Pax) {
            self.pax_size = None;
        }
        self.state = if padded == 0 { State::Header } else { state };
    }
}

/// The `size` key of a PAX header, read as the tar crate reads it.
fn pax_size(data: &[u8]) -> Option<u64> {
    tar::PaxExtensions::new(data)
        .filter_map(Result::ok)
        .find(|e| e.key() == Ok("size"))
        .and_then(|e| e.value().ok().and_then(|v| v.parse().ok()))
}

/// Fills `buf` as far as the reader goes (short only at its end): how many bytes were read.
pub fn read_up_to<R: Read + ?Sized>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

impl<R: Read> Read for TarGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.track(&buf[..n])?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: tar::EntryType, name: &str, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_path(name).unwrap();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_cksum();
        h
    }

    fn drain(bytes: &[u8]) -> io::Result<usize> {
        let mut archive = tar::Archive::new(TarGuard::new(bytes));
        let mut count = 0;
        for e in archive.entries()? {
            e?;
            count += 1;
        }
        Ok(count)
    }

    #[test]
    fn passes_ordinary_archives_with_long_names_and_pax() {
        let mut b = tar::Builder::new(Vec::new());
        let long = format!("{}/file", "d".repeat(200));
        let mut h = header(tar::EntryType::Regular, "x", 3);
        b.append_data(&mut h, &long, &b"abc"[..]).unwrap();
        b.append_pax_extensions([("path", b"pax/name".as_slice())])
            .unwrap();
        let mut h = header(tar::EntryType::Regular, "y", 700);
        b.append_data(&mut h, "y", &vec![7u8; 700][..]).unwrap();
        let bytes = b.into_inner().unwrap();
        assert_eq!(drain(&bytes).unwrap(), 2);
    }

    #[test]
    fn refuses_a_huge_long_name_before_reading_it() {
        let mut bytes = header(tar::EntryType::GNULongName, "././@LongLink", 1 << 30)
            .as_bytes()
            .to_vec();
        bytes.extend(std::iter::repeat_n(b'a', 4096));
        let err = drain(&bytes).unwrap_err();
        let rec = OversizedRecord::from_io(&err).expect("an oversized record");
        assert_eq!(rec.size, 1 << 30);
        assert!(rec.entry.starts_with("aaaa"), "{}", rec.entry);
    }

    #[test]
    fn refuses_a_huge_pax_header() {
        let bytes = header(tar::EntryType::XHeader, "PaxHeaders/x", 10 << 20)
            .as_bytes()
            .to_vec();
        let err = drain(&bytes).unwrap_err();
        assert!(OversizedRecord::from_io(&err).is_some(), "{err}");
    }

    #[test]
    fn refuses_an_endless_sparse_map() {
        let mut h = header(tar::EntryType::GNUSparse, "sparse", 0);
        h.as_gnu_mut().unwrap().isextended[0] = 1;
        h.set_cksum();
        let mut bytes = h.as_bytes().to_vec();
        let mut ext = [0u8; 512];
        ext[EXT_IS_EXTENDED] = 1;
        for _ in 0..MAX_SPARSE_EXT_BLOCKS + 10 {
            bytes.extend_from_slice(&ext);
        }
        let err = drain(&bytes).unwrap_err();
        let rec = OversizedRecord::from_io(&err).expect("an oversized record");
        assert_eq!(rec.entry, "sparse");
    }

    #[test]
    fn bounds_the_stream_and_what_follows_its_end() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = header(tar::EntryType::Regular, "x", 3000);
        b.append_data(&mut h, "x", &vec![1u8; 3000][..]).unwrap();
        let mut bytes = b.into_inner().unwrap();
        let mut guard = TarGuard::new(&bytes[..]).with_limit(2048, "test");
        let err = io::copy(&mut guard, &mut io::sink()).unwrap_err();
        assert!(matches!(
            StreamTooLong::from_io(&err),
            Some(StreamTooLong::Total { .. })
        ));
        bytes.extend(std::iter::repeat_n(0u8, (MAX_TRAILING + 10_000) as usize));
        let err = io::copy(&mut TarGuard::new(&bytes[..]), &mut io::sink()).unwrap_err();
        assert!(matches!(
            StreamTooLong::from_io(&err),
            Some(StreamTooLong::Trailing)
        ));
    }

    #[test]
    fn path_limits() {
        assert!(path_problem(b"a/b").is_none());
        assert!(path_problem("a/".repeat(2049).as_bytes()).is_some());
        assert!(path_problem(format!("a/{}", "n".repeat(256)).as_bytes()).is_some());
        assert!(path_problem("n".repeat(255).as_bytes()).is_none());
    }
}
