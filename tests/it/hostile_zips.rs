//! Zip entries whose paths no filesystem can hold (a 64 KB name, a path nested 30,000 levels) are
//! refused before any tree is built, naming the zip and the entry — by `fetch` and by `image`.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::support::io_refusals::Scratch;

/// A stored zip with one small file per name (raw names: no normalisation by the writer).
fn zip_with(path: &Path, names: &[String]) {
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .unix_permissions(0o644);
    let mut zw = zip::ZipWriter::new(fs::File::create(path).unwrap());
    for name in names {
        zw.start_file(name.as_str(), opts).unwrap();
        zw.write_all(b"x\n").unwrap();
    }
    zw.finish().unwrap();
}

fn refused_by_fetch(names: &[String], says: &str) {
    let s = Scratch::new();
    zip_with(&s.work().join("hostile.zip"), names);
    let shown = &names.last().unwrap()[..40];
    let (_, stderr) = s.assert_refused(
        &mut s.cmd(&["fetch", "hostile.zip", "--dest", "out"]),
        &["hostile.zip", shown, says],
        &["hostile.zip"],
    );
    assert!(
        !stderr.contains(".layerport-"),
        "the error names a temp path, not the zip: {stderr}"
    );
    assert!(
        stderr.len() < 4096,
        "the error repeats the whole hostile name ({} bytes)",
        stderr.len()
    );
}

#[test]
fn a_64k_name_is_refused_naming_the_zip_and_entry() {
    let name = format!("python/{}", "n".repeat(64_000));
    refused_by_fetch(
        &["python/ok.txt".into(), name],
        "64007 bytes, over the limit of 4096",
    );
}

#[test]
fn a_256_byte_name_is_refused() {
    let name = format!("python/{}/x.py", "n".repeat(256));
    refused_by_fetch(&[name], "a name of 256 bytes, over the limit of 255");
}

#[test]
fn a_path_nested_30000_levels_is_refused_before_any_tree_is_built() {
    // 60 KB of `a/`: with every parent synthesised, the old tree needed ~1.8 GB.
    let deep = format!("{}x.txt", "a/".repeat(29_999));
    refused_by_fetch(&[deep], "over the limit of 4096");
}

#[test]
fn a_path_just_over_4096_bytes_of_short_names_is_refused() {
    let path = format!("{}end", "abcdefgh/".repeat(455)); // 4095 + 3 bytes
    assert!(path.len() > 4096);
    refused_by_fetch(&[path], "over the limit of 4096");
}

#[test]
fn names_at_the_limits_are_accepted() {
    let s = Scratch::new();
    let name = format!("python/{}", "n".repeat(255));
    zip_with(&s.work().join("ok.zip"), std::slice::from_ref(&name));
    let (code, _, stderr) =
        crate::support::tools::run_cmd(&mut s.cmd(&["fetch", "ok.zip", "--dest", "out"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(s.work().join("out").join(&name).is_file());
    assert!(Scratch::listing(&s.tmp()).is_empty());
}

#[test]
fn image_refuses_the_same_paths_naming_the_zip() {
    let s = Scratch::new();
    let name = format!("python/{}", "m".repeat(300));
    zip_with(&s.work().join("hostile.zip"), std::slice::from_ref(&name));
    s.assert_refused(
        &mut s.cmd(&["image", "hostile.zip", "--oci-layout", "layout"]),
        &["hostile.zip", &name[..40], "over the limit of 255"],
        &["hostile.zip"],
    );
}

#[test]
fn many_deep_entries_are_refused_before_their_parents_exhaust_memory() {
    // Each name is legal (4085 bytes), but each brings 2041 parent directories of its own:
    // 40 of them would need ~170 MB of paths (and more for every copy of the tree).
    let names: Vec<String> = (0..40)
        .map(|i| format!("d{i:02}/{}x", "a/".repeat(2040)))
        .collect();
    assert!(names.iter().all(|n| n.len() <= 4096));
    let s = Scratch::new();
    zip_with(&s.work().join("hostile.zip"), &names);
    s.assert_refused(
        &mut s.cmd(&["fetch", "hostile.zip", "--dest", "out"]),
        &[
            "hostile.zip",
            "/a/a/a/a/a",
            "nests too many entries too deeply",
        ],
        &["hostile.zip"],
    );
}

#[test]
fn a_path_that_fits_alone_but_not_under_the_prefix_is_refused_by_image() {
    let s = Scratch::new();
    // 4094 bytes: legal in the zip, 4098 as opt/… in the layer.
    let path = format!("{}abcd", "abcdefghi/".repeat(409));
    assert_eq!(path.len(), 4094);
    zip_with(&s.work().join("long.zip"), std::slice::from_ref(&path));
    s.assert_refused(
        &mut s.cmd(&["image", "long.zip", "--oci-layout", "layout"]),
        &[
            "long.zip",
            &path[..40],
            "under /opt, over the limit of 4096",
        ],
        &["long.zip"],
    );
}

#[test]
fn a_path_too_long_under_the_destination_names_the_zip_not_a_temp_path() {
    let s = Scratch::new();
    let name = format!("python/{}x.py", "abcdefghi/".repeat(30)); // 310 bytes: fine alone
    zip_with(&s.work().join("layer.zip"), std::slice::from_ref(&name));
    // A destination nested so deep that the entry no longer fits PATH_MAX under it.
    let deep: std::path::PathBuf = (0..15).map(|_| "d".repeat(250)).collect();
    fs::create_dir_all(s.work().join(&deep)).unwrap();
    let dest = deep.join("dest");
    let dest = dest.to_str().unwrap();
    let (_, stderr) = s.assert_refused(
        &mut s.cmd(&["fetch", "layer.zip", "--dest", dest]),
        &[
            "layer.zip",
            "python/abcdefghi",
            "over the system's limit of 4096",
        ],
        &[&"d".repeat(250), "layer.zip"],
    );
    assert!(!stderr.contains(".layerport-"), "{stderr}");
    assert!(
        Scratch::listing(&s.work().join(&deep)).is_empty(),
        "left behind next to the destination"
    );
}
