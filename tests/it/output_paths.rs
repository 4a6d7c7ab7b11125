//! Outputs that are not regular files (a FIFO, a device behind a symlink) are refused instead of
//! being replaced by a regular file, and `-` streams a docker archive or a zip to stdout — with
//! nothing else on stdout and nothing left in TMPDIR or the working directory.

use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::process::Command;

use crate::support::io_refusals::Scratch;
use crate::support::tools::{run_cmd, testdata};

const ZIP: &str = "good/sample/deps.zip";

fn mkfifo(path: &std::path::Path) {
    let ok = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo (coreutils)");
    assert!(ok.success());
}

fn ok_bytes(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn a_fifo_is_not_replaced_by_the_docker_archive() {
    let s = Scratch::new();
    mkfifo(&s.work().join("pipe"));
    let zip = testdata(ZIP);
    let zip = zip.to_str().unwrap();
    s.assert_refused(
        &mut s.cmd(&["image", zip, "--docker-archive", "pipe"]),
        &["pipe", "FIFO"],
        &["pipe"],
    );
    assert!(
        fs::metadata(s.work().join("pipe"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
}

#[test]
fn a_device_behind_a_symlink_is_not_replaced() {
    let s = Scratch::new();
    std::os::unix::fs::symlink("/dev/null", s.work().join("null")).unwrap();
    let zip = testdata(ZIP);
    let zip = zip.to_str().unwrap();
    s.assert_refused(
        &mut s.cmd(&["image", zip, "--docker-archive", "null:img:v1"]),
        &["null", "character device"],
        &["null"],
    );
    assert_eq!(
        fs::read_link(s.work().join("null")).unwrap(),
        std::path::Path::new("/dev/null")
    );
    assert!(
        fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );
}

#[test]
fn zip_refuses_a_fifo_output() {
    let s = Scratch::new();
    let zip = testdata(ZIP);
    run_ok(
        &s,
        &["image", zip.to_str().unwrap(), "--oci-layout", "layout:v1"],
    );
    mkfifo(&s.work().join("pipe.zip"));
    s.assert_refused(
        &mut s.cmd(&["zip", "oci:layout:v1", "-o", "pipe.zip"]),
        &["pipe.zip", "FIFO"],
        &["layout", "pipe.zip"],
    );
    assert!(
        fs::metadata(s.work().join("pipe.zip"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
}

fn run_ok(s: &Scratch, args: &[&str]) {
    let (code, _, stderr) = run_cmd(&mut s.cmd(args));
    assert_eq!(code, 0, "{args:?}: {stderr}");
}

#[test]
fn docker_archive_dash_streams_the_same_archive_to_stdout() {
    let s = Scratch::new();
    let zip = testdata(ZIP);
    let zip = zip.to_str().unwrap();
    run_ok(&s, &["image", zip, "--docker-archive", "file.tar:img:v1"]);
    let streamed = ok_bytes(&mut s.cmd(&["image", zip, "--docker-archive", "-:img:v1"]));
    assert_eq!(
        streamed,
        fs::read(s.work().join("file.tar")).unwrap(),
        "stdout must carry exactly the archive (and nothing else)"
    );
    assert_eq!(Scratch::listing(&s.work()), ["file.tar"], "no `-` file");
    assert!(
        Scratch::listing(&s.tmp()).is_empty(),
        "scratch left in TMPDIR"
    );
}

#[test]
fn zip_dash_streams_the_same_zip_to_stdout() {
    let s = Scratch::new();
    let zip = testdata(ZIP);
    run_ok(
        &s,
        &["image", zip.to_str().unwrap(), "--oci-layout", "layout:v1"],
    );
    run_ok(&s, &["zip", "oci:layout:v1", "-o", "file.zip"]);
    let streamed = ok_bytes(&mut s.cmd(&["zip", "oci:layout:v1", "-o", "-"]));
    assert_eq!(streamed, fs::read(s.work().join("file.zip")).unwrap());
    assert_eq!(Scratch::listing(&s.work()), ["file.zip", "layout"]);
    assert!(
        Scratch::listing(&s.tmp()).is_empty(),
        "scratch left in TMPDIR"
    );
}

#[test]
fn json_is_refused_when_stdout_carries_the_data() {
    let s = Scratch::new();
    let zip = testdata(ZIP);
    let zip = zip.to_str().unwrap();
    for args in [
        vec!["--json", "image", zip, "--docker-archive", "-"],
        vec!["--json", "zip", "oci:layout", "-o", "-"],
    ] {
        let (code, stdout, stderr) = run_cmd(&mut s.cmd(&args));
        assert_eq!(code, 2, "{args:?}: {stderr}");
        // No data on stdout: only the error document every --json error prints there.
        let doc: serde_json::Value = serde_json::from_str(&stdout).expect("a JSON error document");
        assert_eq!(doc["error"]["kind"], "usage", "{stdout}");
        assert!(
            stderr.contains("--json") && stderr.contains("hint:"),
            "{stderr}"
        );
    }
    assert!(Scratch::listing(&s.work()).is_empty());
}

#[test]
fn an_oci_layout_path_that_is_a_fifo_is_refused() {
    let s = Scratch::new();
    mkfifo(&s.work().join("pipe"));
    let zip = testdata(ZIP);
    s.assert_refused(
        &mut s.cmd(&["image", zip.to_str().unwrap(), "--oci-layout", "pipe:v1"]),
        &["pipe", "not a directory"],
        &["pipe"],
    );
    assert!(
        fs::metadata(s.work().join("pipe"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
}

#[test]
fn dash_is_refused_when_stdout_is_a_terminal() {
    crate::support::tools::require_tool("script", "util-linux");
    let s = Scratch::new();
    let zip = testdata(ZIP);
    let line = format!(
        "'{}' image '{}' --docker-archive -",
        crate::support::tools::bin().display(),
        zip.display()
    );
    // `script` gives the command a pseudo-terminal as its stdout.
    let cmd = s.cmd::<&str>(&[]);
    let mut script = Command::new("script");
    script
        .args(["-qec", &line, "/dev/null"])
        .current_dir(s.work())
        .env_clear()
        .envs(cmd.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))));
    let (code, stdout, _) = run_cmd(&mut script);
    assert_ne!(code, 0, "{stdout}");
    assert!(
        stdout.contains("stdout is a terminal") && stdout.contains("hint:"),
        "{stdout}"
    );
    assert!(Scratch::listing(&s.work()).is_empty());
    assert!(Scratch::listing(&s.tmp()).is_empty());
}

#[test]
fn a_batch_job_may_not_write_to_stdout() {
    let s = Scratch::new();
    let zip = testdata(ZIP);
    let plan = format!(
        "[[job]]\nname = \"streamed\"\nkind = \"image\"\nlayers = [{:?}]\ndocker_archive = \"-\"\n",
        zip.to_str().unwrap()
    );
    fs::write(s.work().join("plan.toml"), plan).unwrap();
    let (_, stderr) = s.assert_refused(
        &mut s.cmd(&["batch", "plan.toml"]),
        &["plan.toml", "streamed", "stdout"],
        &["plan.toml"],
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
