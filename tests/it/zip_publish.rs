//! `layerport zip --publish` against the fake AWS endpoint with the real SDK clients: a first
//! publish, an identical second one that publishes nothing, a zip over 50 MB through S3 PutObject,
//! and errors that name the permissions to add.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::fake_aws::{ACCOUNT, FakeAws, Fault, RecordedRequest};
use crate::support::images::*;
use crate::support::tools::{assert_no_secrets, sha256_hex};
use serde_json::Value;

const REGION: &str = "eu-west-1";
const SECRET_KEY: &str = "SECRETKEYlayerportTEST0123456789";

fn layer_arn(name: &str) -> String {
    format!("arn:aws:lambda:{REGION}:{ACCOUNT}:layer:{name}")
}

struct Env {
    fake: FakeAws,
    home: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            fake: FakeAws::start(),
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.home.path().join(rel)
    }

    /// An OCI layout `rel` holding `img` as `oci:<dir>:t`.
    fn image(&self, rel: &str, img: &Img) -> String {
        oci_layout(&self.path(rel), "t", img);
        format!("oci:{}:t", self.path(rel).display())
    }

    /// The binary with an environment that reaches only the fake.
    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// The command `run` runs, for a test that changes its environment.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_layerport"));
        c.args(args)
            .current_dir(self.home.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("AWS_ENDPOINT_URL", self.fake.endpoint())
            .env("AWS_REGION", REGION)
            .env("AWS_ACCESS_KEY_ID", "AKIDLAYERPORTTEST")
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_CONFIG_FILE", self.path("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.path("no-aws-credentials"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true");
        c
    }

    /// Lambda and S3 calls since `from` (an index into `requests()`).
    fn calls_since(&self, from: usize) -> Vec<RecordedRequest> {
        self.fake.requests().into_iter().skip(from).collect()
    }
}

fn ok(o: &Output) -> String {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "command failed: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn failed(o: &Output) -> String {
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "expected failure: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        o.stdout.is_empty(),
        "stdout on failure: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(
        stderr.contains("\n  hint: "),
        "the error gives no hint\nstderr: {stderr}"
    );
    stderr
}

fn small_image(version: &str) -> Img {
    Img::new(
        "amd64",
        vec![layer_tar(&[
            dir("opt/"),
            dir("opt/python/"),
            file("opt/python/lib.py", &format!("VERSION = {version:?}\n")),
        ])],
    )
}

fn publishes(requests: &[RecordedRequest]) -> usize {
    requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/versions"))
        .count()
}

fn zip_path(env: &Env, rel: &str) -> String {
    env.path(rel).display().to_string()
}

#[test]
fn publishes_once_and_then_recognises_the_same_content() {
    let env = Env::new();
    let image = env.image("v1", &small_image("1.0"));
    let out1 = zip_path(&env, "first.zip");
    let stdout = ok(&env.run(&[
        "zip",
        &image,
        "-o",
        &out1,
        "--publish",
        "deps",
        "--compatible-runtime",
        "python3.12",
        "--compatible-runtime",
        "python3.13",
        "--description",
        "deps 1.0",
        "--license-info",
        "MIT",
    ]));
    assert_eq!(stdout.trim(), format!("{}:1", layer_arn("deps")));
    let versions = env.fake.layer_versions(&layer_arn("deps"));
    assert_eq!(versions.len(), 1);
    let v = &versions[0];
    assert_eq!(
        *v.zip,
        std::fs::read(&out1).unwrap(),
        "Lambda holds exactly the zip written"
    );
    assert_eq!(
        v.compatible_architectures,
        ["x86_64"],
        "from the image's amd64"
    );
    assert_eq!(v.compatible_runtimes, ["python3.12", "python3.13"]);
    assert_eq!(v.description, "deps 1.0");
    assert_eq!(v.license_info.as_deref(), Some("MIT"));
    let calls = env.calls_since(0);
    assert!(
        calls
            .iter()
            .all(|r| r.region.as_deref() == Some(REGION) && r.service.as_deref() == Some("lambda"))
    );
    assert_eq!(publishes(&calls), 1);

    // The same image again (another output file, --json): nothing new, the same ARN.
    let seen = env.fake.requests().len();
    let out2 = zip_path(&env, "again.zip");
    let json: Value = serde_json::from_str(&ok(&env.run(&[
        "--json",
        "zip",
        &image,
        "-o",
        &out2,
        "--publish",
        "deps",
        "--compatible-runtime",
        "python3.12",
        "--compatible-runtime",
        "python3.13",
    ])))
    .unwrap();
    assert_eq!(json["layerVersionArn"], format!("{}:1", layer_arn("deps")));
    assert_eq!(json["layerVersion"], 1);
    assert_eq!(json["published"], false);
    assert_eq!(json["zip"], out2);
    assert_eq!(json["codeSha256"], v.code_sha256);
    assert_eq!(json["sha256"], sha256_hex(&std::fs::read(&out2).unwrap()));
    assert_eq!(json["size"], v.zip.len());
    let calls = env.calls_since(seen);
    assert_eq!(
        publishes(&calls),
        0,
        "an identical zip was published again: {calls:?}"
    );
    assert!(
        calls
            .iter()
            .any(|r| r.method == "GET" && r.path.ends_with("/versions/1")),
        "{calls:?}"
    );
    assert_eq!(env.fake.layer_versions(&layer_arn("deps")).len(), 1);

    // Changed content: a new version, on top.
    let changed = env.image("v2", &small_image("2.0"));
    let stdout = ok(&env.run(&[
        "zip",
        &changed,
        "-o",
        &zip_path(&env, "v2.zip"),
        "--publish",
        "deps",
    ]));
    assert_eq!(stdout.trim(), format!("{}:2", layer_arn("deps")));
    // And the old content once more is not "the newest": it is published as version 3.
    let stdout = ok(&env.run(&[
        "zip",
        &image,
        "-o",
        &zip_path(&env, "v1b.zip"),
        "--publish",
        "deps",
    ]));
    assert_eq!(stdout.trim(), format!("{}:3", layer_arn("deps")));
}

#[test]
fn the_architecture_follows_the_chosen_platform_unless_given() {
    let env = Env::new();
    let arm = Img::new(
        "arm64",
        vec![layer_tar(&[dir("opt/"), file("opt/a", "arm")])],
    );
    let image = env.image("arm", &arm);
    ok(&env.run(&[
        "zip",
        &image,
        "-o",
        &zip_path(&env, "a.zip"),
        "--publish",
        "armlayer",
    ]));
    assert_eq!(
        env.fake.layer_versions(&layer_arn("armlayer"))[0].compatible_architectures,
        ["arm64"]
    );
    ok(&env.run(&[
        "zip",
        &image,
        "-o",
        &zip_path(&env, "b.zip"),
        "--publish",
        "both",
        "--compatible-architecture",
        "x86_64",
        "--compatible-architecture",
        "arm64",
    ]));
    assert_eq!(
        env.fake.layer_versions(&layer_arn("both"))[0].compatible_architectures,
        ["x86_64", "arm64"]
    );
    let o = env.run(&[
        "zip",
        &image,
        "-o",
        &zip_path(&env, "c.zip"),
        "--publish",
        "x",
        "--compatible-architecture",
        "mips",
    ]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn a_zip_over_50_mb_goes_through_s3_put_object() {
    let env = Env::new();
    // Incompressible, so the zip itself is over the direct-upload limit.
    let data = noise(52 * 1024 * 1024 + 4321, 11);
    let mut img = Img::new(
        "amd64",
        vec![layer_tar(&[
            dir("opt/"),
            E::File("opt/model.bin", 0o644, data),
        ])],
    );
    img.store = Store::Tar;
    let image = env.image("big", &img);

    let without = zip_path(&env, "nobucket.zip");
    let err = failed(&env.run(&["zip", &image, "-o", &without, "--publish", "big"]));
    assert!(err.contains("50 MB") || err.contains("52428800"), "{err}");
    assert!(err.contains("--s3-bucket"), "{err}");
    assert!(
        Path::new(&without).exists(),
        "the zip itself was fine and stays"
    );
    assert_eq!(publishes(&env.fake.requests()), 0);

    env.fake.add_s3_bucket("layer-uploads");
    let out = zip_path(&env, "big.zip");
    let json: Value = serde_json::from_str(&ok(&env.run(&[
        "--json",
        "zip",
        &image,
        "-o",
        &out,
        "--publish",
        "big",
        "--s3-bucket",
        "layer-uploads",
    ])))
    .unwrap();
    let zip = std::fs::read(&out).unwrap();
    assert!(zip.len() as u64 > 50 * 1024 * 1024, "{}", zip.len());
    let key = format!("layerport/big/{}.zip", sha256_hex(&zip));
    assert_eq!(json["s3Object"], format!("s3://layer-uploads/{key}"));
    assert_eq!(json["published"], true);
    let put: Vec<RecordedRequest> = env
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.service.as_deref() == Some("s3"))
        .collect();
    assert_eq!(put.len(), 1, "{put:?}");
    assert_eq!(
        (put[0].method.as_str(), put[0].path.as_str()),
        ("PUT", format!("/layer-uploads/{key}").as_str())
    );
    assert_eq!(
        put[0].region.as_deref(),
        Some(REGION),
        "the bucket is used in the layer's region"
    );
    assert_eq!(put[0].status, 200);
    assert!(
        env.fake.s3_object("layer-uploads", &key).unwrap() == zip,
        "S3 holds the zip"
    );
    let versions = env.fake.layer_versions(&layer_arn("big"));
    assert_eq!(versions.len(), 1);
    assert!(*versions[0].zip == zip, "Lambda took the S3 object");
}

#[test]
fn errors_name_the_missing_permissions() {
    let env = Env::new();
    let image = env.image("img", &small_image("1"));
    env.fake.inject(Fault::LambdaStatus {
        status: 403,
        error_type: "AccessDeniedException".into(),
        message: "User is not authorized to perform: lambda:ListLayerVersions".into(),
    });
    let err = failed(&env.run(&[
        "zip",
        &image,
        "-o",
        &zip_path(&env, "a.zip"),
        "--publish",
        "deps",
    ]));
    assert!(
        err.contains("lambda:PublishLayerVersion") && err.contains("lambda:ListLayerVersions"),
        "{err}"
    );
    assert!(
        err.contains(&format!("arn:aws:lambda:{REGION}:<account>:layer:deps")),
        "{err}"
    );

    // No credentials anywhere: the usual environment without the key pair (its config and
    // credentials files do not exist, and IMDS is off).
    let o = env
        .cmd(&[
            "zip",
            &image,
            "-o",
            &zip_path(&env, "b.zip"),
            "--publish",
            "deps",
        ])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap();
    let err = failed(&o);
    assert!(
        err.contains("no AWS credentials") && err.contains("AWS_ACCESS_KEY_ID"),
        "{err}"
    );

    let data = noise(51 * 1024 * 1024, 5);
    let mut img = Img::new(
        "amd64",
        vec![layer_tar(&[dir("opt/"), E::File("opt/blob", 0o644, data)])],
    );
    img.store = Store::Tar;
    let big = env.image("big", &img);
    env.fake.add_s3_bucket("uploads");
    env.fake.inject(Fault::S3Status {
        status: 403,
        code: "AccessDenied".into(),
        message: "Access Denied".into(),
    });
    let err = failed(&env.run(&[
        "zip",
        &big,
        "-o",
        &zip_path(&env, "c.zip"),
        "--publish",
        "big",
        "--s3-bucket",
        "uploads",
    ]));
    assert!(
        err.contains("s3://uploads/layerport/big/") && err.contains("s3:PutObject"),
        "{err}"
    );
    let err = failed(&env.run(&[
        "zip",
        &big,
        "-o",
        &zip_path(&env, "d.zip"),
        "--publish",
        "big",
        "--s3-bucket",
        "nobucket",
    ]));
    assert!(
        err.contains("NoSuchBucket") && err.contains(REGION),
        "{err}"
    );
    assert!(env.fake.layer_versions(&layer_arn("big")).is_empty());
}

#[test]
fn no_secret_reaches_stdout_or_stderr_when_publishing_through_s3_at_debug_verbosity() {
    const SESSION_TOKEN: &str = "SESSIONTOKENlayerportPUBLISHTEST";
    let env = Env::new();
    let data = noise(51 * 1024 * 1024, 7);
    let mut img = Img::new(
        "amd64",
        vec![layer_tar(&[dir("opt/"), E::File("opt/blob", 0o644, data)])],
    );
    img.store = Store::Tar;
    let image = env.image("big", &img);
    env.fake.add_s3_bucket("uploads");
    // Temporary credentials, so a session token is on the wire too.
    let publish = |out: &str| {
        env.cmd(&[
            "-vv",
            "zip",
            &image,
            "-o",
            &zip_path(&env, out),
            "--publish",
            "big",
            "--s3-bucket",
            "uploads",
        ])
        .env("AWS_SESSION_TOKEN", SESSION_TOKEN)
        .output()
        .unwrap()
    };
    let version_arn = format!("{}:1", layer_arn("big"));

    // Published through S3 PutObject; the PublishLayerVersion answer holds a presigned URL.
    let first = publish("first.zip");
    assert_eq!(ok(&first).trim(), version_arn);
    let put: Vec<RecordedRequest> = env
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.service.as_deref() == Some("s3"))
        .collect();
    assert_eq!(put.len(), 1, "{put:?}");
    assert_eq!(
        put[0].header("x-amz-security-token"),
        Some(SESSION_TOKEN),
        "the upload was not signed with the session token"
    );

    // The same content again: GetLayerVersion's answer holds a presigned URL too.
    let seen = env.fake.requests().len();
    let second = publish("second.zip");
    assert_eq!(ok(&second).trim(), version_arn);
    let calls = env.calls_since(seen);
    assert_eq!(publishes(&calls), 0, "{calls:?}");
    assert!(
        calls
            .iter()
            .any(|r| r.method == "GET" && r.path.ends_with("/versions/1")),
        "{calls:?}"
    );

    let mut secrets = env.fake.secret_strings();
    secrets.extend([SECRET_KEY.to_string(), SESSION_TOKEN.to_string()]);
    let signature = env
        .fake
        .presign_signature(&version_arn)
        .expect("the published version has a presigned URL");
    secrets.push(signature);
    // What each run must have logged: where the S3 object and the layer version are, so the log
    // lines that could carry a URL or a token are really there.
    let logged = [
        ("first", &first, "s3://uploads/layerport/big/"),
        ("second", &second, "already holds"),
    ];
    for (run, o, line) in logged {
        let stdout = String::from_utf8_lossy(&o.stdout);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            stderr.contains(line) && stderr.contains(&version_arn),
            "the {run} run did not log {line:?} and {version_arn}: {stderr}"
        );
        assert_no_secrets(&secrets, &[&stdout, &stderr]);
        for part in [
            "X-Amz-Signature",
            "X-Amz-Credential",
            "X-Amz-Security-Token",
        ] {
            assert!(
                !stdout.contains(part) && !stderr.contains(part),
                "a presigned URL's query ({part}) reached the output\nstdout: {stdout}\nstderr: {stderr}"
            );
        }
    }
}
