//! Proves that `layerport image` still refuses damaged zips when it splices their deflate streams
//! instead of inflating and recompressing them: invalid deflate data, flipped bytes that zlib
//! inflates to other bytes or another length, a changed stored block that only the CRC-32 catches,
//! and size headers that lie. Every case exits 1 naming the zip and the entry, under the splice
//! default, `--recompress` and `--threads 1`, and leaves nothing behind. Split from
//! `layer_splice.rs` (which proves the spliced layers are right); the zips come from
//! `support/splice_zips.rs`.

use crate::support::splice_zips::*;
use crate::support::tools::*;
use serde_json::Value;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// The zip that the refusal tests damage: a small entry, a large multi-block deflate entry, the same
/// with a full flush every 50,000 bytes (so blocks start at known byte positions, right after each
/// flush's `00 00 ff ff`), a level 0 (stored blocks) deflate entry, and a large entry after them.
fn victim_zip(dir: &Path) -> (PathBuf, Value) {
    let zip = dir.join("victim.zip");
    let flushed = deflated("python/victim/flushed.txt", "text", 400_000, 6);
    make_zips(&[(
        &zip,
        vec![
            deflated("python/a_ok.txt", "text", 3000, 6),
            deflated("python/victim/big.txt", "text", 400_000, 6),
            with(with(flushed, "flush", "full"), "chunk", 50_000),
            deflated("python/victim/level0.txt", "text", 20_000, 0),
            deflated("python/z_after.bin", "mixed", 200_000, 6),
        ],
        false,
    )]);
    let info = zip_info(&zip);
    (zip, info)
}

/// A copy of `zip` with `edit` applied to its bytes.
fn damaged(zip: &Path, out: &Path, edit: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = fs::read(zip).unwrap();
    edit(&mut bytes);
    fs::write(out, bytes).unwrap();
}

/// Runs `layerport image BAD EXTRA...` with TMPDIR inside `tmp`, into a new nested layout and into an
/// existing one, under the splice default, `--recompress` and `--threads 1`. Each must exit 1 with
/// an error naming the zip and the entry and saying `says`, with a hint, and must leave `tmp`
/// exactly as it was (no new directory, no staging leftovers, the existing layout untouched).
fn assert_refused(bad: &Path, entry: &str, says: &str) {
    let good = testdata("good/sample/deps.zip");
    for extra in [&[][..], &["--recompress"][..], &["--threads", "1"][..]] {
        let tmp = TempDir::new().unwrap();
        let zip = tmp.path().join(bad.file_name().unwrap());
        fs::copy(bad, &zip).unwrap();
        fs::create_dir(tmp.path().join("tmpdir")).unwrap();
        let existing = tmp.path().join("existing");
        build(&[good.as_path()], &existing, &[]);
        let before = shape(&tree(tmp.path()));
        for dest in [
            format!("{}:v2", tmp.path().join("new/deeper/img").display()),
            format!("{}:v2", existing.display()),
        ] {
            let mut cmd = layerport();
            cmd.env("TMPDIR", tmp.path().join("tmpdir"))
                .arg("image")
                .arg(&zip)
                .args(extra)
                .args(["--oci-layout", &dest]);
            let (code, stdout, stderr) = run_cmd(&mut cmd);
            let ctx = format!(
                "{} {extra:?} -> {dest}: stderr was\n{stderr}",
                zip.display()
            );
            assert_eq!(code, 1, "exit code, {ctx}");
            assert!(stdout.is_empty(), "stdout {stdout:?}, {ctx}");
            assert!(!stderr.contains("panicked"), "panic, {ctx}");
            assert!(stderr.contains("error:"), "no error line, {ctx}");
            assert!(stderr.contains("victim"), "zip not named, {ctx}");
            assert!(
                stderr.contains(&format!("entry \"{entry}\"")),
                "entry {entry} not named, {ctx}"
            );
            assert!(stderr.contains(says), "does not say {says:?}, {ctx}");
            assert!(stderr.contains("hint:"), "no hint, {ctx}");
            let after = shape(&tree(tmp.path()));
            let names =
                |s: &[(String, Kind, Vec<u8>)]| s.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
            assert_eq!(names(&after), names(&before), "paths left behind, {ctx}");
            assert!(after == before, "files changed, {ctx}");
        }
    }
}

#[test]
fn invalid_deflate_data_in_the_middle_is_refused_as_corrupt() {
    let tmp = TempDir::new().unwrap();
    let (zip, info) = victim_zip(tmp.path());
    let e = entry_info(&info, "python/victim/flushed.txt");
    let (start, len) = (u(&e["data_offset"]), u(&e["compress_size"]));
    let zip_bytes = fs::read(&zip).unwrap();
    let data = &zip_bytes[start..start + len];
    // The full flush nearest the middle; the block after it starts at a byte boundary.
    let flushes: Vec<usize> = (0..len - 4)
        .filter(|&i| data[i..i + 4] == [0, 0, 0xff, 0xff])
        .map(|i| i + 4)
        .collect();
    assert!(
        flushes.len() >= 7,
        "only {} full flushes found",
        flushes.len()
    );
    let block = *flushes
        .iter()
        .min_by_key(|&&b| b.abs_diff(len / 2))
        .unwrap();
    let bad = tmp.path().join("block-type/victim.zip");
    fs::create_dir_all(bad.parent().unwrap()).unwrap();
    // BTYPE 3 is reserved: no inflater may accept it.
    damaged(&zip, &bad, |b| b[start + block] |= 0b110);
    let verdict = classify(&bad, "python/victim/flushed.txt");
    assert!(
        verdict.starts_with("inflate-error"),
        "the edit was meant to break the deflate stream, zlib says {verdict}"
    );
    assert_refused(&bad, "python/victim/flushed.txt", "is corrupt");
}

#[test]
fn flipped_bytes_in_the_middle_of_deflate_data_are_refused() {
    // Deflate is resilient: one flipped byte in the middle of a stream mostly still inflates, to other
    // bytes or another length. Whatever zlib makes of it, layerport must refuse it with the matching
    // message.
    let tmp = TempDir::new().unwrap();
    let (zip, info) = victim_zip(tmp.path());
    let name = "python/victim/big.txt";
    let len = u(&entry_info(&info, name)["compress_size"]);
    let found = parse_json(&python(
        &[
            OsString::from("scan"),
            zip.clone().into(),
            name.into(),
            (len / 2).to_string().into(),
            "101".into(),
            "40".into(),
            "255".into(),
        ],
        None,
    ));
    let start = u(&entry_info(&info, name)["data_offset"]);
    let expected = [
        ("crc", "fails its CRC-32 check"),
        ("longer", "inflates to more than its declared 400000 bytes"),
        ("shorter", "but declares 400000"),
    ];
    for (class, says) in expected {
        let at = u(found
            .get(class)
            .unwrap_or_else(|| panic!("no flip gave {class}: {found}")));
        let bad = tmp.path().join(format!("{class}/victim.zip"));
        fs::create_dir_all(bad.parent().unwrap()).unwrap();
        damaged(&zip, &bad, |b| b[start + at] ^= 0xff);
        let verdict = classify(&bad, name);
        assert!(
            verdict.starts_with(class),
            "{class}: zlib now says {verdict}"
        );
        assert_refused(&bad, name, says);
    }
}

#[test]
fn changed_bytes_in_a_stored_deflate_block_fail_the_crc_check() {
    let tmp = TempDir::new().unwrap();
    let (zip, info) = victim_zip(tmp.path());
    let e = entry_info(&info, "python/victim/level0.txt");
    let (start, len) = (u(&e["data_offset"]), u(&e["compress_size"]));
    // Level 0 writes stored blocks: 20000 bytes of data plus a few block headers.
    assert!((20_000..20_100).contains(&len), "level0.txt: {len} bytes");
    let bad = tmp.path().join("stored-block/victim.zip");
    fs::create_dir_all(bad.parent().unwrap()).unwrap();
    let at = start + len / 2 + 3;
    damaged(&zip, &bad, |b| b[at] ^= 0x20);
    let verdict = classify(&bad, "python/victim/level0.txt");
    assert!(
        verdict.starts_with("crc"),
        "the change was meant to keep the stream valid and break the CRC, zlib says {verdict}"
    );
    assert_refused(&bad, "python/victim/level0.txt", "fails its CRC-32 check");
}

#[test]
fn entries_inflating_to_other_than_their_declared_size_are_refused() {
    let tmp = TempDir::new().unwrap();
    let (zip, info) = victim_zip(tmp.path());
    let cases = [
        (
            "python/victim/big.txt",
            300_000u32,
            "inflates to more than its declared 300000 bytes",
        ),
        (
            "python/a_ok.txt",
            2999,
            "inflates to more than its declared 2999 bytes",
        ),
        (
            "python/a_ok.txt",
            0,
            "inflates to more than its declared 0 bytes",
        ),
        (
            "python/victim/big.txt",
            400_001,
            "inflates to 400000 bytes but declares 400001",
        ),
    ];
    for (i, (entry, declared, says)) in cases.into_iter().enumerate() {
        let e = entry_info(&info, entry);
        let (local, central) = (u(&e["header_offset"]) + 22, u(&e["central_offset"]) + 24);
        let bad = tmp.path().join(format!("case{i}/victim.zip"));
        fs::create_dir_all(bad.parent().unwrap()).unwrap();
        damaged(&zip, &bad, |b| {
            for at in [local, central] {
                let old = u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
                assert_eq!(
                    old as usize,
                    u(&e["file_size"]),
                    "{entry}: size field at {at}"
                );
                b[at..at + 4].copy_from_slice(&declared.to_le_bytes());
            }
        });
        let verdict = classify(&bad, entry);
        let want = if declared as usize > u(&e["file_size"]) {
            "shorter"
        } else {
            "longer"
        };
        assert!(
            verdict.starts_with(want),
            "{entry} declared {declared}: zlib says {verdict}"
        );
        assert_refused(&bad, entry, says);
    }
}
