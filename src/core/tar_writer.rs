//! A minimal, deterministic POSIX tar writer: ustar headers, PAX records only for what ustar cannot
//! hold, uid/gid 0 and no user names — so the same entries always give the same bytes.

use std::io::{self, Write};

const BLOCK: usize = 512;

/// What a header describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TarKind {
    File,
    Dir,
    Symlink,
}

pub struct TarWriter<W: Write> {
    out: W,
    /// Bytes of the current file still expected, and its padding.
    pending: u64,
    padding: usize,
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W) -> Self {
        TarWriter {
            out,
            pending: 0,
            padding: 0,
        }
    }

    pub fn dir(&mut self, path: &str, mode: u32, mtime: u64) -> io::Result<()> {
        write_header(
            &mut self.out,
            &dir_name(path),
            TarKind::Dir,
            mode,
            mtime,
            0,
            "",
        )
    }

    pub fn symlink(&mut self, path: &str, target: &str, mtime: u64) -> io::Result<()> {
        write_header(
            &mut self.out,
            path,
            TarKind::Symlink,
            0o777,
            mtime,
            0,
            target,
        )
    }

    /// Writes a file header; the caller then writes exactly `size` bytes with `write_data` and
    /// calls `end_file`.
    pub fn begin_file(&mut self, path: &str, mode: u32, mtime: u64, size: u64) -> io::Result<()> {
        write_header(&mut self.out, path, TarKind::File, mode, mtime, size, "")?;
        self.pending = size;
        self.padding = pad_len(size);
        Ok(())
    }

    pub fn end_file(&mut self) -> io::Result<()> {
        if self.pending != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("tar entry is {} bytes short", self.pending),
            ));
        }
        let zeros = [0u8; BLOCK];
        self.out.write_all(&zeros[..self.padding])?;
        self.padding = 0;
        Ok(())
    }

    /// Writes the end-of-archive marker (two zero blocks) and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0u8; BLOCK * 2])?;
        Ok(self.out)
    }
}

/// Bytes of the end-of-archive marker (two zero blocks).
pub const END_OF_ARCHIVE: usize = BLOCK * 2;

/// Writes one entry's header (a PAX extended header first, when ustar cannot hold the entry).
pub fn write_header<W: Write + ?Sized>(
    out: &mut W,
    name: &str,
    kind: TarKind,
    mode: u32,
    mtime: u64,
    size: u64,
    link: &str,
) -> io::Result<()> {
    let mut pax = Vec::new();
    let (ustar_name, ustar_prefix) = match split_ustar_name(name) {
        Some(parts) => parts,
        None => {
            pax_record(&mut pax, "path", name);
            (truncate_utf8(name, 100), "")
        }
    };
    if link.len() > 100 {
        pax_record(&mut pax, "linkpath", link);
    }
    if size >= 0o77777777777 {
        pax_record(&mut pax, "size", &size.to_string());
    }
    if !pax.is_empty() {
        let mut ext = [0u8; BLOCK];
        fill_header(
            &mut ext,
            "././@PaxHeader",
            "",
            b'x',
            0o644,
            0,
            pax.len() as u64,
            "",
        );
        out.write_all(&ext)?;
        out.write_all(&pax)?;
        out.write_all(&[0u8; BLOCK][..pad_len(pax.len() as u64)])?;
    }
    let type_flag = match kind {
        TarKind::File => b'0',
        TarKind::Dir => b'5',
        TarKind::Symlink => b'2',
    };
    let mut block = [0u8; BLOCK];
    let shown_size = if size >= 0o77777777777 { 0 } else { size };
    fill_header(
        &mut block,
        ustar_name,
        ustar_prefix,
        type_flag,
        mode,
        mtime,
        shown_size,
        truncate_utf8(link, 100),
    );
    out.write_all(&block)
}

impl<W: Write> Write for TarWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.pending {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "tar entry data longer than its header says",
            ));
        }
        let n = self.out.write(buf)?;
        self.pending -= n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// A directory's name in a tar header: with one trailing slash.
pub fn dir_name(path: &str) -> String {
    format!("{}/", path.trim_end_matches('/'))
}

/// Zero bytes that pad `size` bytes of data to a whole block.
pub fn pad_len(size: u64) -> usize {
    ((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64) as usize
}

/// Splits a path into ustar's `name` (≤100 bytes) and `prefix` (≤155 bytes) at a `/`, if it fits.
fn split_ustar_name(name: &str) -> Option<(&str, &str)> {
    if name.len() <= 100 {
        return Some((name, ""));
    }
    let bytes = name.as_bytes();
    // The prefix takes as much as it can; the name keeps the rest.
    let lowest = name.len().saturating_sub(101);
    for i in (lowest..bytes.len().min(156)).rev() {
        if bytes[i] == b'/' && i <= 155 && name.len() - i - 1 <= 100 && i > 0 {
            return Some((&name[i + 1..], &name[..i]));
        }
    }
    None
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// One PAX record: "<len> <key>=<value>\n" where len counts the whole record, itself included.
fn pax_record(out: &mut Vec<u8>, key: &str, value: &str) {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while (body + len.to_string().len()) != len {
        len = body + len.to_string().len();
    }
    out.extend_from_slice(format!("{len} {key}={value}\n").as_bytes());
}

#[allow(clippy::too_many_arguments)]
fn fill_header(
    block: &mut [u8; BLOCK],
    name: &str,
    prefix: &str,
    type_flag: u8,
    mode: u32,
    mtime: u64,
    size: u64,
    link: &str,
) {
    block[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut block[100..108], u64::from(mode));
    octal(&mut block[108..116], 0);
    octal(&mut block[116..124], 0);
    octal(&mut block[124..136], size);
    octal(&mut block[136..148], mtime.min(0o77777777777));
    block[156] = type_flag;
    block[157..157 + link.len()].copy_from_slice(link.as_bytes());
    block[257..263].copy_from_slice(b"ustar\0");
    block[263..265].copy_from_slice(b"00");
    octal(&mut block[329..337], 0);
    octal(&mut block[337..345], 0);
    block[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
    block[148..156].fill(b' ');
    let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
    let digits = format!("{sum:06o}\0 ");
    block[148..156].copy_from_slice(digits.as_bytes());
}

/// Zero-padded octal with a trailing NUL, filling the field.
fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let text = format!("{value:0width$o}");
    field[..width].copy_from_slice(&text.as_bytes()[text.len() - width..]);
    field[width] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// path, type, mode, mtime, link target, data
    type ReadEntry = (String, tar::EntryType, u32, u64, Option<String>, Vec<u8>);

    fn read_back(bytes: &[u8]) -> Vec<ReadEntry> {
        let mut archive = tar::Archive::new(bytes);
        let mut out = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let h = entry.header().clone();
            let link = entry
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned());
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            out.push((
                path,
                h.entry_type(),
                h.mode().unwrap(),
                h.mtime().unwrap(),
                link,
                data,
            ));
        }
        out
    }

    #[test]
    fn writes_entries_the_tar_crate_reads_back() {
        let mut w = TarWriter::new(Vec::new());
        w.dir("opt", 0o755, 1).unwrap();
        w.begin_file("opt/a.txt", 0o644, 2, 5).unwrap();
        w.write_all(b"hello").unwrap();
        w.end_file().unwrap();
        w.symlink("opt/link", "a.txt", 3).unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(bytes.len() % 512, 0);
        let entries = read_back(&bytes);
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].0, "opt/");
        assert_eq!(entries[0].1, tar::EntryType::Directory);
        assert_eq!(entries[1].5, b"hello");
        assert_eq!(entries[1].2, 0o644);
        assert_eq!(entries[2].4.as_deref(), Some("a.txt"));
        assert_eq!(entries[2].3, 3);
    }

    #[test]
    fn long_names_use_prefix_or_pax() {
        let medium = format!("opt/{}/{}", "d".repeat(120), "f".repeat(90));
        let long = format!("opt/{}", "x".repeat(300));
        let long_target = "../".repeat(40) + "target";
        let mut w = TarWriter::new(Vec::new());
        for p in [&medium, &long] {
            w.begin_file(p, 0o644, 0, 1).unwrap();
            w.write_all(b"z").unwrap();
            w.end_file().unwrap();
        }
        w.symlink("opt/l", &long_target, 0).unwrap();
        let entries = read_back(&w.finish().unwrap());
        assert_eq!(entries[0].0, medium);
        assert_eq!(entries[1].0, long);
        assert_eq!(entries[2].4.as_deref(), Some(long_target.as_str()));
    }

    #[test]
    fn refuses_data_beyond_the_header_size() {
        let mut w = TarWriter::new(Vec::new());
        w.begin_file("a", 0o644, 0, 2).unwrap();
        assert!(w.write_all(b"abc").is_err());
    }

    #[test]
    fn pax_record_length_counts_itself() {
        let mut v = Vec::new();
        pax_record(&mut v, "path", "abc");
        assert_eq!(v, b"12 path=abc\n");
        let mut v = Vec::new();
        pax_record(&mut v, "path", &"a".repeat(93));
        assert_eq!(v.len(), 103);
        assert!(v.starts_with(b"103 "));
    }
}
