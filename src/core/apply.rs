//! Applies an image's layers, in order, to an index of the resulting tree — OCI whiteouts and opaque
//! directories, hardlinks as copies, symlinks in parent paths followed inside the root as container
//! runtimes do — spooling to disk only the file contents the zip needs, never a layer in memory.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use tracing::debug;

use crate::core::error::SourceError;
use crate::core::tar_guard::{
    OversizedRecord, PATH_MAX, StreamTooLong, TarGuard, path_problem, shorten,
};
use crate::core::warnings::Warning;

const S_IFIFO: u32 = 0o010000;
const S_IFCHR: u32 = 0o020000;
const S_IFBLK: u32 = 0o060000;
/// As Linux: more symlinks than this on one path is a loop.
const MAX_SYMLINK_HOPS: usize = 40;
/// Components one path walk may visit, symlink targets included (a 4096-byte path has at most 2048).
const MAX_RESOLVE_STEPS: usize = 8192;
const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// Which file contents are worth spooling: the --path subtree, or (on a second pass) everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    Everything,
    /// A real path (`opt`, `var/task`), relative to the image root.
    Under(String),
    /// A real path and the files outside it that hard links inside it copy (a second pass).
    UnderWith {
        dir: String,
        files: BTreeSet<String>,
    },
    /// No contents: only the tree's shape, kinds and modes (what a check reads).
    Nothing,
}

impl Selection {
    pub fn keeps(&self, path: &str) -> bool {
        match self {
            Selection::Everything => true,
            Selection::Under(p) => within(path, p),
            Selection::UnderWith { dir, files } => within(path, dir) || files.contains(path),
            Selection::Nothing => false,
        }
    }
}

/// Is `path` the directory `dir` or below it? (`""` is the root.)
pub fn within(path: &str, dir: &str) -> bool {
    dir.is_empty()
        || path == dir
        || (path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/')
}

/// Where a file's bytes are in the spool file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolRef {
    pub offset: u64,
    pub len: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Spooled(SpoolRef),
    /// Outside the selection: only the size is known.
    NotKept {
        size: u64,
    },
}

impl Content {
    pub fn size(&self) -> u64 {
        match self {
            Content::Spooled(r) => r.len,
            Content::NotKept { size } => *size,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    Dir,
    File(Content),
    Symlink(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: NodeKind,
    /// Permission bits (0o7777) as the layer recorded them.
    pub mode: u32,
    /// The layer that last wrote this path: whiteouts only remove what lower layers wrote.
    layer: usize,
}

impl Node {
    /// A node as the lowest layer wrote it.
    pub fn new(kind: NodeKind, mode: u32) -> Self {
        Node {
            kind,
            mode,
            layer: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The image's own failure (a blob that does not match its digest...), met while reading it.
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{image}: layer {layer}: entry {entry:?} {problem}\n  hint: {hint}")]
    Entry {
        image: String,
        layer: String,
        entry: String,
        problem: String,
        hint: &'static str,
    },
    #[error(
        "{image}: layer {layer} is not a readable tar archive ({detail})\n  hint: the image is damaged; copy or save it again"
    )]
    BadTar {
        image: String,
        layer: String,
        detail: String,
    },
    /// Not `BadTar`: the blob is not re-read to tell damage from malice (it may be endless).
    #[error(
        "{image}: layer {layer}: {detail}\n  hint: the image is malformed or hostile (Lambda images hold at most 10 GiB uncompressed); rebuild it"
    )]
    TooLong {
        image: String,
        layer: String,
        detail: String,
    },
    #[error(
        "cannot write the spool file {path}: {source}\n  hint: free some disk space next to the output file"
    )]
    Spool {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Builds the tree layer by layer. Paths are relative to the image root, without a leading `/`.
pub struct Applier {
    image: String,
    keep: Selection,
    nodes: BTreeMap<String, Node>,
    spool: BufWriter<File>,
    spool_path: PathBuf,
    spool_len: u64,
    /// Told of each kept file once its bytes can be read back from the spool file.
    on_spooled: Option<Box<dyn FnMut(SpoolRef)>>,
    /// Kept files still (partly) in the spool's write buffer, in spool order.
    unflushed: Vec<SpoolRef>,
    /// Reused for every file: thousands of small files would otherwise each zero a new one.
    copy_buf: Vec<u8>,
    warnings: Vec<Warning>,
    /// No file bigger than this is spooled, nor more live bytes than this kept (the zip could not
    /// hold them): scratch space stays within it plus the write buffer.
    limit: u64,
    /// Bytes of spooled contents some node still uses.
    live: u64,
    /// Nodes using each spooled range (hardlinks share one), by offset: a range no node uses any
    /// more is punched out of the spool file.
    users: HashMap<u64, u32>,
    /// Bytes of the tree's path keys (each node holds its full path, so a deep tree costs the
    /// square of its depth: bounded by [`MAX_KEY_BYTES`]).
    key_bytes: u64,
    /// Where the kept bytes first went over `limit` (nothing more is spooled after it).
    overflow: Option<Overflow>,
    /// Files outside the selection whose contents kept hard links copy: a further pass keeps
    /// them too (rather than everything).
    wanted: BTreeSet<String>,
    /// The layer being applied and the whiteouts it has already applied.
    whited: (usize, HashSet<String>),
    /// Uncompressed bytes the layers still to come may have.
    input_left: u64,
}

/// The layer and entry at which the files kept for the zip first went over the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overflow {
    pub layer: String,
    pub entry: String,
    /// The kept bytes with that entry.
    pub size: u64,
}

/// Bytes of paths a tree may hold: far beyond any real image (half a million files of 100-byte
/// paths is 50 MB), and low enough that memory stays bounded.
pub const MAX_KEY_BYTES: u64 = 96 * 1024 * 1024;
/// Entries a tree may hold (the biggest real images have a few hundred thousand).
pub const MAX_NODES: usize = 1_000_000;

/// The applied tree and the spool its kept file contents live in.
pub struct AppliedTree {
    pub image: String,
    pub keep: Selection,
    pub nodes: BTreeMap<String, Node>,
    /// Read with positioned reads (`FileExt::read_at`), so many threads can share it.
    pub spool: File,
    pub warnings: Vec<Warning>,
    /// Set when kept contents went over the spool limit and were no longer spooled.
    pub overflow: Option<Overflow>,
    /// Files outside the selection that kept hard links copy without their contents.
    pub wanted: BTreeSet<String>,
}

impl Applier {
    /// `spool_path` is created (truncated) and holds the kept contents, appended in order.
    pub fn new(image: &str, keep: Selection, spool_path: &Path) -> Result<Self, ApplyError> {
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(spool_path)
            .map_err(|source| ApplyError::Spool {
                path: spool_path.to_path_buf(),
                source,
            })?;
        Ok(Applier {
            image: image.to_string(),
            keep,
            nodes: BTreeMap::new(),
            spool: BufWriter::with_capacity(1 << 20, file),
            spool_path: spool_path.to_path_buf(),
            spool_len: 0,
            on_spooled: None,
            unflushed: Vec::new(),
            copy_buf: vec![0; 64 * 1024],
            warnings: Vec::new(),
            limit: u64::MAX,
            live: 0,
            users: HashMap::new(),
            key_bytes: 0,
            overflow: None,
            wanted: BTreeSet::new(),
            whited: (usize::MAX, HashSet::new()),
            input_left: u64::MAX,
        })
    }

    /// The image's layers may hold at most `limit` bytes uncompressed, all together: reading more
    /// (a gzip bomb, a file of a terabyte) fails as the bytes arrive.
    pub fn limit_input(&mut self, limit: u64) {
        self.input_left = limit;
    }

    /// Kept contents beyond `limit` bytes cannot end up in a zip: a bigger file is not spooled
    /// (its size is enough to refuse it), and more live bytes under `--path` are refused at once.
    pub fn limit_spool(&mut self, limit: u64) {
        self.limit = limit;
    }

    /// Calls `f` with each kept file's place in the spool once other readers of the spool file can
    /// see its bytes (so that work on them can start while layers are still being applied).
    pub fn on_spooled(&mut self, f: impl FnMut(SpoolRef) + 'static) {
        self.on_spooled = Some(Box::new(f));
    }

    /// Applies layer number `index` (0 = lowest), read from its uncompressed tar stream, which is
    /// read to the end so that its digest checks run.
    pub fn apply_layer(
        &mut self,
        index: usize,
        digest: &str,
        tar: impl Read,
    ) -> Result<(), ApplyError> {
        let guard = TarGuard::new(tar).with_limit(
            self.input_left,
            "more than all the image's layers may hold uncompressed (Lambda's 10 GiB)",
        );
        let mut archive = tar::Archive::new(guard);
        let entries = archive.entries().map_err(|e| self.tar_error(digest, e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| self.tar_error(digest, e))?;
            self.apply_entry(index, digest, &mut entry)?;
            if self.key_bytes > MAX_KEY_BYTES || self.nodes.len() > MAX_NODES {
                let shown = shorten(&entry.path_bytes());
                return Err(ApplyError::Entry {
                    image: self.image.clone(),
                    layer: digest.to_string(),
                    entry: shown,
                    problem: format!(
                        "brings the image's tree to {} entries and {} bytes of paths, over the limits of {MAX_NODES} entries and {MAX_KEY_BYTES} bytes (deeply nested or countless paths)",
                        self.nodes.len(),
                        self.key_bytes
                    ),
                    hint: "no Lambda image needs a tree this big; the image is malformed or hostile, rebuild it without that layer",
                });
            }
        }
        // The end-of-archive blocks and any padding after them are part of the diff_id.
        let mut guard = archive.into_inner();
        io::copy(&mut guard, &mut io::sink()).map_err(|e| self.tar_error(digest, e))?;
        self.input_left -= guard.position();
        if self.on_spooled.is_some() {
            self.spool.flush().map_err(|source| ApplyError::Spool {
                path: self.spool_path.clone(),
                source,
            })?;
            self.announce_flushed();
        }
        Ok(())
    }

    /// Tells `on_spooled` of the files whose bytes have all left the write buffer.
    fn announce_flushed(&mut self) {
        let Some(on_spooled) = &mut self.on_spooled else {
            return;
        };
        let flushed = self.spool_len - self.spool.buffer().len() as u64;
        let ready = self
            .unflushed
            .iter()
            .take_while(|r| r.offset + r.len <= flushed)
            .count();
        for r in self.unflushed.drain(..ready) {
            on_spooled(r);
        }
    }

    pub fn finish(self) -> Result<AppliedTree, ApplyError> {
        let spool_path = self.spool_path;
        let spool = self.spool.into_inner().map_err(|e| ApplyError::Spool {
            path: spool_path.clone(),
            source: e.into_error(),
        })?;
        Ok(AppliedTree {
            image: self.image,
            keep: self.keep,
            nodes: self.nodes,
            spool,
            warnings: self.warnings,
            overflow: self.overflow,
            wanted: self.wanted,
        })
    }

    fn tar_error(&self, digest: &str, err: io::Error) -> ApplyError {
        if let Some(long) = StreamTooLong::from_io(&err) {
            return ApplyError::TooLong {
                image: self.image.clone(),
                layer: digest.to_string(),
                detail: long.to_string(),
            };
        }
        if let Some(record) = OversizedRecord::from_io(&err) {
            return ApplyError::Entry {
                image: self.image.clone(),
                layer: digest.to_string(),
                entry: record.entry.clone(),
                problem: format!("has {record}"),
                hint: "the layer is malformed or hostile (no path is that long); rebuild the image without it",
            };
        }
        match SourceError::from_io(err) {
            Ok(source) => ApplyError::Source(source),
            Err(err) => ApplyError::BadTar {
                image: self.image.clone(),
                layer: digest.to_string(),
                detail: err.to_string(),
            },
        }
    }

    fn entry_error(&self, digest: &str, entry: &str, problem: String) -> ApplyError {
        ApplyError::Entry {
            image: self.image.clone(),
            layer: digest.to_string(),
            entry: entry.to_string(),
            problem,
            hint: "the layer is malformed or hostile; rebuild the image without it",
        }
    }

    fn apply_entry<R: Read>(
        &mut self,
        layer: usize,
        digest: &str,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<(), ApplyError> {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            return Ok(());
        }
        let raw = entry.path_bytes().into_owned();
        let shown = shorten(&raw);
        if let Some(problem) = path_problem(&raw) {
            return Err(self.entry_error(digest, &shown, problem));
        }
        if let Some(target) = entry.link_name_bytes()
            && target.len() > PATH_MAX
        {
            return Err(self.entry_error(
                digest,
                &shown,
                format!(
                    "is a link to a path of {} bytes, longer than PATH_MAX ({PATH_MAX})",
                    target.len()
                ),
            ));
        }
        let parts = split_path(&raw).map_err(|p| self.entry_error(digest, &shown, p.into()))?;
        let Some((base, parent)) = parts.split_last() else {
            return Ok(()); // the root directory itself (`./`)
        };
        if let Some(name) = base.strip_prefix(WHITEOUT) {
            // `.wh.`, `.wh..` and `.wh...` would hide nothing, the directory itself or its parent:
            // no tool writes them, and honouring them would reach outside the marker's directory.
            if name.is_empty() || name == "." || name == ".." {
                return Err(ApplyError::Entry {
                    image: self.image.clone(),
                    layer: digest.to_string(),
                    entry: shown,
                    problem: format!("is a whiteout of {name:?}, which is not a file name"),
                    hint: "the layer is malformed or hostile; rebuild the image without it (a whiteout is `.wh.` followed by the name of the file it hides)",
                });
            }
            // A marker under a path that is no longer a directory has nothing left to hide (umoci
            // writes a file replacing a directory before the whiteouts of its old children).
            let dir = match self.resolve(parent, layer, false) {
                Ok(dir) => dir,
                Err(ResolveError::NotADirectory(_)) => None,
                Err(e) => return Err(self.entry_error(digest, &shown, e.to_string())),
            };
            // A marker repeated in one layer has nothing left to remove, and each walks the
            // subtree again: thousands of them would take the square of the tree's size.
            if self.whited.0 != layer {
                self.whited = (layer, HashSet::new());
            }
            if base == OPAQUE {
                if let Some(dir) = dir
                    && self.whited.1.insert(format!("{dir}/{OPAQUE}"))
                {
                    self.remove_lower(&dir, false, layer);
                }
            } else if !name.starts_with(WHITEOUT) {
                // `.wh..wh.*` other than the opaque marker is aufs bookkeeping, not a deletion.
                if let Some(dir) = dir {
                    let target = join(&dir, name);
                    if self.whited.1.insert(target.clone()) {
                        self.remove_lower(&target, true, layer);
                    }
                }
            }
            return Ok(());
        }
        let dir = self
            .resolve(parent, layer, true)
            .map_err(|e| self.entry_error(digest, &shown, e.to_string()))?
            .expect("resolve creates missing directories");
        let path = join(&dir, base);
        let mode = entry.header().mode().map_err(|e| {
            self.entry_error(digest, &shown, format!("has an unreadable mode ({e})"))
        })? & 0o7777;
        use tar::EntryType as T;
        match kind {
            T::Directory => self.put(path, NodeKind::Dir, mode, layer),
            T::Regular | T::Continuous | T::GNUSparse => {
                // A file over the limit is never spooled: selecting it fails on its size alone.
                let kept = self.keep.keeps(&path);
                let fits = kept && self.fits(digest, &shown, &path, entry.size());
                let content = if fits {
                    let spooled = self.spool_entry(digest, entry)?;
                    // Empty ranges take no space (and share their offset with the next file).
                    if spooled.len > 0 {
                        self.users.insert(spooled.offset, 0);
                        self.live += spooled.len;
                    }
                    if self.on_spooled.is_some() {
                        self.unflushed.push(spooled);
                        self.announce_flushed();
                    }
                    Content::Spooled(spooled)
                } else {
                    Content::NotKept { size: entry.size() }
                };
                self.put(path, NodeKind::File(content), mode, layer);
            }
            T::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                if target.is_empty() || target.contains('\0') {
                    return Err(self.entry_error(
                        digest,
                        &shown,
                        "is a symlink without a usable target".into(),
                    ));
                }
                self.put(path, NodeKind::Symlink(target), mode, layer);
            }
            T::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| b.into_owned())
                    .unwrap_or_default();
                let (real, node) = self
                    .hardlink_target(&target, layer)
                    .map_err(|p| self.entry_error(digest, &shown, p))?;
                if self.keep.keeps(&path)
                    && matches!(node.kind, NodeKind::File(Content::NotKept { .. }))
                {
                    self.wanted.insert(real);
                }
                self.put(path, node.kind, node.mode, layer);
            }
            T::Char | T::Block | T::Fifo => {
                // What was there is replaced by something a zip cannot hold.
                self.remove_all(&path);
                let bits = match kind {
                    T::Char => S_IFCHR,
                    T::Block => S_IFBLK,
                    _ => S_IFIFO,
                };
                if self.keep.keeps(&path) {
                    let mut w = Warning::skipped_special(&format!("/{path}"), bits);
                    w.message = format!("layer {digest}: {}", w.message);
                    self.warnings.push(w);
                }
            }
            other => debug!("layer {digest}: {shown}: tar entry type {other:?} ignored"),
        }
        Ok(())
    }

    /// Whether a kept file may be spooled: never one over the limit, and under a --path selection
    /// (where everything kept ends up in the zip unless a later layer removes it) nothing once the
    /// live spooled bytes would pass it. The first such file is remembered for the error.
    fn fits(&mut self, digest: &str, shown: &str, path: &str, size: u64) -> bool {
        if self.overflow.is_some() {
            return false;
        }
        // The file this one replaces frees its bytes (unless a hard link still uses them).
        let replaced = match self.nodes.get(path).map(|n| &n.kind) {
            Some(NodeKind::File(Content::Spooled(r)))
                if self.users.get(&r.offset).is_some_and(|u| *u == 1) =>
            {
                r.len
            }
            _ => 0,
        };
        let live = (self.live - replaced).saturating_add(size);
        let selective = matches!(self.keep, Selection::Under(_) | Selection::UnderWith { .. });
        if selective && live > self.limit {
            self.overflow = Some(Overflow {
                layer: digest.to_string(),
                entry: shown.to_string(),
                size: live,
            });
            return false;
        }
        size <= self.limit
    }

    /// A node left the tree: a spooled range nobody uses any more is freed from the spool file.
    fn forget(&mut self, node: &Node) {
        let NodeKind::File(Content::Spooled(r)) = &node.kind else {
            return;
        };
        if r.len == 0 {
            return;
        }
        let Some(users) = self.users.get_mut(&r.offset) else {
            return;
        };
        *users = users.saturating_sub(1);
        if *users == 0 {
            self.users.remove(&r.offset);
            self.live -= r.len;
            punch_hole(self.spool.get_ref(), r);
        }
    }

    /// Copies the entry's bytes to the end of the spool.
    fn spool_entry<R: Read>(
        &mut self,
        digest: &str,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<SpoolRef, ApplyError> {
        let offset = self.spool_len;
        loop {
            let n = match entry.read(&mut self.copy_buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.tar_error(digest, e)),
            };
            self.spool
                .write_all(&self.copy_buf[..n])
                .map_err(|source| ApplyError::Spool {
                    path: self.spool_path.clone(),
                    source,
                })?;
            self.spool_len += n as u64;
        }
        Ok(SpoolRef {
            offset,
            len: self.spool_len - offset,
        })
    }

    /// Puts a node at `path`, replacing what is there; a directory on a directory keeps its children.
    fn put(&mut self, path: String, kind: NodeKind, mode: u32, layer: usize) {
        let keeps_children = kind == NodeKind::Dir
            && self
                .nodes
                .get(&path)
                .is_some_and(|n| n.kind == NodeKind::Dir);
        // Counted first: a hard link to itself must not free the range it is about to use.
        if let NodeKind::File(Content::Spooled(r)) = &kind
            && r.len > 0
            && let Some(users) = self.users.get_mut(&r.offset)
        {
            *users += 1;
        }
        if !keeps_children {
            self.remove_all(&path);
        }
        let len = path.len() as u64;
        match self.nodes.insert(path, Node { kind, mode, layer }) {
            Some(old) => self.forget(&old),
            None => self.key_bytes += len,
        }
    }

    fn remove_all(&mut self, path: &str) {
        let doomed: Vec<String> = subtree_keys(&self.nodes, path).collect();
        for k in doomed.iter().map(String::as_str).chain([path]) {
            if let Some(old) = self.nodes.remove(k) {
                self.key_bytes = self.key_bytes.saturating_sub(k.len() as u64);
                self.forget(&old);
            }
        }
    }

    /// Removes what layers below `layer` put at (if `include_self`) and under `path`. Whiteouts never
    /// touch their own layer's entries, wherever they sit in the tar; a directory that still holds
    /// such an entry stays.
    fn remove_lower(&mut self, path: &str, include_self: bool, layer: usize) {
        let mut doomed = Vec::new();
        let mut keep: HashSet<String> = HashSet::new();
        let candidates = subtree_keys(&self.nodes, path)
            .chain((include_self && !path.is_empty()).then(|| path.to_string()));
        for key in candidates.collect::<Vec<_>>() {
            // A whiteout of something no lower layer holds is a no-op, as containerd treats it.
            let Some(node) = self.nodes.get(&key) else {
                continue;
            };
            if node.layer < layer {
                doomed.push(key);
            } else {
                // Up to the first ancestor already kept: each is added once, not once per entry.
                let mut p = key.as_str();
                while let Some((parent, _)) = p.rsplit_once('/') {
                    if !keep.insert(parent.to_string()) {
                        break;
                    }
                    p = parent;
                }
            }
        }
        for key in doomed {
            if !keep.contains(&key)
                && let Some(old) = self.nodes.remove(&key)
            {
                self.key_bytes = self.key_bytes.saturating_sub(key.len() as u64);
                self.forget(&old);
            }
        }
    }

    /// Resolves directory components to a real path, following symlinks inside the root (an
    /// absolute target starts again at the root, `..` stops at it). Missing directories are created
    /// when `create` (else `None`); a file in the way is an error.
    fn resolve(
        &mut self,
        parts: &[String],
        layer: usize,
        create: bool,
    ) -> Result<Option<String>, ResolveError> {
        resolve_in(
            &mut self.nodes,
            parts,
            create.then_some(layer),
            &mut self.key_bytes,
        )
    }

    /// The node a hard link copies, and its real path.
    fn hardlink_target(&mut self, raw: &[u8], layer: usize) -> Result<(String, Node), String> {
        let shown = String::from_utf8_lossy(raw).into_owned();
        let parts =
            split_path(raw).map_err(|p| format!("is a hard link whose target {shown:?} {p}"))?;
        let missing =
            || format!("is a hard link to {shown:?}, which no earlier entry or lower layer holds");
        let Some((base, parent)) = parts.split_last() else {
            return Err(format!("is a hard link to the root directory ({shown:?})"));
        };
        let dir = self
            .resolve(parent, layer, false)
            .map_err(|e| e.to_string())?
            .ok_or_else(missing)?;
        let real = join(&dir, base);
        let node = self.nodes.get(&real).cloned().ok_or_else(missing)?;
        if node.kind == NodeKind::Dir {
            return Err(format!("is a hard link to the directory {shown:?}"));
        }
        Ok((real, node))
    }
}

/// Frees a dead range of the spool file's disk blocks (where the filesystem can; else it stays).
fn punch_hole(file: &File, r: &SpoolRef) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (
        libc::off_t::try_from(r.offset),
        libc::off_t::try_from(r.len),
    ) else {
        return;
    };
    if len == 0 {
        return;
    }
    // SAFETY: fallocate on our own open descriptor; it only changes which blocks back the range.
    unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            offset,
            len,
        );
    }
}

mod select;
mod walk;
pub use select::{Item, SelectError, Selected};
pub(crate) use walk::{ResolveError, join, resolve_in, split_path, subtree_keys};

#[cfg(test)]
mod tests;
