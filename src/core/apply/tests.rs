//! Unit tests of the applier: whiteout order rules, replacements, hardlinks, symlinked parents.

use super::*;

struct Layer {
    builder: tar::Builder<Vec<u8>>,
}

impl Layer {
    fn new() -> Self {
        Layer {
            builder: tar::Builder::new(Vec::new()),
        }
    }
    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(0);
        h
    }
    fn dir(mut self, path: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Directory, 0o755, 0);
        self.builder.append_data(&mut h, path, io::empty()).unwrap();
        self
    }
    fn file(mut self, path: &str, data: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, 0o644, data.len() as u64);
        self.builder
            .append_data(&mut h, path, data.as_bytes())
            .unwrap();
        self
    }
    fn link(mut self, kind: tar::EntryType, path: &str, target: &str) -> Self {
        let mut h = Self::header(kind, 0o777, 0);
        self.builder.append_link(&mut h, path, target).unwrap();
        self
    }
    fn symlink(self, path: &str, target: &str) -> Self {
        self.link(tar::EntryType::Symlink, path, target)
    }
    fn hardlink(self, path: &str, target: &str) -> Self {
        self.link(tar::EntryType::Link, path, target)
    }
    fn fifo(mut self, path: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Fifo, 0o644, 0);
        self.builder.append_data(&mut h, path, io::empty()).unwrap();
        self
    }
    /// A raw name the tar crate's path setters would refuse (`..`).
    fn raw(mut self, path: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, 0o644, 1);
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        self.builder.append(&h, &b"x"[..]).unwrap();
        self
    }
    fn bytes(self) -> Vec<u8> {
        self.builder.into_inner().unwrap()
    }
}

fn apply(
    keep: Selection,
    layers: Vec<Layer>,
) -> Result<(AppliedTree, tempfile::TempDir), ApplyError> {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Applier::new("img", keep, &dir.path().join("spool")).unwrap();
    for (i, l) in layers.into_iter().enumerate() {
        a.apply_layer(i, &format!("sha256:layer{i}"), &l.bytes()[..])?;
    }
    Ok((a.finish()?, dir))
}

/// path → "d" / "f:<content>" / "l:<target>" / "f?" (content not kept).
fn listing(t: &AppliedTree) -> Vec<String> {
    use std::os::unix::fs::FileExt;
    t.nodes
        .iter()
        .map(|(k, n)| match &n.kind {
            NodeKind::Dir => format!("{k} d"),
            NodeKind::Symlink(target) => format!("{k} l:{target}"),
            NodeKind::File(Content::NotKept { .. }) => format!("{k} f?"),
            NodeKind::File(Content::Spooled(r)) => {
                let mut buf = vec![0; r.len as usize];
                t.spool.read_exact_at(&mut buf, r.offset).unwrap();
                format!("{k} f:{}", String::from_utf8(buf).unwrap())
            }
        })
        .collect()
}

#[test]
fn whiteouts_delete_lower_content_only() {
    let (t, _d) = apply(
        Selection::Everything,
        vec![
            Layer::new()
                .dir("a/")
                .file("a/x", "1")
                .file("a/y", "2")
                .file("b", "3"),
            // The same-layer a/y comes before its whiteout in the stream and must stay.
            Layer::new()
                .file("a/z", "new")
                .file("c", "c")
                .file("a/.wh.x", "")
                .file("a/.wh.z", "")
                .file(".wh.b", ""),
        ],
    )
    .unwrap();
    assert_eq!(listing(&t), ["a d", "a/y f:2", "a/z f:new", "c f:c"]);
}

#[test]
fn opaque_directories_hide_lower_children_whatever_the_order() {
    let (t, _d) = apply(
        Selection::Everything,
        vec![
            Layer::new()
                .dir("d/")
                .file("d/old", "o")
                .dir("d/sub/")
                .file("d/sub/deep", "x")
                .file("e", "e"),
            // "-first" sorts before ".wh..wh..opq": it must survive the marker that follows it.
            Layer::new()
                .dir("d/")
                .file("d/-first", "f")
                .file("d/.wh..wh..opq", "")
                .file("d/new", "n"),
        ],
    )
    .unwrap();
    assert_eq!(listing(&t), ["d d", "d/-first f:f", "d/new f:n", "e f:e"]);
}

#[test]
fn files_and_directories_replace_each_other() {
    let (t, _d) = apply(
        Selection::Everything,
        vec![
            Layer::new()
                .file("f2d", "file")
                .dir("d2f/")
                .file("d2f/child", "c"),
            Layer::new()
                .dir("f2d/")
                .file("f2d/inside", "i")
                .file("d2f", "now a file"),
        ],
    )
    .unwrap();
    assert_eq!(listing(&t), ["d2f f:now a file", "f2d d", "f2d/inside f:i"]);
}

#[test]
fn hardlinks_copy_content_even_after_the_target_changes() {
    let (t, _d) = apply(
        Selection::Everything,
        vec![
            Layer::new().file("orig", "v1").hardlink("copy", "orig"),
            Layer::new().file("orig", "v2").hardlink("copy2", "./copy"),
        ],
    )
    .unwrap();
    assert_eq!(listing(&t), ["copy f:v1", "copy2 f:v1", "orig f:v2"]);
    let missing = apply(
        Selection::Everything,
        vec![Layer::new().hardlink("x", "nowhere")],
    );
    let err = missing.err().unwrap().to_string();
    assert!(
        err.contains("sha256:layer0") && err.contains("\"x\"") && err.contains("nowhere"),
        "{err}"
    );
}

#[test]
fn symlinked_parents_are_followed_inside_the_root() {
    let (t, _d) = apply(
        Selection::Everything,
        vec![
            Layer::new()
                .dir("usr/")
                .dir("usr/lib/")
                .symlink("lib", "usr/lib")
                .symlink("abs", "/usr/../usr"),
            Layer::new()
                .file("lib/libx.so", "x")
                .file("abs/lib/liby.so", "y"),
        ],
    )
    .unwrap();
    assert_eq!(
        listing(&t),
        [
            "abs l:/usr/../usr",
            "lib l:usr/lib",
            "usr d",
            "usr/lib d",
            "usr/lib/libx.so f:x",
            "usr/lib/liby.so f:y"
        ]
    );
}

#[test]
fn escaping_paths_name_the_layer_and_the_entry() {
    let err = apply(
        Selection::Everything,
        vec![
            Layer::new().file("ok", "1"),
            Layer::new().raw("a/../../etc/passwd"),
        ],
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("sha256:layer1"), "{err}");
    assert!(
        err.contains("a/../../etc/passwd") && err.contains("escape"),
        "{err}"
    );
}

#[test]
fn only_selected_contents_are_spooled_and_specials_warn() {
    let (mut t, _d) = apply(
        Selection::Under("opt".into()),
        vec![
            Layer::new()
                .file("usr/big", "outside")
                .file("opt/in", "inside")
                .fifo("opt/pipe"),
        ],
    )
    .unwrap();
    assert_eq!(
        listing(&t),
        ["opt d", "opt/in f:inside", "usr d", "usr/big f?"]
    );
    assert_eq!(t.warnings.len(), 1);
    assert!(
        t.warnings[0].message.contains("/opt/pipe"),
        "{:?}",
        t.warnings
    );
    match t.select("opt", 1000).unwrap() {
        Selected::Items {
            items, unzipped, ..
        } => {
            assert_eq!(unzipped, 6);
            assert_eq!(
                items.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
                ["in"]
            );
        }
        Selected::AgainWith(s) => panic!("unexpected second pass {s:?}"),
    }
}

#[test]
fn a_hardlink_out_of_the_selection_or_a_symlinked_path_asks_for_another_pass() {
    let (mut t, _d) = apply(
        Selection::Under("opt".into()),
        vec![
            Layer::new()
                .file("usr/bin/tool", "t")
                .hardlink("opt/tool", "usr/bin/tool"),
        ],
    )
    .unwrap();
    // The next pass keeps the linked file, not the whole image; one after it keeps everything.
    let next = match t.select("opt", 1000).unwrap() {
        Selected::AgainWith(next) => next,
        Selected::Items { .. } => panic!("the linked content was not kept"),
    };
    assert_eq!(
        next,
        Selection::UnderWith {
            dir: "opt".into(),
            files: ["usr/bin/tool".to_string()].into(),
        }
    );
    let (mut t, _d) = apply(
        next,
        vec![
            Layer::new()
                .file("usr/bin/tool", "t")
                .file("usr/bin/other", "o")
                .hardlink("opt/tool", "usr/bin/tool"),
        ],
    )
    .unwrap();
    assert!(matches!(
        t.select("opt", 1000).unwrap(),
        Selected::Items { .. }
    ));
    assert_eq!(
        listing(&t).iter().filter(|l| l.ends_with("f?")).count(),
        1,
        "{:?}",
        listing(&t)
    );

    let (mut t, _d) = apply(
        Selection::Under("opt".into()),
        vec![
            Layer::new()
                .file("data/opt/x", "x")
                .symlink("opt", "/data/opt"),
        ],
    )
    .unwrap();
    assert!(
        matches!(t.select("opt", 1000).unwrap(), Selected::AgainWith(Selection::Under(p)) if p == "data/opt")
    );
}

#[test]
fn selection_checks_name_what_is_wrong() {
    let (mut t, _d) = apply(
        Selection::Everything,
        vec![
            Layer::new()
                .file("app.py", "x")
                .dir("etc/")
                .dir("empty/")
                .file("big/a/b/blob", &"z".repeat(300)),
        ],
    )
    .unwrap();
    let missing = t.select("opt", 1000).err().unwrap().to_string();
    assert!(
        missing.contains("/opt") && missing.contains("app.py, big/, empty/, etc/"),
        "{missing}"
    );
    let empty = t.select("empty", 1000).err().unwrap().to_string();
    assert!(empty.contains("empty directory"), "{empty}");
    let file = t.select("app.py/x", 1000).err().unwrap().to_string();
    assert!(file.contains("is a file"), "{file}");
    let big = t.select("", 100).err().unwrap().to_string();
    assert!(big.contains("301 bytes unzipped, 201 bytes"), "{big}");
    assert!(big.contains("big/a/b/ (0.0 MiB)"), "{big}");
}

#[test]
fn whiteouts_under_a_directory_replaced_in_the_same_layer_are_ignored() {
    // umoci writes the replacing file first, then whiteouts for the old directory's children.
    let (t, _d) = apply(
        Selection::Everything,
        vec![
            Layer::new()
                .dir("d/")
                .file("d/a", "a")
                .dir("d/sub/")
                .file("d/sub/b", "b"),
            Layer::new()
                .file("d", "now a file")
                .file("d/.wh.a", "")
                .file("d/sub/.wh.b", "")
                .file("d/.wh..wh..opq", ""),
        ],
    )
    .unwrap();
    assert_eq!(listing(&t), ["d f:now a file"]);
}

#[test]
fn kept_files_are_announced_once_their_bytes_can_be_read_elsewhere() {
    use std::cell::RefCell;
    use std::os::unix::fs::FileExt;
    use std::rc::Rc;

    let dir = tempfile::tempdir().unwrap();
    let spool_path = dir.path().join("spool");
    let mut a = Applier::new("img", Selection::Under("opt".into()), &spool_path).unwrap();
    // Another handle, as the compression threads have: it sees only what reached the file.
    let reader = File::open(&spool_path).unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let log = Rc::clone(&seen);
    a.on_spooled(move |r| {
        let mut buf = vec![0; r.len as usize];
        reader.read_exact_at(&mut buf, r.offset).unwrap();
        log.borrow_mut().push(String::from_utf8(buf).unwrap());
    });
    // 600 KiB files overflow the 1 MiB write buffer: those announced mid-layer must already be
    // readable (the read above fails otherwise).
    let big = |c: char| c.to_string().repeat(600 * 1024);
    let layer0 = Layer::new()
        .file("opt/a", &big('a'))
        .file("usr/skipped", "not kept")
        .file("opt/b", &big('b'))
        .file("opt/c", "small");
    a.apply_layer(0, "sha256:layer0", &layer0.bytes()[..])
        .unwrap();
    let after_first = seen.borrow().len();
    a.apply_layer(
        1,
        "sha256:layer1",
        &Layer::new().file("opt/a", "again").bytes()[..],
    )
    .unwrap();
    let t = a.finish().unwrap();
    let seen = seen.borrow();
    assert_eq!(
        after_first, 3,
        "a layer's files are all announced by its end"
    );
    let short: Vec<&str> = seen.iter().map(|s| &s[..s.len().min(5)]).collect();
    assert_eq!(short, ["aaaaa", "bbbbb", "small", "again"]);
    assert_eq!(seen[0], big('a'));
    assert_eq!(listing(&t)[1], "opt/a f:again");
}

#[test]
fn the_spool_limit_counts_live_bytes_only() {
    let dir = tempfile::tempdir().unwrap();
    let run = |layers: Vec<Layer>| {
        let mut a =
            Applier::new("img", Selection::Under("opt".into()), &dir.path().join("s")).unwrap();
        a.limit_spool(10);
        for (i, l) in layers.into_iter().enumerate() {
            a.apply_layer(i, &format!("sha256:layer{i}"), &l.bytes()[..])
                .unwrap();
        }
        a.finish().unwrap().overflow
    };
    // A file replaced (or removed) by a later layer frees its bytes.
    let replaced = vec![
        Layer::new().dir("opt").file("opt/a", "12345678"),
        Layer::new().file("opt/a", "87654321"),
        Layer::new().file("opt/.wh.a", "").file("opt/b", "abcdefgh"),
    ];
    assert_eq!(run(replaced), None);
    // Two live files over the limit: the second is not spooled, and named.
    let over = vec![
        Layer::new()
            .dir("opt")
            .file("opt/a", "12345678")
            .file("opt/b", "123"),
    ];
    let overflow = run(over).expect("an overflow");
    assert_eq!((overflow.entry.as_str(), overflow.size), ("opt/b", 11));
    // Outside the selection nothing is spooled or counted.
    let outside = vec![Layer::new().dir("usr").file("usr/big", "0123456789abcdef")];
    assert_eq!(run(outside), None);
}

#[test]
fn a_walk_through_symlinks_past_path_max_is_refused() {
    let target = "y/".repeat(1500);
    let entry = format!("s/{}f", "z/".repeat(600));
    let err = apply(
        Selection::Everything,
        vec![Layer::new().symlink("s", &target).file(&entry, "x")],
    )
    .map(|_| ())
    .unwrap_err();
    assert!(err.to_string().contains("PATH_MAX"), "{err}");
}
