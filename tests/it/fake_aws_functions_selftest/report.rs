//! The read-only calls behind `migrate`'s "move by hand" report, through the real SDK: event
//! source mappings, resource policy, aliases, function URL, provisioned concurrency, code signing
//! and tags.

use super::{code_zip, lambda};
use crate::support::fake_aws::{FakeAws, FunctionSpec};
use aws_sdk_lambda::error::ProvideErrorMetadata;
use serde_json::json;

#[tokio::test]
async fn the_calls_behind_the_move_by_hand_report() {
    let fake = FakeAws::start();
    let arn = fake.add_function(FunctionSpec {
        code_signing_config_arn: Some(
            "arn:aws:lambda:eu-west-1:123456789012:code-signing-config:csc-0123456789abcdef0"
                .into(),
        ),
        tags: [("team".to_string(), "payments".to_string())].into(),
        ..FunctionSpec::zip("f", "python3.12", "app.handler", code_zip(1))
    });
    fake.add_function(FunctionSpec::zip(
        "other",
        "python3.12",
        "app.handler",
        code_zip(2),
    ));
    let queue = "arn:aws:sqs:eu-west-1:123456789012:orders";
    let uuid = fake.add_event_source_mapping("f", queue);
    fake.add_event_source_mapping("other", "arn:aws:sqs:eu-west-1:123456789012:misc");
    let client = lambda(&fake).await;

    let esm = client
        .list_event_source_mappings()
        .function_name("f")
        .send()
        .await
        .unwrap();
    let m = &esm.event_source_mappings();
    assert_eq!(m.len(), 1);
    assert_eq!(
        (m[0].uuid(), m[0].event_source_arn(), m[0].function_arn()),
        (Some(uuid.as_str()), Some(queue), Some(arn.as_str()))
    );
    assert_eq!(
        (m[0].state(), m[0].batch_size()),
        (Some("Enabled"), Some(10))
    );
    assert!(m[0].last_modified().is_some());
    assert_eq!(
        fake.requests()[0].query_param("FunctionName").as_deref(),
        Some("f")
    );

    let err = client
        .get_policy()
        .function_name("f")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");
    assert_eq!(
        err.message(),
        Some("The resource you requested does not exist.")
    );
    fake.add_policy_statement("f", json!({"Sid": "s3", "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"}, "Action": "lambda:InvokeFunction", "Resource": arn}));
    let policy = client.get_policy().function_name("f").send().await.unwrap();
    let doc: serde_json::Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    assert_eq!(doc["Statement"][0]["Sid"], "s3");
    assert!(policy.revision_id().is_some());

    fake.publish_version("f");
    fake.add_alias("f", "live", "1");
    let aliases = client
        .list_aliases()
        .function_name("f")
        .send()
        .await
        .unwrap();
    let a = &aliases.aliases()[0];
    assert_eq!(
        (a.name(), a.function_version(), a.alias_arn()),
        (
            Some("live"),
            Some("1"),
            Some(format!("{arn}:live").as_str())
        )
    );

    let err = client
        .get_function_url_config()
        .function_name("f")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");
    let url = fake.set_function_url("f", None, "NONE");
    let u = client
        .get_function_url_config()
        .function_name("f")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (u.function_url(), u.auth_type().as_str(), u.function_arn()),
        (url.as_str(), "NONE", arn.as_str())
    );
    assert!(url.ends_with(".lambda-url.eu-west-1.on.aws/"));

    fake.set_provisioned_concurrency("f", "live", 5);
    let pc = client
        .list_provisioned_concurrency_configs()
        .function_name("f")
        .send()
        .await
        .unwrap();
    let p = &pc.provisioned_concurrency_configs()[0];
    assert_eq!(
        (
            p.function_arn(),
            p.requested_provisioned_concurrent_executions(),
            p.status().map(|s| s.as_str())
        ),
        (Some(format!("{arn}:live").as_str()), Some(5), Some("READY"))
    );
    assert!(fake.requests().last().unwrap().query.contains("List=ALL"));

    let csc = client
        .get_function_code_signing_config()
        .function_name("f")
        .send()
        .await
        .unwrap();
    assert_eq!(
        csc.code_signing_config_arn(),
        "arn:aws:lambda:eu-west-1:123456789012:code-signing-config:csc-0123456789abcdef0"
    );
    let none = client
        .get_function_code_signing_config()
        .function_name("other")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (none.code_signing_config_arn(), none.function_name()),
        ("", "other")
    );
    let tags = client.list_tags().resource(&arn).send().await.unwrap();
    assert_eq!(tags.tags().unwrap()["team"], "payments");
}
