//! Mutation fuzzing of every reader of untrusted input — the zip reader, the layer applier (tar and
//! whiteouts), OCI layouts and docker archives — through the real binary, from real inputs. A case
//! fails on a panic or any exit other than 0, 1 and 2, on a run over 60 s, on a peak RSS over
//! 512 MB, and, when refused, on a message without a hint or anything left behind (output or
//! scratch). A fixed number of fixed-seed cases runs in the suite; `scripts/fuzz.sh` runs many more
//! (FUZZ_CASES, FUZZ_SEED). Failing inputs are kept under target/fuzz-failures/.

use crate::support::mutate::{self, Rng};
use crate::support::tools::*;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde_json::Value;
use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

const CASES: usize = 40;
const CASE_SECONDS: u32 = 60;
const RSS_LIMIT_KB: u64 = 512 * 1024;

fn case_count() -> usize {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES)
}

fn rng_for(target: &str) -> Rng {
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20261202);
    let salt = target
        .bytes()
        .fold(0u64, |h, b| h.rotate_left(5) ^ u64::from(b));
    Rng::new(seed ^ salt)
}

/// The failures of one fuzz target, each with its kept input.
struct Findings {
    target: &'static str,
    failures: Vec<String>,
}

impl Findings {
    fn new(target: &'static str) -> Self {
        Findings {
            target,
            failures: Vec::new(),
        }
    }

    /// Runs `layerport ARGS` in `dir` (TMPDIR inside it) and records what is wrong with the run.
    /// `output` is what a refusal must not leave behind. (`check` exits 1 with a report on
    /// stdout when it has findings: that is its answer, not a refusal.)
    fn run(&mut self, case: usize, dir: &Path, args: &[&str], output: Option<&str>) {
        let tmp = dir.join("tmp");
        fs::create_dir_all(&tmp).unwrap();
        let rss_file = dir.join("rss.txt");
        require_tool("timeout", "coreutils");
        assert!(
            Path::new("/usr/bin/time").exists(),
            "/usr/bin/time is missing: install it with apt-get install time"
        );
        let out = Command::new("timeout")
            .args([
                "--signal=KILL",
                &CASE_SECONDS.to_string(),
                "/usr/bin/time",
                "-f",
                "%M",
                "-o",
            ])
            .arg(&rss_file)
            .arg(bin())
            .args(args)
            .current_dir(dir)
            .env("TMPDIR", &tmp)
            .env_remove("LAYERPORT_LOG")
            .env_remove("SOURCE_DATE_EPOCH")
            .output()
            .expect("run timeout(1)");
        let code = out.status.code().unwrap_or(-1);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let rss_kb: u64 = fs::read_to_string(&rss_file)
            .ok()
            .and_then(|t| t.lines().last().and_then(|l| l.trim().parse().ok()))
            .unwrap_or(0);
        let _ = fs::remove_file(&rss_file);
        let mut wrong = Vec::new();
        if code == 137 {
            wrong.push(format!("still running after {CASE_SECONDS} s"));
        } else if !(0..=2).contains(&code) {
            wrong.push(format!("exit code {code}"));
        }
        if stderr.contains("panicked") {
            wrong.push("panicked".to_string());
        }
        if rss_kb > RSS_LIMIT_KB {
            wrong.push(format!("peak RSS {} MB", rss_kb / 1024));
        }
        let reported = args[0] == "check" && code == 1 && !out.stdout.is_empty();
        if code != 0 && !reported {
            if !stderr.contains("hint:") {
                wrong.push("refused without a hint".to_string());
            }
            if let Some(o) = output
                && dir.join(o).exists()
            {
                wrong.push(format!("left {o} behind"));
            }
        }
        let scratch = list_all(&tmp);
        if !scratch.is_empty() {
            wrong.push(format!("left scratch in TMPDIR: {scratch:?}"));
        }
        if wrong.is_empty() {
            return;
        }
        let kept = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("fuzz-failures")
            .join(format!("{}-{case}", self.target));
        let _ = fs::remove_dir_all(&kept);
        copy_tree(dir, &kept);
        let excerpt: String = stderr.chars().take(600).collect();
        self.failures.push(format!(
            "case {case}: layerport {} → {} (input kept in {})\n    {}",
            args.join(" "),
            wrong.join(", "),
            kept.display(),
            excerpt.replace('\n', "\n    ")
        ));
        let _ = fs::remove_dir_all(&tmp);
    }

    /// Reads IMAGE the two ways untrusted images are read: into a zip, and whole by `check`.
    fn read_image(&mut self, case: usize, dir: &Path, image: &str) {
        self.run(case, dir, &["zip", image, "-o", "out.zip"], Some("out.zip"));
        self.run(case, dir, &["check", image], None);
    }

    fn assert_none(self) {
        assert!(
            self.failures.is_empty(),
            "{}: {} failing case(s):\n{}",
            self.target,
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        let dest = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &dest);
        } else if kind.is_file() {
            fs::copy(entry.path(), dest).unwrap();
        }
    }
}

fn seed_zips() -> Vec<PathBuf> {
    let mut zips: Vec<PathBuf> = ["good", "good/sample"]
        .iter()
        .flat_map(|d| fs::read_dir(testdata(d)).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "zip"))
        .collect();
    zips.sort();
    zips
}

/// A layout of three real layers (overrides, Info-ZIP symlinks), tagged `t`.
fn seed_layout(dir: &Path) -> PathBuf {
    let layout = dir.join("seed");
    run_ok(&[
        "image".as_ref(),
        testdata("good/override-a.zip").as_os_str(),
        testdata("good/override-b.zip").as_os_str(),
        testdata("good/infozip-symlinks.zip").as_os_str(),
        "--oci-layout".as_ref(),
        OsString::from(format!("{}:t", layout.display())).as_os_str(),
    ]);
    layout
}

fn sha256_name(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

fn write_blob(layout: &Path, bytes: &[u8]) -> String {
    let digest = sha256_name(bytes);
    let hex = digest.trim_start_matches("sha256:");
    fs::write(layout.join("blobs/sha256").join(hex), bytes).unwrap();
    digest
}

/// The layout's documents: (index, manifest, config).
fn documents(layout: &Path) -> (Value, Value, Value) {
    let index = read_json(&layout.join("index.json"));
    let manifest: Value = serde_json::from_slice(&blob(
        layout,
        index["manifests"][0]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    let config: Value = serde_json::from_slice(&blob(
        layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    (index, manifest, config)
}

/// Writes config, manifest and index again so that each names the other by its new digest
/// (where the mutation left a place to name it in).
fn relink(layout: &Path, mut index: Value, mut manifest: Value, config: &Value) {
    let config_bytes = serde_json::to_vec(config).unwrap();
    let config_digest = write_blob(layout, &config_bytes);
    point_at(
        manifest.pointer_mut("/config"),
        config_digest,
        config_bytes.len(),
    );
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    let manifest_digest = write_blob(layout, &manifest_bytes);
    point_at(
        index.pointer_mut("/manifests/0"),
        manifest_digest,
        manifest_bytes.len(),
    );
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
}

fn point_at(descriptor: Option<&mut Value>, digest: String, size: usize) {
    if let Some(d) = descriptor.and_then(Value::as_object_mut) {
        d.insert("digest".into(), digest.into());
        d.insert("size".into(), size.into());
    }
}

#[test]
fn fuzz_zip_reader() {
    let zips = seed_zips();
    let mut rng = rng_for("zip");
    let mut findings = Findings::new("zip-reader");
    for case in 0..case_count() {
        let work = TempDir::new().unwrap();
        let mut data = fs::read(rng.pick(&zips)).unwrap();
        if rng.below(5) < 3 {
            mutate::zip_fields(&mut rng, &mut data);
        } else {
            mutate::bytes(&mut rng, &mut data);
        }
        fs::write(work.path().join("case.zip"), &data).unwrap();
        let dir = work.path();
        findings.run(
            case,
            dir,
            &["image", "case.zip", "--oci-layout", "out:t"],
            Some("out"),
        );
        findings.run(
            case,
            dir,
            &["fetch", "case.zip", "--dest", "dest"],
            Some("dest"),
        );
        findings.run(case, dir, &["inspect", "case.zip"], None);
    }
    findings.assert_none();
}

#[test]
fn fuzz_layer_applier() {
    let seeds = TempDir::new().unwrap();
    let seed = seed_layout(seeds.path());
    let mut rng = rng_for("tar");
    let mut findings = Findings::new("layer-applier");
    for case in 0..case_count() {
        let work = TempDir::new().unwrap();
        let layout = work.path().join("case");
        copy_tree(&seed, &layout);
        let (index, mut manifest, mut config) = documents(&layout);
        let which = rng.below(3);
        let digest = manifest["layers"][which]["digest"]
            .as_str()
            .unwrap()
            .to_string();
        let mut tar = Vec::new();
        GzDecoder::new(&blob(&layout, &digest)[..])
            .read_to_end(&mut tar)
            .unwrap();
        if rng.below(10) < 7 {
            mutate::tar_header(&mut rng, &mut tar);
        } else {
            mutate::bytes(&mut rng, &mut tar);
        }
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        manifest["layers"][which]["digest"] = write_blob(&layout, &gz).into();
        manifest["layers"][which]["size"] = gz.len().into();
        config["rootfs"]["diff_ids"][which] = sha256_name(&tar).into();
        relink(&layout, index, manifest, &config);
        let dir = work.path();
        findings.read_image(case, dir, "oci:case:t");
    }
    findings.assert_none();
}

#[test]
fn fuzz_layout_documents() {
    let seeds = TempDir::new().unwrap();
    let seed = seed_layout(seeds.path());
    let mut rng = rng_for("layout");
    let mut findings = Findings::new("layout-documents");
    for case in 0..case_count() {
        let work = TempDir::new().unwrap();
        let layout = work.path().join("case");
        copy_tree(&seed, &layout);
        let (mut index, mut manifest, mut config) = documents(&layout);
        let doc = match rng.below(3) {
            0 => &mut index,
            1 => &mut manifest,
            _ => &mut config,
        };
        mutate::json_value(&mut rng, doc);
        if rng.below(2) == 0 {
            // Digests made to match, so the mutated document is read and believed.
            relink(&layout, index, manifest, &config);
        } else {
            let mut bytes = serde_json::to_vec(&index).unwrap();
            mutate::bytes(&mut rng, &mut bytes);
            fs::write(layout.join("index.json"), bytes).unwrap();
        }
        let dir = work.path();
        findings.read_image(case, dir, "oci:case:t");
    }
    findings.assert_none();
}

#[test]
fn fuzz_docker_archive() {
    let seeds = TempDir::new().unwrap();
    let archive = seeds.path().join("seed.tar");
    run_ok(&[
        "image".as_ref(),
        testdata("good/override-a.zip").as_os_str(),
        testdata("good/infozip-symlinks.zip").as_os_str(),
        "--docker-archive".as_ref(),
        OsString::from(format!("{}:fuzz:t", archive.display())).as_os_str(),
    ]);
    let original = fs::read(&archive).unwrap();
    let mut rng = rng_for("archive");
    let mut findings = Findings::new("docker-archive");
    for case in 0..case_count() {
        let work = TempDir::new().unwrap();
        let mut data = original.clone();
        if rng.below(10) < 6 {
            mutate::tar_header(&mut rng, &mut data);
        } else {
            mutate::bytes(&mut rng, &mut data);
        }
        fs::write(work.path().join("case.tar"), &data).unwrap();
        let dir = work.path();
        findings.read_image(case, dir, "docker-archive:case.tar");
    }
    findings.assert_none();
}
