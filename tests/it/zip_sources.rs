//! The same image gives the same zip bytes from every source — OCI layouts (gzip or plain layers),
//! `docker save` archives (legacy, docker 25+, and the one skopeo writes) — and with any thread
//! count; images made by other tools (umoci's own whiteouts, `layerport image`) read back faithfully.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::images::*;
use crate::support::tools::{self, Tree};
use tempfile::TempDir;

fn zip_bytes(image: &str, out: &Path, args: &[&str]) -> Vec<u8> {
    let mut all = vec![
        "zip".to_string(),
        image.to_string(),
        "-o".into(),
        out.display().to_string(),
    ];
    all.extend(args.iter().map(|s| s.to_string()));
    tools::run_ok(&all);
    fs::read(out).unwrap()
}

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
    tools::without_mtimes(&tools::tree(into))
}

/// Layers where order matters: a layer repeated (docker archives store it once) and a whiteout between.
fn layered() -> Img {
    let a = layer_tar(&[
        dir("opt/"),
        dir("opt/lib/"),
        file("opt/lib/a.py", "a"),
        E::Symlink("opt/lib/b.py", "a.py"),
    ]);
    let b = layer_tar(&[
        dir("opt/"),
        dir("opt/lib/"),
        marker("opt/lib/.wh.a.py"),
        file("opt/lib/c.py", "c"),
        file("opt/readme", "r"),
    ]);
    let mut big = Vec::new();
    for i in 0..4000 {
        big.extend_from_slice(format!("line {i}: some compressible text for deflate\n").as_bytes());
    }
    let c = layer_tar(&[
        dir("opt/"),
        dir("opt/data/"),
        E::File("opt/data/big.txt", 0o644, big),
        E::File("opt/data/noise.bin", 0o644, noise(300_000, 3)),
    ]);
    Img::new("amd64", vec![a.clone(), b, c, a])
}

#[test]
fn every_source_of_one_image_gives_the_same_bytes() {
    let tmp = TempDir::new().unwrap();
    let p = |rel: &str| tmp.path().join(rel);
    let img = layered();
    let mut sources: Vec<(String, String)> = Vec::new();

    oci_layout(&p("gz"), "t", &img);
    sources.push(("oci gzip".into(), format!("oci:{}:t", p("gz").display())));
    let mut plain = img.clone();
    plain.store = Store::Tar;
    oci_layout(&p("plain"), "t", &plain);
    sources.push(("oci tar".into(), format!("oci:{}:t", p("plain").display())));
    docker_archive_legacy(&p("legacy.tar"), "test/img:v1", &img, true);
    sources.push((
        "docker legacy".into(),
        format!("docker-archive:{}", p("legacy.tar").display()),
    ));
    docker_archive_25(&p("d25.tar"), "test/img:v1", &img);
    sources.push((
        "docker 25".into(),
        format!("docker-archive:{}", p("d25.tar").display()),
    ));
    let skopeo_src = format!("oci:{}:t", p("gz").display());
    let skopeo_dst = format!("docker-archive:{}:test/img:v1", p("skopeo.tar").display());
    tools::tool_ok(
        "skopeo",
        "skopeo",
        &["copy", "--quiet", &skopeo_src, &skopeo_dst],
    );
    sources.push((
        "skopeo docker-archive".into(),
        format!("docker-archive:{}", p("skopeo.tar").display()),
    ));
    // An image of an archive named as `docker save` listed it.
    sources.push((
        "named".into(),
        format!("docker-archive:{}:test/img:v1", p("legacy.tar").display()),
    ));

    let first = zip_bytes(&sources[0].1, &p("0.zip"), &[]);
    for (i, (what, image)) in sources.iter().enumerate().skip(1) {
        let bytes = zip_bytes(image, &p(&format!("{i}.zip")), &[]);
        assert!(
            bytes == first,
            "{what} ({image}) gives other bytes than {}",
            sources[0].0
        );
    }
    let tree = unzipped(&p("0.zip"), &p("x"));
    assert_eq!(
        tree.keys().collect::<Vec<_>>(),
        [
            "data",
            "data/big.txt",
            "data/noise.bin",
            "lib",
            "lib/a.py",
            "lib/b.py",
            "lib/c.py",
            "readme"
        ],
        "the repeated top layer brings a.py back"
    );
    // Nothing about the source leaks into the zip.
    let text = String::from_utf8_lossy(&first);
    assert!(!text.contains(tmp.path().to_str().unwrap()));
}

#[test]
fn the_thread_count_never_changes_a_byte() {
    let tmp = TempDir::new().unwrap();
    let mut entries = vec![dir("opt/")];
    let names: Vec<&'static str> = (0..300)
        .map(|i| &*Box::leak(format!("opt/f{i:03}.txt").into_boxed_str()))
        .collect();
    for (i, n) in names.iter().enumerate() {
        entries.push(E::File(
            n,
            0o644,
            format!("file {i} ").repeat(i * 7).into_bytes(),
        ));
    }
    let img = Img::new(
        "amd64",
        vec![layer_tar(&entries), layered().layers[2].clone()],
    );
    oci_layout(&tmp.path().join("l"), "t", &img);
    let image = format!("oci:{}:t", tmp.path().join("l").display());
    let one = zip_bytes(&image, &tmp.path().join("1.zip"), &["--threads", "1"]);
    for threads in ["2", "7", "32"] {
        let other = zip_bytes(
            &image,
            &tmp.path().join(format!("{threads}.zip")),
            &["--threads", threads],
        );
        assert!(other == one, "--threads {threads} changes the zip");
    }
    let default = zip_bytes(&image, &tmp.path().join("d.zip"), &[]);
    assert!(default == one);
    let (code, _, err) = tools::run(&["zip", &image, "-o", "/dev/null", "--threads", "0"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn source_date_epoch_sets_the_one_timestamp() {
    let tmp = TempDir::new().unwrap();
    oci_layout(&tmp.path().join("l"), "t", &layered());
    let image = format!("oci:{}:t", tmp.path().join("l").display());
    let zip = tmp.path().join("e.zip");
    let mut cmd = tools::layerport();
    cmd.args(["zip", &image, "-o"])
        .arg(&zip)
        .env("SOURCE_DATE_EPOCH", "1704164645");
    let (code, _, err) = tools::run_cmd(&mut cmd);
    assert_eq!(code, 0, "{err}");
    let listing = tools::tool_ok("zipinfo", "unzip", &[zip.as_os_str()]);
    for line in listing.lines().filter(|l| l.contains(" unx ")) {
        assert!(line.contains("24-Jan-02 03:04"), "{line}");
    }
}

/// umoci writes the layers (and their whiteouts) from real directory changes.
#[test]
fn an_image_umoci_built_from_directory_changes_matches_umocis_unpacking() {
    let tmp = TempDir::new().unwrap();
    let p = |rel: &str| tmp.path().join(rel);
    let layout = p("layout");
    let l = layout.display().to_string();
    let umoci = |args: &[&str]| tools::tool_ok("umoci", "umoci", args);
    umoci(&["init", "--layout", &l]);
    umoci(&["new", "--image", &format!("{l}:base")]);
    let bundle = p("bundle");
    umoci(&[
        "unpack",
        "--rootless",
        "--image",
        &format!("{l}:base"),
        bundle.to_str().unwrap(),
    ]);
    let opt = bundle.join("rootfs/opt");
    let w = |rel: &str, data: &str| {
        let path = opt.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, data).unwrap();
    };
    w("python/pkg/__init__.py", "init");
    w("python/pkg/gone.py", "gone");
    w("python/old/a.py", "a");
    w("python/old/deep/b.py", "b");
    w("bin/was-file", "file");
    w("share/doc.txt", "doc");
    std::os::unix::fs::symlink("../python/pkg/__init__.py", opt.join("share/link")).unwrap();
    fs::hard_link(opt.join("share/doc.txt"), opt.join("share/doc-hard.txt")).unwrap();
    let refresh = |tag: &str| {
        umoci(&[
            "repack",
            "--refresh-bundle",
            "--image",
            &format!("{l}:{tag}"),
            bundle.to_str().unwrap(),
        ])
    };
    refresh("v1");
    fs::remove_file(opt.join("python/pkg/gone.py")).unwrap();
    fs::remove_dir_all(opt.join("python/old")).unwrap();
    w("python/old", "a file now");
    fs::remove_file(opt.join("bin/was-file")).unwrap();
    w("bin/was-file/inside", "a dir now");
    fs::remove_dir_all(opt.join("share")).unwrap();
    w("share/new.txt", "new");
    refresh("v2");

    let top_layer = tools::layer_tars(&layout, "v2").pop().unwrap();
    let names: Vec<String> = tools::tar_entries(&top_layer)
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert!(
        names.iter().any(|n| n.contains(".wh.gone.py")),
        "umoci wrote no whiteout: {names:?}"
    );

    let zip = p("layer.zip");
    zip_bytes(&format!("oci:{l}:v2"), &zip, &[]);
    let ours = unzipped(&zip, &p("ours"));
    let rootfs = tools::umoci_unpack(&layout, "v2", &p("check"));
    let theirs = tools::without_mtimes(&tools::subtree(&tools::tree(&rootfs), "opt"));
    assert_eq!(ours, theirs);
    assert!(ours.contains_key("bin/was-file/inside") && !ours.contains_key("python/pkg/gone.py"));
}

/// zip → `layerport image` → `layerport zip` gives back the zip's tree (modes as the image holds them).
#[test]
fn a_layer_zip_survives_the_round_trip_through_an_image() {
    let tmp = TempDir::new().unwrap();
    let input: PathBuf = tools::testdata("good/python-zipfile.zip");
    let layout = tmp.path().join("l");
    tools::run_ok(&[
        "image".as_ref(),
        input.as_os_str(),
        "--oci-layout".as_ref(),
        layout.as_os_str(),
    ]);
    let archive = tmp.path().join("a.tar");
    tools::run_ok(&[
        "image".as_ref(),
        input.as_os_str(),
        "--docker-archive".as_ref(),
        archive.as_os_str(),
    ]);
    let zip = tmp.path().join("back.zip");
    let from_layout = zip_bytes(&format!("oci:{}", layout.display()), &zip, &[]);
    let from_archive = zip_bytes(
        &format!("docker-archive:{}", archive.display()),
        &tmp.path().join("b.zip"),
        &[],
    );
    assert!(from_layout == from_archive);
    let original = unzipped(&input, &tmp.path().join("orig"));
    let back = unzipped(&zip, &tmp.path().join("back"));
    assert_eq!(
        original.keys().collect::<Vec<_>>(),
        back.keys().collect::<Vec<_>>()
    );
    for (k, v) in &original {
        assert_eq!(v.data, back[k].data, "{k}");
        assert_eq!(v.kind, back[k].kind, "{k}");
    }
}
