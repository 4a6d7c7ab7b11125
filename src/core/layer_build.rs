//! Writes a layer tree as an OCI tar+gzip blob: plans the tar stream as jobs (deflate entries spliced
//! as they are, everything else compressed fresh) for `layer_gzip`, which also computes the blob
//! digest and the diff_id (sha256 of the uncompressed tar) in the same pass.

use std::io::Write;
use std::sync::Arc;

use crate::core::error::Result;
use crate::core::layer_gzip::{
    EntryRef, FRESH_JOB_BYTES, HeaderSpec, Job, LayerDigests, Piece, Source, write_gzip,
};
use crate::core::layer_tree::LayerTree;
use crate::core::layer_zip::{EntryKind, SYNTHESIZED_MTIME, ZipMethod};
use crate::core::tar_writer::{END_OF_ARCHIVE, TarKind, dir_name, pad_len};

#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Where the layer's root lands in the image, without slashes at the ends (`opt`, `var/task`).
    pub prefix: String,
    /// `SOURCE_DATE_EPOCH`: when set, every entry gets this mtime.
    pub mtime_override: Option<u64>,
    /// Refuse an input zip that inflates to more than this.
    pub max_unzipped: u64,
    /// Level for fresh compression (tar headers, stored entries, and everything under `recompress`).
    pub gzip_level: u32,
    /// Compress every entry fresh instead of splicing deflate entries' own streams.
    pub recompress: bool,
    /// Compression threads (at least 1); the output does not depend on it.
    pub threads: usize,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            prefix: "opt".into(),
            mtime_override: None,
            max_unzipped: crate::core::layer_zip::LAMBDA_UNZIPPED_LIMIT,
            gzip_level: 6,
            recompress: false,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// Writes `tree` (data read from `sources[entry.source]`) as a gzip-compressed tar into `out`.
pub fn write_layer<W: Write>(
    sources: &[Source],
    tree: &LayerTree,
    opts: &BuildOptions,
    out: W,
) -> Result<(W, LayerDigests)> {
    let jobs = plan_jobs(tree, opts);
    write_gzip(&jobs, sources, opts.threads, opts.gzip_level, out)
}

/// Cuts the layer's tar stream into jobs. The cut points depend only on the tree and the options,
/// which is what makes the output independent of the thread count.
pub fn plan_jobs(tree: &LayerTree, opts: &BuildOptions) -> Vec<Job> {
    let mut plan = Planner {
        jobs: Vec::new(),
        fresh: Vec::new(),
        fresh_bytes: 0,
        unpacks: 0,
    };
    let synthesized_mtime = opts.mtime_override.unwrap_or(SYNTHESIZED_MTIME);
    let mut prefix_path = String::new();
    for part in opts.prefix.split('/') {
        if !prefix_path.is_empty() {
            prefix_path.push('/');
        }
        prefix_path.push_str(part);
        plan.header(
            dir_name(&prefix_path),
            TarKind::Dir,
            0o755,
            synthesized_mtime,
            0,
            "",
        );
    }
    for (path, item) in tree {
        let full = format!("{prefix_path}/{path}");
        let entry = &item.entry;
        let mtime = opts.mtime_override.unwrap_or(entry.mtime);
        match &entry.kind {
            EntryKind::Dir => plan.header(dir_name(&full), TarKind::Dir, entry.mode, mtime, 0, ""),
            EntryKind::Symlink { target } => {
                plan.header(full, TarKind::Symlink, 0o777, mtime, 0, target)
            }
            EntryKind::File {
                size, crc32, data, ..
            } => {
                plan.header(full, TarKind::File, entry.mode, mtime, *size, "");
                let entry = EntryRef {
                    source: item.source,
                    path: Arc::from(path.as_str()),
                    data: *data,
                    size: *size,
                    crc32: *crc32,
                };
                plan.content(entry, opts.recompress);
                plan.zeros(pad_len(*size));
            }
        }
    }
    plan.zeros(END_OF_ARCHIVE);
    plan.cut();
    plan.jobs
}

struct Planner {
    jobs: Vec<Job>,
    fresh: Vec<Piece>,
    fresh_bytes: u64,
    /// Unpack jobs planned so far.
    unpacks: usize,
}

impl Planner {
    fn push(&mut self, piece: Piece, len: u64) {
        self.fresh.push(piece);
        self.fresh_bytes += len;
        if self.fresh_bytes >= FRESH_JOB_BYTES {
            self.cut();
        }
    }

    /// Ends the current fresh job.
    fn cut(&mut self) {
        if !self.fresh.is_empty() {
            self.jobs.push(Job::Fresh(std::mem::take(&mut self.fresh)));
        }
        self.fresh_bytes = 0;
    }

    fn header(
        &mut self,
        name: String,
        kind: TarKind,
        mode: u32,
        mtime: u64,
        size: u64,
        link: &str,
    ) {
        let spec = HeaderSpec {
            name,
            kind,
            mode,
            mtime,
            size,
            link: link.to_string(),
        };
        self.push(Piece::Header(Box::new(spec)), 512);
    }

    fn zeros(&mut self, n: usize) {
        if n > 0 {
            self.push(Piece::Zeros(n), n as u64);
        }
    }

    fn content(&mut self, entry: EntryRef, recompress: bool) {
        match entry.data.method {
            ZipMethod::Deflated if !recompress && entry.size > 0 => {
                self.cut();
                self.jobs.push(Job::Splice(entry));
            }
            ZipMethod::Stored => {
                // Stored data is read by position, so a large file can span several jobs.
                self.span(entry.size, |offset, len| Piece::Stored {
                    entry: entry.clone(),
                    offset,
                    len,
                });
            }
            _ if entry.size > FRESH_JOB_BYTES => {
                // Inflated once, into a scratch file, by a job of its own; other jobs compress it.
                let slot = self.unpacks;
                self.unpacks += 1;
                self.cut();
                self.jobs.push(Job::Unpack {
                    entry: entry.clone(),
                    slot,
                });
                self.span(entry.size, |offset, len| Piece::Unpacked {
                    entry: entry.clone(),
                    slot,
                    offset,
                    len,
                });
            }
            _ => {
                let size = entry.size;
                self.push(Piece::Inflate(entry), size);
            }
        }
    }

    /// Adds `size` bytes as pieces `piece(offset, len)` that fill the current fresh job and then
    /// as many more as they need.
    fn span(&mut self, size: u64, piece: impl Fn(u64, u64) -> Piece) {
        let mut offset = 0;
        loop {
            let room = FRESH_JOB_BYTES - self.fresh_bytes;
            let len = room.min(size - offset);
            self.push(piece(offset, len), len);
            offset += len;
            if offset == size {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufReader, Read, Seek, SeekFrom};

    use zip::write::SimpleFileOptions;
    use zip::{CompressionMethod, ZipWriter};

    use super::*;
    use crate::core::digest::Digest;
    use crate::core::error::LayerError;
    use crate::core::layer_tree;
    use crate::core::layer_zip::ZipLayer;

    const BIG: usize = 3 * 1024 * 1024 + 123;

    fn content(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| ((i / 7) as u8).wrapping_mul(seed) ^ (i % 251) as u8)
            .collect()
    }

    /// A zip with a stored file that spans several fresh jobs, deflated files and an empty one.
    fn sample_zip() -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut zw = ZipWriter::new(file.reopen().unwrap());
        let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
        let deflated = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
        zw.start_file("big.bin", stored).unwrap();
        zw.write_all(&content(BIG, 3)).unwrap();
        for i in 0..20u8 {
            zw.start_file(format!("lib/m{i}.py"), deflated).unwrap();
            zw.write_all(&content(1000 + 5000 * i as usize, i)).unwrap();
        }
        // Big enough to be inflated by an unpack job of its own under --recompress.
        zw.start_file("lib/big.so", deflated).unwrap();
        zw.write_all(&content(BIG, 5)).unwrap();
        zw.start_file("empty", deflated).unwrap();
        zw.finish().unwrap();
        file
    }

    fn tree_of(zip: &std::path::Path) -> LayerTree {
        let file = std::fs::File::open(zip).unwrap();
        let layer = ZipLayer::open("sample.zip", BufReader::new(file), u64::MAX).unwrap();
        layer_tree::single(0, &layer.entries)
    }

    fn build(zip: &std::path::Path, opts: &BuildOptions) -> Result<(Vec<u8>, LayerDigests)> {
        let file = std::fs::File::open(zip).unwrap();
        let layer = ZipLayer::open(
            "sample.zip",
            BufReader::new(file.try_clone().unwrap()),
            u64::MAX,
        )?;
        let tree = layer_tree::single(0, &layer.entries);
        let sources = [Source {
            name: "sample.zip".into(),
            file,
        }];
        write_layer(&sources, &tree, opts, Vec::new())
    }

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut tar)
            .unwrap();
        tar
    }

    #[test]
    fn both_paths_give_the_same_tar_and_ignore_the_thread_count() {
        let zip = sample_zip();
        let mut seen_tar = None;
        for recompress in [false, true] {
            let mut seen_blob = None;
            for threads in [1, 2, 5] {
                let opts = BuildOptions {
                    recompress,
                    threads,
                    ..BuildOptions::default()
                };
                let (blob, digests) = build(zip.path(), &opts).unwrap();
                assert_eq!(digests.digest, Digest::of(&blob));
                assert_eq!(digests.size, blob.len() as u64);
                let tar = gunzip(&blob);
                assert_eq!(digests.diff_id, Digest::of(&tar));
                assert_eq!(digests.tar_size, tar.len() as u64);
                let seen = seen_blob.get_or_insert_with(|| blob.clone());
                assert!(
                    *seen == blob,
                    "recompress={recompress}: {threads} threads differ"
                );
                let seen = seen_tar.get_or_insert_with(|| tar.clone());
                assert!(*seen == tar, "recompress={recompress}: the tar differs");
            }
        }
        let tar = seen_tar.unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        let big = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path().unwrap().ends_with("big.bin"))
            .map(|mut e| {
                let mut v = Vec::new();
                e.read_to_end(&mut v).unwrap();
                v
            })
            .unwrap();
        assert!(big == content(BIG, 3));
    }

    #[test]
    fn only_big_entries_compressed_fresh_get_an_unpack_job() {
        let zip = sample_zip();
        let tree = tree_of(zip.path());
        let unpacked = |recompress| {
            let opts = BuildOptions {
                recompress,
                ..BuildOptions::default()
            };
            plan_jobs(&tree, &opts)
                .iter()
                .filter_map(|j| match j {
                    Job::Unpack { entry, .. } => Some(entry.path.to_string()),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(unpacked(true), ["lib/big.so"]);
        assert!(unpacked(false).is_empty());
    }

    #[test]
    fn damaged_big_entries_compressed_fresh_are_refused() {
        let zip = sample_zip();
        let (start, len) = {
            let mut archive =
                zip::ZipArchive::new(std::fs::File::open(zip.path()).unwrap()).unwrap();
            let f = archive.by_name("lib/big.so").unwrap();
            (f.data_start().unwrap(), f.compressed_size())
        };
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(zip.path())
            .unwrap();
        use std::os::unix::fs::FileExt;
        let mut b = [0u8];
        f.read_exact_at(&mut b, start + len * 3 / 4).unwrap();
        f.write_all_at(&[b[0] ^ 0x21], start + len * 3 / 4).unwrap();
        for threads in [1, 2, 5] {
            let opts = BuildOptions {
                recompress: true,
                threads,
                ..BuildOptions::default()
            };
            let err = build(zip.path(), &opts).unwrap_err();
            assert!(
                matches!(&err, LayerError::BadEntry { entry, .. } if entry == "lib/big.so"),
                "{threads} threads: {err}"
            );
        }
    }

    #[test]
    fn a_damaged_stored_file_split_across_jobs_fails_its_crc() {
        let zip = sample_zip();
        // Flip one byte of big.bin's data, in its third mebibyte.
        let start = {
            let mut archive =
                zip::ZipArchive::new(std::fs::File::open(zip.path()).unwrap()).unwrap();
            archive.by_name("big.bin").unwrap().data_start().unwrap()
        };
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(zip.path())
            .unwrap();
        let at = start + 2 * 1024 * 1024 + 77;
        let mut b = [0u8];
        f.seek(SeekFrom::Start(at)).unwrap();
        f.read_exact(&mut b).unwrap();
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(&[b[0] ^ 0x40]).unwrap();
        drop(f);
        for threads in [1, 3] {
            let opts = BuildOptions {
                threads,
                ..BuildOptions::default()
            };
            let err = build(zip.path(), &opts).unwrap_err();
            assert!(
                matches!(&err, LayerError::BadEntry { entry, .. } if entry == "big.bin"),
                "{err}"
            );
            assert!(err.to_string().contains("CRC-32"), "{err}");
        }
    }
}

#[cfg(test)]
mod deflate64_tests {
    use std::io::{BufReader, Read, Write};
    use std::os::unix::fs::FileExt;

    use zip::write::SimpleFileOptions;
    use zip::{CompressionMethod, ZipWriter};

    use super::*;
    use crate::core::layer_tree;
    use crate::core::layer_zip::ZipLayer;

    /// Text whose repeats are short: without 258-byte matches, a deflate stream is also a valid
    /// deflate64 stream with the same content (the two differ only in length code 285 and in
    /// distances beyond 32 KiB).
    fn letters(len: usize) -> Vec<u8> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b"abcdefghij klmnop\nqrstuvwxyz"[(x % 28) as usize]
            })
            .collect()
    }

    /// A zip whose one entry is marked deflate64 (method 9), with `flip` xor-ed into the byte at
    /// the middle of its data.
    fn deflate64_zip(data: &[u8], flip: u8) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut zw = ZipWriter::new(file.reopen().unwrap());
        let opts = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
        zw.start_file("d64.txt", opts).unwrap();
        zw.write_all(data).unwrap();
        zw.finish().unwrap();
        let (local, central, start, len) = {
            let mut archive = zip::ZipArchive::new(file.reopen().unwrap()).unwrap();
            let f = archive.by_index_raw(0).unwrap();
            let start = f.data_start().unwrap();
            (
                f.header_start(),
                f.central_header_start(),
                start,
                f.compressed_size(),
            )
        };
        let f = file.reopen().unwrap();
        f.write_all_at(&9u16.to_le_bytes(), local + 8).unwrap();
        f.write_all_at(&9u16.to_le_bytes(), central + 10).unwrap();
        let mut b = [0u8];
        f.read_exact_at(&mut b, start + len / 2).unwrap();
        f.write_all_at(&[b[0] ^ flip], start + len / 2).unwrap();
        file
    }

    fn build(zip: &tempfile::NamedTempFile, recompress: bool) -> Result<Vec<u8>> {
        let file = zip.reopen().unwrap();
        let layer = ZipLayer::open(
            "d64.zip",
            BufReader::new(file.try_clone().unwrap()),
            u64::MAX,
        )?;
        assert!(
            matches!(&layer.entries["d64.txt"].kind,
                EntryKind::File { data, .. } if data.method == ZipMethod::Deflate64),
            "the entry must be read as deflate64"
        );
        let tree = layer_tree::single(0, &layer.entries);
        let sources = [Source {
            name: "d64.zip".into(),
            file,
        }];
        let opts = BuildOptions {
            recompress,
            ..BuildOptions::default()
        };
        Ok(write_layer(&sources, &tree, &opts, Vec::new())?.0)
    }

    #[test]
    fn deflate64_entries_are_inflated_and_compressed_fresh() {
        // The big one is inflated by an unpack job while other jobs compress it.
        for size in [300_000, 2_500_000] {
            let data = letters(size);
            let zip = deflate64_zip(&data, 0);
            deflate64_reads_back(&zip, &data);
        }
    }

    fn deflate64_reads_back(zip: &tempfile::NamedTempFile, data: &[u8]) {
        for recompress in [false, true] {
            let blob = build(zip, recompress).unwrap();
            let mut tar = Vec::new();
            flate2::read::GzDecoder::new(&blob[..])
                .read_to_end(&mut tar)
                .unwrap();
            let mut archive = tar::Archive::new(&tar[..]);
            let mut entry = archive
                .entries()
                .unwrap()
                .map(|e| e.unwrap())
                .find(|e| e.path().unwrap().ends_with("d64.txt"))
                .unwrap();
            let mut back = Vec::new();
            entry.read_to_end(&mut back).unwrap();
            assert!(back == data, "recompress={recompress}");
        }
    }

    #[test]
    fn damaged_deflate64_data_is_refused() {
        for size in [300_000, 2_500_000] {
            let zip = deflate64_zip(&letters(size), 0x55);
            for recompress in [false, true] {
                let err = build(&zip, recompress).unwrap_err().to_string();
                assert!(err.contains("d64.txt"), "{size}: {err}");
                assert!(
                    err.contains("CRC-32")
                        || err.contains("corrupt")
                        || err.contains("inflates to"),
                    "{size}: {err}"
                );
            }
        }
    }
}
