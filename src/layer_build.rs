//! Writes a layer tree as an OCI tar+gzip blob, streaming each file from its zip, and computes the
//! blob digest and the diff_id (sha256 of the uncompressed tar) in the same pass.

use std::io::{Read, Seek, Write};

use flate2::{Compression, GzBuilder};

use crate::digest::HashingWriter;
use crate::error::{LayerError, Result};
use crate::layer_tree::LayerTree;
use crate::layer_zip::{Budget, EntryKind, SYNTHESIZED_MTIME, ZipLayer};
use crate::tar_writer::TarWriter;

#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Where the layer's root lands in the image, without slashes at the ends (`opt`, `var/task`).
    pub prefix: String,
    /// `SOURCE_DATE_EPOCH`: when set, every entry gets this mtime.
    pub mtime_override: Option<u64>,
    /// Refuse an input zip that inflates to more than this.
    pub max_unzipped: u64,
    pub gzip_level: u32,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            prefix: "opt".into(),
            mtime_override: None,
            max_unzipped: crate::layer_zip::LAMBDA_UNZIPPED_LIMIT,
            gzip_level: 6,
        }
    }
}

/// The identity of a written layer blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDigests {
    /// sha256 of the gzip blob.
    pub digest: String,
    pub size: u64,
    /// sha256 of the uncompressed tar.
    pub diff_id: String,
    pub tar_size: u64,
}

/// Writes `tree` (data read from `zips[entry.source]`) as a gzip-compressed tar into `out`.
pub fn write_layer<R: Read + Seek, W: Write>(
    zips: &mut [ZipLayer<R>],
    tree: &LayerTree,
    opts: &BuildOptions,
    out: W,
) -> Result<(W, LayerDigests)> {
    let blob = HashingWriter::new(out);
    // The gzip header carries no name and no time; OS 255 ("unknown") keeps it host-independent.
    let gz = GzBuilder::new()
        .operating_system(255)
        .write(blob, Compression::new(opts.gzip_level));
    let mut tar = TarWriter::new(HashingWriter::new(gz));
    write_entries(zips, tree, opts, &mut tar)?;
    let out_err = LayerError::WriteOutput;
    let tar_hash = tar.finish().map_err(out_err)?;
    let (gz, diff_id, tar_size) = tar_hash.finish();
    let blob = gz.finish().map_err(out_err)?;
    let (out, digest, size) = blob.finish();
    Ok((
        out,
        LayerDigests {
            digest,
            size,
            diff_id,
            tar_size,
        },
    ))
}

/// Writes the entries of `tree` as tar entries (no end marker) into `tar`.
pub fn write_entries<R: Read + Seek, W: Write>(
    zips: &mut [ZipLayer<R>],
    tree: &LayerTree,
    opts: &BuildOptions,
    tar: &mut TarWriter<W>,
) -> Result<()> {
    let out_err = LayerError::WriteOutput;
    let synthesized_mtime = opts.mtime_override.unwrap_or(SYNTHESIZED_MTIME);
    let mut prefix_path = String::new();
    for part in opts.prefix.split('/') {
        if !prefix_path.is_empty() {
            prefix_path.push('/');
        }
        prefix_path.push_str(part);
        tar.dir(&prefix_path, 0o755, synthesized_mtime)
            .map_err(out_err)?;
    }
    let mut budgets: Vec<Budget> = zips
        .iter()
        .map(|_| Budget::new(opts.max_unzipped))
        .collect();
    for (path, item) in tree {
        let full = format!("{prefix_path}/{path}");
        let entry = &item.entry;
        let mtime = opts.mtime_override.unwrap_or(entry.mtime);
        match &entry.kind {
            EntryKind::Dir => tar.dir(&full, entry.mode, mtime).map_err(out_err)?,
            EntryKind::Symlink { target } => tar.symlink(&full, target, mtime).map_err(out_err)?,
            EntryKind::File { index, size, .. } => {
                tar.begin_file(&full, entry.mode, mtime, *size)
                    .map_err(out_err)?;
                zips[item.source].copy_file(path, *index, &mut budgets[item.source], tar)?;
                tar.end_file().map_err(out_err)?;
            }
        }
    }
    Ok(())
}
