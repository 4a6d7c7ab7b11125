//! Every image source works as a base (`oci:`, `docker-archive:`, a registry) with every output
//! (OCI layout, docker archive, push): the same base gives the same config and layer digests from
//! any of them, a transport prefix is never taken for a registry host, and a registry host that
//! does not resolve is not retried.

use serde_json::Value;
use std::fs;
use std::path::Path;

use crate::support::images::lambda_like_base;
use crate::support::registry::{PushHome, Registry, layer_digests};
use crate::support::tools::{run, run_ok, skopeo_inspect, testdata, tool_ok, tree, umoci_unpack};

fn deps() -> String {
    testdata("good/sample/deps.zip").display().to_string()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The image config of `oci:LAYOUT:TAG`, as skopeo reads it.
fn oci_config(layout: &Path, tag: &str) -> Value {
    json(&tool_ok(
        "skopeo",
        "skopeo",
        &[
            "inspect",
            "--config",
            &format!("oci:{}:{tag}", layout.display()),
        ],
    ))
}

/// The manifest of the only image of an OCI layout.
fn layout_manifest(layout: &Path) -> Value {
    let index = json(&fs::read_to_string(layout.join("index.json")).unwrap());
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    let bytes = fs::read(layout.join("blobs/sha256").join(&digest[7..])).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn a_base_from_a_layout_or_a_registry_gives_the_same_image() {
    let work = tempfile::tempdir().unwrap();
    let base = work.path().join("base");
    lambda_like_base(&base, "base");
    let reg = Registry::start();
    let home = PushHome::default();
    reg.docker_config(&home.docker_dir(), &[]);
    let host = reg.host();
    reg.push_oci(&base, "base", "base:v1", false);

    let from_layout = work.path().join("from-layout");
    let local = json(&run_ok(&[
        "--json",
        "image",
        &deps(),
        "--base",
        &format!("oci:{}:base", base.display()),
        "--oci-layout",
        &format!("{}:t", from_layout.display()),
    ]));
    let from_registry = work.path().join("from-registry");
    let remote = home.push_json(
        &[&host],
        &[
            "image",
            &deps(),
            "--base",
            &format!("{host}/base:v1"),
            "--oci-layout",
            &format!("{}:t", from_registry.display()),
        ],
    );
    assert_eq!(local["manifestDigest"], remote["manifestDigest"]);
    assert_eq!(local["configDigest"], remote["configDigest"]);

    let config = oci_config(&from_layout, "t");
    assert_eq!(config["config"]["Entrypoint"][0], "/lambda-entrypoint.sh");
    assert_eq!(config["config"]["Cmd"][0], "app.handler");
    assert_eq!(config["config"]["WorkingDir"], "/var/task");
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 3);
    let tree = tree(&umoci_unpack(
        &from_layout,
        "t",
        &work.path().join("bundle"),
    ));
    assert!(tree.contains_key("etc/base-file.txt"), "base layer missing");
    assert!(
        tree.contains_key("var/runtime/bootstrap"),
        "base layer missing"
    );
    assert!(
        tree.keys().any(|k| k.starts_with("opt/")),
        "our layer missing"
    );
}

#[test]
fn a_local_base_goes_into_a_docker_archive_and_a_push() {
    let work = tempfile::tempdir().unwrap();
    let base = work.path().join("base");
    lambda_like_base(&base, "base");
    // A `docker save`-style archive of the same base, written by skopeo (uncompressed layers).
    let base_archive = work.path().join("base.tar");
    tool_ok(
        "skopeo",
        "skopeo",
        &[
            "copy",
            &format!("oci:{}:base", base.display()),
            &format!("docker-archive:{}:base:v1", base_archive.display()),
        ],
    );
    let out = work.path().join("app.tar");
    run_ok(&[
        "image",
        &deps(),
        "--base",
        &format!("docker-archive:{}", base_archive.display()),
        "--docker-archive",
        &format!("{}:app:v1", out.display()),
    ]);
    let inspected = skopeo_inspect(&format!("docker-archive:{}", out.display()));
    assert_eq!(
        inspected["Layers"].as_array().unwrap().len(),
        3,
        "{inspected}"
    );
    assert_eq!(
        inspected["Env"][1], "LAMBDA_TASK_ROOT=/var/task",
        "{inspected}"
    );
    let pulled = work.path().join("pulled");
    tool_ok(
        "skopeo",
        "skopeo",
        &[
            "copy",
            &format!("docker-archive:{}", out.display()),
            &format!("oci:{}:t", pulled.display()),
        ],
    );
    let tree = tree(&umoci_unpack(&pulled, "t", &work.path().join("bundle")));
    assert!(tree.contains_key("etc/base-file.txt"), "base layer missing");
    assert!(
        tree.keys().any(|k| k.starts_with("opt/")),
        "our layer missing"
    );

    // The OCI layout base pushed with the image: its blobs are copied from the layout.
    let reg = Registry::start();
    let home = PushHome::default();
    reg.docker_config(&home.docker_dir(), &[]);
    let host = reg.host();
    let pushed = home.push_json(
        &[&host],
        &[
            "image",
            &deps(),
            "--base",
            &format!("oci:{}:base", base.display()),
            "--push",
            &format!("{host}/app:v1"),
        ],
    );
    let statuses: Vec<&str> = pushed["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["copied", "copied", "uploaded", "uploaded"]);
    let manifest: Value = serde_json::from_slice(&reg.raw_manifest("app:v1")).unwrap();
    let pushed_layers = layer_digests(&manifest);
    assert_eq!(pushed_layers.len(), 3);
    assert_eq!(
        pushed_layers[..2],
        layer_digests(&layout_manifest(&base))[..]
    );
    assert_eq!(reg.config("app:v1")["config"]["Cmd"][0], "app.handler");
}

#[test]
fn a_transport_prefix_is_never_sent_to_dns() {
    let work = tempfile::tempdir().unwrap();
    for base in [
        format!("oci:{}:v1", work.path().join("missing").display()),
        format!(
            "docker-archive:{}",
            work.path().join("missing.tar").display()
        ),
    ] {
        let out = format!("{}:t", work.path().join("out").display());
        let (code, stdout, stderr) =
            run(&["image", &deps(), "--base", &base, "--oci-layout", &out]);
        assert_eq!(code, 1, "{base}: {stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        assert!(
            stderr.contains("missing"),
            "the path is not named: {stderr}"
        );
        assert!(stderr.contains("hint:"), "{stderr}");
        assert!(!stderr.contains("retrying"), "network retries: {stderr}");
        assert!(!work.path().join("out").exists(), "output left behind");
    }
}

#[test]
fn a_registry_host_that_does_not_resolve_is_not_retried() {
    let work = tempfile::tempdir().unwrap();
    let out = format!("{}:t", work.path().join("out").display());
    let (code, _, stderr) = run(&[
        "image",
        &deps(),
        "--base",
        "no-such-host.invalid/base:v1",
        "--oci-layout",
        &out,
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(!stderr.contains("retrying"), "retried: {stderr}");
    assert!(stderr.contains("no-such-host.invalid"), "{stderr}");
    assert!(stderr.contains("check the registry host name"), "{stderr}");
}
