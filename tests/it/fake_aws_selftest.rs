//! Proves the fake AWS endpoint in `crate::support::fake_aws` speaks the wire protocols the real
//! `aws-sdk-lambda` and `aws-sdk-ecr` clients expect (and that its faults surface the way real AWS
//! failures do), so the CLI's integration tests can trust it.

use crate::support::fake_aws::{FakeAws, Fault};
use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_lambda::error::ProvideErrorMetadata;
use aws_sdk_lambda::operation::get_layer_version_by_arn::GetLayerVersionByArnError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::time::Duration;

const ARN: &str = "arn:aws:lambda:eu-west-1:111122223333:layer:my-layer:7";

fn zip_bytes() -> Vec<u8> {
    // Content only matters for the checksum, but make it zip-looking and more than one TCP segment.
    let mut z = b"PK\x03\x04".to_vec();
    z.extend((0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    z
}

async fn sdk_config(fake: &FakeAws) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region("eu-west-1")
        .endpoint_url(fake.endpoint())
        .credentials_provider(aws_sdk_lambda::config::Credentials::new(
            "AKIDTEST",
            "secret",
            Some("SESSIONTOKEN".into()),
            None,
            "test",
        ))
        // Bound every call: a protocol mismatch must fail the test, not hang it.
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(30))
                .build(),
        )
        .load()
        .await
}

async fn lambda(fake: &FakeAws) -> aws_sdk_lambda::Client {
    aws_sdk_lambda::Client::new(&sdk_config(fake).await)
}

fn http() -> reqwest::Client {
    layerport::net::http_client(Duration::from_secs(30)).unwrap()
}

#[tokio::test]
async fn get_layer_version_by_arn_serves_registered_content() {
    let fake = FakeAws::start();
    let zip = zip_bytes();
    fake.add_layer(ARN, zip.clone(), &["arm64"]);

    let out = lambda(&fake)
        .await
        .get_layer_version_by_arn()
        .arn(ARN)
        .send()
        .await
        .unwrap();
    let content = out.content().unwrap();
    assert_eq!(out.layer_version_arn(), Some(ARN));
    assert_eq!(
        out.layer_arn(),
        Some("arn:aws:lambda:eu-west-1:111122223333:layer:my-layer")
    );
    assert_eq!(out.version(), 7);
    assert_eq!(out.compatible_architectures()[0].as_str(), "arm64");
    assert_eq!(content.code_size(), zip.len() as i64);
    assert_eq!(
        content.code_sha256(),
        Some(B64.encode(Sha256::digest(&zip)).as_str())
    );

    let location = content.location().unwrap();
    assert!(location.contains(fake.presign_token()));
    assert!(location.contains(&fake.presign_signature(ARN).unwrap()));
    let body = http()
        .get(location)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(Sha256::digest(&body), Sha256::digest(&zip));
    assert_eq!(fake.download_count(), 1);

    let reqs = fake.requests();
    let api = &reqs[0];
    assert_eq!(
        (api.method.as_str(), api.path.as_str()),
        ("GET", "/2018-10-31/layers")
    );
    assert_eq!(api.query_param("find").as_deref(), Some("LayerVersion"));
    assert_eq!(api.query_param("Arn").as_deref(), Some(ARN));
    assert_eq!(api.region.as_deref(), Some("eu-west-1"));
    assert_eq!(api.service.as_deref(), Some("lambda"));
    assert_eq!(api.status, 200);
    assert!(
        reqs[1].is_download() && reqs[1].region.is_none(),
        "download is presigned, not header-signed"
    );

    let secrets = fake.secret_strings();
    for s in [
        fake.presign_token().to_string(),
        fake.presign_signature(ARN).unwrap(),
        "SESSIONTOKEN".into(),
    ] {
        assert!(secrets.contains(&s), "{s} missing from secret_strings");
    }
}

#[tokio::test]
async fn unknown_arn_is_resource_not_found() {
    let fake = FakeAws::start();
    let err = lambda(&fake)
        .await
        .get_layer_version_by_arn()
        .arn(ARN)
        .send()
        .await
        .unwrap_err();
    let err = err.into_service_error();
    assert!(
        matches!(err, GetLayerVersionByArnError::ResourceNotFoundException(_)),
        "{err:?}"
    );
    assert_eq!(fake.requests()[0].status, 404);
}

#[tokio::test]
async fn malformed_arn_is_a_validation_error() {
    let fake = FakeAws::start();
    let err = lambda(&fake)
        .await
        .get_layer_version_by_arn()
        .arn("arn:aws:lambda:eu-west-1:1:layer:x:1")
        .send()
        .await;
    assert_eq!(
        err.unwrap_err().into_service_error().code(),
        Some("ValidationException")
    );
}

#[tokio::test]
async fn injected_500_is_retried_by_the_sdk() {
    let fake = FakeAws::start();
    fake.add_layer(ARN, zip_bytes(), &["x86_64"]);
    fake.inject(Fault::LambdaStatus {
        status: 500,
        error_type: "ServiceException".into(),
        message: "boom".into(),
    });

    let out = lambda(&fake)
        .await
        .get_layer_version_by_arn()
        .arn(ARN)
        .send()
        .await
        .unwrap();
    assert_eq!(out.version(), 7);
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 200]);
    assert_eq!(fake.pending_faults(), 0);
}

#[tokio::test]
async fn access_denied_has_its_error_code() {
    let fake = FakeAws::start();
    fake.add_layer(ARN, zip_bytes(), &["x86_64"]);
    fake.inject(Fault::lambda_access_denied(ARN));
    let err = lambda(&fake)
        .await
        .get_layer_version_by_arn()
        .arn(ARN)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    // GetLayerVersionByArn's model has no AccessDenied shape: it arrives as an unmodeled error
    // carrying this code.
    assert_eq!(err.code(), Some("AccessDeniedException"));
    assert!(err.message().unwrap().contains("lambda:GetLayerVersion"));
    assert_eq!(fake.requests().len(), 1, "a 403 is not retried");
}

#[tokio::test]
async fn layer_in_another_region_is_denied_like_real_lambda() {
    let fake = FakeAws::start();
    let other = "arn:aws:lambda:us-east-1:111122223333:layer:my-layer:7";
    fake.add_layer(other, zip_bytes(), &["x86_64"]);
    let err = lambda(&fake)
        .await
        .get_layer_version_by_arn()
        .arn(other)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("AccessDeniedException"));
}

#[tokio::test]
async fn wrong_checksum_faults_apply_once_in_order() {
    let fake = FakeAws::start();
    let zip = zip_bytes();
    fake.add_layer(ARN, zip.clone(), &["x86_64"]);
    fake.inject(Fault::WrongCodeSha256);
    fake.inject(Fault::WrongCodeSize);
    let client = lambda(&fake).await;
    let good = B64.encode(Sha256::digest(&zip));

    let first = client
        .get_layer_version_by_arn()
        .arn(ARN)
        .send()
        .await
        .unwrap();
    assert_ne!(first.content().unwrap().code_sha256(), Some(good.as_str()));
    assert_eq!(first.content().unwrap().code_size(), zip.len() as i64);
    let second = client
        .get_layer_version_by_arn()
        .arn(ARN)
        .send()
        .await
        .unwrap();
    assert_eq!(second.content().unwrap().code_sha256(), Some(good.as_str()));
    assert_eq!(second.content().unwrap().code_size(), zip.len() as i64 + 1);
    let third = client
        .get_layer_version_by_arn()
        .arn(ARN)
        .send()
        .await
        .unwrap();
    assert_eq!(third.content().unwrap().code_size(), zip.len() as i64);
}

#[tokio::test]
async fn download_faults() {
    let fake = FakeAws::start();
    let zip = zip_bytes();
    fake.add_layer(ARN, zip.clone(), &["x86_64"]);
    let out = lambda(&fake)
        .await
        .get_layer_version_by_arn()
        .arn(ARN)
        .send()
        .await
        .unwrap();
    let url = out.content().unwrap().location().unwrap().to_string();
    let http = http();

    fake.inject(Fault::DownloadReset { after_bytes: 1000 });
    let resp = http.get(&url).send().await.unwrap();
    assert_eq!(
        resp.content_length(),
        Some(zip.len() as u64),
        "headers promise the full length"
    );
    assert!(
        resp.bytes().await.is_err(),
        "a truncated body must be an error"
    );

    fake.inject(Fault::expired_download());
    let resp = http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("<Message>Request has expired</Message>")
    );

    fake.inject(Fault::DownloadStatus {
        status: 500,
        body: "<Error><Code>InternalError</Code></Error>".into(),
    });
    assert_eq!(http.get(&url).send().await.unwrap().status(), 500);

    // Faults consumed: the same URL works again; a Range request resumes.
    let body = http
        .get(&url)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&body[..], &zip[..]);
    let tail = http
        .get(&url)
        .header("Range", "bytes=1000-")
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), 206);
    assert_eq!(&tail.bytes().await.unwrap()[..], &zip[1000..]);

    // Stripping the presign parameters fails like S3 does.
    let bare = url.split('?').next().unwrap();
    assert_eq!(http.get(bare).send().await.unwrap().status(), 403);
    assert_eq!(fake.download_count(), 6);
}

#[tokio::test]
async fn publish_then_list_round_trips() {
    let fake = FakeAws::start();
    let client = lambda(&fake).await;
    let zip = zip_bytes();
    let mut published = Vec::new();
    for desc in ["first", "second"] {
        let out = client
            .publish_layer_version()
            .layer_name("pub-layer")
            .description(desc)
            .compatible_architectures(aws_sdk_lambda::types::Architecture::Arm64)
            .content(
                aws_sdk_lambda::types::LayerVersionContentInput::builder()
                    .zip_file(zip.clone().into())
                    .build(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(
            out.content().unwrap().code_sha256(),
            Some(B64.encode(Sha256::digest(&zip)).as_str())
        );
        published.push(out.layer_version_arn().unwrap().to_string());
    }
    assert_eq!(
        published,
        [
            "arn:aws:lambda:eu-west-1:123456789012:layer:pub-layer:1",
            "arn:aws:lambda:eu-west-1:123456789012:layer:pub-layer:2"
        ]
    );

    let list = client
        .list_layer_versions()
        .layer_name("pub-layer")
        .send()
        .await
        .unwrap();
    let versions: Vec<(i64, Option<&str>)> = list
        .layer_versions()
        .iter()
        .map(|v| (v.version(), v.description()))
        .collect();
    assert_eq!(
        versions,
        [(2, Some("second")), (1, Some("first"))],
        "newest first"
    );

    let got = client
        .get_layer_version()
        .layer_name("pub-layer")
        .version_number(1)
        .send()
        .await
        .unwrap();
    assert_eq!(got.description(), Some("first"));
    let body = http()
        .get(got.content().unwrap().location().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&body[..], &zip[..]);
    assert_eq!(
        fake.layer_versions("arn:aws:lambda:eu-west-1:123456789012:layer:pub-layer")
            .len(),
        2
    );
}

#[tokio::test]
async fn ecr_token_and_repositories() {
    let fake = FakeAws::start();
    fake.set_ecr_password("hunter2-ecr");
    fake.add_ecr_repository("existing");
    let ecr = aws_sdk_ecr::Client::new(&sdk_config(&fake).await);

    let auth = ecr.get_authorization_token().send().await.unwrap();
    let data = &auth.authorization_data()[0];
    let decoded = B64.decode(data.authorization_token().unwrap()).unwrap();
    assert_eq!(decoded, b"AWS:hunter2-ecr");
    assert!(data.expires_at().is_some());
    assert_eq!(
        data.proxy_endpoint(),
        Some("https://123456789012.dkr.ecr.eu-west-1.amazonaws.com")
    );
    let r = &fake.requests()[0];
    assert_eq!(
        r.target.as_deref(),
        Some("AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken")
    );
    assert_eq!(
        (r.region.as_deref(), r.service.as_deref()),
        (Some("eu-west-1"), Some("ecr"))
    );
    assert!(fake.secret_strings().contains(&"hunter2-ecr".to_string()));

    let err = ecr
        .describe_repositories()
        .repository_names("new")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_repository_not_found_exception(), "{err:?}");
    ecr.create_repository()
        .repository_name("new")
        .send()
        .await
        .unwrap();
    let found = ecr
        .describe_repositories()
        .repository_names("new")
        .send()
        .await
        .unwrap();
    assert_eq!(found.repositories()[0].repository_name(), Some("new"));
    assert_eq!(fake.ecr_repositories(), ["existing", "new"]);
    let err = ecr
        .create_repository()
        .repository_name("new")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_repository_already_exists_exception(), "{err:?}");

    fake.inject(Fault::EcrStatus {
        status: 400,
        error_type: "ServerException".into(),
        message: "nope".into(),
    });
    let err = ecr
        .get_authorization_token()
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_server_exception(), "{err:?}");
}

/// The SDK sends Content-Length bodies; other clients may chunk. Exercised on a raw socket, with
/// keep-alive.
#[test]
fn chunked_request_body_and_keep_alive() {
    let fake = FakeAws::start();
    let addr = fake.endpoint().trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = format!(
        r#"{{"Content":{{"ZipFile":"{}"}}}}"#,
        B64.encode(b"PK\x05\x06hello")
    );
    let (a, b) = body.split_at(10);
    let auth = "AWS4-HMAC-SHA256 Credential=AKID/20260101/ap-south-1/lambda/aws4_request, SignedHeaders=host, Signature=00";
    for _ in 0..2 {
        write!(
            s,
            "POST /2018-10-31/layers/chunky/versions HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
             Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x};ext=1\r\n{b}\r\n0\r\n\r\n",
            a.len(),
            b.len()
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 201"), "{head}");
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let mut resp = vec![0; len];
        s.read_exact(&mut resp).unwrap();
    }
    let versions = fake.layer_versions("arn:aws:lambda:ap-south-1:123456789012:layer:chunky");
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(versions[0].zip.as_slice(), b"PK\x05\x06hello");
}
