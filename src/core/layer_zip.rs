//! Reads a Lambda layer zip into a checked plan of entries, and streams entry contents with every
//! integrity check (size, CRC, the unzipped-size budget) applied to the bytes actually inflated.

use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::{Arc, Mutex};

use zip::{CompressionMethod, ZipArchive};

use crate::core::error::{LayerError, Result};
use crate::core::modes;
use crate::core::paths::{self, normalize};
use crate::core::warnings::Warning;

/// Lambda's limit on a function's unzipped code plus layers.
pub const LAMBDA_UNZIPPED_LIMIT: u64 = 262_144_000;

/// Modification time given to directories the zip did not list (1980-01-01, the earliest DOS time,
/// so an image → zip round trip can represent it).
pub const SYNTHESIZED_MTIME: u64 = 315_532_800;

/// Unix file types in the high half of a zip entry's external attributes (shared with the writer).
const S_IFMT: u32 = 0o170000;
pub(crate) const S_IFDIR: u32 = 0o040000;
pub(crate) const S_IFREG: u32 = 0o100000;
pub(crate) const S_IFLNK: u32 = 0o120000;
const MAX_SYMLINK_TARGET: u64 = 4096;

/// Linux's PATH_MAX: no path longer than this can be created, so none is accepted from a zip.
pub const MAX_PATH_BYTES: usize = 4096;
/// Linux's NAME_MAX: the longest name of one path component.
pub const MAX_COMPONENT_BYTES: usize = 255;
/// All paths of one zip together, its parents included: far above any real layer, low enough that
/// deeply nested names (each parent a separate path) cannot exhaust memory.
const MAX_TOTAL_PATH_BYTES: usize = 64 << 20;
/// How much of a refused name an error shows.
const SHOWN_NAME_BYTES: usize = 120;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    /// A regular file: its index in the zip, declared size and CRC-32, and where its data lies.
    File {
        index: usize,
        size: u64,
        crc32: u32,
        data: EntryData,
    },
    Symlink {
        target: String,
    },
}

/// How an entry's data is compressed in the zip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZipMethod {
    Stored,
    Deflated,
    Deflate64,
}

/// Where a file's compressed bytes lie in the zip file, so they can be read without the zip crate
/// (by positioned reads, from many threads) or spliced into a gzip member as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryData {
    pub start: u64,
    pub compressed: u64,
    pub method: ZipMethod,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedEntry {
    pub kind: EntryKind,
    /// Permission bits as they will be written (already widened for Lambda).
    pub mode: u32,
    pub mtime: u64,
    /// A parent directory the zip did not list.
    pub synthesized: bool,
}

/// A layer zip, opened and checked entry by entry; contents are read later, on demand.
pub struct ZipLayer<R> {
    pub name: String,
    /// The zip file's length: no entry's data may run past it.
    zip_len: u64,
    archive: ZipArchive<SharedReader<R>>,
    /// Every path of the layer (relative to the layer root), parents included, sorted by path bytes.
    pub entries: BTreeMap<String, PlannedEntry>,
    pub warnings: Vec<Warning>,
    pub declared_unzipped: u64,
    pub has_unix_modes: bool,
    /// Reused by `copy_file`: layers hold thousands of small files.
    copy_buf: Vec<u8>,
}

/// Counts inflated bytes across all entries of one conversion against `--max-unzipped`.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub limit: u64,
    pub used: u64,
}

impl Budget {
    pub fn new(limit: u64) -> Self {
        Budget { limit, used: 0 }
    }
}

impl<R: Read + Seek> ZipLayer<R> {
    /// Opens and checks the zip. `name` is how errors refer to it (the path or ARN the user gave).
    pub fn open(name: &str, reader: R, limit: u64) -> Result<Self> {
        let not_a_zip = |e: zip::result::ZipError| LayerError::NotAZip {
            zip: name.to_string(),
            detail: e.to_string(),
            hint: "check that this is a complete layer .zip (a truncated download or a file of another type gives this error)",
        };
        let mut reader = reader;
        let zip_len = reader
            .seek(SeekFrom::End(0))
            .map_err(|e| not_a_zip(e.into()))?;
        let reader = SharedReader(Arc::new(Mutex::new(reader)));
        let mut archive = open_archive(reader).map_err(not_a_zip)?;
        if archive.is_empty() {
            return Err(LayerError::Empty {
                zip: name.to_string(),
            });
        }
        let mut duplicates = Vec::new();
        if archive.has_duplicate_names() {
            // The zip crate keeps only the last entry of a name; list the names once for the warning.
            let start = archive.central_directory_start();
            let mut reader = archive.into_inner();
            duplicates = duplicate_names(&mut reader, start);
            archive = open_archive(reader).map_err(not_a_zip)?;
        }
        let mut layer = ZipLayer {
            name: name.to_string(),
            zip_len,
            archive,
            entries: BTreeMap::new(),
            warnings: Vec::new(),
            declared_unzipped: 0,
            has_unix_modes: false,
            copy_buf: Vec::new(),
        };
        for raw in duplicates {
            let shown = match normalize(&raw) {
                Ok(p) => p.path,
                Err(_) => String::from_utf8_lossy(&raw).into_owned(),
            };
            layer.warnings.push(Warning::duplicate(&shown));
        }
        for index in 0..layer.archive.len() {
            layer.plan_entry(index)?;
        }
        layer.check_structure()?;
        if layer.declared_unzipped > limit {
            return Err(LayerError::DeclaredTooLarge {
                zip: name.to_string(),
                limit,
                declared: layer.declared_unzipped,
            });
        }
        Ok(layer)
    }

    fn plan_entry(&mut self, index: usize) -> Result<()> {
        let zip_name = self.name.clone();
        let file = self
            .archive
            .by_index_raw(index)
            .map_err(|e| LayerError::NotAZip {
                zip: zip_name.clone(),
                detail: format!("entry #{index}: {e}"),
                hint: "the archive is damaged; download or build it again",
            })?;
        let raw_name = file.name_raw().to_vec();
        let shown = shown_name(&raw_name);
        if file.encrypted() {
            return Err(LayerError::bad_entry(
                &zip_name,
                &shown,
                "is encrypted",
                "layerport does not decrypt layers; re-create the zip without a password",
            ));
        }
        let method = match file.compression() {
            CompressionMethod::Stored => ZipMethod::Stored,
            CompressionMethod::Deflated => ZipMethod::Deflated,
            CompressionMethod::Deflate64 => ZipMethod::Deflate64,
            other => {
                return Err(LayerError::bad_entry(
                    &zip_name,
                    &shown,
                    format!("uses an unsupported compression method ({other:?})"),
                    "Lambda reads only stored or deflated entries; re-create the zip with `zip -r` (deflate)",
                ));
            }
        };
        let norm = normalize(&raw_name).map_err(|p| {
            LayerError::bad_entry(
                &zip_name,
                &shown,
                p.describe(),
                "layer paths must be relative and stay inside the layer; rename or remove the entry",
            )
        })?;
        if let Some(problem) = path_limit_problem(&norm.path) {
            return Err(LayerError::bad_entry(
                &zip_name,
                &shown,
                problem,
                "no filesystem can hold such a path; rebuild the zip without it (Linux allows 4096 bytes per path, 255 per name)",
            ));
        }
        if norm.had_backslashes {
            self.warnings.push(Warning::backslash(&shown, &norm.path));
        }
        let unix = unix_mode(&file);
        if unix.is_some() {
            self.has_unix_modes = true;
        }
        let file_type = unix.map(|m| m & S_IFMT).unwrap_or(0);
        let mtime = entry_mtime(&file);
        let size = file.size();
        let crc32 = file.crc32();
        let data = EntryData {
            start: file.data_start().ok_or_else(|| {
                LayerError::bad_entry(
                    &zip_name,
                    &shown,
                    "has no readable local header",
                    "the archive is damaged; download or build it again",
                )
            })?,
            compressed: file.compressed_size(),
            method,
        };
        drop(file);
        // Entry data is later read by position, trusting these numbers: check them once here.
        if data
            .start
            .checked_add(data.compressed)
            .is_none_or(|end| end > self.zip_len)
        {
            return Err(LayerError::bad_entry(
                &zip_name,
                &shown,
                format!(
                    "declares {} bytes of data at offset {}, past the end of the zip ({} bytes)",
                    data.compressed, data.start, self.zip_len
                ),
                "the archive is truncated or damaged; download or build it again",
            ));
        }
        if method == ZipMethod::Stored && data.compressed != size {
            return Err(LayerError::bad_entry(
                &zip_name,
                &shown,
                format!(
                    "is stored uncompressed but declares {size} bytes and {} bytes of data",
                    data.compressed
                ),
                "the archive is damaged; download or build it again",
            ));
        }

        let path = norm.path.clone();
        let (kind, mode) = if norm.trailing_slash || file_type == S_IFDIR {
            let mode = match unix {
                Some(m) => self.widened(&path, m, true),
                None => modes::DEFAULT_DIR_MODE,
            };
            (EntryKind::Dir, mode)
        } else if file_type == S_IFLNK {
            let target = self.read_symlink_target(index, &shown)?;
            if paths::symlink_escapes(&path, &target) {
                self.warnings.push(Warning::symlink_outside(&path, &target));
            }
            (EntryKind::Symlink { target }, modes::SYMLINK_MODE)
        } else if file_type == S_IFREG || file_type == 0 {
            let mode = match unix {
                Some(m) => {
                    let mode = self.widened(&path, m, false);
                    if mode & 0o111 == 0 && modes::lambda_executes(&path) {
                        self.warnings.push(Warning::not_executable(&path));
                    }
                    mode
                }
                None => {
                    let head = self.peek(index, &shown)?;
                    if modes::must_be_executable(&path, &head) {
                        self.warnings.push(Warning::made_executable(&path));
                        modes::DEFAULT_EXEC_MODE
                    } else {
                        modes::DEFAULT_FILE_MODE
                    }
                }
            };
            self.declared_unzipped = self.declared_unzipped.saturating_add(size);
            (
                EntryKind::File {
                    index,
                    size,
                    crc32,
                    data,
                },
                mode,
            )
        } else {
            self.warnings
                .push(Warning::skipped_special(&path, file_type));
            return Ok(());
        };
        let entry = PlannedEntry {
            kind,
            mode,
            mtime,
            synthesized: false,
        };
        if let Some(previous) = self.entries.insert(path.clone(), entry) {
            if let EntryKind::File { size, .. } = previous.kind {
                self.declared_unzipped -= size.min(self.declared_unzipped);
            }
            if !self
                .warnings
                .iter()
                .any(|w| w.code == "duplicate" && w.path == path)
            {
                self.warnings.push(Warning::duplicate(&path));
            }
        }
        Ok(())
    }

    fn widened(&mut self, path: &str, unix: u32, is_dir: bool) -> u32 {
        let mode = modes::widen(unix, is_dir);
        if mode != unix & 0o7777 {
            self.warnings
                .push(Warning::mode_fixed(path, unix & 0o7777, mode));
        }
        mode
    }

    fn read_symlink_target(&mut self, index: usize, shown: &str) -> Result<String> {
        let zip_name = self.name.clone();
        let corrupt = |e: &dyn std::fmt::Display| {
            LayerError::bad_entry(
                &zip_name,
                shown,
                format!("is a symlink whose target cannot be read: {e}"),
                "the archive is damaged; download or build it again",
            )
        };
        let file = self.archive.by_index(index).map_err(|e| corrupt(&e))?;
        let mut target = Vec::new();
        file.take(MAX_SYMLINK_TARGET + 1)
            .read_to_end(&mut target)
            .map_err(|e| corrupt(&e))?;
        let target = String::from_utf8(target)
            .ok()
            .filter(|t| !t.is_empty() && !t.contains('\0') && t.len() as u64 <= MAX_SYMLINK_TARGET);
        target.ok_or_else(|| {
            LayerError::bad_entry(
                &zip_name,
                shown,
                "is a symlink with an empty, over-long or non-UTF-8 target",
                "recreate the symlink with a plain relative target",
            )
        })
    }

    /// The first bytes of a file, to spot scripts and ELF binaries in zips without unix modes.
    fn peek(&mut self, index: usize, shown: &str) -> Result<Vec<u8>> {
        let zip_name = self.name.clone();
        let file = self.archive.by_index(index).map_err(|e| {
            LayerError::bad_entry(
                &zip_name,
                shown,
                format!("cannot be read: {e}"),
                "the archive is damaged; download or build it again",
            )
        })?;
        let mut head = Vec::with_capacity(4);
        // A short read here is harmless: the full read later checks size and CRC.
        let _ = file.take(4).read_to_end(&mut head);
        Ok(head)
    }

    /// Within one zip, nothing may be written through a symlink, and a file cannot also be a directory.
    fn check_structure(&mut self) -> Result<()> {
        let mut missing = std::collections::BTreeSet::new();
        let mut total: usize = self.entries.keys().map(String::len).sum();
        for (path, _) in self.entries.iter() {
            for parent in paths::ancestors(path) {
                match self.entries.get(parent).map(|e| &e.kind) {
                    Some(EntryKind::Symlink { target }) => {
                        return Err(LayerError::bad_entry(
                            &self.name,
                            path,
                            format!(
                                "would be written through the symlink {parent:?} (→ {target:?}) of the same archive"
                            ),
                            "remove the entry or the symlink; layerport never writes through symlinks",
                        ));
                    }
                    Some(EntryKind::File { .. }) => {
                        return Err(LayerError::bad_entry(
                            &self.name,
                            path,
                            format!("is inside {parent:?}, which the same zip also has as a file"),
                            "remove one of the two entries",
                        ));
                    }
                    Some(EntryKind::Dir) => {}
                    None => {
                        if !missing.contains(parent) {
                            total += parent.len();
                            if total > MAX_TOTAL_PATH_BYTES {
                                return Err(LayerError::bad_entry(
                                    &self.name,
                                    &shown_name(path.as_bytes()),
                                    format!(
                                        "takes the zip's paths (with their parent directories) past {MAX_TOTAL_PATH_BYTES} bytes"
                                    ),
                                    "the zip nests too many entries too deeply to be a layer; rebuild it with a flatter tree",
                                ));
                            }
                            missing.insert(parent.to_string());
                        }
                    }
                }
            }
        }
        for parent in missing {
            self.entries.entry(parent).or_insert(PlannedEntry {
                kind: EntryKind::Dir,
                mode: modes::DEFAULT_DIR_MODE,
                mtime: SYNTHESIZED_MTIME,
                synthesized: true,
            });
        }
        Ok(())
    }

    /// Streams a file's inflated bytes into `out`, checking them against the declared size and
    /// CRC-32 and charging them to `budget`. Returns the number of bytes written.
    pub fn copy_file(
        &mut self,
        path: &str,
        index: usize,
        budget: &mut Budget,
        out: &mut dyn Write,
    ) -> Result<u64> {
        let zip_name = self.name.clone();
        let corrupt = |e: &dyn std::fmt::Display| {
            LayerError::bad_entry(
                &zip_name,
                path,
                format!("is corrupt: {e}"),
                "the archive is damaged; download or build it again",
            )
        };
        // We check the CRC ourselves (below) so it is computed once, and name the entry when it fails.
        let options = zip::ZipReadOptions::new().ignore_crc32(true);
        let mut file = self
            .archive
            .by_index_with_options(index, options)
            .map_err(|e| corrupt(&e))?;
        let declared = file.size();
        let expected_crc = file.crc32();
        let mut crc = crc32fast::Hasher::new();
        let mut written: u64 = 0;
        let mut buf = std::mem::take(&mut self.copy_buf);
        buf.resize(64 * 1024, 0);
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(if e.to_string().contains("larger than its declared") {
                        inflates_too_much(&zip_name, path, declared)
                    } else {
                        corrupt(&e)
                    });
                }
            };
            written += n as u64;
            budget.used += n as u64;
            if budget.used > budget.limit {
                return Err(LayerError::TooLarge {
                    zip: zip_name,
                    entry: path.to_string(),
                    limit: budget.limit,
                    seen: budget.used,
                });
            }
            if written > declared {
                return Err(inflates_too_much(&zip_name, path, declared));
            }
            crc.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(LayerError::WriteOutput)?;
        }
        if written != declared {
            return Err(size_mismatch(&zip_name, path, written, declared));
        }
        if crc.finalize() != expected_crc {
            return Err(crc_mismatch(&zip_name, path));
        }
        self.copy_buf = buf;
        Ok(written)
    }
}

/// Why a normalised path cannot exist on Linux: too long as a whole, or a name too long.
pub fn path_limit_problem(path: &str) -> Option<String> {
    if path.len() > MAX_PATH_BYTES {
        return Some(format!(
            "is a path of {} bytes, over the limit of {MAX_PATH_BYTES}",
            path.len()
        ));
    }
    path.split('/')
        .find(|c| c.len() > MAX_COMPONENT_BYTES)
        .map(|c| {
            format!(
                "has a name of {} bytes, over the limit of {MAX_COMPONENT_BYTES}",
                c.len()
            )
        })
}

/// An entry name for messages: lossy UTF-8, cut short (a hostile name can be 64 KB).
pub(crate) fn shown_name(raw: &[u8]) -> String {
    if raw.len() <= SHOWN_NAME_BYTES {
        return String::from_utf8_lossy(raw).into_owned();
    }
    format!(
        "{}… ({} bytes)",
        String::from_utf8_lossy(&raw[..SHOWN_NAME_BYTES]),
        raw.len()
    )
}

pub(crate) fn size_mismatch(zip: &str, path: &str, inflated: u64, declared: u64) -> LayerError {
    LayerError::bad_entry(
        zip,
        path,
        format!("inflates to {inflated} bytes but declares {declared}"),
        "the archive is truncated or damaged; download or build it again",
    )
}

pub(crate) fn crc_mismatch(zip: &str, path: &str) -> LayerError {
    LayerError::bad_entry(
        zip,
        path,
        "fails its CRC-32 check",
        "the archive is damaged; download or build it again",
    )
}

pub(crate) fn inflates_too_much(zip: &str, path: &str, declared: u64) -> LayerError {
    LayerError::bad_entry(
        zip,
        path,
        format!("inflates to more than its declared {declared} bytes"),
        "the zip's headers do not match its data (a damaged archive or a zip bomb); do not use it",
    )
}

/// Opens the archive, and when that fails, again with the archive known to start at offset 0:
/// zip 9.4 misplaces the central directory of some valid zip64 archives (Python's zipfile writes
/// them when the first central header is exactly as long as the zip64 end records).
fn open_archive<R: Read + Seek>(
    reader: SharedReader<R>,
) -> zip::result::ZipResult<ZipArchive<SharedReader<R>>> {
    match ZipArchive::new(reader.clone()) {
        Ok(archive) => Ok(archive),
        Err(first) => {
            let config = zip::read::Config {
                archive_offset: zip::read::ArchiveOffset::Known(0),
            };
            ZipArchive::with_config(config, reader).map_err(|_| first)
        }
    }
}

/// A reader the zip crate can be given twice: a failed open keeps the one it was given.
pub struct SharedReader<R>(Arc<Mutex<R>>);

impl<R> Clone for SharedReader<R> {
    fn clone(&self) -> Self {
        SharedReader(Arc::clone(&self.0))
    }
}

impl<R: Read> Read for SharedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.lock().expect("no panics while locked").read(buf)
    }
}

impl<R: Seek> Seek for SharedReader<R> {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        self.0.lock().expect("no panics while locked").seek(pos)
    }
}

fn unix_mode<R: Read + ?Sized>(file: &zip::read::ZipFile<'_, R>) -> Option<u32> {
    if file.system() != zip::System::Unix {
        return None;
    }
    let mode = file.external_attributes() >> 16;
    (mode != 0).then_some(mode)
}

/// The entry's own mtime: the extended-timestamp field when present, else the DOS time read as UTC.
fn entry_mtime<R: Read>(file: &zip::read::ZipFile<'_, R>) -> u64 {
    for field in file.extra_data_fields() {
        if let zip::ExtraField::ExtendedTimestamp(ts) = field
            && let Some(t) = ts.mod_time()
        {
            return u64::from(t);
        }
    }
    match file.last_modified() {
        Some(dt) => dos_to_epoch(
            dt.year().into(),
            dt.month().into(),
            dt.day().into(),
            dt.hour().into(),
            dt.minute().into(),
            dt.second().into(),
        ),
        None => SYNTHESIZED_MTIME,
    }
}

/// Seconds since the epoch of a civil UTC date (Howard Hinnant's days-from-civil).
pub fn dos_to_epoch(y: i64, m: i64, d: i64, hh: i64, mm: i64, ss: i64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (days * 86_400 + hh * 3600 + mm * 60 + ss).max(0) as u64
}

/// Names that occur more than once in the central directory (the zip crate keeps only the last).
fn duplicate_names<R: Read + Seek>(reader: &mut R, start: u64) -> Vec<Vec<u8>> {
    let mut seen = std::collections::BTreeSet::new();
    let mut dups = std::collections::BTreeSet::new();
    if reader.seek(io::SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut fixed = [0u8; 46];
    while reader.read_exact(&mut fixed).is_ok() && fixed[..4] == [0x50, 0x4b, 0x01, 0x02] {
        let name_len = u16::from_le_bytes([fixed[28], fixed[29]]) as usize;
        let extra_len = u16::from_le_bytes([fixed[30], fixed[31]]) as i64;
        let comment_len = u16::from_le_bytes([fixed[32], fixed[33]]) as i64;
        let mut name = vec![0u8; name_len];
        if reader.read_exact(&mut name).is_err()
            || reader
                .seek(io::SeekFrom::Current(extra_len + comment_len))
                .is_err()
        {
            break;
        }
        if !seen.insert(name.clone()) {
            dups.insert(name);
        }
    }
    dups.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A zip of one stored entry, with its declared compressed size (local and central header)
    /// replaced by `compressed`.
    fn stored_zip_declaring(compressed: u32) -> Vec<u8> {
        let mut zw = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        let opts =
            zip::write::SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
        zw.start_file("data.bin", opts).unwrap();
        zw.write_all(&[7u8; 100]).unwrap();
        let mut bytes = zw.finish().unwrap().into_inner();
        let at = |sig: &[u8; 4]| bytes.windows(4).position(|w| w == sig).unwrap();
        let (local, central) = (at(b"PK\x03\x04"), at(b"PK\x01\x02"));
        bytes[local + 18..local + 22].copy_from_slice(&compressed.to_le_bytes());
        bytes[central + 20..central + 24].copy_from_slice(&compressed.to_le_bytes());
        bytes
    }

    #[test]
    fn entries_whose_declared_data_does_not_fit_are_refused() {
        let open = |bytes: Vec<u8>| ZipLayer::open("t.zip", io::Cursor::new(bytes), u64::MAX);
        assert!(open(stored_zip_declaring(100)).is_ok());
        for (compressed, says) in [
            (99, "declares 100 bytes and 99 bytes of data"),
            (u32::MAX, "past the end of the zip"),
        ] {
            let err = open(stored_zip_declaring(compressed)).err().unwrap();
            let text = err.to_string();
            assert!(
                matches!(&err, LayerError::BadEntry { entry, .. } if entry == "data.bin"),
                "{text}"
            );
            assert!(text.contains(says) && text.contains("hint:"), "{text}");
        }
    }

    #[test]
    fn dos_time_is_read_as_utc() {
        assert_eq!(dos_to_epoch(1980, 1, 1, 0, 0, 0), 315_532_800);
        assert_eq!(dos_to_epoch(2024, 1, 2, 3, 4, 6), 1_704_164_646);
        assert_eq!(dos_to_epoch(2000, 2, 29, 12, 0, 0), 951_825_600);
    }
}
