//! Golden digests: the same inputs must give byte-identical layers, configs, manifests, archives
//! and zips from one version of layerport to the next. `testdata/golden-digests.txt` was written
//! by this test before the code was reorganised; a difference is a change of output, never noise.
//!
//! Rewrite the list only for an intended change of output:
//! `LAYERPORT_BLESS_GOLDEN=1 cargo test --test it golden`.

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::support::images::{self, E, Img, dir, file, layer_tar, marker};
use crate::support::registry::{PushHome, Registry};
use crate::support::tools::{Kind, layerport, run_cmd, testdata, tree};

const GOLDEN: &str = "golden-digests.txt";

/// A named `image` run: its arguments and environment.
type Variant<'a> = (&'a str, Vec<String>, Vec<(&'a str, &'a str)>);

struct Golden {
    values: BTreeMap<String, String>,
}

impl Golden {
    fn put(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        let old = self.values.insert(key.clone(), value.into());
        assert!(old.is_none(), "golden key {key} recorded twice");
    }

    /// Records an `image --json` result: manifest, config and each added layer's digest.
    fn put_image(&mut self, key: &str, doc: &Value) {
        self.put(format!("{key} manifest"), s(&doc["manifestDigest"]));
        self.put(format!("{key} config"), s(&doc["configDigest"]));
        for (i, layer) in doc["layers"].as_array().unwrap().iter().enumerate() {
            self.put(format!("{key} layer{i}"), s(&layer["digest"]));
            self.put(format!("{key} layer{i}.diff_id"), s(&layer["diffId"]));
        }
    }
}

fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_string()
}

fn sha256_file(path: &Path) -> String {
    format!("sha256:{:x}", Sha256::digest(fs::read(path).unwrap()))
}

/// `layerport --json ARGS` with `envs`, which must succeed: its JSON document.
fn json_run(args: &[&str], envs: &[(&str, &str)]) -> Value {
    let mut cmd = layerport();
    cmd.arg("--json").args(args).envs(envs.iter().copied());
    let (code, stdout, stderr) = run_cmd(&mut cmd);
    assert_eq!(
        code, 0,
        "{cmd:?} failed\nstdout: {stdout}\nstderr: {stderr}"
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn zips_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            zips_under(&path, out);
        } else if path.extension().is_some_and(|e| e == "zip") {
            out.push(path);
        }
    }
}

/// An image with whiteouts, an opaque directory, a hardlink and a symlink under /opt.
fn applied_image() -> Img {
    Img::new(
        "amd64",
        vec![
            layer_tar(&[
                dir("opt/"),
                dir("opt/python/"),
                file("opt/python/a.py", "a = 1\n"),
                file("opt/python/gone.py", "gone\n"),
                dir("opt/old/"),
                file("opt/old/x", "x\n"),
                E::File("opt/bin-tool", 0o700, b"#!/bin/sh\necho hi\n".to_vec()),
            ]),
            layer_tar(&[
                marker("opt/python/.wh.gone.py"),
                dir("opt/old/"),
                marker("opt/old/.wh..wh..opq"),
                file("opt/old/y", "y\n"),
                E::Hardlink("opt/python/b.py", "opt/python/a.py"),
                E::Symlink("opt/link", "python/a.py"),
            ]),
        ],
    )
}

/// A digest of a directory tree: every path, kind, mode and content.
fn tree_digest(root: &Path) -> String {
    let mut text = String::new();
    for (path, node) in tree(root) {
        let content = match node.kind {
            Kind::File => format!("{:x}", Sha256::digest(&node.data)),
            _ => String::from_utf8_lossy(&node.data).into_owned(),
        };
        text.push_str(&format!(
            "{path} {:?} {:o} {} {content}\n",
            node.kind, node.mode, node.mtime
        ));
    }
    format!("sha256:{:x}", Sha256::digest(text.as_bytes()))
}

fn local_cases(g: &mut Golden, work: &Path) {
    let mut zips = Vec::new();
    zips_under(&testdata("good"), &mut zips);
    zips.sort();
    assert!(zips.len() >= 10, "testdata/good holds {} zips", zips.len());
    for (i, zip) in zips.iter().enumerate() {
        let name = zip
            .strip_prefix(testdata("good"))
            .unwrap()
            .display()
            .to_string();
        let out = work.join(format!("each-{i}"));
        let doc = json_run(
            &[
                "image",
                zip.to_str().unwrap(),
                "--oci-layout",
                &format!("{}:t", out.display()),
            ],
            &[],
        );
        g.put_image(&format!("image {name}"), &doc);
    }

    let deps = testdata("good/sample/deps.zip");
    let ext = testdata("good/sample/ext.zip");
    let (deps, ext) = (deps.to_str().unwrap(), ext.to_str().unwrap());
    let layout = |n: &str| format!("{}:t", work.join(n).display());
    let variants: Vec<Variant> = vec![
        ("two", vec![deps.into(), ext.into()], vec![]),
        (
            "squash",
            vec![deps.into(), ext.into(), "--squash".into()],
            vec![],
        ),
        (
            "recompress9",
            vec![deps.into(), "--recompress=9".into()],
            vec![],
        ),
        (
            "recompress-threads1",
            vec![
                deps.into(),
                "--recompress".into(),
                "--threads".into(),
                "1".into(),
            ],
            vec![],
        ),
        (
            "prefix-arm64",
            vec![
                deps.into(),
                "--prefix".into(),
                "/var/task".into(),
                "--platform".into(),
                "linux/arm64".into(),
            ],
            vec![],
        ),
        (
            "sde",
            vec![deps.into(), ext.into()],
            vec![("SOURCE_DATE_EPOCH", "1700000000")],
        ),
    ];
    for (name, args, envs) in variants {
        let dest = layout(name);
        let mut all: Vec<&str> = vec!["image"];
        all.extend(args.iter().map(String::as_str));
        all.extend(["--oci-layout", &dest]);
        let doc = json_run(&all, &envs);
        g.put_image(&format!("image sample-{name}"), &doc);
    }

    let archive = work.join("sample.tar");
    json_run(
        &[
            "image",
            deps,
            ext,
            "--docker-archive",
            &format!("{}:sample:v1", archive.display()),
        ],
        &[],
    );
    g.put("docker-archive sample file", sha256_file(&archive));

    let zip = work.join("sample-back.zip");
    json_run(
        &[
            "zip",
            &format!("oci:{}", layout("two")),
            "-o",
            zip.to_str().unwrap(),
        ],
        &[],
    );
    g.put("zip sample-two file", sha256_file(&zip));

    let img = applied_image();
    let applied = work.join("applied-layout");
    images::oci_layout(&applied, "v1", &img);
    for threads in ["1", "2"] {
        let zip = work.join(format!("applied-{threads}.zip"));
        json_run(
            &[
                "zip",
                &format!("oci:{}:v1", applied.display()),
                "-o",
                zip.to_str().unwrap(),
                "--threads",
                threads,
            ],
            &[],
        );
        g.put(
            format!("zip applied threads{threads} file"),
            sha256_file(&zip),
        );
    }
    let legacy = work.join("applied-legacy.tar");
    images::docker_archive_legacy(&legacy, "applied:v1", &img, true);
    let zip = work.join("applied-legacy.zip");
    json_run(
        &[
            "zip",
            &format!("docker-archive:{}", legacy.display()),
            "-o",
            zip.to_str().unwrap(),
        ],
        &[],
    );
    g.put("zip applied-docker-archive file", sha256_file(&zip));

    let dest = work.join("fetched");
    json_run(&["fetch", deps, ext, "--dest", dest.to_str().unwrap()], &[]);
    g.put("fetch sample-two tree", tree_digest(&dest));
}

fn registry_cases(g: &mut Golden, work: &Path) {
    let reg = Registry::start();
    let home = PushHome::default();
    reg.docker_config(&home.docker_dir(), &[]);
    let host = reg.host();
    let base_layout = work.join("base-layout");
    images::lambda_like_base(&base_layout, "base");
    reg.push_oci(&base_layout, "base", "base:v1", false);
    reg.push_oci(&base_layout, "base", "base-docker:v1", true);
    let deps = testdata("good/sample/deps.zip");
    let deps = deps.to_str().unwrap();
    for (name, base) in [("oci", "base:v1"), ("docker", "base-docker:v1")] {
        let base = format!("{host}/{base}");
        let pushed = home.push_json(
            &[&host],
            &[
                "image",
                deps,
                "--base",
                &base,
                "--push",
                &format!("{host}/app-{name}:v1"),
            ],
        );
        g.put_image(&format!("push on-{name}-base"), &pushed);
        let dest = format!("{}:t", work.join(format!("on-{name}-base")).display());
        let written = home.push_json(
            &[&host],
            &["image", deps, "--base", &base, "--oci-layout", &dest],
        );
        g.put_image(&format!("oci-layout on-{name}-base"), &written);
    }
}

#[test]
fn outputs_match_the_golden_digests() {
    let work = tempfile::tempdir().unwrap();
    let mut g = Golden {
        values: BTreeMap::new(),
    };
    local_cases(&mut g, work.path());
    registry_cases(&mut g, work.path());

    let text: String = g
        .values
        .iter()
        .map(|(k, v)| format!("{k}\t{v}\n"))
        .collect();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(GOLDEN);
    if std::env::var_os("LAYERPORT_BLESS_GOLDEN").is_some() {
        fs::write(&path, &text).unwrap();
        return;
    }
    let want = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let want: BTreeMap<&str, &str> = want.lines().filter_map(|l| l.split_once('\t')).collect();
    let mut diffs = Vec::new();
    for (k, v) in &g.values {
        match want.get(k.as_str()) {
            Some(w) if w == v => {}
            Some(w) => diffs.push(format!("{k}: was {w}, now {v}")),
            None => diffs.push(format!("{k}: new (not in {GOLDEN})")),
        }
    }
    for k in want.keys() {
        if !g.values.contains_key(*k) {
            diffs.push(format!("{k}: no longer produced"));
        }
    }
    assert!(
        diffs.is_empty(),
        "outputs differ from {GOLDEN}:\n{}",
        diffs.join("\n")
    );
}
