//! Proves that `layerport image --docker-archive` writes a `docker load` archive that skopeo reads and
//! copies, and that it holds the same image contents as the OCI layout output.

use crate::support::tools::*;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

const ZIPS: [&str; 2] = ["infozip-symlinks.zip", "python-zipfile.zip"];

fn zip_args() -> Vec<String> {
    ZIPS.iter()
        .map(|z| testdata(&format!("good/{z}")).display().to_string())
        .collect()
}

fn build_archive(tmp: &Path, spec_suffix: &str) -> (PathBuf, String) {
    let file = tmp.join("img.tar");
    let mut args = vec!["image".to_string()];
    args.extend(zip_args());
    args.push("--docker-archive".into());
    args.push(format!("{}{spec_suffix}", file.display()));
    let out = run_ok(&args);
    assert!(file.is_file(), "no archive written");
    (file, out.trim().to_string())
}

/// Members of an uncompressed tar file, by path.
fn members(file: &Path) -> Vec<(String, Vec<u8>)> {
    let mut a = tar::Archive::new(fs::File::open(file).unwrap());
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let p = e.path().unwrap().to_string_lossy().into_owned();
            let mut d = Vec::new();
            e.read_to_end(&mut d).unwrap();
            (p, d)
        })
        .collect()
}

#[test]
fn manifest_json_names_the_tag_and_the_blobs() {
    let tmp = TempDir::new().unwrap();
    let (file, digest) = build_archive(tmp.path(), ":myimg:v1");
    assert!(digest.starts_with("sha256:"), "stdout: {digest:?}");
    let m = members(&file);
    let get = |p: &str| {
        m.iter()
            .find(|(n, _)| n == p)
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| {
                panic!(
                    "{p} not in archive: {:?}",
                    m.iter().map(|x| &x.0).collect::<Vec<_>>()
                )
            })
    };
    let manifest: serde_json::Value = serde_json::from_slice(&get("manifest.json")).unwrap();
    let entries = manifest.as_array().expect("manifest.json is an array");
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(e["RepoTags"], serde_json::json!(["myimg:v1"]));
    let config_bytes = get(e["Config"].as_str().unwrap());
    let config: serde_json::Value = serde_json::from_slice(&config_bytes).unwrap();
    let layers = e["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), ZIPS.len(), "one layer per zip");
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    for (i, l) in layers.iter().enumerate() {
        let mut bytes = get(l.as_str().unwrap());
        if bytes.starts_with(&[0x1f, 0x8b]) {
            bytes = gunzip(&bytes);
        }
        assert_eq!(
            diff_ids[i],
            format!("sha256:{}", sha256_hex(&bytes)),
            "layer {i} diff_id"
        );
        assert_layer_rules(&tar_entries(&bytes), &["opt/"]);
    }
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["os"], "linux");
}

#[test]
fn skopeo_reads_and_copies_the_archive_to_the_same_tree_as_the_oci_path() {
    let tmp = TempDir::new().unwrap();
    let (file, _) = build_archive(tmp.path(), ":myimg:v1");
    let info = skopeo_inspect(&format!("docker-archive:{}", file.display()));
    assert_eq!(info["Architecture"], "amd64");
    assert_eq!(info["Layers"].as_array().unwrap().len(), ZIPS.len());
    let other = tmp.path().join("other");
    tool_ok(
        "skopeo",
        "skopeo",
        &[
            "copy".to_string(),
            "-q".to_string(),
            format!("docker-archive:{}", file.display()),
            format!("oci:{}:t", other.display()),
        ],
    );
    let copied = tree(&umoci_unpack(&other, "t", &tmp.path().join("b-copy")));

    let layout = tmp.path().join("layout");
    let mut args = vec!["image".to_string()];
    args.extend(zip_args());
    args.push("--oci-layout".into());
    args.push(format!("{}:t", layout.display()));
    run_ok(&args);
    let direct = tree(&umoci_unpack(&layout, "t", &tmp.path().join("b-direct")));
    assert!(
        direct.contains_key("opt/lib/libfoo.so"),
        "{:?}",
        direct.keys()
    );
    assert_eq!(
        copied, direct,
        "docker archive and OCI layout give different trees"
    );
}

#[test]
fn archive_and_layout_share_config_and_layer_contents() {
    let tmp = TempDir::new().unwrap();
    let (file, _) = build_archive(tmp.path(), ":myimg:v1");
    let layout = tmp.path().join("layout");
    let mut args = vec!["image".to_string()];
    args.extend(zip_args());
    args.push("--oci-layout".into());
    args.push(format!("{}:t", layout.display()));
    run_ok(&args);
    let (_, manifest) = manifest_for_tag(&layout, "t");
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let oci_config = blob(&layout, config_digest);
    let m = members(&file);
    let hex = config_digest.strip_prefix("sha256:").unwrap();
    assert!(
        m.iter().any(|(p, d)| p.contains(hex) && *d == oci_config),
        "the archive's config differs from the OCI layout's"
    );
}

#[test]
fn archive_without_tag_still_loads() {
    let tmp = TempDir::new().unwrap();
    let (file, _) = build_archive(tmp.path(), "");
    let info = skopeo_inspect(&format!("docker-archive:{}", file.display()));
    assert_eq!(info["Layers"].as_array().unwrap().len(), ZIPS.len());
}

#[test]
fn archives_are_deterministic_and_json_names_the_kind() {
    let (a, b) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let (fa, da) = build_archive(a.path(), ":myimg:v1");
    let fb = b.path().join("img.tar");
    let mut args = vec!["--json".to_string(), "image".to_string()];
    args.extend(zip_args());
    args.push("--docker-archive".into());
    args.push(format!("{}:myimg:v1", fb.display()));
    let doc = parse_json(&run_ok(&args));
    assert_eq!(doc["output"]["kind"], "docker-archive");
    assert_eq!(doc["manifestDigest"], da.as_str());
    assert_eq!(doc["layers"].as_array().unwrap().len(), ZIPS.len());
    assert!(
        fs::read(&fa).unwrap() == fs::read(&fb).unwrap(),
        "archive bytes differ between runs"
    );
}

#[test]
fn quiet_leaves_stderr_empty_on_success() {
    let tmp = TempDir::new().unwrap();
    let file = tmp.path().join("img.tar");
    let mut cmd = layerport();
    cmd.arg("-q").arg("image").args(zip_args());
    cmd.arg("--docker-archive")
        .arg(format!("{}:q:1", file.display()));
    let (code, stdout, stderr) = run_cmd(&mut cmd);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.trim().starts_with("sha256:"),
        "-q must keep the data on stdout: {stdout:?}"
    );
    assert!(stderr.is_empty(), "-q printed: {stderr}");
}
