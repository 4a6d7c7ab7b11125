//! `layerport zip` on images built by the test: whiteouts, opaque directories, hardlinks, symlinks and
//! replaced files/directories give the same /opt as umoci's own unpacking (an independent applier);
//! the zip passes `unzip -t`, `zipinfo` and Python's zipfile; platform choice and the checks fail
//! with messages that say what to do, leaving nothing behind.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::images::*;
use crate::support::tools::{self, Kind, Tree};
use tempfile::TempDir;

/// Three layers exercising every rule of "Image → zip".
fn rich_image() -> Img {
    let base = layer_tar(&[
        dir("usr/"),
        dir("usr/bin/"),
        E::File("usr/bin/tool", 0o755, b"tool v1\n".to_vec()),
        dir("usr/lib/"),
        file("usr/lib/libz.so.1", "libz"),
        dir("opt/"),
        dir("opt/python/"),
        file("opt/python/mod.py", "v1"),
        file("opt/python/gone.py", "gone"),
        file("opt/python/keep.py", "keep"),
        dir("opt/old-dir/"),
        file("opt/old-dir/a", "a"),
        dir("opt/old-dir/sub/"),
        file("opt/old-dir/sub/b", "b"),
        file("opt/was-file", "file"),
        dir("opt/opaque/"),
        file("opt/opaque/lower1", "l1"),
        dir("opt/opaque/lowerdir/"),
        file("opt/opaque/lowerdir/x", "x"),
        E::Dir("opt/bin/", 0o750),
        E::File("opt/bin/run.sh", 0o755, b"#!/bin/sh\necho run\n".to_vec()),
        E::File("opt/private", 0o600, b"owner only".to_vec()),
        E::File("opt/suid", 0o4755, b"setuid dropped".to_vec()),
    ]);
    let middle = layer_tar(&[
        dir("opt/"),
        dir("opt/python/"),
        marker("opt/python/.wh.gone.py"),
        file("opt/python/mod.py", "v2"),
        file("opt/old-dir", "now a file"),
        dir("opt/was-file/"),
        file("opt/was-file/inner", "inner"),
        dir("opt/opaque/"),
        marker("opt/opaque/.wh..wh..opq"),
        file("opt/opaque/upper", "u"),
        dir("opt/lib/"),
        file("opt/lib/libfoo.so.1", "foo"),
        E::Symlink("opt/lib/libfoo.so", "libfoo.so.1"),
        E::Symlink("opt/lib/abs", "/opt/lib/libfoo.so.1"),
        E::Symlink("opt/lib/outside", "/usr/lib/libz.so.1"),
        E::Hardlink("opt/lib/hard", "opt/lib/libfoo.so.1"),
        E::Hardlink("opt/bin/tool", "usr/bin/tool"),
        dir("opt/tmpdir/"),
        file("opt/tmpdir/scratch", "s"),
    ]);
    let top = layer_tar(&[
        dir("opt/"),
        marker("opt/.wh.tmpdir"),
        E::File("usr/bin/tool", 0o755, b"tool v2\n".to_vec()),
        file("opt/python/new.py", "new"),
    ]);
    Img::new("amd64", vec![base, middle, top])
}

struct Case {
    tmp: TempDir,
}

impl Case {
    fn new() -> Case {
        Case {
            tmp: TempDir::new().unwrap(),
        }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }
    fn layout(&self, tag: &str, img: &Img) -> String {
        oci_layout(&self.path("layout"), tag, img);
        format!("oci:{}:{tag}", self.path("layout").display())
    }
}

/// `layerport zip IMAGE -o OUT ARGS...`, which must succeed; returns stdout.
fn zip_ok(image: &str, out: &Path, args: &[&str]) -> String {
    let mut all = vec![
        "zip".to_string(),
        image.to_string(),
        "-o".into(),
        out.display().to_string(),
    ];
    all.extend(args.iter().map(|s| s.to_string()));
    tools::run_ok(&all)
}

/// `layerport zip ...` that must fail with exit 1; returns stderr.
fn zip_err(image: &str, out: &Path, args: &[&str]) -> String {
    let mut all = vec![
        "zip".to_string(),
        image.to_string(),
        "-o".into(),
        out.display().to_string(),
    ];
    all.extend(args.iter().map(|s| s.to_string()));
    let (code, stdout, stderr) = tools::run(&all);
    assert_eq!(
        code, 1,
        "expected failure\nstdout: {stdout}\nstderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stdout.is_empty(), "stdout on failure: {stdout}");
    assert!(!out.exists(), "{} written despite the error", out.display());
    assert!(
        stderr.contains("\n  hint: "),
        "the error gives no hint\nstderr: {stderr}"
    );
    stderr
}

/// The zip extracted by Info-ZIP `unzip`, as a tree (mtimes zeroed, permission bits only).
fn unzipped(zip: &Path, into: &Path) -> Tree {
    tools::tool_ok(
        "unzip",
        "unzip",
        &[
            "-q".as_ref(),
            zip.as_os_str(),
            "-d".as_ref(),
            into.as_os_str(),
        ],
    );
    comparable(&tools::tree(into))
}

fn comparable(t: &Tree) -> Tree {
    tools::without_mtimes(t)
        .into_iter()
        .map(|(k, mut n)| {
            n.mode &= 0o777;
            (k, n)
        })
        .collect()
}

fn node(t: &Tree, path: &str) -> tools::Node {
    t.get(path)
        .unwrap_or_else(|| panic!("{path} missing from {:?}", t.keys().collect::<Vec<_>>()))
        .clone()
}

#[test]
fn the_zip_holds_what_umoci_unpacks_at_opt() {
    let case = Case::new();
    let image = case.layout("rich", &rich_image());
    let zip = case.path("layer.zip");
    let stdout = zip_ok(&image, &zip, &[]);
    assert_eq!(stdout.trim(), zip.display().to_string());

    let ours = unzipped(&zip, &case.path("ours"));
    let rootfs = tools::umoci_unpack(&case.path("layout"), "rich", &case.path("bundle"));
    let theirs = comparable(&tools::subtree(&tools::tree(&rootfs), "opt"));
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "paths differ from umoci's unpacking"
    );
    for (path, want) in &theirs {
        let mut got = ours[path].clone();
        if path == "suid" {
            assert_eq!(got.mode, 0o755, "setuid is dropped");
            got.mode = want.mode;
        }
        assert_eq!(&got, want, "{path} differs from umoci's unpacking");
    }

    // And what that means, spelled out.
    assert!(!ours.contains_key("python/gone.py") && !ours.contains_key("tmpdir"));
    assert_eq!(node(&ours, "python/mod.py").data, b"v2");
    assert_eq!(node(&ours, "old-dir").kind, Kind::File);
    assert_eq!(node(&ours, "was-file/inner").data, b"inner");
    let opaque: Vec<_> = ours.keys().filter(|k| k.starts_with("opaque/")).collect();
    assert_eq!(opaque, ["opaque/upper"]);
    assert_eq!(
        node(&ours, "lib/hard").kind,
        Kind::File,
        "hardlinks become copies"
    );
    assert_eq!(node(&ours, "lib/hard").data, b"foo");
    assert_eq!(
        node(&ours, "bin/tool").data,
        b"tool v1\n",
        "copied when the link was made"
    );
    assert_eq!(node(&ours, "lib/libfoo.so").data, b"libfoo.so.1");
    assert_eq!(node(&ours, "lib/abs").data, b"/opt/lib/libfoo.so.1");
    assert_eq!(
        node(&ours, "private").mode,
        0o600,
        "the image's modes are kept"
    );
    assert_eq!(node(&ours, "bin").mode, 0o750);
}

#[test]
fn independent_readers_accept_the_zip_and_see_fixed_unix_metadata() {
    let case = Case::new();
    let image = case.layout("rich", &rich_image());
    let zip = case.path("layer.zip");
    zip_ok(&image, &zip, &[]);
    let test = tools::tool_ok("unzip", "unzip", &["-t".as_ref(), zip.as_os_str()]);
    assert!(test.contains("No errors detected"), "{test}");

    let listing = tools::tool_ok("zipinfo", "unzip", &[zip.as_os_str()]);
    let lines: Vec<&str> = listing.lines().filter(|l| l.contains(" unx ")).collect();
    assert!(lines.len() >= 20, "{listing}");
    for line in &lines {
        assert!(
            line.contains("80-Jan-01 00:00"),
            "timestamp not fixed: {line}"
        );
    }
    assert!(
        listing.contains("lrwxrwxrwx") && listing.contains("lib/libfoo.so"),
        "{listing}"
    );
    assert!(
        listing.contains("drwxr-x---") && listing.contains("bin/"),
        "{listing}"
    );
    assert!(
        listing.contains("-rw-------") && listing.contains("private"),
        "{listing}"
    );

    let script = r#"
import stat, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None
names = [i.filename for i in z.infolist()]
assert names == sorted(names, key=lambda n: n.rstrip('/').encode()), names
seen = set()
for i in z.infolist():
    assert i.create_system == 3, (i.filename, i.create_system)
    assert i.extra == b'', (i.filename, i.extra)
    assert i.comment == b''
    assert i.date_time == (1980, 1, 1, 0, 0, 0), (i.filename, i.date_time)
    mode = i.external_attr >> 16
    parent = i.filename.rstrip('/').rpartition('/')[0]
    assert parent == '' or parent + '/' in seen, ('parent after child', i.filename)
    seen.add(i.filename)
    if i.filename.endswith('/'):
        assert stat.S_ISDIR(mode), i.filename
    elif stat.S_ISLNK(mode):
        assert mode == 0o120777, oct(mode)
        assert i.compress_type == zipfile.ZIP_STORED
    else:
        assert stat.S_ISREG(mode), i.filename
        assert mode & 0o7000 == 0, (i.filename, oct(mode))
        assert i.compress_type in (zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED)
print(len(names))
"#;
    let out = tools::tool_ok(
        "python3",
        "python3",
        &["-c".as_ref(), script.as_ref(), zip.as_os_str()],
    );
    assert!(out.trim().parse::<usize>().unwrap() >= 20, "{out}");
}

#[test]
fn an_index_yields_the_requested_platform_and_names_those_present() {
    let case = Case::new();
    let layout = case.path("layout");
    init_layout(&layout);
    let amd = Img::new(
        "amd64",
        vec![layer_tar(&[dir("opt/"), file("opt/arch", "amd64")])],
    );
    let arm = Img::new(
        "arm64",
        vec![layer_tar(&[dir("opt/"), file("opt/arch", "arm64")])],
    );
    let (amd_desc, arm_desc) = (put_image(&layout, &amd), put_image(&layout, &arm));
    let index = put_index(&layout, vec![amd_desc.clone(), arm_desc.clone()]);
    let only_amd = put_index(&layout, vec![amd_desc.clone()]);
    write_index(
        &layout,
        vec![
            tagged(index, "multi"),
            tagged(only_amd, "amd-only"),
            tagged(amd_desc, "amd"),
            tagged(arm_desc, "arm"),
        ],
    );
    let l = layout.display();

    let by_default = case.path("default.zip");
    zip_ok(&format!("oci:{l}:multi"), &by_default, &[]);
    let arm_zip = case.path("arm.zip");
    let json = tools::parse_json(&zip_ok(
        &format!("oci:{l}:multi"),
        &arm_zip,
        &["--platform", "linux/arm64", "--json"],
    ));
    assert_eq!(json["platform"], "linux/arm64");
    assert_eq!(json["zip"], arm_zip.display().to_string());
    assert_eq!(json["size"], fs::metadata(&arm_zip).unwrap().len());
    assert_eq!(
        json["sha256"],
        tools::sha256_hex(&fs::read(&arm_zip).unwrap())
    );

    // The same manifests tagged directly, as umoci unpacks them.
    for (zip, tag, want) in [(&by_default, "amd", "amd64"), (&arm_zip, "arm", "arm64")] {
        let direct = case.path(&format!("{tag}.zip"));
        zip_ok(&format!("oci:{l}:{tag}"), &direct, &[]);
        assert_eq!(fs::read(zip).unwrap(), fs::read(&direct).unwrap(), "{tag}");
        let rootfs = tools::umoci_unpack(&layout, tag, &case.path(&format!("bundle-{tag}")));
        assert_eq!(fs::read(rootfs.join("opt/arch")).unwrap(), want.as_bytes());
        assert_eq!(
            node(&unzipped(zip, &case.path(&format!("x-{tag}"))), "arch").data,
            want.as_bytes()
        );
    }

    let err = zip_err(
        &format!("oci:{l}:amd-only"),
        &case.path("none.zip"),
        &["--platform", "linux/arm64"],
    );
    assert!(
        err.contains("no linux/arm64 image") && err.contains("it has: linux/amd64"),
        "{err}"
    );
    let err = zip_err(
        &format!("oci:{l}:arm"),
        &case.path("none.zip"),
        &["--platform", "linux/amd64"],
    );
    assert!(err.contains("linux/arm64 image, not linux/amd64"), "{err}");
    let err = zip_err(&format!("oci:{l}:nosuchtag"), &case.path("none.zip"), &[]);
    assert!(
        err.contains("nosuchtag") && err.contains("amd-only") && err.contains("multi"),
        "{err}"
    );
}

#[test]
fn an_empty_result_says_what_the_image_has_at_its_top_level() {
    let case = Case::new();
    let img = Img::new(
        "amd64",
        vec![
            layer_tar(&[
                dir("var/"),
                dir("var/task/"),
                file("var/task/app.py", "x"),
                dir("opt/"),
                file("opt/f", "f"),
            ]),
            layer_tar(&[dir("opt/"), marker("opt/.wh.f"), file("bootstrap", "b")]),
        ],
    );
    let image = case.layout("t", &img);
    let out = case.path("sub/layer.zip");
    let err = zip_err(&image, &out, &[]);
    assert!(
        err.contains("nothing at /opt") && err.contains("empty directory"),
        "{err}"
    );
    assert!(err.contains("bootstrap, opt/, var/"), "{err}");
    assert!(err.contains("e.g. --path /var"), "{err}");
    let err = zip_err(&image, &out, &["--path", "/srv"]);
    assert!(
        err.contains("no such directory") && err.contains("--path"),
        "{err}"
    );
    assert!(!case.path("sub").exists(), "a directory was left behind");
    // --path picks another directory.
    zip_ok(&image, &out, &["--path", "/var/task"]);
    assert_eq!(node(&unzipped(&out, &case.path("x")), "app.py").data, b"x");
}

#[test]
fn over_lambdas_limit_is_refused_naming_the_biggest_directories() {
    let case = Case::new();
    // 262144000 + 1000 bytes, mostly zeros so the gzip layer stays small.
    let big = vec![0u8; 200 * 1024 * 1024];
    let rest = vec![0u8; 262_144_000 + 1000 - big.len()];
    let img = Img::new(
        "amd64",
        vec![layer_tar(&[
            dir("opt/"),
            dir("opt/models/"),
            E::File("opt/models/weights.bin", 0o644, big),
            dir("opt/python/"),
            E::File("opt/python/data.bin", 0o644, rest),
        ])],
    );
    let image = case.layout("t", &img);
    let err = zip_err(&image, &case.path("layer.zip"), &[]);
    assert!(err.contains("1000 bytes (0.0 MiB) over"), "{err}");
    assert!(
        err.contains("models/ (200.0 MiB), python/ (50.0 MiB)"),
        "{err}"
    );
    assert!(err.contains("262144000"), "{err}");
    let left: Vec<_> = fs::read_dir(case.tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 1, "only the layout remains: {left:?}");
}

#[test]
fn escaping_paths_are_errors_naming_the_layer_and_the_entry() {
    let case = Case::new();
    let bad = layer_tar(&[dir("opt/"), E::RawName("opt/../../etc/cron.d/x")]);
    let bad_digest = digest(&gzip(&bad));
    let image = case.layout(
        "t",
        &Img::new(
            "amd64",
            vec![layer_tar(&[dir("opt/"), file("opt/a", "a")]), bad],
        ),
    );
    let err = zip_err(&image, &case.path("layer.zip"), &[]);
    assert!(err.contains(&bad_digest), "{err}");
    assert!(
        err.contains("opt/../../etc/cron.d/x") && err.contains("escape"),
        "{err}"
    );

    let hard = layer_tar(&[dir("opt/"), E::Hardlink("opt/h", "../../etc/shadow")]);
    let image = case.layout("h", &Img::new("amd64", vec![hard]));
    let err = zip_err(&image, &case.path("layer.zip"), &[]);
    assert!(
        err.contains("\"opt/h\"") && err.contains("../../etc/shadow"),
        "{err}"
    );
}

#[test]
fn devices_and_fifos_are_skipped_with_a_warning() {
    let case = Case::new();
    let img = Img::new(
        "amd64",
        vec![layer_tar(&[
            dir("opt/"),
            file("opt/a", "a"),
            E::Fifo("opt/pipe"),
        ])],
    );
    let image = case.layout("t", &img);
    let zip = case.path("layer.zip");
    let mut cmd = tools::layerport();
    cmd.args(["zip", &image, "-o"]).arg(&zip);
    let (code, _, stderr) = tools::run_cmd(&mut cmd);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("/opt/pipe") && stderr.contains("skipped"),
        "{stderr}"
    );
    assert_eq!(
        unzipped(&zip, &case.path("x")).keys().collect::<Vec<_>>(),
        ["a"]
    );
}

#[test]
fn damaged_or_unsupported_images_are_refused_before_any_output() {
    let case = Case::new();
    let img = Img::new(
        "amd64",
        vec![layer_tar(&[dir("opt/"), file("opt/a", "original")])],
    );
    let image = case.layout("t", &img);
    // Same size, other bytes: caught by the digest check while streaming.
    let (blob, _) = &img.blobs()[0];
    let blob_path = case.path("layout/blobs/sha256").join(&digest(blob)[7..]);
    let mut bytes = fs::read(&blob_path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&blob_path, &bytes).unwrap();
    let err = zip_err(&image, &case.path("layer.zip"), &[]);
    assert!(
        err.contains(&digest(blob)) && err.contains("does not match"),
        "{err}"
    );

    let mut zstd = img.clone();
    zstd.store = Store::ZstdMediaType;
    let image = case.layout("z", &zstd);
    let err = zip_err(&image, &case.path("layer.zip"), &[]);
    assert!(err.contains("zstd") && err.contains("gzip"), "{err}");

    // Registry sources are covered against a real registry in tests/zip_registry.rs.
    let err = zip_err(
        &format!("oci:{}", case.path("nope").display()),
        &case.path("layer.zip"),
        &[],
    );
    assert!(err.contains("no such directory"), "{err}");
}
