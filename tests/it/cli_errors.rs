//! Proves errors say what to do: an ARN with one bad field names it, a local path given as an
//! IMAGE without `oci:` / `docker-archive:` is refused at once (never looked up in a registry)
//! with the transport to write, and `--json` errors are a JSON document on stdout as well.

use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use tempfile::TempDir;

use crate::support::tools::*;

#[test]
fn an_arn_with_one_bad_field_names_it() {
    for (arn, field, found) in [
        (
            "arn:aws:lambda:us-east-1:12345678901:layer:deps:3",
            "account",
            "12345678901",
        ),
        (
            "arn:aws:lambda:us-east-1:123456789012:function:deps:3",
            "resource type",
            "function",
        ),
        (
            "arn:aws:lambda:us-east-1:123456789012:layer:deps:latest",
            "version",
            "latest",
        ),
        (
            "arn:aws:lambda:useast1:123456789012:layer:deps:3",
            "region",
            "useast1",
        ),
        (
            "arn:aws:lambda:us-east-1:123456789012:layer:my.layer:3",
            "layer name",
            "my.layer",
        ),
        (
            "arn:aws-cn:lambda:us-east-1:123456789012:layer:deps:3",
            "region",
            "us-east-1",
        ),
    ] {
        let (code, out, err) = run(&["inspect", arn]);
        assert_eq!(code, 2, "{arn}: {err}");
        assert!(out.is_empty(), "{out}");
        assert!(
            err.contains(&format!("the {field} (field")) && err.contains(&format!("{found:?}")),
            "{arn}: the field is not named\n{err}"
        );
        assert!(
            err.contains("\n  hint: ") && err.contains("expected arn:<partition>"),
            "{err}"
        );
        assert!(!err.contains("wrong number or kind"), "{err}");
    }
    let (code, _, err) = run(&[
        "fetch",
        "arn:aws:lambda:us-east-1:123456789012:layer:deps",
        "--dest",
        "x",
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("has 7 ':'-separated fields") && err.contains("layer version number"),
        "{err}"
    );
}

/// A layout at `dir/out/sample` tagged v1, and an archive at `dir/out/img.tar`.
fn local_images(dir: &Path) {
    let sample = testdata("good/sample/deps.zip");
    let layout = dir.join("out/sample:v1");
    let archive = dir.join("out/img.tar");
    run_ok(&[
        "image".as_ref(),
        sample.as_os_str(),
        "--oci-layout".as_ref(),
        layout.as_os_str(),
    ]);
    run_ok(&[
        "image".as_ref(),
        sample.as_os_str(),
        "--docker-archive".as_ref(),
        archive.as_os_str(),
    ]);
}

/// Runs `layerport -vv ARGS` in `dir`: (code, stderr, how long it took).
fn run_in(dir: &Path, args: &[&str]) -> (i32, String, Duration) {
    let started = Instant::now();
    let mut cmd = layerport();
    cmd.arg("-vv").args(args).current_dir(dir);
    // Were a registry asked, it would be this unreachable proxy, and the request would fail slowly.
    cmd.env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("HTTP_PROXY", "http://127.0.0.1:9");
    let (code, _, err) = run_cmd(&mut cmd);
    (code, err, started.elapsed())
}

#[test]
fn a_local_path_without_a_transport_is_refused_at_once_with_a_hint() {
    let tmp = TempDir::new().unwrap();
    local_images(tmp.path());
    let abs = tmp.path().join("out/sample").display().to_string();
    let archive = tmp.path().join("out/img.tar").display().to_string();
    for (args, hint) in [
        (
            vec!["zip", "out/sample:v1", "-o", "x.zip"],
            "write oci:out/sample:v1".to_string(),
        ),
        (
            vec!["zip", "out/sample", "-o", "x.zip"],
            "write oci:out/sample ".to_string(),
        ),
        (
            vec!["zip", &abs, "-o", "x.zip"],
            format!("write oci:{abs} "),
        ),
        (
            vec!["check", "out/img.tar"],
            "write docker-archive:out/img.tar ".to_string(),
        ),
        (
            vec!["inspect", &archive],
            format!("write docker-archive:{archive} "),
        ),
        (
            vec![
                "image",
                "testdata-absent.zip",
                "--base",
                "out/sample:v1",
                "--oci-layout",
                "out/y",
            ],
            "write oci:out/sample:v1".to_string(),
        ),
        (
            vec!["image", "testdata-absent.zip", "--push", "out/sample:v2"],
            "takes --oci-layout out/sample:v2".to_string(),
        ),
        (
            vec!["zip", "/no/such/layout:v1", "-o", "x.zip"],
            "oci:DIR[:TAG]".to_string(),
        ),
    ] {
        let (code, err, took) = run_in(tmp.path(), &args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(&hint), "{args:?}: no {hint:?} in\n{err}");
        assert!(err.contains("\n  hint: "), "{err}");
        for network in ["retry", "docker.io", "http", "DNS"] {
            assert!(
                !err.contains(network),
                "{args:?} went to the network:\n{err}"
            );
        }
        assert!(took < Duration::from_secs(5), "{args:?} took {took:?}");
    }
    assert!(!tmp.path().join("x.zip").exists());
    // With the transport, the same layout is read.
    let (code, err, _) = run_in(tmp.path(), &["zip", "oci:out/sample:v1", "-o", "x.zip"]);
    assert_eq!(code, 0, "{err}");
}

fn error_document(stdout: &str) -> Value {
    let doc = parse_json(stdout);
    let message = doc["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "no error.message: {doc}");
    assert!(
        !message.contains("hint:"),
        "the hint stays out of the message: {doc}"
    );
    doc
}

#[test]
fn json_errors_are_a_document_on_stdout_and_text_on_stderr() {
    // Usage: the command line does not parse (no output chosen).
    let zip = testdata("good/sample/deps.zip");
    let (code, out, err) = run(&["--json".as_ref(), "image".as_ref(), zip.as_os_str()]);
    assert_eq!(code, 2, "{err}");
    let doc = error_document(&out);
    assert_eq!(doc["error"]["kind"], "usage");
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--oci-layout"),
        "{doc}"
    );
    assert!(
        doc["hint"]
            .as_str()
            .is_some_and(|h| h.contains("layerport image")),
        "{doc}"
    );
    assert!(
        err.contains("error:") && err.contains("--oci-layout"),
        "{err}"
    );

    // Usage found after parsing (exit 2 too): a malformed ARN.
    let (code, out, err) = run(&["inspect", "--json", "arn:aws:lambda:us-east-1:1:layer:x:1"]);
    assert_eq!(code, 2, "{err}");
    let doc = error_document(&out);
    assert_eq!(doc["error"]["kind"], "usage");
    assert!(doc["hint"].as_str().unwrap().contains("12-digit"), "{doc}");

    // A runtime failure: the zip is not there.
    let tmp = TempDir::new().unwrap();
    let missing = tmp.path().join("missing.zip");
    let (code, out, err) = run(&["--json".as_ref(), "inspect".as_ref(), missing.as_os_str()]);
    assert_eq!(code, 1, "{err}");
    let doc = error_document(&out);
    assert_eq!(doc["error"]["kind"], "failure");
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing.zip"),
        "{doc}"
    );
    assert!(
        doc["hint"].as_str().is_some_and(|h| h.contains(".zip")),
        "{doc}"
    );
    assert!(
        err.starts_with("error: ") && err.contains("missing.zip"),
        "{err}"
    );

    // Without --json, stdout stays empty.
    let (code, out, _) = run(&["inspect".as_ref(), missing.as_os_str()]);
    assert_eq!((code, out.as_str()), (1, ""));
}
