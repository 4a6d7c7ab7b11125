//! `layerport batch` plans: a bad plan is refused before any work with file:line:column, the job
//! and the field (syntax, unknown field, missing output, duplicate name, two jobs writing one
//! output, a global option in a job); JSON plans; a job reading another job's image runs after it;
//! shards 1..N together run each job exactly once; `--dry-run` writes nothing.

use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use crate::support::tools::{layerport, run_cmd, testdata};

fn deps() -> String {
    testdata("good/sample/deps.zip").display().to_string()
}

fn ext() -> String {
    testdata("good/sample/ext.zip").display().to_string()
}

/// `layerport batch PLAN EXTRA...` in `dir`: (code, job lines, stderr).
fn batch(dir: &Path, plan: &str, extra: &[&str]) -> (i32, Vec<Value>, String) {
    let mut cmd = layerport();
    cmd.current_dir(dir).arg("batch").arg(plan).args(extra);
    let (code, stdout, stderr) = run_cmd(&mut cmd);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (code, lines, stderr)
}

fn by_name(lines: &[Value]) -> BTreeMap<String, Value> {
    lines
        .iter()
        .map(|l| (l["name"].as_str().unwrap().to_string(), l.clone()))
        .collect()
}

#[test]
fn bad_plans_name_the_place_and_do_nothing() {
    let good = format!(
        "[[job]]\nname = \"a\"\nkind = \"image\"\nlayers = [\"{}\"]\noci_layout = \"out/a:v1\"\n",
        deps()
    );
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "syntax",
            format!("{good}[[job]\nname = \"b\"\n"),
            "plan.toml:6:",
        ),
        (
            "unknown field",
            good.replace("oci_layout", "oci_layoot"),
            "plan.toml:5:1: job `a`: unknown field `oci_layoot`",
        ),
        (
            "missing output",
            good.replace("oci_layout = \"out/a:v1\"\n", ""),
            "plan.toml:1:1: job `a`: missing",
        ),
        (
            "duplicate name",
            format!("{good}{}", good.replace("out/a", "out/b")),
            "plan.toml:7:1: job name `a` is used twice",
        ),
        (
            "same output",
            format!("{good}{}", good.replace("\"a\"", "\"b\"")),
            "both write oci:out/a:v1",
        ),
        (
            "global in a job",
            good.replace("kind =", "region = \"eu-west-1\"\nkind ="),
            "plan.toml:3:1: job `a`: `region` is a global option",
        ),
        (
            "bad kind",
            good.replace("\"image\"", "\"imagine\""),
            "plan.toml:3:1",
        ),
    ];
    for (what, text, says) in cases {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("plan.toml"), &text).unwrap();
        let (code, lines, stderr) = batch(dir.path(), "plan.toml", &[]);
        assert_eq!(code, 2, "{what}: {stderr}");
        assert!(lines.is_empty(), "{what}: jobs ran: {lines:?}");
        assert!(
            stderr.contains(says),
            "{what}: wanted {says:?} in: {stderr}"
        );
        assert!(stderr.contains("hint:"), "{what}: {stderr}");
        assert!(!dir.path().join("out").exists(), "{what}: wrote output");
    }
}

#[test]
fn json_plans_and_jobs_that_read_another_jobs_image() {
    let dir = tempfile::tempdir().unwrap();
    let plan = serde_json::json!({
        "defaults": {"prefix": "/opt"},
        "job": [
            {"name": "back", "kind": "zip", "image": "oci:out/both:v1", "output": "out/both.zip"},
            {"name": "both", "kind": "image", "layers": [deps(), ext()], "oci_layout": "out/both:v1"},
        ],
    });
    fs::write(dir.path().join("plan.json"), plan.to_string()).unwrap();
    let (code, lines, stderr) = batch(dir.path(), "plan.json", &["-j", "4"]);
    assert_eq!(code, 0, "{stderr}");
    let jobs = by_name(&lines);
    assert_eq!(jobs["both"]["status"], "built");
    assert_eq!(jobs["back"]["status"], "built", "{lines:?}");
    assert!(dir.path().join("out/both.zip").is_file());
    // The zip job finished after the image it reads.
    let order: Vec<&str> = lines.iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(order, ["both", "back"]);

    // A rerun finds both done: the image by its recorded inputs, the zip by the image it was made
    // from (recorded on the zip itself), and rewrites neither.
    let zip = dir.path().join("out/both.zip");
    let before = fs::metadata(&zip).unwrap().modified().unwrap();
    let (code, lines, stderr) = batch(dir.path(), "plan.json", &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        lines.iter().all(|l| l["status"] == "up-to-date"),
        "{lines:?}"
    );
    assert_eq!(fs::metadata(&zip).unwrap().modified().unwrap(), before);

    let bad = r#"{"job": [{"name": "x", "kind": "image", "layerz": []}]}"#;
    fs::write(dir.path().join("bad.json"), bad).unwrap();
    let (code, _, stderr) = batch(dir.path(), "bad.json", &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("bad.json:1:"), "{stderr}");
    assert!(stderr.contains("layerz"), "{stderr}");
}

#[test]
fn shards_together_run_each_job_once_and_dry_runs_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..12 {
        text.push_str(&format!(
            "[[job]]\nname = \"job-{i}\"\nkind = \"image\"\nlayers = [\"{}\"]\noci_layout = \"out/l{i}:v1\"\n\n",
            deps()
        ));
    }
    fs::write(dir.path().join("plan.toml"), &text).unwrap();
    let (code, lines, stderr) = batch(dir.path(), "plan.toml", &["--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(lines.iter().all(|l| l["status"] == "planned"), "{lines:?}");
    assert!(!dir.path().join("out").exists(), "a dry run wrote output");

    let mut ran: BTreeMap<String, usize> = BTreeMap::new();
    for k in 1..=3 {
        let (code, lines, stderr) = batch(dir.path(), "plan.toml", &["--shard", &format!("{k}/3")]);
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(lines.len(), 12, "every job has a line");
        for l in lines.iter().filter(|l| l["status"] != "not-in-shard") {
            assert_eq!(l["status"], "built", "{l}");
            *ran.entry(l["name"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    assert_eq!(ran.len(), 12, "{ran:?}");
    assert!(ran.values().all(|&n| n == 1), "{ran:?}");

    let (code, _, stderr) = batch(dir.path(), "plan.toml", &["--shard", "4/3"]);
    assert_eq!(code, 2, "{stderr}");
}

/// A job reading another job's image cannot read it in a dry run (nothing is written): it is
/// planned after that job, not failed.
#[test]
fn a_dry_run_plans_jobs_that_read_another_jobs_output() {
    let dir = tempfile::TempDir::new().unwrap();
    std::os::unix::fs::symlink(testdata(""), dir.path().join("testdata")).unwrap();
    let (code, lines, stderr) = batch(dir.path(), "testdata/good/sample/plan.toml", &["--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    let jobs = by_name(&lines);
    assert_eq!(jobs.len(), 4, "{lines:?}");
    for (name, line) in &jobs {
        assert_eq!(line["status"], "planned", "{name}: {line}");
    }
    assert_eq!(jobs["deps-back"]["output"], "out/deps-back.zip");
    assert!(!dir.path().join("out").exists(), "a dry run writes nothing");
}
