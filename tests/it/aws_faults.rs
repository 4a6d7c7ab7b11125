//! AWS failures and logs against the fake endpoint: no log level (trace included) prints a
//! credential, token, presigned URL or function environment value; missing credentials, bodies
//! that are not AWS errors, unknown hosts and an unused --s3-bucket each get a message that says
//! what happened and what to do.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::fake_aws::{FakeAws, Fault, FunctionSpec};
use crate::support::io_refusals::Scratch;
use crate::support::tools::assert_no_secrets;

const ARN: &str = "arn:aws:lambda:us-west-2:210987654321:layer:deps:4";
const ACCESS_KEY_ID: &str = "AKIDFAULTSACCESSKEY01";
const SECRET_KEY: &str = "SECRETKEYfaultsTEST0123456789abcdef";
const SESSION_TOKEN: &str = "SESSIONTOKENfaultsTEST0123456789";

fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(rel)
}

/// The binary in a scratch area, reaching only `endpoint`, with fake credentials in the environment.
fn aws_cmd(s: &Scratch, endpoint: &str, args: &[&str]) -> Command {
    let mut c = s.cmd(args);
    c.env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_SESSION_TOKEN", SESSION_TOKEN)
        .env("AWS_CONFIG_FILE", s.dir.path().join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            s.dir.path().join("no-aws-credentials"),
        );
    c
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn trace_logs_carry_no_secret() {
    let fake = FakeAws::start();
    fake.add_layer(
        ARN,
        std::fs::read(testdata("good/sample/deps.zip")).unwrap(),
        &["arm64"],
    );
    let s = Scratch::new();
    let out = aws_cmd(&s, &fake.endpoint(), &["fetch", ARN, "--dest", "out"])
        .env("LAYERPORT_LOG", "trace")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    // The SDK's own trace events are there (so this test looks at what it must).
    assert!(
        stderr.contains("GetLayerVersionByArn") || stderr.contains("get_layer_version_by_arn"),
        "expected SDK trace lines:\n{}",
        &stderr[..stderr.len().min(3000)]
    );
    let sig = fake.presign_signature(ARN).unwrap();
    let mut secrets = fake.secret_strings();
    secrets.extend([
        ACCESS_KEY_ID.to_string(),
        SECRET_KEY.to_string(),
        SESSION_TOKEN.to_string(),
        sig,
    ]);
    assert_no_secrets(&secrets, &[&stdout, &stderr]);
    assert!(
        !stderr.contains("X-Amz-Signature="),
        "a presigned query leaked"
    );
    assert!(
        !stderr.contains("X-Amz-Credential="),
        "a presigned query leaked"
    );
}

#[test]
fn trace_logs_of_a_function_read_carry_no_environment_value() {
    const ENV_VALUE: &str = "postgres://admin:EnvSecretValue77@db";
    let fake = FakeAws::start();
    let code = std::fs::read(testdata("good/sample/deps.zip")).unwrap();
    let arn = fake.add_function(FunctionSpec {
        environment: [("DATABASE_URL".to_string(), ENV_VALUE.to_string())].into(),
        ..FunctionSpec::zip("orders", "python3.12", "app.handler", code)
    });
    let s = Scratch::new();
    // GetFunction and the code download happen before the (missing) base is opened.
    let out = aws_cmd(
        &s,
        &fake.endpoint(),
        &[
            "migrate",
            &arn,
            "--push",
            "127.0.0.1:9/x:y",
            "--base",
            "oci:missing",
            "--dry-run",
        ],
    )
    .env("LAYERPORT_LOG", "trace")
    .output()
    .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(
        stderr.contains("GetFunction"),
        "expected the GetFunction trace:\n{}",
        &stderr[..stderr.len().min(3000)]
    );
    let mut secrets = fake.secret_strings();
    secrets.extend([
        ENV_VALUE.to_string(),
        "EnvSecretValue77".to_string(),
        ACCESS_KEY_ID.to_string(),
        SECRET_KEY.to_string(),
        SESSION_TOKEN.to_string(),
    ]);
    assert_no_secrets(&secrets, &[&stdout, &stderr]);
}

/// A stand-in for the instance-metadata endpoint of a container or CI runner: every request is
/// answered 403. Serves until the test process ends.
fn forbidding_metadata_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    format!("http://{addr}")
}

#[test]
fn no_credentials_behind_a_forbidding_metadata_endpoint_says_how_to_configure_them() {
    let fake = FakeAws::start();
    fake.add_layer(
        ARN,
        std::fs::read(testdata("good/sample/deps.zip")).unwrap(),
        &[],
    );
    let s = Scratch::new();
    let mut cmd = s.cmd(&["fetch", ARN, "--dest", "out"]);
    cmd.env_remove("AWS_EC2_METADATA_DISABLED")
        .env(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            forbidding_metadata_endpoint(),
        )
        .env("AWS_ENDPOINT_URL", fake.endpoint())
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_CONFIG_FILE", s.dir.path().join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            s.dir.path().join("no-aws-credentials"),
        );
    let (_, stderr) = s.assert_refused(&mut cmd, &[ARN, "credentials"], &[]);
    assert!(
        stderr.contains("AWS_PROFILE") && stderr.contains("aws configure"),
        "the hint must say how to configure credentials:\n{stderr}"
    );
    assert!(
        !stderr.contains("check the network"),
        "not a network problem:\n{stderr}"
    );
    assert!(
        stderr.lines().count() <= 6,
        "a raw SDK dump instead of a message:\n{stderr}"
    );
    assert!(
        fake.requests().is_empty(),
        "nothing may be sent to Lambda unsigned"
    );
}

/// Runs `fetch ARN` against `endpoint`: (exit code, stderr, seconds taken), checking that it
/// left nothing behind.
fn fetch_arn(endpoint: &str) -> (i32, String, f64) {
    let s = Scratch::new();
    let started = std::time::Instant::now();
    let out = aws_cmd(&s, endpoint, &["fetch", ARN, "--dest", "out"])
        .output()
        .unwrap();
    let took = started.elapsed().as_secs_f64();
    let (_, stderr) = text(&out);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        !s.work().join("out").exists(),
        "a failed fetch left its destination"
    );
    assert!(
        Scratch::listing(&s.tmp()).is_empty(),
        "scratch left in TMPDIR"
    );
    (out.status.code().unwrap_or(-1), stderr, took)
}

const UNKNOWN_HOST: &str = "http://layerport-no-such-host.invalid:9";

#[test]
fn an_unknown_lambda_endpoint_is_not_retried() {
    let (code, stderr, took) = fetch_arn(UNKNOWN_HOST);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("does not resolve") && stderr.contains("GetLayerVersionByArn"),
        "{stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");
    assert!(
        !stderr.contains("DispatchFailure("),
        "a debug dump instead of a message:\n{stderr}"
    );
    // Five attempts with the SDK's backoff took about ten seconds.
    assert!(took < 5.0, "retried for {took:.1}s:\n{stderr}");
}

#[test]
fn an_unknown_download_host_is_not_retried() {
    let fake = FakeAws::start();
    fake.add_layer(
        ARN,
        std::fs::read(testdata("good/sample/deps.zip")).unwrap(),
        &[],
    );
    fake.inject(Fault::LocationBase {
        base: UNKNOWN_HOST.into(),
    });
    let (code, stderr, _) = fetch_arn(&fake.endpoint());
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("does not resolve"), "{stderr}");
    assert!(!stderr.contains("retrying"), "retried:\n{stderr}");
    assert!(!stderr.contains("attempts"), "{stderr}");
}

#[test]
fn a_refused_download_does_not_say_after_1_attempts() {
    let fake = FakeAws::start();
    fake.add_layer(
        ARN,
        std::fs::read(testdata("good/sample/deps.zip")).unwrap(),
        &[],
    );
    fake.inject(Fault::DownloadStatus {
        status: 404,
        body: "<Error><Code>NoSuchKey</Code></Error>".into(),
    });
    let (code, stderr, _) = fetch_arn(&fake.endpoint());
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("HTTP 404") && stderr.contains("hint:"),
        "{stderr}"
    );
    assert!(!stderr.contains("after 1 attempts"), "{stderr}");
}

#[test]
fn a_5xx_that_is_not_an_aws_error_says_the_status_and_operation() {
    let fake = FakeAws::start();
    fake.add_layer(
        ARN,
        std::fs::read(testdata("good/sample/deps.zip")).unwrap(),
        &[],
    );
    // 501 is not retried by the SDK (500/502/503/504 are), so one fault is enough.
    fake.inject(Fault::LambdaRaw {
        status: 501,
        body: "<html><body>Not Implemented</body></html>".into(),
    });
    let (code, stderr, _) = fetch_arn(&fake.endpoint());
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("HTTP 501") && stderr.contains("GetLayerVersionByArn"),
        "{stderr}"
    );
    assert!(!stderr.contains("no message"), "{stderr}");
}

#[test]
fn an_unused_s3_bucket_is_mentioned() {
    let fake = FakeAws::start();
    fake.add_s3_bucket("uploads");
    let s = Scratch::new();
    let zip = testdata("good/sample/deps.zip");
    let layout = aws_cmd(
        &s,
        &fake.endpoint(),
        &["image", zip.to_str().unwrap(), "--oci-layout", "layout:v1"],
    )
    .output()
    .unwrap();
    assert!(layout.status.success(), "{}", text(&layout).1);
    let out = aws_cmd(
        &s,
        &fake.endpoint(),
        &[
            "zip",
            "oci:layout:v1",
            "-o",
            "layer.zip",
            "--publish",
            "deps",
            "--s3-bucket",
            "uploads",
        ],
    )
    .output()
    .unwrap();
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("not through s3://uploads"),
        "--s3-bucket was silently unused:\n{stderr}"
    );
    assert!(
        !fake
            .requests()
            .iter()
            .any(|r| r.service.as_deref() == Some("s3")),
        "a small zip must not go through S3"
    );
}
