//! CreateFunction and UpdateFunctionCode against the fake, through the real SDK: the request
//! bodies are recorded, states move Pending → Active / InProgress → Successful or Failed, and
//! refusals carry Lambda's codes and messages.

use super::{DIGEST, code_zip, lambda};
use crate::support::fake_aws::{
    FakeAws, Fault, FunctionCode as FakeCode, FunctionSpec, FunctionStatus,
};
use aws_sdk_lambda::client::Waiters;
use aws_sdk_lambda::error::ProvideErrorMetadata;
use aws_sdk_lambda::types::{
    Architecture, DeadLetterConfig, Environment, EphemeralStorage, FileSystemConfig, FunctionCode,
    ImageConfig, LastUpdateStatus, LogFormat, LoggingConfig, PackageType, Runtime, State,
    TracingConfig, TracingMode, VpcConfig,
};
use serde_json::json;
use std::time::Duration;

fn create_image(
    client: &aws_sdk_lambda::Client,
    name: &str,
    image: &str,
) -> aws_sdk_lambda::operation::create_function::builders::CreateFunctionFluentBuilder {
    client
        .create_function()
        .function_name(name)
        .role("arn:aws:iam::123456789012:role/r")
        .package_type(PackageType::Image)
        .code(FunctionCode::builder().image_uri(image).build())
}

#[tokio::test]
async fn create_image_function_is_recorded_and_goes_pending_then_active() {
    let fake = FakeAws::start();
    fake.set_pending_reads(2);
    let client = lambda(&fake).await;
    let image = format!("123456789012.dkr.ecr.eu-west-1.amazonaws.com/new@sha256:{DIGEST}");
    let out = create_image(&client, "new-fn", &image)
        .architectures(Architecture::Arm64)
        .memory_size(512)
        .timeout(30)
        .ephemeral_storage(EphemeralStorage::builder().size(1024).build().unwrap())
        .environment(Environment::builder().variables("K", "V").build())
        .vpc_config(
            VpcConfig::builder()
                .subnet_ids("subnet-1")
                .security_group_ids("sg-1")
                .build(),
        )
        .tracing_config(TracingConfig::builder().mode(TracingMode::Active).build())
        .dead_letter_config(
            DeadLetterConfig::builder()
                .target_arn("arn:aws:sqs:eu-west-1:123456789012:dlq")
                .build(),
        )
        .kms_key_arn("arn:aws:kms:eu-west-1:123456789012:key/k1")
        .file_system_configs(
            FileSystemConfig::builder()
                .arn("arn:aws:elasticfilesystem:eu-west-1:123456789012:access-point/fsap-1")
                .local_mount_path("/mnt/efs")
                .build()
                .unwrap(),
        )
        .logging_config(LoggingConfig::builder().log_format(LogFormat::Json).build())
        .description("migrated")
        .tags("team", "payments")
        .image_config(ImageConfig::builder().command("app.handler").build())
        .send()
        .await
        .unwrap();
    assert_eq!(fake.requests()[0].status, 201);
    assert_eq!(
        (out.state(), out.state_reason()),
        (
            Some(&State::Pending),
            Some("The function is being created.")
        )
    );
    assert_eq!(out.state_reason_code().unwrap().as_str(), "Creating");
    assert_eq!(
        out.logging_config().unwrap().log_group(),
        Some("/aws/lambda/new-fn")
    );

    let sent = &fake.create_function_requests()[0];
    assert_eq!(sent["PackageType"], "Image");
    assert_eq!(sent["Code"], json!({"ImageUri": image}));
    assert_eq!(sent["Architectures"], json!(["arm64"]));
    assert_eq!(sent["Environment"], json!({"Variables": {"K": "V"}}));
    assert_eq!(sent["EphemeralStorage"], json!({"Size": 1024}));
    assert!(
        sent.get("Runtime").is_none()
            && sent.get("Handler").is_none()
            && sent.get("Layers").is_none()
    );
    assert_eq!(fake.function_spec("new-fn").tags["team"], "payments");

    let mut seen = Vec::new();
    for _ in 0..3 {
        let c = client
            .get_function_configuration()
            .function_name("new-fn")
            .send()
            .await
            .unwrap();
        seen.push((
            c.state().unwrap().as_str().to_string(),
            c.last_update_status().map(|s| s.as_str().to_string()),
        ));
    }
    assert_eq!(seen[0].0, "Pending");
    assert_eq!(seen[1].0, "Pending");
    assert_eq!(
        seen[2],
        ("Active".to_string(), Some("Successful".to_string()))
    );
    let status: FunctionStatus = fake.function_status("new-fn").unwrap();
    assert!(matches!(
        fake.function_spec("new-fn").code,
        FakeCode::Image { .. }
    ));
    assert_eq!(
        (
            status.package_type.as_str(),
            status.resolved_image_uri.as_deref()
        ),
        ("Image", Some(image.as_str()))
    );

    let err = create_image(&client, "new-fn", &image)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_conflict_exception(), "{err:?}");
    assert_eq!(err.message(), Some("Function already exist: new-fn"));
    let err = create_image(&client, "x", &image)
        .runtime(Runtime::Python312)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_parameter_value_exception(), "{err:?}");
    assert_eq!(
        err.message(),
        Some(
            "Please don't provide Handler or Runtime or Layer when the intended function PackageType is Image."
        )
    );
    let err = create_image(&client, "x", &image)
        .architectures(Architecture::Arm64)
        .architectures(Architecture::X8664)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("ValidationException"));
    let tagged = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/new:v2";
    let err = create_image(&client, "x", tagged)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(
        err.message(),
        Some(
            format!("Source image {tagged} does not exist. Provide a valid source image.").as_str()
        )
    );
    assert_eq!(
        fake.create_function_requests().len(),
        5,
        "refused requests are recorded too"
    );
    assert_eq!(fake.function_arns().len(), 1);
    assert_eq!(
        (
            fake.lambda_calls("CreateFunction"),
            fake.lambda_calls("GetFunctionConfiguration")
        ),
        (5, 3)
    );

    // A create that fails later, and the SDK's own waiter on a create that settles at once.
    fake.set_pending_reads(0);
    fake.set_image_digest(tagged, &image);
    fake.inject(Fault::FunctionCreateFails {
        reason_code: "ImageAccessDenied".into(),
        reason: "Lambda does not have permission to access the ECR image.".into(),
    });
    create_image(&client, "broken", tagged)
        .send()
        .await
        .unwrap();
    let c = client
        .get_function_configuration()
        .function_name("broken")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (c.state(), c.state_reason()),
        (
            Some(&State::Failed),
            Some("Lambda does not have permission to access the ECR image.")
        )
    );
    assert_eq!(c.state_reason_code().unwrap().as_str(), "ImageAccessDenied");
    create_image(&client, "waited", tagged)
        .send()
        .await
        .unwrap();
    client
        .wait_until_function_active_v2()
        .function_name("waited")
        .wait(Duration::from_secs(20))
        .await
        .unwrap();
}

#[tokio::test]
async fn update_function_code_moves_an_image_function() {
    let fake = FakeAws::start();
    let repo = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/img";
    fake.add_function(FunctionSpec::image(
        "img",
        &format!("{repo}:v1"),
        &format!("{repo}@sha256:{DIGEST}"),
    ));
    fake.add_function(FunctionSpec::zip(
        "zipped",
        "python3.12",
        "app.handler",
        code_zip(1),
    ));
    let client = lambda(&fake).await;
    let new_digest = "b".repeat(64);
    let new_uri = format!("{repo}@sha256:{new_digest}");

    let out = client
        .update_function_code()
        .function_name("img")
        .image_uri(&new_uri)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (out.state(), out.last_update_status()),
        (Some(&State::Active), Some(&LastUpdateStatus::InProgress))
    );
    assert_eq!(out.code_sha256(), Some(new_digest.as_str()));
    let err = client
        .update_function_code()
        .function_name("img")
        .image_uri(&new_uri)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_conflict_exception(), "{err:?}");
    assert!(err.message().unwrap().ends_with(
        "An update is in progress for resource: arn:aws:lambda:eu-west-1:123456789012:function:img"
    ));
    let mut seen = Vec::new();
    for _ in 0..2 {
        let c = client
            .get_function_configuration()
            .function_name("img")
            .send()
            .await
            .unwrap();
        seen.push(c.last_update_status().unwrap().as_str().to_string());
    }
    assert_eq!(seen, ["InProgress", "Successful"]);
    let got = client
        .get_function()
        .function_name("img")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.code().unwrap().resolved_image_uri(),
        Some(new_uri.as_str())
    );
    assert_eq!(
        fake.update_function_code_requests()[0],
        ("img".to_string(), json!({"ImageUri": new_uri}))
    );

    let err = client
        .update_function_code()
        .function_name("zipped")
        .image_uri(&new_uri)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(
        err.message(),
        Some("Please don't provide ImageUri when updating a function with packageType Zip.")
    );
    fake.set_pending_reads(0);
    fake.inject(Fault::FunctionUpdateFails {
        reason_code: "InvalidImage".into(),
        reason: "bad image".into(),
    });
    client
        .update_function_code()
        .function_name("img")
        .image_uri(&new_uri)
        .send()
        .await
        .unwrap();
    let c = client
        .get_function_configuration()
        .function_name("img")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (c.last_update_status(), c.last_update_status_reason()),
        (Some(&LastUpdateStatus::Failed), Some("bad image"))
    );
    assert_eq!(
        fake.function_status("img")
            .unwrap()
            .last_update_status_reason_code
            .as_deref(),
        Some("InvalidImage")
    );

    // An update while the create is still pending is refused with the state named.
    fake.set_pending_reads(3);
    create_image(&client, "young", &new_uri)
        .send()
        .await
        .unwrap();
    let err = client
        .update_function_code()
        .function_name("young")
        .image_uri(&new_uri)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        err.message().unwrap().contains(
            "is currently in the following state: 'Pending'. StateReasonCode: 'Creating'"
        )
    );
}
