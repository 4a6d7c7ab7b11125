//! The shippable image (docker/Dockerfile's final stage), assembled by `scripts/build-image.sh`
//! with buildah from the binary under test: it holds the binary, the libraries `ldd` says it
//! links, CA certificates and a sticky /tmp — nothing else — and podman runs it: `--version`, an
//! `image` conversion whose digest must equal the host binary's, and a `check` (which needs /tmp)
//! whose report must equal the host's; and a second build gives the same image. Containers storage
//! lives in the test's temporary directory (CONTAINERS_STORAGE_CONF), so nothing is left in the
//! machine's storage.

use serde_json::Value;
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::support::tools::{
    bin, config_of, layer_tars, manifest_for_tag, parse_json, require_tool, run, run_cmd, run_ok,
    tar_entries, testdata, tool_ok,
};

/// What the image must hold besides the libraries.
const FIXED: [&str; 6] = [
    "etc/",
    "etc/ssl/",
    "etc/ssl/certs/",
    "etc/ssl/certs/ca-certificates.crt",
    "layerport",
    "tmp/",
];

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-image.sh")
}

/// Containers storage of its own (vfs: plain directories, no mounts left behind).
fn storage(work: &Path) -> PathBuf {
    let conf = work.join("storage.conf");
    let text = format!(
        "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
        work.join("graph").display(),
        work.join("run").display()
    );
    fs::write(&conf, text).unwrap();
    conf
}

/// `podman ARGS` with the test's storage: (exit code, stdout, stderr).
fn podman<S: AsRef<OsStr>>(conf: &Path, args: &[S]) -> (i32, String, String) {
    let mut cmd = Command::new("podman");
    cmd.env("CONTAINERS_STORAGE_CONF", conf).args(args);
    run_cmd(&mut cmd)
}

/// `podman run` as these machines allow it (runc; limits within the host's), without a network.
fn podman_run(conf: &Path, image: &str, mounts: &[String], args: &[&str]) -> (i32, String, String) {
    let mut all: Vec<String> = [
        "run",
        "--rm",
        "--runtime",
        "runc",
        "--ulimit",
        "nofile=20000:20000",
        "--ulimit",
        "nproc=1024:1024",
        "--network",
        "none",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for m in mounts {
        all.push("-v".into());
        all.push(m.clone());
    }
    all.push(image.to_string());
    all.extend(args.iter().map(|s| s.to_string()));
    podman(conf, &all)
}

/// The files `ldd` names for `binary` (the loader by its path, libraries after `=>`), relative.
fn linked_libraries(binary: &Path) -> BTreeSet<String> {
    let out = tool_ok("ldd", "libc-bin", &[binary]);
    let mut libs = BTreeSet::new();
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let path = match words.as_slice() {
            [_, "=>", path, ..] => path,
            [path, ..] => path,
            [] => continue,
        };
        if let Some(rel) = path.strip_prefix('/') {
            libs.insert(rel.to_string());
        }
    }
    assert!(
        libs.iter().any(|l| l.contains("libc.so")),
        "ldd names no libc: {out}"
    );
    libs
}

/// Every directory above `path` (`lib/`, `lib/x86_64-linux-gnu/` for `lib/x86_64-linux-gnu/libc.so.6`).
fn parents(path: &str) -> Vec<String> {
    path.match_indices('/')
        .map(|(i, _)| format!("{}/", &path[..i]))
        .collect()
}

/// Runs `scripts/build-image.sh -t NAME -o oci:LAYOUT:shippable BINARY` and checks it succeeds.
fn build_image(conf: &Path, name: &str, layout: &Path) {
    let mut build = Command::new("bash");
    build
        .arg(script())
        .args(["-t", name, "-o"])
        .arg(format!("oci:{}:shippable", layout.display()))
        .arg(bin())
        .env("CONTAINERS_STORAGE_CONF", conf);
    let (code, stdout, stderr) = run_cmd(&mut build);
    assert_eq!(code, 0, "build-image.sh failed:\n{stderr}");
    assert_eq!(
        stdout.trim(),
        name,
        "stdout names the image; stderr: {stderr}"
    );
}

#[test]
fn the_minimal_image_runs_layerport_as_the_host_does() {
    for (tool, package) in [
        ("buildah", "buildah"),
        ("podman", "podman"),
        ("runc", "runc"),
        ("strip", "binutils"),
    ] {
        require_tool(tool, package);
    }
    let work = tempfile::tempdir().unwrap();
    let conf = storage(work.path());
    let layout = work.path().join("exported");
    let name = "localhost/layerport-shippable-test:latest";

    // Assemble and export it as an OCI layout, which the checks below read.
    let started = Instant::now();
    build_image(&conf, name, &layout);
    let build_time = started.elapsed();

    // Exactly the binary, its libraries, the CA bundle and /tmp, owned by root, at time 0.
    let (descriptor, manifest) = manifest_for_tag(&layout, "shippable");
    let config = config_of(&layout, &manifest);
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/layerport"])
    );
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["--help"]));
    assert_eq!(config["os"], "linux");
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    assert_eq!(config["architecture"], arch);
    let tars = layer_tars(&layout, "shippable");
    assert_eq!(tars.len(), 1, "one layer");
    let entries = tar_entries(&tars[0]);
    let found: BTreeSet<String> = entries.iter().map(|e| e.path.clone()).collect();
    let mut wanted: BTreeSet<String> = FIXED.iter().map(|s| s.to_string()).collect();
    for lib in linked_libraries(&bin()) {
        wanted.extend(parents(&lib));
        wanted.insert(lib);
    }
    assert_eq!(found, wanted, "the image's files");
    for e in &entries {
        assert_eq!((e.uid, e.gid, e.mtime), (0, 0, 0), "{}", e.path);
    }
    let mode = |path: &str| entries.iter().find(|e| e.path == path).unwrap().mode & 0o7777;
    assert_eq!(mode("tmp/"), 0o1777);
    assert_eq!(mode("layerport"), 0o755);
    let packed = entries.iter().find(|e| e.path == "layerport").unwrap();
    let host_size = fs::metadata(bin()).unwrap().len();
    let uncompressed: u64 = entries.iter().map(|e| e.data.len() as u64).sum();
    let compressed: u64 = manifest["layers"][0]["size"].as_u64().unwrap();

    // buildah left it in the (test's) local storage, where podman finds it by name; the exported
    // layout is the same image: its config digest is the image ID.
    let (code, id, stderr) = podman(&conf, &["image", "inspect", "--format", "{{.Id}}", name]);
    assert_eq!(code, 0, "podman cannot see {name}: {stderr}");
    let id = id.trim().to_string();
    assert_eq!(
        format!("sha256:{id}"),
        manifest["config"]["digest"].as_str().unwrap(),
        "the exported image is the stored one"
    );

    let started = Instant::now();
    let host_version = run_ok(&["--version"]);
    let (code, version, stderr) = podman_run(&conf, &id, &[], &["--version"]);
    assert_eq!(code, 0, "--version in the image failed: {stderr}");
    assert_eq!(version, host_version);

    // The same conversion in the image and on the host gives the same image, byte for byte.
    let sample = testdata("good/sample/deps.zip");
    let out = work.path().join("out");
    fs::create_dir(&out).unwrap();
    let mounts = [
        format!("{}:/in:ro", sample.parent().unwrap().display()),
        format!("{}:/out", out.display()),
    ];
    let (code, digest, stderr) = podman_run(
        &conf,
        &id,
        &mounts,
        &["image", "/in/deps.zip", "--oci-layout", "/out/layout:v1"],
    );
    assert_eq!(code, 0, "image in the container failed: {stderr}");
    let host_digest = run_ok(&[
        OsStr::new("image"),
        sample.as_os_str(),
        OsStr::new("--oci-layout"),
        work.path().join("host:v1").as_os_str(),
    ]);
    assert_eq!(
        digest, host_digest,
        "the container's image differs from the host's"
    );
    let (written, _) = manifest_for_tag(&out.join("layout"), "v1");
    assert_eq!(written["digest"].as_str().unwrap(), digest.trim());

    // `check` spools through the temporary directory: /tmp must be usable. This image has no
    // Entrypoint or Cmd (it is layers only), so both report that one error, and exit 1.
    let (code, report, stderr) = podman_run(
        &conf,
        &id,
        &mounts,
        &["--json", "check", "oci:/out/layout:v1"],
    );
    assert_eq!(code, 1, "check in the container: {stderr}");
    let (host_code, host_report, host_stderr) = run(&[
        OsStr::new("--json"),
        OsStr::new("check"),
        OsStr::new(&format!("oci:{}:v1", out.join("layout").display())),
    ]);
    assert_eq!(host_code, 1, "check on the host: {host_stderr}");
    let (report, host_report): (Value, Value) = (parse_json(&report), parse_json(&host_report));
    for key in ["manifestDigest", "uncompressedSize", "errors", "warnings"] {
        assert_eq!(report[key], host_report[key], "{key}");
    }
    // Findings name the image as each run was given it; the rest must agree.
    let without_subject = |r: &Value| -> Vec<Value> {
        let mut findings = r["findings"].as_array().unwrap().clone();
        for f in &mut findings {
            f.as_object_mut().unwrap().remove("subject");
        }
        findings
    };
    assert_eq!(without_subject(&report), without_subject(&host_report));
    assert_eq!(report["findings"][0]["id"], "no-entrypoint-or-cmd");
    let run_time = started.elapsed();

    // The same binary gives the same image: same manifest, so same config and layer.
    let again = work.path().join("again");
    build_image(&conf, "localhost/layerport-shippable-test:again", &again);
    let (descriptor_again, _) = manifest_for_tag(&again, "shippable");
    assert_eq!(
        descriptor_again["digest"], descriptor["digest"],
        "a second build differs"
    );

    println!(
        "shippable image {}: layer {uncompressed} bytes uncompressed, {compressed} compressed \
         (binary {} bytes, {host_size} before strip); build-image.sh {:.1}s, three podman runs {:.1}s",
        descriptor["digest"].as_str().unwrap(),
        packed.data.len(),
        build_time.as_secs_f64(),
        run_time.as_secs_f64(),
    );
}

#[test]
fn a_missing_binary_is_refused_with_a_hint() {
    require_tool("buildah", "buildah");
    let work = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("bash");
    cmd.arg(script())
        .arg(work.path().join("no-such-layerport"))
        .env("CONTAINERS_STORAGE_CONF", storage(work.path()));
    let (code, stdout, stderr) = run_cmd(&mut cmd);
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("is not an executable file") && stderr.contains("cargo build --release"),
        "{stderr}"
    );
    assert!(!work.path().join("graph").exists(), "storage was touched");
}
