//! `layerport batch` sharing work, with real parts: 30 image jobs over 6 layer versions (the fake
//! AWS endpoint) pushed to a real registry download each layer once and upload each blob once; a
//! rerun moves nothing and reports every job up to date; a run killed half-way and rerun ends with
//! every image right and only unfinished jobs redone; two processes on one cache both succeed; a
//! job whose layer is denied fails alone (exit 1).

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::migrate_function::{REGION, zip_bytes};
use crate::support::fake_aws::FakeAws;
use crate::support::registry::{PushHome, Registry};
use crate::support::tools::ZipEntry;

const LAYERS: usize = 6;

struct World {
    fake: FakeAws,
    reg: Registry,
    home: PushHome,
}

fn layer_arn(i: usize) -> String {
    format!("arn:aws:lambda:{REGION}:123456789012:layer:lib{i}:1")
}

impl World {
    fn new() -> World {
        let fake = FakeAws::start();
        for i in 0..LAYERS {
            let body = format!("VALUE = {i}\n").repeat(200);
            let zip = zip_bytes(&[
                ZipEntry::Dir("python/"),
                ZipEntry::File(&format!("python/lib{i}.py"), body.as_bytes(), 0o644),
            ]);
            fake.add_layer(&layer_arn(i), zip, &["x86_64"]);
        }
        let reg = Registry::start();
        let mut home = PushHome::default();
        reg.docker_config(&home.docker_dir(), &[]);
        for (k, v) in [
            ("AWS_ENDPOINT_URL", fake.endpoint().as_str()),
            ("AWS_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", "AKIDLAYERPORTBATCH"),
            ("AWS_SECRET_ACCESS_KEY", "SECRETKEYlayerportBATCH0123456789"),
        ] {
            home.set_env(k, v);
        }
        World { fake, reg, home }
    }

    /// 30 jobs: every ordered pair of the 6 layers, each pushed to its own repository.
    fn write_plan(&self, name: &str) {
        self.write_plan_for(name, "fn");
    }

    /// The same, into repositories named `{prefix}-A-B`.
    fn write_plan_for(&self, name: &str, prefix: &str) {
        let mut text = format!("[defaults]\nplain_http = \"{}\"\n\n", self.reg.host());
        for a in 0..LAYERS {
            for b in (0..LAYERS).filter(|&b| b != a) {
                text.push_str(&format!(
                    "[[job]]\nname = \"fn-{a}-{b}\"\nkind = \"image\"\nlayers = [\"{}\", \"{}\"]\npush = \"{}/{prefix}-{a}-{b}:v1\"\n\n",
                    layer_arn(a),
                    layer_arn(b),
                    self.reg.host()
                ));
            }
        }
        std::fs::write(self.home.path(name), text).unwrap();
    }

    fn batch(&self, plan: &str, extra: &[&str]) -> (i32, Vec<Value>, String) {
        let mut args = vec!["batch", plan];
        args.extend_from_slice(extra);
        let (code, stdout, stderr) = self.home.run(&[], &args);
        let lines = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        (code, lines, stderr)
    }

    /// Blobs sent: completed uploads (PUT), not mounts or sessions.
    fn blob_puts(&self) -> usize {
        self.reg
            .access_lines()
            .iter()
            .filter(|l| l.method == "PUT" && l.uri.contains("/blobs/uploads/"))
            .count()
    }

    fn downloads(&self) -> usize {
        self.fake
            .requests()
            .iter()
            .filter(|r| r.is_download())
            .count()
    }
}

fn statuses(lines: &[Value]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for l in lines {
        *out.entry(l["status"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    out
}

#[test]
fn thirty_jobs_over_six_layers_download_and_upload_each_once_and_a_rerun_moves_nothing() {
    let world = World::new();
    world.write_plan("plan.toml");
    let (code, lines, stderr) = world.batch("plan.toml", &["-j", "4"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        statuses(&lines),
        BTreeMap::from([("pushed".to_string(), 30)])
    );
    assert_eq!(world.downloads(), LAYERS, "each layer downloaded once");
    let downloaded: u64 = lines
        .iter()
        .map(|l| l["bytesDownloaded"].as_u64().unwrap())
        .sum();
    assert!(downloaded > 0);
    // 6 layer blobs and 30 configs are sent once each; every other blob is mounted.
    assert_eq!(world.blob_puts(), LAYERS + 30, "each blob uploaded once");

    let uploads = world.reg.upload_requests();
    let (code, lines, stderr) = world.batch("plan.toml", &["-j", "4"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        statuses(&lines),
        BTreeMap::from([("up-to-date".to_string(), 30)])
    );
    assert_eq!(world.downloads(), LAYERS, "a rerun downloaded");
    assert_eq!(world.reg.upload_requests(), uploads, "a rerun uploaded");
    assert!(
        lines
            .iter()
            .all(|l| l["bytesUploaded"] == 0 && l["bytesDownloaded"] == 0)
    );
}

#[test]
fn a_run_killed_half_way_is_finished_by_the_next_and_only_unfinished_jobs_are_redone() {
    let world = World::new();
    world.write_plan("plan.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_layerport"));
    child
        .args(["batch", "plan.toml", "-j", "2"])
        .current_dir(world.home.path(""))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", world.home.path(""))
        .env("DOCKER_CONFIG", world.home.docker_dir())
        .env("XDG_CACHE_HOME", world.home.path("cache"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", world.fake.endpoint())
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "AKIDLAYERPORTBATCH")
        .env("AWS_SECRET_ACCESS_KEY", "SECRETKEYlayerportBATCH0123456789")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = child.spawn().unwrap();
    let mut finished = Vec::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while finished.len() < 8 && stdout.read_line(&mut line).unwrap() > 0 {
        let doc: Value = serde_json::from_str(&line).unwrap();
        finished.push(doc["name"].as_str().unwrap().to_string());
        line.clear();
    }
    child.kill().unwrap(); // SIGKILL: no cleanup of any kind
    let _ = child.wait();
    assert_eq!(finished.len(), 8, "the run ended before 8 jobs");

    let (code, lines, stderr) = world.batch("plan.toml", &["-j", "2"]);
    assert_eq!(code, 0, "{stderr}");
    for l in &lines {
        let name = l["name"].as_str().unwrap();
        if finished.iter().any(|f| f == name) {
            assert_eq!(l["status"], "up-to-date", "{name} was redone");
        } else {
            assert!(
                l["status"] == "pushed" || l["status"] == "up-to-date",
                "{l}"
            );
        }
    }
    // Every image is whole: skopeo reads each one's manifest and config.
    for l in &lines {
        let name = l["name"].as_str().unwrap();
        let inspected = world.reg.inspect(&format!("{name}:v1"));
        assert_eq!(inspected["Layers"].as_array().unwrap().len(), 2, "{name}");
    }
}

#[test]
fn two_processes_on_one_cache_both_succeed() {
    let world = World::new();
    world.write_plan_for("a.toml", "a");
    world.write_plan_for("b.toml", "b");
    let spawn = |plan: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_layerport"));
        cmd.args(["-q", "batch", plan, "-j", "3"])
            .current_dir(world.home.path(""))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", world.home.path(""))
            .env("DOCKER_CONFIG", world.home.docker_dir())
            .env("XDG_CACHE_HOME", world.home.path("cache"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ENDPOINT_URL", world.fake.endpoint())
            .env("AWS_REGION", REGION)
            .env("AWS_ACCESS_KEY_ID", "AKIDLAYERPORTBATCH")
            .env("AWS_SECRET_ACCESS_KEY", "SECRETKEYlayerportBATCH0123456789")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().unwrap()
    };
    let (a, b) = (spawn("a.toml"), spawn("b.toml"));
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let failed: Vec<&str> = stdout
            .lines()
            .filter(|l| l.contains("\"failed\""))
            .collect();
        assert!(out.status.success(), "{stderr}{failed:?}");
        assert!(!stderr.contains("File exists"), "{stderr}");
    }
    assert_eq!(
        world.downloads(),
        LAYERS,
        "the second process waited for the first download"
    );
    // The cache holds each layer once and nothing half-written.
    let entries: Vec<_> = std::fs::read_dir(world.home.path("cache/layerport/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".zip"))
        .collect();
    assert_eq!(entries.len(), LAYERS, "{entries:?}");
}

#[test]
fn a_job_whose_layer_is_denied_fails_alone() {
    let world = World::new();
    world.write_plan("plan.toml");
    world.fake.deny_layer(&layer_arn(5));
    let (code, lines, stderr) = world.batch("plan.toml", &["-j", "4"]);
    assert_eq!(code, 1, "{stderr}");
    let counts = statuses(&lines);
    // The 10 ordered pairs holding layer 5 fail; the other 20 are pushed.
    assert_eq!(counts.get("failed"), Some(&10), "{counts:?}");
    assert_eq!(counts.get("pushed"), Some(&20), "{counts:?}");
    let failed = lines.iter().find(|l| l["status"] == "failed").unwrap();
    let message = failed["error"]["message"].as_str().unwrap();
    assert!(message.contains("lib5"), "{failed}");
    assert!(failed["error"]["hint"].as_str().is_some(), "{failed}");
}
