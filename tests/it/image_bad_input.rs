//! Proves that `layerport image` refuses every broken or hostile zip (testdata/bad, NUL names) with exit 1,
//! a clear error naming the zip and entry plus a hint, leaves nothing behind, and never lets a layer escape.

use crate::support::tools::*;
use std::ffi::OsString;
use std::fs;
use std::path::Path;
use tempfile::TempDir;

/// Runs `layerport image good/stored.zip BAD --<flag> <dest>` with TMPDIR pointed at an empty
/// dir inside `tmp`; returns (code, stdout, stderr).
fn run_image(tmp: &Path, bad: &Path, flag: &str, dest: &str) -> (i32, String, String) {
    let tmpdir = tmp.join("tmpdir");
    fs::create_dir_all(&tmpdir).unwrap();
    let mut cmd = layerport();
    cmd.env("TMPDIR", &tmpdir).args([
        OsString::from("image"),
        testdata("good/stored.zip").into(),
        bad.into(),
        flag.into(),
        dest.into(),
    ]);
    run_cmd(&mut cmd)
}

fn check_refusal(zip: &str, entry: Option<&str>, must_say: &[&str]) {
    let bad = testdata(&format!("bad/{zip}"));
    for (flag, out_name, dest_suffix) in [
        ("--oci-layout", "out", "/new:tag"),
        ("--docker-archive", "x.tar", ""),
    ] {
        let tmp = TempDir::new().unwrap();
        let dest = format!("{}{dest_suffix}", tmp.path().join(out_name).display());
        let (code, stdout, stderr) = run_image(tmp.path(), &bad, flag, &dest);
        let ctx = format!("{zip} {flag}: stderr was\n{stderr}");
        assert_eq!(code, 1, "exit code, {ctx}");
        assert!(
            stdout.is_empty(),
            "stdout must be empty on failure: {stdout:?}, {ctx}"
        );
        assert!(!stderr.contains("panicked"), "panic, {ctx}");
        assert!(stderr.contains("error:"), "no `error:` line, {ctx}");
        assert!(stderr.contains(zip), "error does not name the zip, {ctx}");
        assert!(stderr.contains("hint:"), "no hint, {ctx}");
        if let Some(entry) = entry {
            assert!(
                stderr.contains(&format!("entry \"{entry}\"")),
                "error does not name entry {entry:?}, {ctx}"
            );
        }
        for s in must_say {
            assert!(
                stderr.to_lowercase().contains(&s.to_lowercase()),
                "error does not say {s:?}, {ctx}"
            );
        }
        assert!(
            !tmp.path().join(out_name).exists(),
            "{out_name} exists after a failure, {ctx}"
        );
        assert_eq!(
            list_all(tmp.path()),
            vec!["tmpdir".to_string()],
            "leftovers, {ctx}"
        );
    }
}

macro_rules! refuses {
    ($name:ident, $zip:expr, $entry:expr, $says:expr) => {
        #[test]
        fn $name() {
            check_refusal($zip, $entry, $says);
        }
    };
}

refuses!(
    refuses_dotdot,
    "dotdot.zip",
    Some("python/../../evil.txt"),
    &[".."]
);
refuses!(
    refuses_absolute,
    "absolute.zip",
    Some("/etc/evil.txt"),
    &["absolute"]
);
refuses!(
    refuses_drive_letter,
    "drive-letter.zip",
    Some("C:/evil.txt"),
    &["drive"]
);
refuses!(
    refuses_write_through_symlink,
    "through-symlink.zip",
    Some("python/link/evil.txt"),
    &["symlink", "python/link"]
);
refuses!(refuses_bomb, "bomb.zip", None, &["262144000"]);
refuses!(
    refuses_bomb_with_lying_header,
    "bomb-lying-header.zip",
    Some("python/zeros.bin"),
    &[]
);
refuses!(refuses_truncated, "truncated.zip", None, &[]);
refuses!(
    refuses_crc_mismatch_stored,
    "crc-mismatch.zip",
    Some("python/b_corrupt.txt"),
    &["crc"]
);
refuses!(
    refuses_crc_mismatch_deflated,
    "crc-mismatch-deflate.zip",
    Some("python/b_bad_crc.txt"),
    &["crc"]
);
refuses!(
    refuses_encrypted,
    "encrypted.zip",
    Some("python/secret.txt"),
    &["encrypted"]
);
refuses!(
    refuses_unsupported_method,
    "unsupported-method.zip",
    Some("python/bz.txt"),
    &["compression method", "12"]
);
refuses!(
    refuses_not_a_zip,
    "not-a-zip.zip",
    None,
    &["not a readable zip"]
);
refuses!(refuses_empty_zip, "empty.zip", None, &["no entries"]);

fn image_large_ok(tmp: &Path, limit: &str) -> (i32, String, String) {
    let layout = tmp.join("img");
    run(&[
        OsString::from("image"),
        testdata("bad/large-ok.zip").into(),
        "--max-unzipped".into(),
        limit.into(),
        "--oci-layout".into(),
        format!("{}:t", layout.display()).into(),
    ])
}

#[test]
fn max_unzipped_is_an_inclusive_limit() {
    let tmp = TempDir::new().unwrap();
    let (code, _, stderr) = image_large_ok(tmp.path(), "999999");
    assert_eq!(
        code, 1,
        "1000000 bytes accepted with --max-unzipped 999999: {stderr}"
    );
    assert!(
        stderr.contains("large-ok.zip") && stderr.contains("999999"),
        "{stderr}"
    );
    assert!(
        list_all(tmp.path()).is_empty(),
        "leftovers: {:?}",
        list_all(tmp.path())
    );
    let (code, stdout, stderr) = image_large_ok(tmp.path(), "1000000");
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.trim().starts_with("sha256:"));
    let tars = layer_tars(&tmp.path().join("img"), "t");
    let t = tar_tree(&tar_entries(&tars[0]));
    assert_eq!(t["opt/python/zeros.bin"].data.len(), 1_000_000);
}

#[test]
fn failure_leaves_an_existing_layout_untouched() {
    let tmp = TempDir::new().unwrap();
    let layout = tmp.path().join("img");
    let spec = |tag: &str| format!("{}:{tag}", layout.display());
    run_ok(&[
        "image".into(),
        testdata("good/stored.zip").display().to_string(),
        "--oci-layout".into(),
        spec("v1"),
    ]);
    let index_before = fs::read(layout.join("index.json")).unwrap();
    let before = tree(tmp.path());
    for tag in ["v1", "v2"] {
        let (code, _, stderr) = run(&[
            OsString::from("image"),
            testdata("good/python-zipfile.zip").into(),
            testdata("bad/crc-mismatch.zip").into(),
            "--oci-layout".into(),
            spec(tag).into(),
        ]);
        assert_eq!(code, 1, "{stderr}");
        assert_eq!(
            fs::read(layout.join("index.json")).unwrap(),
            index_before,
            "index.json changed ({tag})"
        );
        assert_eq!(
            tree(tmp.path()),
            before,
            "layout changed or leftovers after failure ({tag})"
        );
    }
}

#[test]
fn failure_leaves_an_existing_archive_untouched() {
    let tmp = TempDir::new().unwrap();
    let file = tmp.path().join("img.tar");
    run_ok(&[
        "image".into(),
        testdata("good/stored.zip").display().to_string(),
        "--docker-archive".into(),
        format!("{}:a:b", file.display()),
    ]);
    let before = tree(tmp.path());
    let (code, _, stderr) = run(&[
        OsString::from("image"),
        testdata("bad/dotdot.zip").into(),
        "--docker-archive".into(),
        format!("{}:a:b", file.display()).into(),
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        tree(tmp.path()),
        before,
        "archive changed or leftovers after failure"
    );
}

#[test]
fn unsupported_platform_is_a_usage_error() {
    let tmp = TempDir::new().unwrap();
    let (code, stdout, stderr) = run(&[
        OsString::from("image"),
        testdata("good/stored.zip").into(),
        "--platform".into(),
        "windows/amd64".into(),
        "--oci-layout".into(),
        format!("{}:t", tmp.path().join("img").display()).into(),
    ]);
    assert_eq!(code, 2, "stderr: {stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.contains("windows/amd64"), "{stderr}");
    assert!(!stderr.contains("panicked"));
    assert!(
        list_all(tmp.path()).is_empty(),
        "leftovers: {:?}",
        list_all(tmp.path())
    );
}

#[test]
fn missing_zip_file_fails_cleanly() {
    let tmp = TempDir::new().unwrap();
    let missing = tmp.path().join("nope.zip");
    let (code, stdout, stderr) = run(&[
        OsString::from("image"),
        missing.into(),
        "--oci-layout".into(),
        format!("{}:t", tmp.path().join("img").display()).into(),
    ]);
    assert_eq!(code, 1, "stderr: {stderr}");
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("nope.zip") && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert!(
        list_all(tmp.path()).is_empty(),
        "leftovers: {:?}",
        list_all(tmp.path())
    );
}

#[test]
fn refuses_a_nul_byte_in_an_entry_name() {
    let tmp = TempDir::new().unwrap();
    let zip = tmp.path().join("nul.zip");
    make_zip(
        &zip,
        &[
            ZipEntry::File("python/ok.txt", b"ok\n", 0o644),
            ZipEntry::File("python/aXb", b"x", 0o644),
        ],
    );
    // Python's and the zip crate's writers refuse NUL, so patch it into both headers.
    let bytes = fs::read(&zip).unwrap();
    let needle = b"python/aXb";
    let mut patched = bytes.clone();
    let hits: Vec<usize> = (0..bytes.len() - needle.len())
        .filter(|&i| &bytes[i..i + needle.len()] == needle)
        .collect();
    assert_eq!(hits.len(), 2, "name in local and central header");
    for i in hits {
        patched[i + 8] = 0;
    }
    let dir = TempDir::new().unwrap();
    let bad = dir.path().join("nul.zip");
    fs::write(&bad, patched).unwrap();
    let (code, stdout, stderr) = run_image(
        tmp.path(),
        &bad,
        "--oci-layout",
        &format!("{}/out/n:t", tmp.path().display()),
    );
    assert_eq!(code, 1, "NUL in a name accepted: {stderr}");
    assert!(
        stdout.is_empty() && stderr.contains("nul.zip") && stderr.contains("NUL"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint:") && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert!(!tmp.path().join("out").exists());
}

#[test]
fn a_later_layer_replaces_an_earlier_symlink_instead_of_following_it() {
    let tmp = TempDir::new().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let (abs, rel, under) = (
        tmp.path().join("abs.zip"),
        tmp.path().join("rel.zip"),
        tmp.path().join("under.zip"),
    );
    make_zip(
        &abs,
        &[ZipEntry::Symlink("python", outside.to_str().unwrap())],
    );
    make_zip(&rel, &[ZipEntry::Symlink("python", "../../outside")]);
    make_zip(
        &under,
        &[ZipEntry::File("python/evil.txt", b"evil\n", 0o644)],
    );
    for first in [&abs, &rel] {
        for squash in [true, false] {
            let layout = tmp.path().join("img");
            let mut args: Vec<OsString> = vec!["image".into(), first.into(), under.clone().into()];
            if squash {
                args.push("--squash".into());
            }
            args.extend([
                "--oci-layout".into(),
                format!("{}:t", layout.display()).into(),
            ]);
            run_ok(&args);
            let bundle = tmp.path().join("bundle");
            let opt = subtree(&tree(&umoci_unpack(&layout, "t", &bundle)), "opt");
            assert_eq!(opt["python"].kind, Kind::Dir, "{first:?} squash={squash}");
            assert_eq!(opt["python/evil.txt"].data, b"evil\n");
            assert!(list_all(&outside).is_empty(), "written through the symlink");
            fs::remove_dir_all(&layout).unwrap();
            fs::remove_dir_all(&bundle).unwrap();
        }
    }
}
