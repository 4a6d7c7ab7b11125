//! Proves that the images layerport writes run: a handler zip and a layer zip put onto the stand-in
//! Lambda Python base (`support::lambda_base`) are unpacked and run as Lambda's non-root user
//! (`support::lambda_run`), and the handler's own output is checked. Also proves the harness can
//! fail: a base without a handler, and a handler left mode 0600, do not run.

use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

use crate::support::images::{E, dir, layer_tar};
use crate::support::lambda_base::{MTIME, Overlay, base_env, lambda_base, pack_layer};
use crate::support::lambda_run::{LAMBDA_UID, run_lambda, with_extra_layer};
use crate::support::registry::{PushHome, Registry};
use crate::support::tools::*;

/// A handler that needs a module from a layer and reports who and where it runs.
const APP: &str = r#"import os

import helper


def handler(event, context):
    return {
        "greeting": helper.greet(event["name"]),
        "helper": helper.__file__,
        "uid": os.getuid(),
        "gid": os.getgid(),
        "cwd": os.getcwd(),
        "function": context.function_name,
    }
"#;
const HELPER: &str = "def greet(name):\n    return 'hello, ' + name\n";

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Writes the handler zip (app.py with `app_mode`) and the layer zip (python/helper.py).
fn function_zips(tmp: &Path, app_mode: u32) -> (PathBuf, PathBuf) {
    let handler_zip = tmp.join("handler.zip");
    make_zip(
        &handler_zip,
        &[ZipEntry::File("app.py", APP.as_bytes(), app_mode)],
    );
    let layer_zip = tmp.join("layer.zip");
    make_zip(
        &layer_zip,
        &[
            ZipEntry::Dir("python/"),
            ZipEntry::File("python/helper.py", HELPER.as_bytes(), 0o644),
        ],
    );
    (handler_zip, layer_zip)
}

/// `layerport image` twice: the handler zip at /var/task on `base` (an `oci:` reference), then
/// the layer zip at /opt on that. Returns the layout, tagged `fn`.
fn function_image(tmp: &Path, app_mode: u32, base: String) -> PathBuf {
    let (handler_zip, layer_zip) = function_zips(tmp, app_mode);
    let (code, full) = (tmp.join("code"), tmp.join("full"));
    run_ok(&[
        "image".into(),
        s(&handler_zip),
        "--prefix".into(),
        "/var/task".into(),
        "--base".into(),
        base,
        "--oci-layout".into(),
        format!("{}:fn", s(&code)),
    ]);
    run_ok(&[
        "image".into(),
        s(&layer_zip),
        "--base".into(),
        format!("oci:{}:fn", s(&code)),
        "--oci-layout".into(),
        format!("{}:fn", s(&full)),
    ]);
    full
}

#[test]
fn a_handler_with_a_layer_runs_as_the_lambda_user() {
    let tmp = TempDir::new().unwrap();
    let base = lambda_base().write_to(&tmp.path().join("base"), "py");
    let layout = function_image(tmp.path(), 0o644, base);
    let info = skopeo_inspect(&format!("oci:{}:fn", s(&layout)));
    assert_eq!(
        info["Layers"].as_array().unwrap().len(),
        3,
        "base + code + layer: {info}"
    );
    let (code, stdout, stderr) = run_lambda(&layout, "fn", r#"{"name": "layerport"}"#);
    assert_eq!(
        code, 0,
        "the function failed\nstdout: {stdout}\nstderr: {stderr}"
    );
    assert_eq!(
        parse_json(&stdout),
        json!({
            "greeting": "hello, layerport",
            "helper": "/opt/python/helper.py",
            "uid": LAMBDA_UID,
            "gid": LAMBDA_UID,
            "cwd": "/var/task",
            "function": "layerport-test",
        })
    );
}

#[test]
fn a_handler_zipped_with_mode_0600_runs_because_layerport_widens_it() {
    let tmp = TempDir::new().unwrap();
    let layout = function_image(tmp.path(), 0o600, lambda_base().reference());
    let (code, stdout, stderr) = run_lambda(&layout, "fn", r#"{"name": "0600"}"#);
    assert_eq!(
        code, 0,
        "the function failed\nstdout: {stdout}\nstderr: {stderr}"
    );
    let out = parse_json(&stdout);
    assert_eq!(out["greeting"], "hello, 0600");
    assert_eq!(out["uid"], LAMBDA_UID, "not run as the Lambda user: {out}");
}

/// The way `migrate` goes: the base from a registry, the image pushed to it, pulled back and run.
#[test]
fn a_function_pushed_onto_the_base_in_a_registry_runs() {
    let tmp = TempDir::new().unwrap();
    let base = lambda_base();
    let reg = Registry::start();
    let home = PushHome::default();
    reg.docker_config(&home.docker_dir(), &[]);
    let host = reg.host();
    reg.push_oci(&base.layout, base.tag, "lambda/python:3.11", false);
    let (handler_zip, layer_zip) = function_zips(tmp.path(), 0o644);
    for (zip, prefix, from, to) in [
        (&handler_zip, "/var/task", "lambda/python:3.11", "fn:code"),
        (&layer_zip, "/opt", "fn:code", "fn:v1"),
    ] {
        let args = [
            "image".into(),
            s(zip),
            "--prefix".into(),
            prefix.into(),
            "--base".into(),
            format!("{host}/{from}"),
            "--push".into(),
            format!("{host}/{to}"),
        ];
        let (code, _, stderr) = home.run(&[&host], &args);
        assert_eq!(code, 0, "push onto {from} failed: {stderr}");
    }
    let pulled = tmp.path().join("pulled");
    reg.copy_to_oci("fn:v1", &pulled, "fn");
    let (code, stdout, stderr) = run_lambda(&pulled, "fn", r#"{"name": "registry"}"#);
    assert_eq!(
        code, 0,
        "the function failed\nstdout: {stdout}\nstderr: {stderr}"
    );
    let out = parse_json(&stdout);
    assert_eq!(out["greeting"], "hello, registry", "{out}");
    assert_eq!(out["helper"], "/opt/python/helper.py", "{out}");
}

/// The control for `a_handler_zipped_with_mode_0600_runs_because_layerport_widens_it`: a handler
/// in a layer made by hand with mode 0600 (as a tool that keeps zip modes would write it) cannot be
/// imported by uid 993, and with 0644 it can, so it is the mode alone that `run_lambda` catches.
#[test]
fn a_handler_left_0600_cannot_be_imported_by_the_lambda_user() {
    let tmp = TempDir::new().unwrap();
    let base = lambda_base();
    let app = b"import os\n\ndef handler(event, context):\n    return os.getuid()\n".to_vec();
    for (mode, tag) in [(0o644, "readable"), (0o600, "owner-only")] {
        let layout = tmp.path().join(tag);
        let tar = layer_tar(&[
            dir("var/"),
            dir("var/task/"),
            E::File("var/task/app.py", mode, app.clone()),
        ]);
        with_extra_layer(&base.layout, base.tag, &tar, &layout, "fn");
        let (code, stdout, stderr) = run_lambda(&layout, "fn", "{}");
        if mode == 0o644 {
            assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
            assert_eq!(stdout.trim(), LAMBDA_UID.to_string());
        } else {
            assert_eq!(
                code, 1,
                "a 0600 handler ran: stdout: {stdout}\nstderr: {stderr}"
            );
            let err = parse_json(&stdout);
            assert_eq!(err["errorType"], "Runtime.ImportModuleError", "{err}");
            let msg = err["errorMessage"].as_str().unwrap();
            assert!(msg.contains("Permission denied"), "{msg}");
            assert!(msg.contains("/var/task/app.py"), "{msg}");
        }
    }
}

#[test]
fn the_base_alone_runs_its_cmd_and_reports_the_missing_handler_module() {
    let base = lambda_base();
    let (code, stdout, stderr) = run_lambda(&base.layout, base.tag, "{}");
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(
        parse_json(&stdout),
        json!({
            "errorType": "Runtime.ImportModuleError",
            "errorMessage": "Unable to import module 'app': No module named 'app'",
        })
    );
}

#[test]
fn the_base_config_is_shaped_like_the_aws_python_base() {
    let base = lambda_base();
    let config = parse_json(&tool_ok(
        "skopeo",
        "skopeo",
        &["inspect", "--config", &base.reference()],
    ));
    assert_eq!(config["architecture"], base.architecture);
    let c = &config["config"];
    assert_eq!(c["Entrypoint"], json!(["/lambda-entrypoint.sh"]));
    assert_eq!(c["Cmd"], json!(["app.handler"]));
    assert_eq!(c["WorkingDir"], "/var/task");
    assert_eq!(c["Env"], json!(base_env(&base.python)));
    let info = skopeo_inspect(&base.reference());
    assert_eq!(info["Layers"], json!([base.layer_digest]));
    assert_eq!(info["Digest"], base.manifest_digest);
}

#[test]
fn packing_is_deterministic_and_leaves_out_what_a_layer_cannot_hold() {
    let tmp = TempDir::new().unwrap();
    let root = tmp.path().join("root");
    fs::create_dir_all(root.join("a")).unwrap();
    fs::create_dir_all(root.join("var/log")).unwrap();
    for d in ["a", "var", "var/log"] {
        set_mode(&root.join(d), 0o755); // whatever the umask
    }
    fs::write(root.join("a/f"), "data").unwrap();
    set_mode(&root.join("a/f"), 0o640);
    fs::hard_link(root.join("a/f"), root.join("a/g")).unwrap();
    std::os::unix::fs::symlink("a/f", root.join("l")).unwrap();
    fs::write(root.join("var/log/trimmed.log"), "log").unwrap();
    tool_ok("mkfifo", "coreutils", &[s(&root.join("fifo"))]);
    let overlay = [("new.sh", Overlay::File(0o755, "#!/bin/sh\n"))];

    let (one, two) = (tmp.path().join("one.tar.gz"), tmp.path().join("two.tar.gz"));
    let packed = pack_layer(&root, &overlay, &one);
    assert_eq!(pack_layer(&root, &overlay, &two), packed);
    let bytes = fs::read(&one).unwrap();
    assert_eq!(bytes, fs::read(&two).unwrap(), "same tree, different bytes");
    assert_eq!(packed.digest, format!("sha256:{}", sha256_hex(&bytes)));
    assert_eq!(packed.size, bytes.len() as u64);
    let tar = gunzip(&bytes);
    assert_eq!(packed.diff_id, format!("sha256:{}", sha256_hex(&tar)));

    let entries = tar_entries(&tar);
    let summary: Vec<(&str, tar::EntryType, u32, Option<&str>)> = entries
        .iter()
        .map(|e| (e.path.as_str(), e.entry_type, e.mode, e.link.as_deref()))
        .collect();
    use tar::EntryType::{Directory, Link, Regular, Symlink};
    assert_eq!(
        summary,
        vec![
            ("a/", Directory, 0o755, None),
            ("a/f", Regular, 0o640, None),
            ("a/g", Link, 0o640, Some("a/f")),
            ("l", Symlink, 0o777, Some("a/f")),
            ("new.sh", Regular, 0o755, None),
            ("var/", Directory, 0o755, None),
            ("var/log/", Directory, 0o755, None),
        ]
    );
    for e in &entries {
        assert_eq!((e.uid, e.gid, e.mtime), (0, 0, MTIME), "{}", e.path);
        assert!(e.uname.is_empty() && e.gname.is_empty(), "{}", e.path);
    }
    assert_eq!(entries[1].data, b"data");
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}
