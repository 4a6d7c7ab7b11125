//! Layers by ARN against the fake AWS endpoint: the real aws-sdk-lambda client signs for the ARN's own
//! region, downloads are verified, cached and retried, errors name the fix, and no secret leaks.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::fake_aws::{FakeAws, Fault};
use crate::support::tools::assert_no_secrets;
use serde_json::Value;

const ARN: &str = "arn:aws:lambda:us-west-2:210987654321:layer:deps:4";
const EXT_ARN: &str = "arn:aws:lambda:eu-central-1:210987654321:layer:ext:1";

fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(rel)
}

struct Env {
    fake: FakeAws,
    home: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let fake = FakeAws::start();
        fake.add_layer(
            ARN,
            std::fs::read(testdata("good/sample/deps.zip")).unwrap(),
            &["arm64"],
        );
        fake.add_layer(
            EXT_ARN,
            std::fs::read(testdata("good/sample/ext.zip")).unwrap(),
            &[],
        );
        Env {
            fake,
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.home.path().join(rel)
    }

    /// The binary with an environment that reaches only the fake (default region deliberately differs).
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_layerport"));
        c.args(args)
            .current_dir(self.home.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("XDG_CACHE_HOME", self.path("cache"))
            .env("AWS_ENDPOINT_URL", self.fake.endpoint())
            .env("AWS_REGION", "eu-west-1")
            .env("AWS_ACCESS_KEY_ID", "AKIDLAYERPORTTEST")
            .env("AWS_SECRET_ACCESS_KEY", "SECRETKEYlayerportTEST0123456789")
            .env("AWS_SESSION_TOKEN", "SESSIONTOKENlayerportTEST")
            .env("AWS_CONFIG_FILE", self.path("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.path("no-aws-credentials"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn lambda_requests(&self) -> Vec<crate::support::fake_aws::RecordedRequest> {
        self.fake
            .requests()
            .into_iter()
            .filter(|r| r.path.starts_with("/2018-10-31/layers"))
            .collect()
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "command failed: {}", stderr(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn manifest_of(layout: &Path) -> Value {
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    let blob = layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    serde_json::from_slice(&std::fs::read(blob).unwrap()).unwrap()
}

fn config_of(layout: &Path) -> Value {
    let m = manifest_of(layout);
    let digest = m["config"]["digest"].as_str().unwrap();
    let blob = layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    serde_json::from_slice(&std::fs::read(blob).unwrap()).unwrap()
}

#[test]
fn image_by_arn_uses_the_arns_region_and_records_its_source() {
    let env = Env::new();
    ok(&env.run(&["image", ARN, EXT_ARN, "--oci-layout", "out:v1"]));
    let regions: Vec<_> = env
        .lambda_requests()
        .iter()
        .map(|r| r.region.clone())
        .collect();
    assert!(regions.contains(&Some("us-west-2".into())), "{regions:?}");
    assert!(
        regions.contains(&Some("eu-central-1".into())),
        "{regions:?}"
    );
    assert!(!regions.contains(&Some("eu-west-1".into())), "{regions:?}");

    let manifest = manifest_of(&env.path("out"));
    let ann = &manifest["annotations"];
    assert_eq!(ann["dev.layerport.layer.0.source"], ARN);
    assert_eq!(ann["dev.layerport.layer.1.source"], EXT_ARN);
    let code = env
        .fake
        .layer_versions("arn:aws:lambda:us-west-2:210987654321:layer:deps")[0]
        .code_sha256
        .clone();
    assert_eq!(ann["dev.layerport.layer.0.code-sha256"], code.as_str());
    // CompatibleArchitectures ["arm64"] picks the platform when nothing else does.
    assert_eq!(config_of(&env.path("out"))["architecture"], "arm64");
    // History names the ARN, never the presigned URL.
    let history = config_of(&env.path("out"))["history"].to_string();
    assert!(history.contains(ARN) && !history.contains("X-Amz"));
}

#[test]
fn arn_and_local_zip_give_the_same_layer_blob() {
    let env = Env::new();
    ok(&env.run(&["image", ARN, "--oci-layout", "by-arn"]));
    let local = testdata("good/sample/deps.zip");
    ok(&env.run(&["image", local.to_str().unwrap(), "--oci-layout", "by-path"]));
    assert_eq!(
        manifest_of(&env.path("by-arn"))["layers"],
        manifest_of(&env.path("by-path"))["layers"]
    );
}

#[test]
fn platform_flag_wins_over_layer_architecture_with_a_warning() {
    let env = Env::new();
    let out = env.run(&[
        "image",
        ARN,
        "--platform",
        "linux/amd64",
        "--oci-layout",
        "out",
    ]);
    ok(&out);
    assert_eq!(config_of(&env.path("out"))["architecture"], "amd64");
    let err = stderr(&out);
    assert!(
        err.contains("arm64") && err.contains("linux/amd64"),
        "{err}"
    );
}

#[test]
fn cache_serves_the_second_run_and_no_cache_skips_it() {
    let env = Env::new();
    ok(&env.run(&["inspect", ARN]));
    assert_eq!(env.fake.download_count(), 1);
    ok(&env.run(&["inspect", ARN]));
    assert_eq!(
        env.fake.download_count(),
        1,
        "second run must come from the cache"
    );
    ok(&env.run(&["--no-cache", "inspect", ARN]));
    assert_eq!(env.fake.download_count(), 2);

    // A cached file that no longer matches is not trusted: it is downloaded again.
    let cached: Vec<_> = std::fs::read_dir(env.path("cache/layerport/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "zip"))
        .collect();
    assert_eq!(cached.len(), 1);
    std::fs::write(&cached[0], b"corrupted").unwrap();
    ok(&env.run(&["inspect", ARN]));
    assert_eq!(env.fake.download_count(), 3);
}

#[test]
fn two_processes_converting_the_same_layer_at_once_both_succeed() {
    let env = Env::new();
    let a = env
        .cmd(&["image", ARN, "--oci-layout", "a"])
        .spawn()
        .unwrap();
    let b = env
        .cmd(&["image", ARN, "--oci-layout", "b"])
        .spawn()
        .unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert_eq!(ok(&a), ok(&b), "same inputs, same manifest digest");
}

#[test]
fn transient_download_failures_are_retried() {
    let env = Env::new();
    env.fake.inject(Fault::DownloadStatus {
        status: 500,
        body: "oops".into(),
    });
    env.fake.inject(Fault::DownloadReset { after_bytes: 100 });
    env.fake.inject(Fault::DownloadStatus {
        status: 503,
        body: "slow down".into(),
    });
    let out = env.run(&["--no-cache", "image", ARN, "--oci-layout", "out"]);
    ok(&out);
    assert_eq!(env.fake.download_count(), 4);
    assert_eq!(env.fake.pending_faults(), 0);
}

#[test]
fn expired_url_is_requested_again() {
    let env = Env::new();
    env.fake.inject(Fault::expired_download());
    ok(&env.run(&["--no-cache", "image", ARN, "--oci-layout", "out"]));
    assert_eq!(
        env.lambda_requests().len(),
        2,
        "a fresh location was asked for"
    );
    assert_eq!(env.fake.download_count(), 2);
}

#[test]
fn lambda_5xx_and_throttling_are_retried_by_the_sdk() {
    let env = Env::new();
    env.fake.inject(Fault::LambdaStatus {
        status: 500,
        error_type: "ServiceException".into(),
        message: "internal".into(),
    });
    env.fake.inject(Fault::LambdaStatus {
        status: 429,
        error_type: "TooManyRequestsException".into(),
        message: "Rate exceeded".into(),
    });
    ok(&env.run(&["image", ARN, "--oci-layout", "out"]));
    assert_eq!(env.lambda_requests().len(), 3);
}

#[test]
fn persistent_throttling_is_reported() {
    let env = Env::new();
    for _ in 0..6 {
        env.fake.inject(Fault::LambdaStatus {
            status: 429,
            error_type: "TooManyRequestsException".into(),
            message: "Rate exceeded".into(),
        });
    }
    let out = env.run(&["image", ARN, "--oci-layout", "out"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("throttling"), "{}", stderr(&out));
    assert!(!env.path("out").exists());
}

#[test]
fn wrong_checksum_or_size_is_refused_and_nothing_is_written() {
    for fault in [Fault::WrongCodeSha256, Fault::WrongCodeSize] {
        let env = Env::new();
        env.fake.inject(fault);
        let out = env.run(&["image", ARN, "--oci-layout", "out/img:v1"]);
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(err.contains("does not match"), "{err}");
        assert!(err.contains(ARN), "{err}");
        assert!(!env.path("out").exists());
        let cached = env.path("cache/layerport/sha256");
        let leftovers: Vec<_> = std::fs::read_dir(&cached)
            .map(|d| d.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        assert!(leftovers.is_empty(), "nothing cached: {leftovers:?}");
    }
}

#[test]
fn access_denied_names_the_permission_and_the_cross_account_grant() {
    let env = Env::new();
    env.fake.inject(Fault::lambda_access_denied(ARN));
    let out = env.run(&["image", ARN, "--oci-layout", "out"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("lambda:GetLayerVersion"), "{err}");
    assert!(err.contains("add-layer-version-permission"), "{err}");
}

#[test]
fn not_found_says_what_to_check() {
    let env = Env::new();
    let missing = "arn:aws:lambda:us-west-2:210987654321:layer:deps:99";
    let out = env.run(&["image", missing, "--oci-layout", "out"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("not found") && err.contains("region") && err.contains("version 99"),
        "{err}"
    );
}

#[test]
fn malformed_arn_is_a_usage_error_before_any_call() {
    let env = Env::new();
    let out = env.run(&[
        "image",
        "arn:aws:lambda:us-west-2:123:layer:deps:4",
        "--oci-layout",
        "out",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("arn:<partition>:lambda:<region>:<12-digit account>"));
    assert!(env.fake.requests().is_empty());
}

#[test]
fn missing_credentials_explain_how_to_provide_them() {
    let env = Env::new();
    let out = env
        .cmd(&["image", ARN, "--oci-layout", "out"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("no AWS credentials") && err.contains("--profile"),
        "{err}"
    );
}

#[test]
fn china_partition_arn_is_signed_for_its_region() {
    let env = Env::new();
    let cn = "arn:aws-cn:lambda:cn-north-1:210987654321:layer:deps:1";
    env.fake.add_layer(
        cn,
        std::fs::read(testdata("good/sample/deps.zip")).unwrap(),
        &[],
    );
    ok(&env.run(&["image", cn, "--oci-layout", "out"]));
    let requests = env.lambda_requests();
    assert!(!requests.is_empty(), "no Lambda request reached the fake");
    assert!(
        requests
            .iter()
            .all(|r| r.region.as_deref() == Some("cn-north-1")),
        "{requests:?}"
    );
}

#[test]
fn no_secret_appears_in_any_output_even_at_debug_verbosity() {
    let env = Env::new();
    env.fake.inject(Fault::expired_download());
    env.fake.inject(Fault::DownloadStatus {
        status: 500,
        body: "oops".into(),
    });
    let ok_run = env.run(&["-vv", "--no-cache", "image", ARN, "--oci-layout", "out"]);
    ok(&ok_run);
    env.fake.inject(Fault::WrongCodeSha256);
    let failed = env.run(&[
        "-vv",
        "--json",
        "--no-cache",
        "image",
        ARN,
        "--oci-layout",
        "out2",
    ]);
    assert_eq!(failed.status.code(), Some(1));
    let mut secrets = env.fake.secret_strings();
    secrets.extend([
        "SECRETKEYlayerportTEST0123456789".into(),
        "SESSIONTOKENlayerportTEST".into(),
    ]);
    secrets.push(env.fake.presign_token().into());
    for out in [&ok_run, &failed] {
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(out));
        assert!(
            all.contains("DEBUG") || all.contains("downloading"),
            "verbose output expected: {all}"
        );
        assert_no_secrets(&secrets, &[&all]);
        assert!(
            !all.contains("X-Amz-Signature") && !all.contains("X-Amz-Credential"),
            "{all}"
        );
    }
    // Nor in what was written.
    let mut written = Vec::new();
    for entry in walk(&env.path("out")) {
        written.extend(std::fs::read(entry).unwrap());
    }
    assert_no_secrets(&secrets, &[&String::from_utf8_lossy(&written)]);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn fetch_extracts_arn_and_local_layers_in_order() {
    let env = Env::new();
    let local = testdata("good/override-b.zip");
    ok(&env.run(&[
        "fetch",
        ARN,
        EXT_ARN,
        local.to_str().unwrap(),
        "--dest",
        "opt",
    ]));
    let opt = env.path("opt");
    assert!(opt.join("python/requests/__init__.py").is_file());
    assert!(opt.join("extensions/log-forwarder").is_file());
    assert!(opt.join("python/shared.txt").is_file());
    let mut names: Vec<_> = std::fs::read_dir(&opt)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert!(
        names.iter().all(|n| !n.to_string_lossy().starts_with('.')),
        "{names:?}"
    );
}

#[test]
fn failed_fetch_leaves_the_destination_as_it_was() {
    let env = Env::new();
    std::fs::create_dir(env.path("opt")).unwrap();
    std::fs::write(env.path("opt/keep.txt"), b"mine").unwrap();
    env.fake.inject(Fault::WrongCodeSha256);
    let out = env.run(&["fetch", EXT_ARN, "--dest", "opt"]);
    assert_eq!(out.status.code(), Some(1));
    let names: Vec<_> = std::fs::read_dir(env.path("opt"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("keep.txt")]);
    let siblings: Vec<_> = std::fs::read_dir(env.home.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".layerport"))
        .collect();
    assert!(siblings.is_empty(), "{siblings:?}");
}

#[test]
fn profile_flag_selects_the_profiles_credentials() {
    let env = Env::new();
    std::fs::write(
        env.path("credentials"),
        "[default]\naws_access_key_id = AKIDDEFAULTPROFILE\naws_secret_access_key = s1\n\n[ci]\naws_access_key_id = AKIDCIPROFILE\naws_secret_access_key = s2\n",
    )
    .unwrap();
    let out = env
        .cmd(&["--profile", "ci", "image", ARN, "--oci-layout", "out"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_SHARED_CREDENTIALS_FILE", env.path("credentials"))
        .output()
        .unwrap();
    ok(&out);
    let auth: Vec<String> = env
        .lambda_requests()
        .iter()
        .filter_map(|r| r.header("authorization").map(str::to_string))
        .collect();
    assert!(!auth.is_empty());
    assert!(
        auth.iter().all(|a| a.contains("Credential=AKIDCIPROFILE/")),
        "{auth:?}"
    );
}

#[test]
fn service_specific_endpoint_override_is_honoured() {
    let env = Env::new();
    let out = env
        .cmd(&["image", ARN, "--oci-layout", "out"])
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_ENDPOINT_URL_LAMBDA", env.fake.endpoint())
        .output()
        .unwrap();
    ok(&out);
    assert_eq!(env.lambda_requests().len(), 1);
}
