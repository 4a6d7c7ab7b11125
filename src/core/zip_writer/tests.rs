//! Unit tests of the zip writer, read back with the `zip` crate (an independent reader).

use super::compressor::PIECE;
use super::*;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::Cursor;

/// File contents laid out one after another in a temporary file, as the spool holds them.
struct Contents {
    files: Vec<Vec<u8>>,
    file: File,
    scratch: tempfile::TempDir,
}

impl Contents {
    fn new() -> Self {
        let scratch = tempfile::tempdir().unwrap();
        Contents {
            files: Vec::new(),
            file: tempfile::tempfile_in(scratch.path()).unwrap(),
            scratch,
        }
    }

    /// Appends `data` and says where it is.
    fn add(&mut self, data: Vec<u8>) -> Content {
        let offset = self.file.metadata().unwrap().len();
        self.file.write_all(&data).unwrap();
        let content = Content {
            offset,
            len: data.len() as u64,
        };
        self.files.push(data);
        content
    }

    /// The bytes added at `content`.
    fn bytes(&self, content: Content) -> &[u8] {
        let mut offset = 0;
        for data in &self.files {
            if offset == content.offset && data.len() as u64 == content.len {
                return data;
            }
            offset += data.len() as u64;
        }
        panic!("no file was added at {content:?}");
    }

    fn compressor(&self) -> Compressor {
        Compressor::new(self.file.try_clone().unwrap(), self.scratch.path()).unwrap()
    }
}

/// Deterministic bytes: `alphabet` distinct values (2..=256) from a xorshift stream.
fn noise(len: usize, alphabet: u32, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 32) as u32 % alphabet) as u8
        })
        .collect()
}

fn sample() -> (Vec<ZipEntry>, Contents) {
    let files: Vec<(&str, EntryKind, u32, Vec<u8>)> = vec![
        ("bin", EntryKind::Dir, 0o755, vec![]),
        ("bin/tool", FILE, 0o4755, b"#!/bin/sh\necho hi\n".to_vec()),
        ("data", EntryKind::Dir, 0o700, vec![]),
        ("data/empty", FILE, 0o600, vec![]),
        ("data/noise", FILE, 0o644, noise(3 << 20, 256, 7)),
        ("data/text", FILE, 0o644, noise(4 << 20, 16, 9)),
        (
            "link",
            EntryKind::Symlink {
                target: "bin/tool".into(),
            },
            0o777,
            vec![],
        ),
        ("ünï", FILE, 0o644, b"utf-8 name".to_vec()),
    ];
    let mut entries = Vec::new();
    let mut contents = Contents::new();
    for (name, kind, mode, data) in files {
        let kind = match kind {
            EntryKind::File(_) => EntryKind::File(contents.add(data)),
            k => k,
        };
        entries.push(ZipEntry {
            name: name.into(),
            kind,
            mode,
        });
    }
    (entries, contents)
}

/// A placeholder for a file in `sample`'s table, replaced by where its bytes are.
const FILE: EntryKind = EntryKind::File(Content { offset: 0, len: 0 });

fn write(entries: &[ZipEntry], contents: &Contents, threads: usize) -> (Vec<u8>, ZipSummary) {
    write_with(entries, &mut contents.compressor(), threads)
}

fn write_with(
    entries: &[ZipEntry],
    compressor: &mut Compressor,
    threads: usize,
) -> (Vec<u8>, ZipSummary) {
    let opts = ZipOptions {
        threads,
        time: DosTime::MIN,
    };
    let (out, summary) = write_zip(Vec::new(), entries, compressor, &opts).unwrap();
    assert_eq!(summary.size, out.len() as u64);
    assert_eq!(summary.sha256, <[u8; 32]>::from(Sha256::digest(&out)));
    (out, summary)
}

#[test]
fn round_trips_through_an_independent_reader() {
    let (entries, contents) = sample();
    let (bytes, summary) = write(&entries, &contents, 3);
    assert_eq!(summary.entries, entries.len());
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    assert_eq!(zip.len(), entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let mut f = zip.by_index(i).unwrap();
        let mode = f.unix_mode().unwrap();
        match &entry.kind {
            EntryKind::Dir => {
                assert!(f.is_dir(), "{}", entry.name);
                assert_eq!(f.name().unwrap(), format!("{}/", entry.name));
                assert_eq!(mode, 0o040000 | (entry.mode & 0o777));
            }
            EntryKind::File(content) => {
                assert_eq!(f.name().unwrap(), entry.name);
                assert_eq!(mode, 0o100000 | (entry.mode & 0o777), "{}", entry.name);
                let mut data = Vec::new();
                f.read_to_end(&mut data).unwrap();
                assert_eq!(data, contents.bytes(*content), "{}", entry.name);
            }
            EntryKind::Symlink { target } => {
                assert_eq!(mode, 0o120777);
                let mut data = String::new();
                f.read_to_string(&mut data).unwrap();
                assert_eq!(&data, target);
            }
        }
        let t = f.last_modified().unwrap();
        assert_eq!(
            (t.year(), t.month(), t.day(), t.hour(), t.minute()),
            (1980, 1, 1, 0, 0)
        );
    }
    // Incompressible data is stored, compressible data deflated (over several pieces).
    assert_eq!(
        zip.by_name("data/noise").unwrap().compression(),
        zip::CompressionMethod::Stored
    );
    let text = zip.by_name("data/text").unwrap();
    assert_eq!(text.compression(), zip::CompressionMethod::Deflated);
    assert!(text.compressed_size() > PIECE, "{}", text.compressed_size());
}

#[test]
fn the_thread_count_does_not_change_a_byte() {
    let (entries, contents) = sample();
    let (one, _) = write(&entries, &contents, 1);
    for threads in [2, 5, 16] {
        assert!(
            write(&entries, &contents, threads).0 == one,
            "{threads} threads differ"
        );
    }
}

#[test]
fn many_entries_get_a_zip64_end_record() {
    let n = 70_000;
    let mut contents = Contents::new();
    let x = contents.add(b"x".to_vec());
    // All entries share one content, as hardlinked copies do: it is compressed once.
    let entries: Vec<ZipEntry> = (0..n)
        .map(|i| ZipEntry {
            name: format!("f{i:06}"),
            kind: EntryKind::File(x),
            mode: 0o644,
        })
        .collect();
    let (bytes, summary) = write(&entries, &contents, 2);
    assert_eq!(summary.entries, n);
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    assert_eq!(zip.len(), n);
    let mut last = String::new();
    zip.by_index(n - 1)
        .unwrap()
        .read_to_string(&mut last)
        .unwrap();
    assert_eq!(last, "x");
}

#[test]
fn a_short_read_is_an_error_naming_the_entry() {
    let mut contents = Contents::new();
    let mut content = contents.add(b"abc".to_vec());
    content.len = 5;
    let entries = vec![ZipEntry {
        name: "f".into(),
        kind: EntryKind::File(content),
        mode: 0o644,
    }];
    let opts = ZipOptions {
        threads: 2,
        time: DosTime::MIN,
    };
    let err = write_zip(Vec::new(), &entries, &mut contents.compressor(), &opts).unwrap_err();
    assert!(
        err.to_string().contains("\"f\"") && err.to_string().contains("read 3 of the 5 bytes"),
        "{err}"
    );
}

#[test]
fn contents_compressed_before_the_entries_are_known_give_the_same_zip() {
    let (entries, mut contents) = sample();
    let (plain, _) = write(&entries, &contents, 2);
    // As while layers are applied: contents are submitted as they arrive, some of them for
    // nothing (a later layer replaces them), on fewer threads than the zip is then written with.
    let replaced = contents.add(noise(300_000, 7, 11));
    let mut early = contents.compressor();
    early.grow_to(1).unwrap();
    early.submit(replaced);
    for entry in entries.iter().rev() {
        if let EntryKind::File(content) = entry.kind {
            early.submit(content);
        }
    }
    let (speculated, _) = write_with(&entries, &mut early, 3);
    assert!(speculated == plain);
}

#[test]
fn dos_times() {
    assert_eq!(DosTime::from_unix(0), DosTime::MIN);
    assert_eq!(DosTime::from_unix(315_532_800), DosTime::MIN);
    // 2024-01-02 03:04:05 UTC: seconds round down to an even number.
    let t = DosTime::from_unix(1_704_164_645);
    assert_eq!(t.date, (44 << 9) | (1 << 5) | 2);
    assert_eq!(t.time, (3 << 11) | (4 << 5) | 2);
    assert_eq!(DosTime::from_unix(u64::MAX / 2).date >> 9, 127);
}

#[test]
fn large_files_compressed_in_pieces_read_back_and_keep_their_context() {
    // A 30 KiB random block repeated: every piece after the first finds it in its dictionary.
    let block = noise(30 * 1024, 256, 3);
    let repeated: Vec<u8> = block.iter().copied().cycle().take(3 << 20).collect();
    let sizes = [PIECE as usize, PIECE as usize + 1, 2 * PIECE as usize];
    let mut files = vec![repeated.clone()];
    files.extend(sizes.iter().map(|&n| noise(n, 16, n as u64)));
    let mut contents = Contents::new();
    let entries: Vec<ZipEntry> = files
        .iter()
        .enumerate()
        .map(|(i, f)| ZipEntry {
            name: format!("f{i}"),
            kind: EntryKind::File(contents.add(f.clone())),
            mode: 0o644,
        })
        .collect();
    let (bytes, _) = write(&entries, &contents, 2);
    assert!(write(&entries, &contents, 1).0 == bytes);
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    for (i, expected) in files.iter().enumerate() {
        let mut f = zip.by_index(i).unwrap();
        let mut data = Vec::new();
        f.read_to_end(&mut data).unwrap();
        assert!(data == *expected, "f{i}");
    }
    // Each 1 MiB piece costs about 12 KB of matches; without the previous piece as its dictionary,
    // each would also pay for the 30 KiB block as literals again (about 125 KB in all, not 65).
    let compressed = zip.by_name("f0").unwrap().compressed_size();
    assert!(compressed < 3 * block.len() as u64, "{compressed}");
}
