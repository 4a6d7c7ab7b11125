//! `layerport check IMAGE`: images made here with one defect each — an index carrying a buildx
//! attestation, a zstd layer, the wrong architecture, a 0700 extension, a missing handler file, a
//! symlink climbing out of the root, a credential in the config — give exactly their finding; a
//! clean image gives none, from an OCI layout, a docker archive written by skopeo and a registry.

use serde_json::{Value, json};
use std::path::Path;

use crate::support::images::{
    self, E, LAYER_ZSTD, OCI_CONFIG, OCI_MANIFEST, dir, file, gzip, layer_tar,
};
use crate::support::registry::{PushHome, Registry};
use crate::support::tools::{run, tool_ok};

const SECRET_VALUE: &str = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY";

/// A Lambda-like Python function image: a "runtime" layer and the function's code.
struct Spec {
    arch: &'static str,
    env: Vec<String>,
    layers: Vec<Vec<u8>>,
    zstd_last: bool,
}

fn clean() -> Spec {
    Spec {
        arch: "amd64",
        env: vec![
            "PATH=/var/lang/bin:/usr/bin".into(),
            "LAMBDA_TASK_ROOT=/var/task".into(),
        ],
        layers: vec![
            layer_tar(&[
                dir("var/"),
                dir("var/lang/"),
                dir("var/lang/bin/"),
                E::File("var/lang/bin/python3.12", 0o755, b"#!/bin/sh\n".to_vec()),
                dir("var/runtime/"),
            ]),
            layer_tar(&[
                dir("var/task/"),
                file("var/task/app.py", "def handler(e, c):\n    return 1\n"),
                dir("opt/"),
                dir("opt/extensions/"),
                E::File("opt/extensions/telemetry", 0o755, b"#!/bin/sh\n".to_vec()),
                E::Symlink("opt/lib", "../var/lang/bin"),
            ]),
        ],
        zstd_last: false,
    }
}

/// Writes `spec` as an OCI layout tagged `v1`; returns the manifest descriptor.
fn write(spec: &Spec, layout: &Path) -> Value {
    let diff_ids: Vec<String> = spec.layers.iter().map(|l| images::digest(l)).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": spec.arch,
        "os": "linux",
        "config": {
            "Entrypoint": ["/lambda-entrypoint.sh"],
            "Cmd": ["app.handler"],
            "Env": spec.env,
            "WorkingDir": "/var/task",
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    images::init_layout(layout);
    let mut config_desc = images::put_blob(layout, &config);
    config_desc["mediaType"] = json!(OCI_CONFIG);
    let last = spec.layers.len() - 1;
    let layers: Vec<Value> = spec
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let mut d = images::put_blob(layout, &gzip(l));
            let zstd = spec.zstd_last && i == last;
            d["mediaType"] = json!(if zstd { LAYER_ZSTD } else { images::LAYER_GZIP });
            d
        })
        .collect();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_desc,
        "layers": layers,
    }))
    .unwrap();
    let mut desc = images::put_blob(layout, &manifest);
    desc["mediaType"] = json!(OCI_MANIFEST);
    desc["platform"] = json!({"os": "linux", "architecture": spec.arch});
    images::write_index(layout, vec![images::tagged(desc.clone(), "v1")]);
    desc
}

/// `layerport --json check IMAGE EXTRA...`: (exit code, findings as `level:id` strings, stdout).
fn check(image: &str, extra: &[&str]) -> (i32, Vec<String>, String) {
    let mut args = vec!["--json", "check", image, "--runtime", "python3.12"];
    args.extend_from_slice(extra);
    let (code, stdout, stderr) = run(&args);
    assert!(code == 0 || code == 1, "check failed to run: {stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let ids = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}:{}",
                f["level"].as_str().unwrap(),
                f["id"].as_str().unwrap()
            )
        })
        .collect();
    (code, ids, stdout + &stderr)
}

fn check_spec(spec: &Spec, extra: &[&str]) -> (i32, Vec<String>, String) {
    let work = tempfile::tempdir().unwrap();
    write(spec, work.path());
    check(&format!("oci:{}:v1", work.path().display()), extra)
}

#[test]
fn a_clean_image_has_no_findings_from_any_source() {
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    write(&clean(), &layout);
    let (code, ids, out) = check(
        &format!("oci:{}:v1", layout.display()),
        &["--architecture", "x86_64"],
    );
    assert_eq!((code, ids), (0, vec![]), "{out}");

    let archive = work.path().join("img.tar");
    tool_ok(
        "skopeo",
        "skopeo",
        &[
            "copy",
            &format!("oci:{}:v1", layout.display()),
            &format!("docker-archive:{}:fn:v1", archive.display()),
        ],
    );
    let (code, ids, out) = check(&format!("docker-archive:{}", archive.display()), &[]);
    // skopeo's docker archives hold uncompressed layers: a warning, nothing Lambda refuses.
    assert_eq!(code, 0, "{out}");
    assert!(ids.iter().all(|i| i == "warning:layer-media-type"), "{out}");

    let reg = Registry::start();
    let home = PushHome::default();
    reg.docker_config(&home.docker_dir(), &[]);
    reg.push_oci(&layout, "v1", "fn:v1", false);
    let host = reg.host();
    let (code, stdout, stderr) = home.run(&[&host], &["--json", "check", &format!("{host}/fn:v1")]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["findings"], json!([]), "{doc}");
}

#[test]
fn each_defect_gives_exactly_its_finding() {
    let cases: Vec<(&str, Spec, &[&str], &str)> = vec![
        (
            "zstd layer",
            Spec {
                zstd_last: true,
                ..clean()
            },
            &[],
            "error:layer-media-type",
        ),
        (
            "arm64 image for an x86_64 function",
            Spec {
                arch: "arm64",
                ..clean()
            },
            &["--architecture", "x86_64"],
            "error:architecture",
        ),
        (
            "0700 extension",
            {
                let mut s = clean();
                s.layers.push(layer_tar(&[E::File(
                    "opt/extensions/telemetry",
                    0o700,
                    b"#!/bin/sh\n".to_vec(),
                )]));
                s
            },
            &[],
            "error:not-executable",
        ),
        (
            "missing handler",
            {
                let mut s = clean();
                s.layers
                    .push(layer_tar(&[images::marker("var/task/.wh.app.py")]));
                s
            },
            &[],
            "error:handler-missing",
        ),
        (
            "symlink to /../..",
            {
                let mut s = clean();
                s.layers
                    .push(layer_tar(&[E::Symlink("opt/escape", "/../..")]));
                s
            },
            &[],
            "warning:symlink-escapes",
        ),
        (
            "credential in the config",
            {
                let mut s = clean();
                s.env.push(format!("AWS_SECRET_ACCESS_KEY={SECRET_VALUE}"));
                s
            },
            &[],
            "error:credential-variable",
        ),
    ];
    for (what, spec, extra, want) in cases {
        let (code, ids, out) = check_spec(&spec, extra);
        assert_eq!(ids, [want], "{what}: {out}");
        let errors = want.starts_with("error");
        assert_eq!(code, i32::from(errors), "{what}: {out}");
        assert!(
            !out.contains(SECRET_VALUE),
            "{what}: the value leaked: {out}"
        );
    }
    // The finding names the variable, and the text form too keeps the value out.
    let mut spec = clean();
    spec.env
        .push(format!("AWS_SECRET_ACCESS_KEY={SECRET_VALUE}"));
    let work = tempfile::tempdir().unwrap();
    write(&spec, work.path());
    let (code, stdout, stderr) = run(&["check", &format!("oci:{}:v1", work.path().display())]);
    assert_eq!(code, 1);
    assert!(stdout.contains("AWS_SECRET_ACCESS_KEY"), "{stdout}");
    assert!(!stdout.contains(SECRET_VALUE) && !stderr.contains(SECRET_VALUE));
}

#[test]
fn an_index_with_a_buildx_attestation_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let layout = work.path();
    let image = write(&clean(), layout);
    // buildx: an unknown/unknown manifest whose one layer is an in-toto statement.
    let statement = br#"{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://slsa.dev/provenance/v0.2"}"#;
    let mut layer = images::put_blob(layout, statement);
    layer["mediaType"] = json!("application/vnd.in-toto+json");
    layer["annotations"] = json!({"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"});
    let mut config = images::put_blob(layout, b"{}");
    config["mediaType"] = json!("application/vnd.oci.image.config.v1+json");
    let attestation = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer],
    }))
    .unwrap();
    let mut att = images::put_blob(layout, &attestation);
    att["mediaType"] = json!(OCI_MANIFEST);
    att["platform"] = json!({"os": "unknown", "architecture": "unknown"});
    att["annotations"] = json!({
        "vnd.docker.reference.digest": image["digest"],
        "vnd.docker.reference.type": "attestation-manifest",
    });
    let index = images::put_index(layout, vec![image, att]);
    images::write_index(layout, vec![images::tagged(index, "multi")]);
    let (code, ids, out) = check(&format!("oci:{}:multi", layout.display()), &[]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        ids,
        ["error:image-index", "error:attestation-manifest"],
        "{out}"
    );
}

#[test]
fn a_push_lambda_would_refuse_is_stopped_before_the_tag() {
    let work = tempfile::tempdir().unwrap();
    // A base with neither Entrypoint nor Cmd: the image on it cannot start.
    let base = work.path().join("base");
    images::oci_layout(
        &base,
        "v1",
        &images::Img::new("amd64", vec![layer_tar(&[dir("etc/")])]),
    );
    let reg = Registry::start();
    let home = PushHome::default();
    reg.docker_config(&home.docker_dir(), &[]);
    let host = reg.host();
    let deps = crate::support::tools::testdata("good/sample/deps.zip");
    let args = |extra: &[&str]| {
        let mut a = vec![
            "image".to_string(),
            deps.display().to_string(),
            "--base".into(),
            format!("oci:{}:v1", base.display()),
            "--push".into(),
            format!("{host}/app:v1"),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let (code, stdout, stderr) = home.run(&[&host], &args(&[]));
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stderr.contains("no-entrypoint-or-cmd"), "{stderr}");
    assert!(stderr.contains("--no-check"), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    let manifests = reg
        .access_lines()
        .into_iter()
        .filter(|l| l.method == "PUT" && l.uri.contains("/manifests/"))
        .count();
    assert_eq!(manifests, 0, "a manifest was pushed");

    let (code, stdout, stderr) = home.run(&[&host], &args(&["--no-check"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with(&format!("{host}/app@sha256:")),
        "{stdout}"
    );
    assert!(stderr.contains("--no-check"), "no warning: {stderr}");
    let manifest_puts = |reg: &Registry| {
        reg.access_lines()
            .into_iter()
            .filter(|l| l.method == "PUT" && l.uri.contains("/manifests/"))
            .count()
    };
    assert_eq!(
        manifest_puts(&reg),
        1,
        "the log does not show the one manifest"
    );
}
