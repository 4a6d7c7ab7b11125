//! `fetch --dest` into an existing directory is all or nothing: a subdirectory that may not be
//! written is found before anything moves, a move that fails half-way is rolled back, and a
//! read-only (0555) directory of the layer neither stops a non-root fetch nor leaves its staging
//! directory behind. Write failures say "cannot write" and name the zip, the entry and the directory.
//!
//! The tests run as root: an immutable flag (`chattr +i`) makes a directory or file unwritable even
//! for root, and `setpriv` runs the binary as `nobody` where ownership matters.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::io_refusals::Scratch;
use crate::support::tools::{ZipEntry, make_zip, require_tool, run_cmd, tree};

/// Sets `chattr +i` on a path and clears it again on drop (so the temp dirs can be removed).
struct Immutable(PathBuf);

impl Immutable {
    fn set(path: &Path) -> Immutable {
        require_tool("chattr", "e2fsprogs");
        let ok = Command::new("chattr").arg("+i").arg(path).status().unwrap();
        assert!(ok.success(), "chattr +i {} failed", path.display());
        Immutable(path.to_path_buf())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

/// A destination with content of its own: `keep.txt`, `a/old.txt`, `b/old.txt`, `python/old.py`.
fn existing_dest(dest: &Path) {
    for (rel, data) in [
        ("keep.txt", "mine\n"),
        ("a/old.txt", "old a\n"),
        ("b/old.txt", "old b\n"),
        ("python/old.py", "old = 1\n"),
    ] {
        let p = dest.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    }
}

fn layer_zip(path: &Path) {
    make_zip(
        path,
        &[
            ZipEntry::File("a/new.txt", b"new a\n", 0o644),
            ZipEntry::File("a/old.txt", b"replaced\n", 0o644),
            ZipEntry::File("b/new.txt", b"new b\n", 0o644),
            ZipEntry::File("c/new.txt", b"new c\n", 0o644),
            ZipEntry::File("python/new.py", b"new = 1\n", 0o644),
            ZipEntry::File("top.txt", b"top\n", 0o644),
        ],
    );
}

#[test]
fn an_unwritable_subdirectory_is_found_before_anything_moves() {
    let s = Scratch::new();
    layer_zip(&s.work().join("layer.zip"));
    let dest = s.work().join("dest");
    existing_dest(&dest);
    let before = tree(&dest);
    let _guard = Immutable::set(&dest.join("python"));
    let (_, stderr) = s.assert_refused(
        &mut s.cmd(&["fetch", "layer.zip", "--dest", "dest"]),
        &["layer.zip", "python/new.py", "dest/python", "cannot write"],
        &["dest", "layer.zip"],
    );
    assert!(!stderr.contains("cannot read"), "{stderr}");
    assert_eq!(tree(&dest), before, "the destination changed");
}

#[test]
fn a_move_that_fails_half_way_is_rolled_back() {
    let s = Scratch::new();
    layer_zip(&s.work().join("layer.zip"));
    let dest = s.work().join("dest");
    existing_dest(&dest);
    let before = tree(&dest);
    // The directory can be written, so only the rename over this file fails: the other entries
    // may already have moved by then.
    let _guard = Immutable::set(&dest.join("a/old.txt"));
    s.assert_refused(
        &mut s.cmd(&["fetch", "layer.zip", "--dest", "dest"]),
        &["layer.zip", "a/old.txt", "cannot write"],
        &["dest", "layer.zip"],
    );
    assert_eq!(tree(&dest), before, "the destination changed");
}

#[test]
fn a_read_only_layer_directory_merges_for_a_non_root_user() {
    require_tool("setpriv", "util-linux");
    let s = Scratch::new();
    make_zip(
        &s.work().join("ro.zip"),
        &[
            ZipEntry::Dir("python/"),
            ZipEntry::File("python/lib.py", b"x = 1\n", 0o644),
            ZipEntry::Dir("bin/"),
            ZipEntry::File("bin/tool", b"#!/bin/sh\n", 0o755),
        ],
    );
    let dest = s.work().join("dest");
    existing_dest(&dest);
    // make_zip writes directories 0755: make them 0555 in the zip's external attributes.
    let bytes = fs::read(s.work().join("ro.zip")).unwrap();
    fs::write(s.work().join("ro.zip"), with_dir_mode(bytes, 0o555)).unwrap();
    chown_tree(s.dir.path(), 65534);
    let mut cmd = s.cmd(&["fetch", "ro.zip", "--dest", "dest"]);
    let mut cmd = as_nobody(&mut cmd);
    let (code, _, stderr) = run_cmd(&mut cmd);
    assert_eq!(code, 0, "{stderr}");
    let t = tree(&dest);
    assert_eq!(t["python/lib.py"].data, b"x = 1\n");
    assert_eq!(
        t["python/old.py"].data, b"old = 1\n",
        "merged, not replaced"
    );
    assert_eq!(
        t["bin"].mode, 0o555,
        "a new directory gets the layer's mode"
    );
    assert_eq!(
        t["python"].mode & 0o777,
        0o755,
        "an existing directory keeps its mode"
    );
    assert_eq!(
        Scratch::listing(&s.work()),
        ["dest", "ro.zip"],
        "a staging directory was left behind"
    );
    assert!(Scratch::listing(&s.tmp()).is_empty());
    // Let the temp dir be removed.
    fs::set_permissions(dest.join("bin"), fs::Permissions::from_mode(0o755)).unwrap();
}

/// Sets the unix mode of every directory entry (name ending in `/`) in a zip's central directory.
fn with_dir_mode(mut zip: Vec<u8>, mode: u32) -> Vec<u8> {
    let mut i = 0;
    while i + 46 <= zip.len() {
        if zip[i..i + 4] == [0x50, 0x4b, 0x01, 0x02] {
            let name_len = u16::from_le_bytes([zip[i + 28], zip[i + 29]]) as usize;
            let name = &zip[i + 46..i + 46 + name_len];
            if name.ends_with(b"/") {
                let attrs = (0o040000 | mode) << 16 | 0x10;
                zip[i + 38..i + 42].copy_from_slice(&attrs.to_le_bytes());
            }
            i += 46 + name_len;
        } else {
            i += 1;
        }
    }
    zip
}

fn chown_tree(root: &Path, uid: u32) {
    let ok = Command::new("chown")
        .args(["-R", &format!("{uid}:{uid}")])
        .arg(root)
        .status()
        .unwrap();
    assert!(ok.success());
}

/// The same command run as `nobody` (65534) through setpriv.
fn as_nobody(cmd: &mut Command) -> Command {
    let mut wrapped = Command::new("setpriv");
    wrapped
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .env_clear();
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            wrapped.env(k, v);
        }
    }
    wrapped
}
