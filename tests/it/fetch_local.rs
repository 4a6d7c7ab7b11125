//! Proves that `layerport fetch` extracts local layer zips in order (later wins) with the same modes,
//! symlinks and mtimes as the image path, and that a failed fetch changes nothing on disk.

use crate::support::tools::*;
use std::ffi::OsString;
use std::fs;
use std::path::Path;
use tempfile::TempDir;

fn fetch(zips: &[&str], dest: &Path) -> (i32, String, String) {
    let mut args: Vec<OsString> = vec!["fetch".into()];
    args.extend(zips.iter().map(|z| testdata(z).into_os_string()));
    args.push("--dest".into());
    args.push(dest.into());
    run(&args)
}

fn fetch_ok(zips: &[&str], dest: &Path) {
    let (code, stdout, stderr) = fetch(zips, dest);
    assert_eq!(code, 0, "fetch failed: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        stdout.trim_end(),
        dest.display().to_string(),
        "stdout must be the destination"
    );
}

#[test]
fn later_zips_override_earlier_ones() {
    let tmp = TempDir::new().unwrap();
    let dest = tmp.path().join("new/dir");
    fetch_ok(&["good/override-a.zip", "good/override-b.zip"], &dest);
    let t = tree(&dest);
    assert_eq!(t["python/shared.txt"].data, b"from b\n");
    assert_eq!(t["python/only_a.txt"].kind, Kind::File);
    assert_eq!(t["python/only_b.txt"].kind, Kind::File);
    assert_eq!(
        t["python/thing"].kind,
        Kind::File,
        "B's file replaces A's directory"
    );
    assert!(!t.contains_key("python/thing/inner.txt"));
    assert_eq!(
        t["python/was_file"].kind,
        Kind::Dir,
        "B's directory replaces A's file"
    );
    assert_eq!(t["python/was_file/now_dir.txt"].kind, Kind::File);
    assert_eq!(t.len(), 7, "unexpected entries: {:?}", t.keys());
    assert_eq!(
        list_all(tmp.path()).len(),
        t.len() + 2,
        "files outside dest: {:?}",
        list_all(tmp.path())
    );
}

#[test]
fn fetch_matches_the_squashed_image() {
    let zips = [
        "good/override-a.zip",
        "good/override-b.zip",
        "good/infozip-symlinks.zip",
        "good/windows-style.zip",
    ];
    let tmp = TempDir::new().unwrap();
    let dest = tmp.path().join("dest");
    fetch_ok(&zips, &dest);
    let layout = tmp.path().join("img");
    let mut args: Vec<OsString> = vec!["image".into(), "--squash".into()];
    args.extend(zips.iter().map(|z| testdata(z).into_os_string()));
    args.push("--oci-layout".into());
    args.push(format!("{}:t", layout.display()).into());
    run_ok(&args);
    let image = subtree(
        &tree(&umoci_unpack(&layout, "t", &tmp.path().join("b"))),
        "opt",
    );
    assert_eq!(
        tree(&dest),
        image,
        "fetch and the image disagree (modes, links, contents or mtimes)"
    );
}

#[test]
fn modes_and_symlinks_follow_the_layer_rules() {
    let tmp = TempDir::new().unwrap();
    let dest = tmp.path().join("d");
    fetch_ok(
        &["good/infozip-symlinks.zip", "good/windows-style.zip"],
        &dest,
    );
    let t = tree(&dest);
    for (p, target) in [
        ("python/mod/link.py", "__init__.py"),
        ("lib/libfoo.so", "libfoo.so.1"),
        ("share/escape", "../../etc/passwd"),
    ] {
        assert_eq!(
            (t[p].kind, t[p].data.as_slice()),
            (Kind::Symlink, target.as_bytes()),
            "{p}"
        );
        assert_eq!(t[p].mtime, INFOZIP_MTIME, "{p} mtime");
    }
    for (p, mode) in [
        ("bin/tool", 0o755),
        ("bin/suid", 0o755),
        ("share/readonly.txt", 0o644),
        ("bin/runner", 0o755),
        ("bootstrap", 0o755),
        ("extensions/my-ext", 0o755),
        ("python/lib/tool.sh", 0o755),
        ("python/lib/win.py", 0o644),
        ("README.txt", 0o644),
    ] {
        assert_eq!(
            (t[p].kind, t[p].mode),
            (Kind::File, mode),
            "{p} mode {:o}",
            t[p].mode
        );
    }
    assert_eq!(t["bin/tool"].mtime, INFOZIP_MTIME);
    assert_eq!(t["bootstrap"].mtime, PYZIP_MTIME);
    assert_eq!(
        (t["extensions"].kind, t["extensions"].mode),
        (Kind::Dir, 0o755)
    );
    assert!(!t.keys().any(|k| k.contains('\\')));
}

#[test]
fn fetch_into_an_existing_dir_keeps_its_other_files() {
    let tmp = TempDir::new().unwrap();
    let dest = tmp.path().join("opt");
    fs::create_dir(&dest).unwrap();
    fs::write(dest.join("pre.txt"), b"keep me\n").unwrap();
    fetch_ok(&["good/stored.zip"], &dest);
    let t = tree(&dest);
    assert_eq!(t["pre.txt"].data, b"keep me\n");
    assert_eq!(t["python/pkg/notes.txt"].kind, Kind::File);
    assert_eq!(
        list_all(tmp.path()).len(),
        t.len() + 1,
        "leftovers next to dest: {:?}",
        list_all(tmp.path())
    );
}

#[test]
fn failed_fetch_leaves_an_existing_dest_byte_identical() {
    for bad in [
        "bad/crc-mismatch.zip",
        "bad/dotdot.zip",
        "bad/through-symlink.zip",
        "bad/not-a-zip.zip",
    ] {
        let tmp = TempDir::new().unwrap();
        let dest = tmp.path().join("opt");
        fs::create_dir_all(dest.join("python")).unwrap();
        fs::write(dest.join("pre.txt"), b"keep me\n").unwrap();
        fs::write(dest.join("python/shared.txt"), b"original\n").unwrap();
        let before = tree(tmp.path());
        let (code, stdout, stderr) = fetch(&["good/override-a.zip", bad], &dest);
        assert_eq!(code, 1, "{bad}: {stderr}");
        assert!(stdout.is_empty(), "{bad}: stdout {stdout:?}");
        let name = Path::new(bad)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            stderr.contains(&name) && stderr.contains("hint:"),
            "{bad}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(
            tree(tmp.path()),
            before,
            "{bad}: dest changed or leftovers next to it"
        );
    }
}

#[test]
fn failed_fetch_creates_nothing_when_dest_is_missing() {
    let tmp = TempDir::new().unwrap();
    let dest = tmp.path().join("a/b");
    let (code, _, stderr) = fetch(&["good/override-a.zip", "bad/crc-mismatch.zip"], &dest);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        list_all(tmp.path()).is_empty(),
        "leftovers: {:?}",
        list_all(tmp.path())
    );
}

#[test]
fn a_later_zip_replaces_an_earlier_symlink_instead_of_writing_through_it() {
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
    make_zip(&rel, &[ZipEntry::Symlink("python", "../outside")]);
    make_zip(
        &under,
        &[ZipEntry::File("python/evil.txt", b"evil\n", 0o644)],
    );
    for first in [&abs, &rel] {
        let dest = tmp.path().join("dest");
        let (code, _, stderr) = run(&[
            OsString::from("fetch"),
            first.into(),
            under.clone().into(),
            "--dest".into(),
            dest.clone().into(),
        ]);
        assert_eq!(code, 0, "{stderr}");
        let t = tree(&dest);
        assert_eq!(
            t["python"].kind,
            Kind::Dir,
            "{first:?}: symlink not replaced"
        );
        assert_eq!(t["python/evil.txt"].data, b"evil\n");
        assert!(
            list_all(&outside).is_empty(),
            "{first:?}: written through the symlink"
        );
        fs::remove_dir_all(&dest).unwrap();
    }
}

/// DEST already holds `python -> ../outside` and the zip has a `python/` directory. The layer is
/// built in a staging directory beside DEST; a directory cannot replace the symlink, so the fetch
/// fails before moving anything, naming that path, and leaves everything as it was: nothing written
/// through the link, the link itself kept.
#[test]
fn fetch_never_writes_through_a_symlink_already_in_dest() {
    let tmp = TempDir::new().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let dest = tmp.path().join("dest");
    fs::create_dir(&dest).unwrap();
    std::os::unix::fs::symlink("../outside", dest.join("python")).unwrap();
    let before = tree(tmp.path());
    let (code, stdout, stderr) = fetch(&["good/stored.zip"], &dest);
    assert!(
        list_all(&outside).is_empty(),
        "wrote through dest/python -> ../outside (exit {code}): {stderr}"
    );
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.is_empty(), "stdout on failure: {stdout:?}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains(&dest.join("python").display().to_string()),
        "the error does not name dest/python: {stderr}"
    );
    assert!(
        stderr.contains("a symlink") && stderr.contains("\n  hint: "),
        "{stderr}"
    );
    assert_eq!(tree(tmp.path()), before, "failed fetch changed things");
    assert_eq!(tree(&dest)["python"].kind, Kind::Symlink);
}

/// The same conflict when the layer also brings other directories: without a check before anything
/// moves, the directories met before `python/` were merged into DEST, and then the fetch failed.
#[test]
fn a_conflict_found_late_still_leaves_dest_as_it_was() {
    use std::io::Write;
    let tmp = TempDir::new().unwrap();
    let zip_path = tmp.path().join("many.zip");
    let mut zw = zip::ZipWriter::new(fs::File::create(&zip_path).unwrap());
    for name in [
        "a/1.txt",
        "m/2.txt",
        "python/3.txt",
        "q1/4.txt",
        "zzz/5.txt",
    ] {
        zw.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zw.write_all(name.as_bytes()).unwrap();
    }
    zw.finish().unwrap();
    fs::create_dir(tmp.path().join("outside")).unwrap();
    let dest = tmp.path().join("dest");
    fs::create_dir(&dest).unwrap();
    fs::write(dest.join("keep.txt"), "mine").unwrap();
    std::os::unix::fs::symlink("../outside", dest.join("python")).unwrap();
    let before = tree(tmp.path());
    let args: Vec<OsString> = vec![
        "fetch".into(),
        zip_path.into_os_string(),
        "--dest".into(),
        dest.clone().into_os_string(),
    ];
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stderr.contains("\n  hint: "), "{stderr}");
    assert_eq!(tree(tmp.path()), before, "failed fetch changed things");
}
