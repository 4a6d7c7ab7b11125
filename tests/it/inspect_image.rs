//! Proves `layerport inspect IMAGE`: platforms of an index, each layer's stored and uncompressed
//! size (checked against the blobs themselves), where layerport's layers came from, the config
//! without variable values, and the /opt tree against the zips it was built from; and that the
//! zip report keeps its shape, with human sizes beside byte counts.

use std::fs;
use std::io::Read;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use flate2::read::GzDecoder;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::support::images::{self, Img, file, layer_tar};
use crate::support::registry::{PushHome, Registry};
use crate::support::tools::*;

fn inspect_json(target: &str) -> Value {
    parse_json(&run_ok(&["--json", "inspect", target]))
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    fs::read(layout.join("blobs/sha256").join(&digest[7..])).unwrap()
}

#[test]
fn an_image_built_from_zips_shows_its_layers_sources_and_opt_tree() {
    let tmp = TempDir::new().unwrap();
    let layout = tmp.path().join("img");
    let deps = testdata("good/sample/deps.zip");
    let ext = testdata("good/sample/ext.zip");
    let tagged = format!("{}:v1", layout.display());
    run_ok(&[
        "image".as_ref(),
        deps.as_os_str(),
        ext.as_os_str(),
        "--oci-layout".as_ref(),
        tagged.as_ref(),
    ]);
    let reference = format!("oci:{tagged}");
    let doc = inspect_json(&reference);
    assert_eq!(doc["kind"], "image");
    assert_eq!(doc["platforms"], json!(["linux/amd64"]));
    assert_eq!(doc["platform"], "linux/amd64");
    assert_eq!(doc["attestations"], 0);

    let layers = doc["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "{doc}");
    let mut compressed = 0;
    let mut uncompressed = 0;
    for (layer, zip) in layers.iter().zip(["deps.zip", "ext.zip"]) {
        let stored = blob(&layout, layer["digest"].as_str().unwrap());
        let mut tar = Vec::new();
        GzDecoder::new(&stored[..]).read_to_end(&mut tar).unwrap();
        assert_eq!(layer["size"], stored.len() as u64, "{layer}");
        assert_eq!(layer["uncompressedSize"], tar.len() as u64, "{layer}");
        assert_eq!(
            layer["diffId"],
            format!("sha256:{}", hex(&Sha256::digest(&tar))),
            "{layer}"
        );
        assert!(
            layer["createdBy"].as_str().unwrap().contains(zip),
            "{layer}"
        );
        compressed += stored.len() as u64;
        uncompressed += tar.len() as u64;
    }
    assert_eq!(doc["compressedSize"], compressed);
    assert_eq!(doc["uncompressedSize"], uncompressed);

    let sources: Vec<(String, String)> = doc["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["source"].as_str().unwrap().to_string(),
                s["codeSha256"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let code_sha256 = |p: &Path| B64.encode(Sha256::digest(fs::read(p).unwrap()));
    assert_eq!(
        sources,
        [
            ("deps.zip".to_string(), code_sha256(&deps)),
            ("ext.zip".to_string(), code_sha256(&ext)),
        ]
    );

    // /opt holds both zips: the same files and bytes as the zips' own reports.
    let zips = [deps.as_path(), ext.as_path()].map(|z| inspect_json(z.to_str().unwrap()));
    let opt = &doc["opt"];
    let sum = |key: &str| zips.iter().map(|z| z[key].as_u64().unwrap()).sum::<u64>();
    assert_eq!(opt["files"], sum("files"), "{opt}");
    assert_eq!(opt["bytes"], sum("unzippedSize"), "{opt}");
    assert_eq!(opt["topLevel"]["python"], zips[0]["topLevel"]["python"]);
    assert_eq!(opt["withinLimit"], true);

    let text = run_ok(&["inspect", &reference]);
    for label in [
        "COMPRESSED",
        "UNCOMPRESSED",
        "SOURCE",
        "BYTES",
        "SIZE",
        "ENTRY",
    ] {
        assert!(text.contains(label), "no {label} column:\n{text}");
    }
    assert!(
        text.contains(&format!("{uncompressed} bytes (")),
        "no human size beside the byte count:\n{text}"
    );
    assert!(text.contains("262144000 bytes (250 MiB)"), "{text}");
}

#[test]
fn config_variables_are_named_never_shown() {
    let tmp = TempDir::new().unwrap();
    let archive = tmp.path().join("fn.tar");
    let deps = testdata("good/sample/deps.zip");
    let base = format!("oci:{}:python3.12", testdata("good/sample/base").display());
    run_ok(&[
        "image".as_ref(),
        deps.as_os_str(),
        "--base".as_ref(),
        base.as_ref(),
        "--docker-archive".as_ref(),
        archive.as_os_str(),
    ]);
    let reference = format!("docker-archive:{}", archive.display());
    let doc = inspect_json(&reference);
    assert_eq!(
        doc["config"]["entrypoint"],
        json!(["/lambda-entrypoint.sh"])
    );
    assert_eq!(doc["config"]["cmd"], json!(["app.handler"]));
    assert_eq!(
        doc["config"]["envNames"],
        json!(["PATH", "LAMBDA_TASK_ROOT"])
    );
    assert_eq!(doc["layers"].as_array().unwrap().len(), 2, "base + deps");
    let text = run_ok(&["inspect", &reference]);
    for out in [text, doc.to_string()] {
        assert!(out.contains("LAMBDA_TASK_ROOT"), "{out}");
        assert!(
            !out.contains("/var/lang/bin"),
            "a variable's value leaked:\n{out}"
        );
    }
}

#[test]
fn an_index_lists_its_platforms_and_attestations() {
    let tmp = TempDir::new().unwrap();
    let layout = tmp.path();
    images::init_layout(layout);
    let amd = images::put_image(
        layout,
        &Img::new("amd64", vec![layer_tar(&[file("opt/a.txt", "amd")])]),
    );
    let arm = images::put_image(
        layout,
        &Img::new("arm64", vec![layer_tar(&[file("opt/bb.txt", "arm64")])]),
    );
    let mut att = images::put_blob(layout, b"{}");
    att["mediaType"] = json!("application/vnd.oci.image.manifest.v1+json");
    att["platform"] = json!({"os": "unknown", "architecture": "unknown"});
    att["annotations"] = json!({"vnd.docker.reference.type": "attestation-manifest"});
    let index = images::put_index(layout, vec![amd, arm, att]);
    images::write_index(layout, vec![images::tagged(index, "multi")]);
    let reference = format!("oci:{}:multi", layout.display());

    let doc = inspect_json(&reference);
    assert_eq!(doc["platforms"], json!(["linux/amd64", "linux/arm64"]));
    assert_eq!(doc["attestations"], 1);
    assert_eq!(doc["platform"], "linux/amd64");
    assert_eq!(doc["opt"]["topLevel"], json!({"a.txt": 3}));

    let doc = parse_json(&run_ok(&[
        "--json",
        "inspect",
        &reference,
        "--platform",
        "linux/arm64",
    ]));
    assert_eq!(doc["platform"], "linux/arm64");
    assert_eq!(doc["opt"]["topLevel"], json!({"bb.txt": 5}));
    let text = run_ok(&["inspect", &reference]);
    assert!(text.contains("1 attestation manifest"), "{text}");
}

#[test]
fn a_registry_image_reads_the_same_as_its_layout_copy() {
    let registry = Registry::start();
    let host = registry.host();
    let home = PushHome::default();
    registry.docker_config(&home.docker_dir(), &[]);
    let target = format!("{host}/fn:v1");
    let deps = testdata("good/sample/deps.zip");
    home.push_json(
        &[&host],
        &["image", deps.to_str().unwrap(), "--push", &target],
    );
    // The registry options after the command name, where `inspect --help` lists them.
    let (code, stdout, stderr) =
        home.run(&[], &["inspect", &target, "--plain-http", &host, "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let from_registry = parse_json(&stdout);
    registry.copy_to_oci("fn:v1", &home.path("layout"), "v1");
    let layout = format!("oci:{}:v1", home.path("layout").display());
    let from_layout = inspect_json(&layout);
    for key in [
        "manifestDigest",
        "layers",
        "sources",
        "config",
        "opt",
        "uncompressedSize",
    ] {
        assert_eq!(from_registry[key], from_layout[key], "{key}");
    }
    assert_eq!(from_registry["sources"][0]["source"], "deps.zip");
}

#[test]
fn a_zip_report_keeps_its_shape_and_says_its_kind() {
    let doc = inspect_json(testdata("good/sample/deps.zip").to_str().unwrap());
    assert_eq!(doc["kind"], "layer");
    for key in [
        "source",
        "sha256",
        "codeSha256",
        "zipSize",
        "unzippedSize",
        "lambdaLimit",
        "topLevel",
        "entries",
        "warnings",
    ] {
        assert!(doc.get(key).is_some(), "{key} missing: {doc}");
    }
    let text = run_ok(&[
        "inspect",
        testdata("good/sample/deps.zip").to_str().unwrap(),
    ]);
    assert!(text.contains("364 bytes (364 B)"), "{text}");
    assert!(!text.contains("262144000-byte"), "{text}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
