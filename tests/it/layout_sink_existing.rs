//! Writing an image into an existing OCI layout (issues #16 and #15): a damaged index.json or a blob
//! directory leading out of the layout is refused before anything is written, an existing blob that
//! does not match its name is replaced, and replacing a tag says so on stderr.

use std::fs;
use std::path::Path;

use crate::hostile_images::{Case, Outcome, listing};
use crate::support::tools::{self, sha256_hex};

/// `layerport image ZIP --oci-layout DIR:TAG`.
fn image(case: &Case, zip: &str, layout: &Path, tag: &str) -> Outcome {
    let dest = format!("{}:{tag}", layout.display());
    let zip = tools::testdata(zip);
    case.run(&[
        "image".as_ref(),
        zip.as_os_str(),
        "--oci-layout".as_ref(),
        dest.as_ref(),
    ])
}

fn blob_names(layout: &Path) -> Vec<String> {
    listing(&layout.join("blobs/sha256"))
}

/// Refused: exit 1, the layout named with a hint, nothing in TMPDIR or beside the layout.
fn assert_refused(case: &Case, out: &Outcome, layout: &Path, says: &str) {
    let err = &out.stderr;
    assert_eq!(out.code, 1, "{err}");
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(err.contains(&layout.display().to_string()), "{err}");
    assert!(err.contains("hint:") && err.contains(says), "{err}");
    assert_eq!(listing(&case.tmpdir()), Vec::<String>::new(), "TMPDIR");
    let beside: Vec<String> = listing(layout.parent().unwrap())
        .into_iter()
        .filter(|n| n.starts_with(".layerport"))
        .collect();
    assert_eq!(
        beside,
        Vec::<String>::new(),
        "staging left beside the layout"
    );
}

#[test]
fn an_index_that_is_not_json_is_refused_before_any_blob_is_written() {
    let case = Case::new();
    let layout = case.path("out/layout");
    let first = image(&case, "good/stored.zip", &layout, "a");
    assert_eq!(first.code, 0, "{}", first.stderr);
    let before = blob_names(&layout);
    fs::write(layout.join("index.json"), b"{ not json").unwrap();
    let out = image(&case, "good/python-zipfile.zip", &layout, "b");
    assert_refused(&case, &out, &layout, "not valid JSON");
    assert_eq!(
        blob_names(&layout),
        before,
        "blobs were added before the failure"
    );
    assert_eq!(fs::read(layout.join("index.json")).unwrap(), b"{ not json");
}

#[test]
fn blob_directories_leading_out_of_the_layout_are_refused() {
    for rel in ["blobs", "blobs/sha256"] {
        let case = Case::new();
        let layout = case.path("out/layout");
        let first = image(&case, "good/stored.zip", &layout, "a");
        assert_eq!(first.code, 0, "{}", first.stderr);
        let outside = case.path("outside");
        fs::create_dir_all(&outside).unwrap();
        let moved = layout.join(rel);
        fs::rename(&moved, outside.join("moved")).unwrap();
        std::os::unix::fs::symlink(outside.join("moved"), &moved).unwrap();
        let before = tools::list_all(&outside);
        let out = image(&case, "good/python-zipfile.zip", &layout, "b");
        assert_refused(&case, &out, &layout, "leading out of the layout");
        assert_eq!(tools::list_all(&outside), before, "{rel}: written outside");
    }
}

#[test]
fn an_existing_blob_that_does_not_match_its_name_is_replaced() {
    let case = Case::new();
    let layout = case.path("out/layout");
    let first = image(&case, "good/stored.zip", &layout, "a");
    assert_eq!(first.code, 0, "{}", first.stderr);
    for name in blob_names(&layout) {
        fs::write(layout.join("blobs/sha256").join(&name), b"damaged").unwrap();
    }
    // The same zip again: every blob it needs is already there, under the right names.
    let again = image(&case, "good/stored.zip", &layout, "b");
    assert_eq!(again.code, 0, "{}", again.stderr);
    for name in blob_names(&layout) {
        let bytes = fs::read(layout.join("blobs/sha256").join(&name)).unwrap();
        assert_eq!(
            sha256_hex(&bytes),
            name,
            "blob {name} does not match its name"
        );
    }
    let zip = case.path("out/layer.zip");
    let image_ref = format!("oci:{}:b", layout.display());
    let out = case.run(&[
        "zip".as_ref(),
        image_ref.as_str().as_ref(),
        "-o".as_ref(),
        zip.as_os_str(),
    ]);
    assert_eq!(
        out.code, 0,
        "the written image is unreadable: {}",
        out.stderr
    );
}

#[test]
fn replacing_a_tag_says_so() {
    let case = Case::new();
    let layout = case.path("out/layout");
    let first = image(&case, "good/stored.zip", &layout, "t");
    assert_eq!(first.code, 0, "{}", first.stderr);
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let was = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let second = image(&case, "good/python-zipfile.zip", &layout, "t");
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(
        second.stderr.contains("replaced tag t") && second.stderr.contains(&was),
        "no notice naming the tag and the old digest {was}:\n{}",
        second.stderr
    );
}

#[test]
fn a_directory_where_a_blob_goes_is_refused_before_any_blob_moves() {
    let case = Case::new();
    let layout = case.path("out/layout");
    let first = image(&case, "good/stored.zip", &layout, "a");
    assert_eq!(first.code, 0, "{}", first.stderr);
    let sha = layout.join("blobs/sha256");
    // Every blob of the image becomes a directory but one, removed: nothing may be added.
    let names = blob_names(&layout);
    fs::remove_file(sha.join(&names[0])).unwrap();
    for name in &names[1..] {
        fs::remove_file(sha.join(name)).unwrap();
        fs::create_dir(sha.join(name)).unwrap();
    }
    let index = fs::read(layout.join("index.json")).unwrap();
    let out = image(&case, "good/stored.zip", &layout, "b");
    assert_refused(&case, &out, &layout, "is not a regular file");
    assert!(
        !sha.join(&names[0]).exists(),
        "a blob was moved before the failure"
    );
    assert_eq!(fs::read(layout.join("index.json")).unwrap(), index);
}
