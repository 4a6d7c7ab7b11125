//! Proves that `layerport inspect` reports a zip's entries, sizes (checked against Python's zipfile),
//! Lambda's limit and the rule warnings, in text and in JSON, and that what it warns about matches the image.

use crate::support::tools::*;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fs;
use std::path::Path;
use tempfile::TempDir;

fn inspect_json(zip: &Path) -> Value {
    parse_json(&run_ok(&[
        "--json".as_ref(),
        "inspect".as_ref(),
        zip.as_os_str(),
    ]))
}

/// Unzipped size as Python's zipfile sees it: the sizes of regular-file entries (directories and
/// symlinks excluded), the last entry winning for a duplicated name.
fn python_unzipped_size(zip: &Path) -> u64 {
    let script = r#"
import sys, stat, zipfile
sizes = {}
for i in zipfile.ZipFile(sys.argv[1]).infolist():
    mode = i.external_attr >> 16
    if i.is_dir() or stat.S_ISLNK(mode):
        continue
    sizes[i.filename.replace("\\", "/")] = i.file_size
print(sum(sizes.values()))
"#;
    let out = tool_ok(
        "python3",
        "python3",
        &["-c".as_ref(), script.as_ref(), zip.as_os_str()],
    );
    out.trim().parse().expect("python printed a number")
}

/// zipinfo's total of uncompressed bytes over all entries (its last line), e.g. "14 files, 436 bytes uncompressed, ...".
fn zipinfo_total(zip: &Path) -> u64 {
    let out = tool_ok("zipinfo", "unzip", &["-t".as_ref(), zip.as_os_str()]);
    let words: Vec<&str> = out.split_whitespace().collect();
    let i = words
        .iter()
        .position(|w| *w == "bytes")
        .expect("zipinfo -t output");
    words[i - 1].parse().expect("zipinfo byte count")
}

fn warning_set(doc: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = doc["warnings"]
        .as_array()
        .expect("warnings array")
        .iter()
        .map(|w| {
            assert!(
                w["message"].as_str().is_some_and(|m| !m.is_empty()),
                "warning without message: {w}"
            );
            (
                w["code"].as_str().unwrap().to_string(),
                w["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn text_output_gives_sizes_against_lambdas_limit() {
    let zip = testdata("good/python-zipfile.zip");
    let out = run_ok(&["inspect".as_ref(), zip.as_os_str()]);
    let size = python_unzipped_size(&zip);
    assert_eq!(size, 80_072);
    assert!(
        out.contains(&size.to_string()),
        "unzipped size {size} missing:\n{out}"
    );
    assert!(out.contains("262144000"), "Lambda's limit missing:\n{out}");
    assert!(out.contains("python-zipfile.zip"), "{out}");
    let zip_size = fs::metadata(&zip).unwrap().len();
    assert!(
        out.contains(&zip_size.to_string()),
        "zip size {zip_size} missing:\n{out}"
    );
}

#[test]
fn json_for_infozip_symlinks_has_the_rule_warnings() {
    let zip = testdata("good/infozip-symlinks.zip");
    let doc = inspect_json(&zip);
    let want: Vec<(String, String)> = [
        ("mode-fixed", "bin/suid"),
        ("mode-fixed", "bin/tool"),
        ("mode-fixed", "share/readonly.txt"),
        ("symlink-outside", "share/escape"),
    ]
    .iter()
    .map(|(c, p)| (c.to_string(), p.to_string()))
    .collect();
    assert_eq!(warning_set(&doc), want);
    let bytes = fs::read(&zip).unwrap();
    assert_eq!(doc["source"], "infozip-symlinks.zip");
    assert_eq!(doc["sha256"], sha256_hex(&bytes));
    assert_eq!(doc["codeSha256"], B64.encode(Sha256::digest(&bytes)));
    assert_eq!(doc["zipSize"], bytes.len() as u64);
    assert_eq!(doc["unzippedSize"], python_unzipped_size(&zip));
    assert_eq!(doc["lambdaLimit"], 262_144_000u64);
    assert_eq!(doc["withinLimit"], true);
    assert_eq!(doc["unixModes"], true);
    assert_eq!(
        (doc["files"].as_u64(), doc["directories"].as_u64()),
        (Some(6), Some(5))
    );
    assert_eq!(
        (
            doc["symlinks"].as_u64(),
            doc["synthesizedDirectories"].as_u64()
        ),
        (Some(3), Some(0))
    );
    let entries = doc["entries"].as_array().unwrap();
    let find = |p: &str| {
        entries
            .iter()
            .find(|e| e["path"] == p)
            .unwrap_or_else(|| panic!("no entry {p}"))
    };
    assert_eq!(find("bin/tool")["mode"], "0755");
    assert_eq!(find("bin/suid")["mode"], "0755");
    assert_eq!(find("share/readonly.txt")["mode"], "0644");
    assert_eq!(find("lib/libfoo.so.1")["size"], 320);
    let link = find("python/mod/link.py");
    assert_eq!(
        (link["type"].as_str(), link["target"].as_str()),
        (Some("symlink"), Some("__init__.py"))
    );
    assert_eq!(find("share/escape")["target"], "../../etc/passwd");
    for e in entries {
        assert_eq!(e["mtime"], INFOZIP_MTIME, "{e}");
        assert_eq!(e["synthesized"], false, "{e}");
    }
    let paths: Vec<&str> = entries
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted, "entries not sorted");
    assert_eq!(paths.len(), 14);
}

#[test]
fn unzipped_size_matches_python_and_zipinfo() {
    for name in [
        "python-zipfile.zip",
        "windows-style.zip",
        "stored.zip",
        "longpath.zip",
        "infozip-symlinks.zip",
    ] {
        let zip = testdata(&format!("good/{name}"));
        let doc = inspect_json(&zip);
        assert_eq!(doc["unzippedSize"], python_unzipped_size(&zip), "{name}");
    }
    // Without symlinks or duplicates every definition agrees, zipinfo's total included.
    for name in ["python-zipfile.zip", "windows-style.zip", "stored.zip"] {
        let zip = testdata(&format!("good/{name}"));
        assert_eq!(
            inspect_json(&zip)["unzippedSize"],
            zipinfo_total(&zip),
            "{name} vs zipinfo"
        );
    }
}

#[test]
fn json_for_python_zipfile_marks_the_synthesised_dir() {
    let doc = inspect_json(&testdata("good/python-zipfile.zip"));
    assert_eq!(doc["synthesizedDirectories"], 1);
    assert_eq!(doc["files"], 5);
    let entries = doc["entries"].as_array().unwrap();
    let pkg = entries
        .iter()
        .find(|e| e["path"] == "python/pkg")
        .expect("python/pkg entry");
    assert_eq!(
        (pkg["type"].as_str(), pkg["synthesized"].as_bool()),
        (Some("directory"), Some(true))
    );
    assert_eq!(pkg["mtime"], SYNTH_MTIME);
    let empty = entries
        .iter()
        .find(|e| e["path"] == "python/pkg/empty.txt")
        .unwrap();
    assert_eq!(empty["size"], 0);
    assert_eq!(empty["mtime"], PYZIP_MTIME);
    assert!(warning_set(&doc).is_empty(), "{:?}", warning_set(&doc));
    assert_eq!(doc["topLevel"]["python"], 80_072);
}

#[test]
fn duplicates_warn_and_the_last_one_wins_in_the_image() {
    let zip = testdata("good/duplicates.zip");
    let doc = inspect_json(&zip);
    assert!(
        warning_set(&doc).contains(&("duplicate".to_string(), "python/dup.txt".to_string())),
        "{:?}",
        warning_set(&doc)
    );
    let tmp = TempDir::new().unwrap();
    let layout = tmp.path().join("img");
    run_ok(&[
        "image".as_ref(),
        zip.as_os_str(),
        "--oci-layout".as_ref(),
        format!("{}:t", layout.display()).as_ref(),
    ]);
    let entries = tar_entries(&layer_tars(&layout, "t")[0]);
    let dups: Vec<_> = entries
        .iter()
        .filter(|e| e.path == "opt/python/dup.txt")
        .collect();
    assert_eq!(dups.len(), 1, "one opt/python/dup.txt");
    assert_eq!(dups[0].data, b"second\n");
}

#[test]
fn windows_style_json_reports_no_unix_modes_and_fixes() {
    let doc = inspect_json(&testdata("good/windows-style.zip"));
    assert_eq!(doc["unixModes"], false);
    let w = warning_set(&doc);
    for p in [
        "bin/runner",
        "bootstrap",
        "extensions/my-ext",
        "python/lib/tool.sh",
    ] {
        assert!(
            w.contains(&("made-executable".into(), p.into())),
            "{p}: {w:?}"
        );
    }
    assert!(
        w.contains(&("backslash".into(), "python/lib/win.py".into())),
        "{w:?}"
    );
    let entries = doc["entries"].as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["path"] == "python/lib/win.py" && e["mode"] == "0644")
    );
    assert!(
        !entries
            .iter()
            .any(|e| e["path"].as_str().unwrap().contains('\\'))
    );
}

#[test]
fn inspect_of_a_bad_zip_fails_with_a_hint() {
    for (zip, entry) in [
        ("dotdot.zip", "python/../../evil.txt"),
        ("crc-mismatch.zip", "python/b_corrupt.txt"),
    ] {
        let (code, stdout, stderr) = run(&[
            "inspect".as_ref(),
            testdata(&format!("bad/{zip}")).as_os_str(),
        ]);
        assert_eq!(code, 1, "{zip}: {stderr}");
        assert!(stdout.is_empty(), "{zip}: {stdout}");
        assert!(
            stderr.contains(zip) && stderr.contains(entry) && stderr.contains("hint:"),
            "{stderr}"
        );
    }
}
