//! Unit tests of the zip writer, read back with the `zip` crate (an independent reader).

use super::pieces::PIECE;
use super::*;
use std::io::Cursor;

struct Contents(Vec<Vec<u8>>);

impl ContentSource for Contents {
    fn open(&self, index: usize) -> io::Result<Box<dyn Read + '_>> {
        Ok(Box::new(&self.0[index][..]))
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
        (
            "bin/tool",
            EntryKind::File { size: 0 },
            0o4755,
            b"#!/bin/sh\necho hi\n".to_vec(),
        ),
        ("data", EntryKind::Dir, 0o700, vec![]),
        ("data/empty", EntryKind::File { size: 0 }, 0o600, vec![]),
        (
            "data/noise",
            EntryKind::File { size: 0 },
            0o644,
            noise(3 << 20, 256, 7),
        ),
        (
            "data/text",
            EntryKind::File { size: 0 },
            0o644,
            noise(4 << 20, 16, 9),
        ),
        (
            "link",
            EntryKind::Symlink {
                target: "bin/tool".into(),
            },
            0o777,
            vec![],
        ),
        (
            "ünï",
            EntryKind::File { size: 0 },
            0o644,
            b"utf-8 name".to_vec(),
        ),
    ];
    let mut entries = Vec::new();
    let mut contents = Vec::new();
    for (name, kind, mode, data) in files {
        let kind = match kind {
            EntryKind::File { .. } => EntryKind::File {
                size: data.len() as u64,
            },
            k => k,
        };
        entries.push(ZipEntry {
            name: name.into(),
            kind,
            mode,
        });
        contents.push(data);
    }
    (entries, Contents(contents))
}

fn write(entries: &[ZipEntry], contents: &Contents, threads: usize) -> (Vec<u8>, ZipSummary) {
    let scratch = tempfile::tempdir().unwrap();
    let opts = ZipOptions {
        threads,
        time: DosTime::MIN,
        scratch: scratch.path().to_path_buf(),
    };
    let (out, summary) = write_zip(Vec::new(), entries, contents, &opts).unwrap();
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
            EntryKind::File { .. } => {
                assert_eq!(f.name().unwrap(), entry.name);
                assert_eq!(mode, 0o100000 | (entry.mode & 0o777), "{}", entry.name);
                let mut data = Vec::new();
                f.read_to_end(&mut data).unwrap();
                assert_eq!(data, contents.0[i], "{}", entry.name);
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
    // Incompressible data is stored, compressible data deflated (and spilled past 1 MiB).
    assert_eq!(
        zip.by_name("data/noise").unwrap().compression(),
        zip::CompressionMethod::Stored
    );
    let text = zip.by_name("data/text").unwrap();
    assert_eq!(text.compression(), zip::CompressionMethod::Deflated);
    assert!(
        text.compressed_size() > SPILL_THRESHOLD as u64,
        "{}",
        text.compressed_size()
    );
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
    let entries: Vec<ZipEntry> = (0..n)
        .map(|i| ZipEntry {
            name: format!("f{i:06}"),
            kind: EntryKind::File { size: 1 },
            mode: 0o644,
        })
        .collect();
    let contents = Contents(vec![b"x".to_vec(); n]);
    let (bytes, summary) = write(&entries, &contents, 2);
    assert_eq!(summary.entries, n);
    let zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    assert_eq!(zip.len(), n);
}

#[test]
fn a_short_read_is_an_error_naming_the_entry() {
    let entries = vec![ZipEntry {
        name: "f".into(),
        kind: EntryKind::File { size: 5 },
        mode: 0o644,
    }];
    let scratch = tempfile::tempdir().unwrap();
    let opts = ZipOptions {
        threads: 2,
        time: DosTime::MIN,
        scratch: scratch.path().to_path_buf(),
    };
    let err = write_zip(
        Vec::new(),
        &entries,
        &Contents(vec![b"abc".to_vec()]),
        &opts,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("\"f\"") && err.to_string().contains("read 3 bytes"),
        "{err}"
    );
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
    let entries: Vec<ZipEntry> = files
        .iter()
        .enumerate()
        .map(|(i, f)| ZipEntry {
            name: format!("f{i}"),
            kind: EntryKind::File {
                size: f.len() as u64,
            },
            mode: 0o644,
        })
        .collect();
    let contents = Contents(files);
    let (bytes, _) = write(&entries, &contents, 2);
    assert!(write(&entries, &contents, 1).0 == bytes);
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    for (i, expected) in contents.0.iter().enumerate() {
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
