//! Proves the fake AWS endpoint's Lambda *function* APIs (what `layerport migrate` calls) speak the
//! wire protocol the real `aws-sdk-lambda` client expects: every field parses, names and ARNs
//! resolve like Lambda's, states move Pending → Active and InProgress → Successful/Failed, errors
//! carry Lambda's codes and messages, and the code zip downloads like a layer's.

use crate::support::fake_aws::{FakeAws, Fault, FunctionSpec, Gate};
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_lambda::error::ProvideErrorMetadata;
use aws_sdk_lambda::types::{
    Architecture, LastUpdateStatus, LogFormat, PackageType, Runtime, State, TracingMode,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod report;
mod writes;

const REGION: &str = "eu-west-1";
const LAYER_A: &str = "arn:aws:lambda:eu-west-1:111122223333:layer:deps:3";
const LAYER_B: &str = "arn:aws:lambda:eu-west-1:123456789012:layer:tools:1";
const DIGEST: &str = "a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4";

fn code_zip(seed: u32) -> Vec<u8> {
    let mut z = b"PK\x03\x04".to_vec();
    z.extend(
        (0..150_000u32).map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 24) as u8),
    );
    z
}

fn b64_sha(bytes: &[u8]) -> String {
    B64.encode(Sha256::digest(bytes))
}

async fn client_with(fake: &FakeAws, retry: RetryConfig) -> aws_sdk_lambda::Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(REGION)
        .endpoint_url(fake.endpoint())
        .credentials_provider(aws_sdk_lambda::config::Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        ))
        .retry_config(retry)
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(30))
                .build(),
        )
        .load()
        .await;
    aws_sdk_lambda::Client::new(&config)
}

async fn lambda(fake: &FakeAws) -> aws_sdk_lambda::Client {
    client_with(
        fake,
        RetryConfig::standard().with_max_backoff(Duration::from_millis(50)),
    )
    .await
}

async fn download(url: &str) -> reqwest::Result<bytes::Bytes> {
    layerport::net::http_client(Duration::from_secs(30))
        .unwrap()
        .get(url)
        .timeout(Duration::from_secs(30))
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await
}

/// A zip function with every setting `migrate` must carry over.
fn full_spec(fake: &FakeAws, zip: Vec<u8>) -> FunctionSpec {
    fake.add_layer(LAYER_A, vec![7; 1000], &["arm64"]);
    fake.add_layer(LAYER_B, vec![8; 2000], &["arm64"]);
    FunctionSpec {
        layers: vec![LAYER_A.into(), LAYER_B.into()],
        architectures: vec!["arm64".into()],
        description: "orders API".into(),
        memory_size: 512,
        timeout: 30,
        ephemeral_storage: 1024,
        environment: [("DB_PASSWORD".to_string(), "hunter2".to_string())].into(),
        vpc_config: Some(json!({"SubnetIds": ["subnet-1"], "SecurityGroupIds": ["sg-1"]})),
        tracing_mode: "Active".into(),
        dead_letter_target: Some("arn:aws:sqs:eu-west-1:123456789012:dlq".into()),
        kms_key_arn: Some("arn:aws:kms:eu-west-1:123456789012:key/k1".into()),
        file_system_configs: vec![json!({
            "Arn": "arn:aws:elasticfilesystem:eu-west-1:123456789012:access-point/fsap-1",
            "LocalMountPath": "/mnt/efs"
        })],
        logging_config: Some(json!({"LogFormat": "JSON", "LogGroup": "/custom/orders"})),
        tags: [("team".to_string(), "payments".to_string())].into(),
        reserved_concurrency: Some(5),
        ..FunctionSpec::zip("orders", "python3.12", "app.handler", zip)
    }
}

#[tokio::test]
async fn get_function_reports_every_field_and_serves_the_code() {
    let fake = FakeAws::start();
    let zip = code_zip(1);
    let arn = fake.add_function(full_spec(&fake, zip.clone()));
    assert_eq!(arn, "arn:aws:lambda:eu-west-1:123456789012:function:orders");
    let client = lambda(&fake).await;

    let out = client
        .get_function()
        .function_name("orders")
        .send()
        .await
        .unwrap();
    let c = out.configuration().unwrap();
    assert_eq!(c.function_name(), Some("orders"));
    assert_eq!(c.function_arn(), Some(arn.as_str()));
    assert_eq!(c.runtime(), Some(&Runtime::Python312));
    assert_eq!(c.handler(), Some("app.handler"));
    assert_eq!(
        c.role(),
        Some("arn:aws:iam::123456789012:role/service-role/orders-role")
    );
    assert_eq!(
        (c.code_size(), c.code_sha256()),
        (zip.len() as i64, Some(b64_sha(&zip).as_str()))
    );
    assert_eq!(
        (c.description(), c.timeout(), c.memory_size()),
        (Some("orders API"), Some(30), Some(512))
    );
    assert_eq!(c.version(), Some("$LATEST"));
    let vpc = c.vpc_config().unwrap();
    assert_eq!(
        (vpc.subnet_ids(), vpc.security_group_ids()),
        (&["subnet-1".to_string()][..], &["sg-1".to_string()][..])
    );
    assert!(vpc.vpc_id().unwrap().starts_with("vpc-"));
    assert_eq!(
        c.environment().unwrap().variables().unwrap()["DB_PASSWORD"],
        "hunter2"
    );
    assert_eq!(
        c.dead_letter_config().unwrap().target_arn(),
        Some("arn:aws:sqs:eu-west-1:123456789012:dlq")
    );
    assert_eq!(
        c.kms_key_arn(),
        Some("arn:aws:kms:eu-west-1:123456789012:key/k1")
    );
    assert_eq!(
        c.tracing_config().unwrap().mode(),
        Some(&TracingMode::Active)
    );
    let layers: Vec<(Option<&str>, i64)> = c
        .layers()
        .iter()
        .map(|l| (l.arn(), l.code_size()))
        .collect();
    assert_eq!(layers, [(Some(LAYER_A), 1000), (Some(LAYER_B), 2000)]);
    assert_eq!(c.state(), Some(&State::Active));
    assert_eq!(c.last_update_status(), Some(&LastUpdateStatus::Successful));
    assert_eq!(c.package_type(), Some(&PackageType::Zip));
    assert_eq!(c.architectures(), [Architecture::Arm64]);
    assert_eq!(c.ephemeral_storage().unwrap().size(), 1024);
    assert_eq!(c.file_system_configs()[0].local_mount_path(), "/mnt/efs");
    let logging = c.logging_config().unwrap();
    assert_eq!(
        (logging.log_format(), logging.log_group()),
        (Some(&LogFormat::Json), Some("/custom/orders"))
    );
    assert_eq!(c.snap_start().unwrap().apply_on().unwrap().as_str(), "None");
    assert!(
        c.runtime_version_config()
            .unwrap()
            .runtime_version_arn()
            .is_some()
    );
    assert!(c.last_modified().unwrap().ends_with("+0000") && c.revision_id().is_some());
    assert_eq!(out.tags().unwrap()["team"], "payments");
    assert_eq!(
        out.concurrency().unwrap().reserved_concurrent_executions(),
        Some(5)
    );

    let code = out.code().unwrap();
    assert_eq!(code.repository_type(), Some("S3"));
    let location = code.location().unwrap();
    assert!(location.contains(fake.presign_token()));
    assert!(location.contains(&fake.function_presign_signature("orders")));
    let secrets = fake.secret_strings();
    assert!(secrets.contains(&fake.function_presign_signature("orders")));
    assert!(
        secrets.contains(&"hunter2".to_string()),
        "environment values are secrets"
    );
    let body = download(location).await.unwrap();
    assert_eq!(
        b64_sha(&body),
        c.code_sha256().unwrap(),
        "CodeSha256 is base64 of the zip's raw sha256"
    );
    assert_eq!(fake.code_download_count("orders"), 1);

    let api = &fake.requests()[0];
    assert_eq!(api.operation, Some("GetFunction"));
    assert_eq!(
        fake.requests()[1].operation,
        None,
        "a download is no Lambda operation"
    );
    assert_eq!(
        (api.method.as_str(), api.path.as_str(), api.status),
        ("GET", "/2015-03-31/functions/orders", 200)
    );
    assert_eq!(
        (api.region.as_deref(), api.service.as_deref()),
        (Some(REGION), Some("lambda"))
    );

    // The same function by full ARN and by partial ARN.
    for name in [arn.clone(), "123456789012:function:orders".to_string()] {
        let out = client
            .get_function()
            .function_name(&name)
            .send()
            .await
            .unwrap();
        assert_eq!(
            out.configuration().unwrap().function_arn(),
            Some(arn.as_str()),
            "{name}"
        );
    }
}

#[tokio::test]
async fn qualifiers_resolve_versions_and_aliases() {
    let fake = FakeAws::start();
    let (v1, v2) = (code_zip(1), code_zip(2));
    let arn = fake.add_function(FunctionSpec::zip(
        "f",
        "nodejs20.x",
        "index.handler",
        v1.clone(),
    ));
    assert_eq!(fake.publish_version("f"), 1);
    fake.add_alias("f", "live", "1");
    fake.set_pending_reads(0);
    let client = lambda(&fake).await;
    client
        .update_function_code()
        .function_name("f")
        .zip_file(v2.clone().into())
        .send()
        .await
        .unwrap();

    for (name, qualifier) in [
        (format!("{arn}:live"), None),
        ("f".to_string(), Some("1")),
        ("f:1".into(), None),
    ] {
        let out = client
            .get_function()
            .function_name(&name)
            .set_qualifier(qualifier.map(String::from))
            .send()
            .await
            .unwrap();
        let c = out.configuration().unwrap();
        assert_eq!(c.version(), Some("1"), "{name}");
        assert_eq!(c.code_sha256(), Some(b64_sha(&v1).as_str()), "{name}");
        let body = download(out.code().unwrap().location().unwrap())
            .await
            .unwrap();
        assert_eq!(&body[..], &v1[..]);
    }
    let live = client
        .get_function()
        .function_name(format!("{arn}:live"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        live.configuration().unwrap().function_arn(),
        Some(format!("{arn}:live").as_str())
    );
    let latest = client
        .get_function()
        .function_name(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        latest.configuration().unwrap().code_sha256(),
        Some(b64_sha(&v2).as_str())
    );
    assert_eq!(
        (
            fake.code_download_count(&format!("{arn}:1")),
            fake.code_download_count("f")
        ),
        (3, 0)
    );

    let err = client
        .get_function()
        .function_name("f:live")
        .qualifier("2")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_parameter_value_exception(), "{err:?}");
    assert_eq!(
        err.message(),
        Some(
            "The derived qualifier from the function name does not match the specified qualifier."
        )
    );
    let err = client
        .get_function()
        .function_name("f")
        .qualifier("nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");
    assert_eq!(
        err.message(),
        Some(format!("Function not found: {arn}:nope").as_str())
    );
}

#[tokio::test]
async fn errors_carry_lambdas_codes_and_messages() {
    let fake = FakeAws::start();
    let arn = fake.add_function(FunctionSpec::zip(
        "f",
        "python3.13",
        "app.handler",
        code_zip(1),
    ));
    let client = lambda(&fake).await;

    let err = client
        .get_function()
        .function_name("ghost")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");
    assert_eq!(
        err.message(),
        Some("Function not found: arn:aws:lambda:eu-west-1:123456789012:function:ghost")
    );
    let err = client
        .get_function()
        .function_name("arn:aws:lambda:us-east-1:123456789012:function:f")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(
        err.message(),
        Some("Functions from 'us-east-1' are not reachable in this region ('eu-west-1')")
    );
    let err = client
        .get_function()
        .function_name("bad name!")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("ValidationException"));
    assert!(
        err.message()
            .unwrap()
            .contains("at 'functionName' failed to satisfy constraint")
    );

    fake.deny_action("GetFunction");
    let err = client
        .get_function()
        .function_name("f")
        .qualifier("$LATEST")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("AccessDeniedException"));
    assert_eq!(
        err.message(),
        Some(format!(
            "User: arn:aws:sts::123456789012:assumed-role/fake/session is not authorized to perform: lambda:GetFunction \
             on resource: {arn}:$LATEST because no identity-based policy allows the lambda:GetFunction action"
        ).as_str())
    );
    fake.allow_action("GetFunction");
    let before = fake.requests().len();

    // A one-shot fault hits only its operation; 429 and 500 are retried by the SDK.
    fake.inject(Fault::function_access_denied(
        "GetFunctionConfiguration",
        &arn,
    ));
    fake.inject(Fault::lambda_throttled("GetFunction"));
    fake.inject(Fault::lambda_service_error("GetFunction"));
    client
        .get_function()
        .function_name("f")
        .send()
        .await
        .unwrap();
    let statuses: Vec<u16> = fake.requests()[before..].iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 500, 200]);
    let err = client
        .get_function_configuration()
        .function_name("f")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("AccessDeniedException"));
    assert!(
        err.message()
            .unwrap()
            .contains("lambda:GetFunctionConfiguration on resource: ")
    );
    assert_eq!(fake.pending_faults(), 0);

    // Without retries, the throttle's modeled shape parses (message and Reason).
    let no_retry = client_with(&fake, RetryConfig::disabled()).await;
    fake.inject(Fault::lambda_throttled("GetFunction"));
    let err = no_retry
        .get_function()
        .function_name("f")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    let aws_sdk_lambda::operation::get_function::GetFunctionError::TooManyRequestsException(t) =
        err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        (t.message(), t.reason().map(|r| r.as_str())),
        (Some("Rate exceeded"), Some("CallerRateLimitExceeded"))
    );
}

#[tokio::test]
async fn image_function_reports_ecr_code() {
    let fake = FakeAws::start();
    let repo = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/img";
    fake.add_function(FunctionSpec {
        architectures: vec!["arm64".into()],
        image_config: Some(json!({"Command": ["app.handler"], "WorkingDirectory": "/var/task"})),
        ..FunctionSpec::image(
            "img",
            &format!("{repo}:v1"),
            &format!("{repo}@sha256:{DIGEST}"),
        )
    });
    let client = lambda(&fake).await;
    let out = client
        .get_function()
        .function_name("img")
        .send()
        .await
        .unwrap();
    let c = out.configuration().unwrap();
    assert_eq!(c.package_type(), Some(&PackageType::Image));
    assert_eq!(
        (c.runtime(), c.handler(), c.layers().len()),
        (None, None, 0)
    );
    assert_eq!((c.code_size(), c.code_sha256()), (0, Some(DIGEST)));
    let ic = c.image_config_response().unwrap().image_config().unwrap();
    assert_eq!(
        (ic.command(), ic.working_directory()),
        (&["app.handler".to_string()][..], Some("/var/task"))
    );
    let code = out.code().unwrap();
    assert_eq!(code.repository_type(), Some("ECR"));
    assert_eq!(code.image_uri(), Some(format!("{repo}:v1").as_str()));
    assert_eq!(
        code.resolved_image_uri(),
        Some(format!("{repo}@sha256:{DIGEST}").as_str())
    );
    assert!(code.location().is_none());
}

#[tokio::test]
async fn code_downloads_take_the_download_faults_holds_and_observer() {
    let fake = FakeAws::start();
    let zip = code_zip(9);
    let arn = fake.add_function(FunctionSpec::zip(
        "f",
        "provided.al2023",
        "bootstrap",
        zip.clone(),
    ));
    fake.add_layer(LAYER_A, vec![1; 10], &["x86_64"]);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    fake.on_download(move |arn, status| sink.lock().unwrap().push((arn.to_string(), status)));
    let client = lambda(&fake).await;

    // Wrong checksums apply to GetFunction only, once, and do not touch layer calls.
    fake.inject(Fault::WrongFunctionCodeSha256);
    fake.inject(Fault::WrongFunctionCodeSize);
    let layer = client
        .get_layer_version_by_arn()
        .arn(LAYER_A)
        .send()
        .await
        .unwrap();
    assert_eq!(
        layer.content().unwrap().code_sha256(),
        Some(b64_sha(&[1; 10]).as_str())
    );
    let first = client
        .get_function()
        .function_name("f")
        .send()
        .await
        .unwrap();
    assert_ne!(
        first.configuration().unwrap().code_sha256(),
        Some(b64_sha(&zip).as_str())
    );
    let second = client
        .get_function()
        .function_name("f")
        .send()
        .await
        .unwrap();
    assert_eq!(
        second.configuration().unwrap().code_size(),
        zip.len() as i64 + 1
    );
    let url = second.code().unwrap().location().unwrap().to_string();

    fake.inject(Fault::DownloadReset { after_bytes: 1000 });
    assert!(
        download(&url).await.is_err(),
        "a truncated body is an error"
    );
    fake.inject(Fault::expired_download());
    let resp = reqwest::get(&url).await.unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.unwrap().contains("Request has expired"));

    let gate = Gate::new();
    fake.hold_download(&arn, gate.clone(), Duration::from_secs(20));
    let pending = tokio::spawn({
        let url = url.clone();
        async move { download(&url).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !pending.is_finished(),
        "the held download waits for its gate"
    );
    gate.open();
    assert_eq!(&pending.await.unwrap().unwrap()[..], &zip[..]);
    assert_eq!(fake.code_download_count("f"), 3);
    assert_eq!(
        *seen.lock().unwrap(),
        [(arn.clone(), 200), (arn.clone(), 403), (arn.clone(), 200)]
    );
}
