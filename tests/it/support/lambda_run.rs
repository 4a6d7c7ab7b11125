//! Runs an image the way Lambda does, without a container engine, to prove an image layerport wrote
//! works: `umoci raw unpack` turns the image into a root filesystem and `umoci raw runtime-config`
//! into an OCI runtime process (umoci, not our code, reads Entrypoint, Cmd, Env and WorkingDir),
//! and `unshare --root --wd --setuid --setgid` runs that process chrooted as Lambda's non-root
//! user (uid/gid 993, like sbx_user1051), so a file the function cannot read fails here as it
//! would on Lambda.

use serde_json::{Value, json};
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use tempfile::TempDir;

use super::images::{self, OCI_CONFIG, OCI_MANIFEST};
use super::lambda_base::require_root;
use super::tools::{canonical, config_of, manifest_for_tag, read_json, require_tool, tool_ok};

/// The uid and gid a function runs as (Lambda's `sbx_user1051`).
pub const LAMBDA_UID: u32 = 993;
/// A handler that runs longer than this is killed (exit 124), so a hang fails the test instead of
/// stalling CI; Lambda has a timeout too.
const TIMEOUT_SECS: &str = "120";
/// Free space /dev/shm needs before images are unpacked there (a container's default is 64 MB).
const SHM_ROOM_KB: u64 = 2 * 1024 * 1024;

/// Unpacks the image tagged `tag` in the OCI layout `layout`, runs its Entrypoint + Cmd with its
/// Env and WorkingDir as uid/gid `LAMBDA_UID` in its root filesystem, with `event_json` on stdin
/// (the stand-in base's runtime reads it from there). Returns (exit code, stdout, stderr); a signal
/// death counts as -1. Needs root, `umoci`, `unshare` (util-linux) and `timeout` (coreutils).
pub fn run_lambda(layout: &Path, tag: &str, event_json: &str) -> (i32, String, String) {
    require_root("run_lambda (it chroots into the image)");
    let timeout = tool_path("timeout", "coreutils");
    let unshare = tool_path("unshare", "util-linux");
    let work = scratch_dir();
    let image = format!("{}:{tag}", layout.display());
    let (rootfs, spec) = (work.path().join("rootfs"), work.path().join("config.json"));
    let umoci = |args: &[&OsStr]| tool_ok("umoci", "umoci", args);
    umoci(&[
        "raw".as_ref(),
        "unpack".as_ref(),
        "--rootless".as_ref(),
        "--image".as_ref(),
        image.as_ref(),
        rootfs.as_ref(),
    ]);
    // umoci's own reading of the image config into a runtime process (it adds TERM=xterm, as
    // runtimes do); `raw unpack` + `raw runtime-config` skip the mtree that `unpack` computes.
    umoci(&[
        "raw".as_ref(),
        "runtime-config".as_ref(),
        "--rootless".as_ref(),
        "--image".as_ref(),
        image.as_ref(),
        spec.as_ref(),
    ]);
    let process = read_json(&spec)["process"].clone();
    let args = strings(&process["args"]);
    assert!(
        !args.is_empty(),
        "the image has neither Entrypoint nor Cmd: {process}"
    );
    let cwd = process["cwd"].as_str().unwrap_or("/").to_string();
    let mut cmd = Command::new(timeout);
    // Only the image's Env reaches the function, as on Lambda (which then adds its own AWS_* vars).
    cmd.env_clear();
    for var in strings(&process["env"]) {
        let (key, value) = var.split_once('=').unwrap_or((&var, ""));
        cmd.env(key, value);
    }
    let id = LAMBDA_UID.to_string();
    cmd.args(["--kill-after=5", TIMEOUT_SECS])
        .arg(unshare)
        .arg("--root")
        .arg(&rootfs)
        .arg("--wd")
        .arg(&cwd)
        .args(["--setgid", &id, "--setuid", &id, "--"])
        .args(&args);
    run_with_stdin(cmd, event_json)
}

/// A temporary directory for an unpacked image: in /dev/shm when it has room, since writing the
/// base's ~8000 files there takes ~1.5 s where a VM disk took ~9 s; else in the usual temp dir.
fn scratch_dir() -> TempDir {
    let shm = Path::new("/dev/shm");
    let mut df = Command::new("df");
    df.args(["-P", "-k"]).arg(shm);
    let room_kb = df
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            let out = String::from_utf8_lossy(&o.stdout).into_owned();
            out.lines()
                .nth(1)?
                .split_whitespace()
                .nth(3)?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    if room_kb >= SHM_ROOM_KB {
        TempDir::new_in(shm).expect("temp dir in /dev/shm")
    } else {
        TempDir::new().expect("temp dir")
    }
}

fn run_with_stdin(mut cmd: Command, stdin: &str) -> (i32, String, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.as_bytes().to_vec();
    // Written from another thread: a function that prints a lot before reading would otherwise
    // block on a full stdout pipe while we block on its full stdin pipe.
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for the function");
    writer.join().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().expect("string").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The absolute path of a host tool (after `require_tool`): the command runs with the image's
/// PATH, which must not decide which host binary starts it.
fn tool_path(name: &str, package: &str) -> PathBuf {
    require_tool(name, package);
    let paths = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap()
}

/// Writes a new layout at `dest` holding the image `src:src_tag` plus one more layer `tar`
/// (uncompressed, e.g. from `images::layer_tar`) on top, tagged `dest_tag`. For images layerport
/// would never write, such as a handler left mode 0600, to show what `run_lambda` catches.
pub fn with_extra_layer(src: &Path, src_tag: &str, tar: &[u8], dest: &Path, dest_tag: &str) {
    images::init_layout(dest);
    let (_, manifest) = manifest_for_tag(src, src_tag);
    let mut config = config_of(src, &manifest);
    let mut layers = manifest["layers"].as_array().unwrap().clone();
    for layer in &layers {
        let rel = format!("blobs/sha256/{}", &layer["digest"].as_str().unwrap()[7..]);
        fs::copy(src.join(&rel), dest.join(&rel)).expect("copy layer blob");
    }
    let mut added = images::put_blob(dest, &images::gzip(tar));
    added["mediaType"] = json!(images::LAYER_GZIP);
    layers.push(added);
    config["rootfs"]["diff_ids"]
        .as_array_mut()
        .expect("diff_ids")
        .push(json!(images::digest(tar)));
    if let Some(history) = config["history"].as_array_mut() {
        history.push(json!({"created_by": "with_extra_layer (layerport tests)"}));
    }
    let mut config_desc = images::put_blob(dest, canonical(&config).as_bytes());
    config_desc["mediaType"] = json!(OCI_CONFIG);
    let new_manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_desc,
        "layers": layers,
    });
    let mut desc = images::put_blob(dest, canonical(&new_manifest).as_bytes());
    desc["mediaType"] = json!(OCI_MANIFEST);
    images::write_index(dest, vec![images::tagged(desc, dest_tag)]);
}
