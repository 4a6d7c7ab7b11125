//! Property: any small tree written as a zip (stored or deflated, with or without directory entries,
//! random unix modes, relative in-tree symlinks, any entry order) comes back from `layerport image` and
//! `layerport fetch` with the same paths, kinds, contents and link targets, modes widened per the rules.

use crate::support::tools::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use std::collections::{BTreeSet, HashSet};
use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::path::Path;
use tempfile::TempDir;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

/// DOS time 2024-01-02 03:04:06 (an even second, so it is exact), read as UTC.
const ZIP_MTIME: i64 = 1_704_164_646;

#[derive(Debug, Clone)]
enum Shape {
    Dir,
    File(Vec<u8>),
    /// Points at another node of the tree (index taken modulo the candidates).
    Link(usize),
}

#[derive(Debug, Clone)]
struct NodeSpec {
    parent: usize,
    name: String,
    shape: Shape,
    mode: u32,
    /// For directories: whether the zip has an entry for it (else it must be synthesised).
    listed: bool,
    deflate: bool,
    /// Sort key giving the (random) order of entries in the zip.
    order: u16,
}

/// One entry the test writes to the zip.
#[derive(Debug, Clone)]
struct Planned {
    path: String,
    kind: Kind,
    mode: u32,
    data: Vec<u8>,
    listed: bool,
    deflate: bool,
    order: u16,
}

fn node_spec() -> impl Strategy<Value = NodeSpec> {
    let shape = prop_oneof![
        3 => Just(Shape::Dir),
        4 => prop::collection::vec(any::<u8>(), 0..300).prop_map(Shape::File),
        1 => Just(Shape::File(Vec::new())),
        2 => any::<usize>().prop_map(Shape::Link),
    ];
    (
        any::<usize>(),
        "[a-zA-Z\u{e9}\u{4e2d}][a-zA-Z0-9 ._\u{e9}\u{4e2d}-]{0,6}",
        shape,
        0u32..0o1000,
        prop::bool::weighted(0.6),
        any::<bool>(),
        any::<u16>(),
    )
        .prop_map(
            |(parent, name, shape, mode, listed, deflate, order)| NodeSpec {
                parent,
                name,
                shape,
                mode,
                listed,
                deflate,
                order,
            },
        )
}

/// Relative symlink target from directory `from_dir` to `to` (both relative to the layer root).
fn relative(from_dir: &str, to: &str) -> String {
    let from: Vec<&str> = from_dir.split('/').filter(|s| !s.is_empty()).collect();
    let to: Vec<&str> = to.split('/').collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<&str> = vec![".."; from.len() - common];
    parts.extend(&to[common..]);
    if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }
}

fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

/// Turns the random specs into a concrete tree: unique paths, parents that are directories, and
/// symlinks aimed at other (non-symlink) nodes.
fn plan(specs: &[NodeSpec]) -> Vec<Planned> {
    let mut dirs = vec![String::new()];
    let mut used = HashSet::new();
    let mut out: Vec<(Planned, Option<usize>)> = Vec::new();
    for s in specs {
        let parent = &dirs[s.parent % dirs.len()];
        let path = if parent.is_empty() {
            s.name.clone()
        } else {
            format!("{parent}/{}", s.name)
        };
        if !used.insert(path.clone()) {
            continue;
        }
        let (kind, data, link) = match &s.shape {
            Shape::Dir => (Kind::Dir, Vec::new(), None),
            Shape::File(d) => (Kind::File, d.clone(), None),
            Shape::Link(i) => (Kind::Symlink, Vec::new(), Some(*i)),
        };
        if kind == Kind::Dir {
            dirs.push(path.clone());
        }
        let planned = Planned {
            path,
            kind,
            mode: s.mode,
            data,
            listed: s.listed,
            deflate: s.deflate,
            order: s.order,
        };
        out.push((planned, link));
    }
    let targets: Vec<String> = out
        .iter()
        .filter(|(p, _)| p.kind != Kind::Symlink)
        .map(|(p, _)| p.path.clone())
        .collect();
    // A zip of unlisted directories only would be empty (an error by design): list the first one.
    if out.iter().all(|(p, _)| p.kind == Kind::Dir && !p.listed) {
        out[0].0.listed = true;
    }
    out.into_iter()
        .map(|(mut p, link)| {
            if let Some(i) = link {
                if targets.is_empty() {
                    p.kind = Kind::File;
                    p.data = b"no link target\n".to_vec();
                } else {
                    p.data = relative(parent_of(&p.path), &targets[i % targets.len()]).into_bytes();
                }
            }
            p
        })
        .collect()
}

/// Writes the planned entries, in their random order, with the `zip` crate.
fn write_zip(entries: &[Planned], file: &Path) {
    let mut sorted: Vec<&Planned> = entries.iter().collect();
    sorted.sort_by_key(|p| p.order);
    let mut zw = ZipWriter::new(fs::File::create(file).unwrap());
    let time = DateTime::from_date_and_time(2024, 1, 2, 3, 4, 6).unwrap();
    for p in sorted {
        let method = if p.deflate {
            CompressionMethod::Deflated
        } else {
            CompressionMethod::Stored
        };
        let opts = SimpleFileOptions::default()
            .last_modified_time(time)
            .compression_method(method)
            .unix_permissions(p.mode);
        match p.kind {
            Kind::Dir if p.listed => zw.add_directory(p.path.as_str(), opts).unwrap(),
            Kind::Dir => {}
            Kind::File => {
                zw.start_file(p.path.as_str(), opts).unwrap();
                zw.write_all(&p.data).unwrap();
            }
            Kind::Symlink => {
                let target = String::from_utf8(p.data.clone()).unwrap();
                zw.add_symlink(p.path.as_str(), target, opts.unix_permissions(0o777))
                    .unwrap();
            }
        }
    }
    zw.finish().unwrap();
}

/// Lambda's rule: keep the permission bits, readable by all, executable by all if by anyone.
fn widen(mode: u32, is_dir: bool) -> u32 {
    let mut m = (mode & 0o777) | 0o444;
    if is_dir || m & 0o111 != 0 {
        m |= 0o111;
    }
    m
}

/// The tree a correct converter gives for the entries the zip really holds: every written entry,
/// plus a synthesised 0755 directory for each ancestor without an entry.
fn expected(entries: &[Planned]) -> Tree {
    let mut t = Tree::new();
    let written: Vec<&Planned> = entries
        .iter()
        .filter(|p| p.kind != Kind::Dir || p.listed)
        .collect();
    for p in &written {
        let mode = match p.kind {
            Kind::Symlink => 0o777,
            k => widen(p.mode, k == Kind::Dir),
        };
        t.insert(
            p.path.clone(),
            Node {
                kind: p.kind,
                mode,
                data: p.data.clone(),
                mtime: ZIP_MTIME,
            },
        );
    }
    let ancestors: BTreeSet<String> = written
        .iter()
        .flat_map(|p| {
            let parts: Vec<&str> = p.path.split('/').collect();
            (1..parts.len()).map(move |n| parts[..n].join("/"))
        })
        .collect();
    for a in ancestors {
        t.entry(a).or_insert(Node {
            kind: Kind::Dir,
            mode: 0o755,
            data: Vec::new(),
            mtime: SYNTH_MTIME,
        });
    }
    t
}

fn check_roundtrip(entries: &[Planned]) -> Result<(), TestCaseError> {
    let tmp = TempDir::new().unwrap();
    let zip = tmp.path().join("layer.zip");
    write_zip(entries, &zip);
    let want = expected(entries);

    let layout = tmp.path().join("img");
    let (code, stdout, stderr) = run(&[
        OsString::from("image"),
        zip.clone().into(),
        "--oci-layout".into(),
        format!("{}:p", layout.display()).into(),
    ]);
    prop_assert_eq!(code, 0, "image failed: {}", stderr);
    prop_assert!(stdout.trim().starts_with("sha256:"));
    let tars = layer_tars(&layout, "p");
    prop_assert_eq!(tars.len(), 1);
    let tar = tar_entries(&tars[0]);
    assert_layer_rules(&tar, &["opt/"]);
    let all = tar_tree(&tar);
    let opt = &all["opt"];
    prop_assert_eq!(
        (opt.kind, opt.mode, opt.mtime),
        (Kind::Dir, 0o755, SYNTH_MTIME)
    );
    prop_assert_eq!(all.len(), want.len() + 1, "entries outside opt/ or missing");
    prop_assert_eq!(
        &subtree(&all, "opt"),
        &want,
        "image layer differs from the zip's tree"
    );

    let dest = tmp.path().join("dest");
    let (code, stdout, stderr) = run(&[
        OsString::from("fetch"),
        zip.into(),
        "--dest".into(),
        dest.clone().into(),
    ]);
    prop_assert_eq!(code, 0, "fetch failed: {}", stderr);
    prop_assert_eq!(stdout.trim_end(), dest.display().to_string());
    prop_assert_eq!(
        &tree(&dest),
        &want,
        "fetch result differs from the zip's tree"
    );
    Ok(())
}

#[test]
fn relative_targets_are_computed_from_the_links_directory() {
    assert_eq!(relative("", "a/b"), "a/b");
    assert_eq!(relative("a/b", "a/c"), "../c");
    assert_eq!(relative("a/b", "a"), "..");
    assert_eq!(relative("a", "a"), ".");
    assert_eq!(relative("x/y", "z"), "../../z");
}

proptest! {
    #![proptest_config(Config {
        cases: 24,
        rng_seed: RngSeed::Fixed(0x1a7e_9047),
        failure_persistence: None,
        max_shrink_iters: 200,
        ..Config::default()
    })]

    #[test]
    fn zip_trees_round_trip_through_image_and_fetch(specs in prop::collection::vec(node_spec(), 1..16)) {
        let entries = plan(&specs);
        check_roundtrip(&entries)?;
    }
}
