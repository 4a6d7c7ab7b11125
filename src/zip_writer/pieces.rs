//! Large files are compressed in 1 MiB pieces on several threads, so that one big `.so` does not
//! leave the other cores idle, while the entry stays one deflate stream whose bytes depend only on
//! the file: each piece but the last ends byte-aligned and non-final (sync flush), and each starts
//! with the previous 32 KiB of the file as its dictionary.

use std::io::{self, Read, Write};
use std::path::Path;

use flate2::{Compress, Compression, FlushCompress};

use crate::raw_deflate::deflate_into;

use super::{
    ContentSource, DEFLATE_LEVEL, EntryKind, Pipeline, Prepared, Spill, ZipEntry, ZipWriteError,
};

/// Files larger than this are compressed in pieces of this size.
pub(super) const PIECE: u64 = 1024 * 1024;
const DICTIONARY: u64 = 32 * 1024;

/// One unit of compression work: a whole entry, or one piece of a large file.
pub(super) struct Task {
    pub(super) entry: usize,
    offset: u64,
    len: u64,
    /// How many pieces the entry has (1: the entry is prepared whole).
    pub(super) pieces: usize,
}

/// The tasks, in entry order; the pieces of an entry are consecutive. Depends on sizes alone.
pub(super) fn plan_tasks(entries: &[ZipEntry]) -> Vec<Task> {
    let mut tasks = Vec::with_capacity(entries.len());
    for (entry, e) in entries.iter().enumerate() {
        match e.kind {
            EntryKind::File { size } if size > PIECE => {
                let pieces = size.div_ceil(PIECE) as usize;
                for k in 0..pieces as u64 {
                    let offset = k * PIECE;
                    tasks.push(Task {
                        entry,
                        offset,
                        len: PIECE.min(size - offset),
                        pieces,
                    });
                }
            }
            _ => tasks.push(Task {
                entry,
                offset: 0,
                len: 0,
                pieces: 1,
            }),
        }
    }
    tasks
}

/// Compresses one piece of a large file: raw deflate primed with the 32 KiB before it, ending
/// byte-aligned (sync flush) unless it is the file's last piece.
pub(super) fn prepare_piece(
    entry: &ZipEntry,
    task: &Task,
    source: &dyn ContentSource,
    scratch: &Path,
) -> Result<Prepared, ZipWriteError> {
    let read_err = |source| ZipWriteError::Read {
        entry: entry.name.clone(),
        source,
        hint: "the temporary copy of the image's files is unreadable; check the disk and run again",
    };
    let dict_len = task.offset.min(DICTIONARY);
    let mut reader = source
        .open_at(task.entry, task.offset - dict_len)
        .map_err(read_err)?
        .take(dict_len + task.len);
    let mut data = Vec::with_capacity((dict_len + task.len) as usize);
    reader.read_to_end(&mut data).map_err(read_err)?;
    if data.len() as u64 != dict_len + task.len {
        return Err(read_err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the file ends before byte {}", task.offset + task.len),
        )));
    }
    let (dictionary, piece) = data.split_at(dict_len as usize);
    let mut compress = Compress::new(Compression::new(DEFLATE_LEVEL), false);
    if !dictionary.is_empty() {
        compress
            .set_dictionary(dictionary)
            .expect("a dictionary before any input is accepted");
    }
    let last = task.offset + task.len == entry_size(entry);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(piece.len() / 2 + 1024);
    deflate_into(&mut compress, piece, &mut out, flush);
    let mut spill = Spill::new(scratch);
    spill.write_all(&out).map_err(read_err)?;
    Ok(Prepared {
        crc: crc32fast::hash(piece),
        size: task.len,
        deflated: Some(spill),
    })
}

fn entry_size(entry: &ZipEntry) -> u64 {
    match entry.kind {
        EntryKind::File { size } => size,
        _ => 0,
    }
}

/// Takes the `pieces` tasks of one large file from `first` on and joins them into one entry
/// (stored instead when deflate did not pay off, as for a small file).
pub(super) fn join_pieces(
    entry: &ZipEntry,
    pipe: &Pipeline,
    first: usize,
    pieces: usize,
    scratch: &Path,
) -> Result<Prepared, ZipWriteError> {
    let mut whole = Spill::new(scratch);
    let mut crc = crc32fast::Hasher::new();
    for t in first..first + pieces {
        let piece = pipe.take(t)?;
        crc.combine(&crc32fast::Hasher::new_with_initial_len(
            piece.crc, piece.size,
        ));
        if let Some(spill) = piece.deflated {
            spill
                .copy_to(&mut whole)
                .map_err(|source| ZipWriteError::Write { source })?;
        }
    }
    let size = entry_size(entry);
    Ok(Prepared {
        crc: crc.finalize(),
        size,
        deflated: (whole.len < size).then_some(whole),
    })
}
