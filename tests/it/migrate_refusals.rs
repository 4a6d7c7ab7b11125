//! `layerport migrate` refusals and the rest of its surface: a function that does not exist, an
//! access refusal naming the IAM action, an image function, a runtime without a base image, a
//! handler whose file is missing (nothing tagged), `--dry-run` (nothing written),
//! `--update-function` (and nothing called when it already runs the image), `--bake-env`, and the
//! report of what must move by hand.

use serde_json::{Value, json};

use crate::migrate_function::{REGION, World, zip_bytes};
use crate::support::fake_aws::FunctionSpec;
use crate::support::tools::ZipEntry;

fn manifest_puts(world: &World) -> usize {
    world
        .reg
        .access_lines()
        .into_iter()
        .filter(|l| l.method == "PUT" && l.uri.contains("/manifests/"))
        .count()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn functions_that_cannot_be_migrated_are_refused_with_the_fix() {
    let world = World::new();
    let target = world.target("x:v1");
    let base = world.base();
    world.fake.add_function(FunctionSpec::image(
        "already",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/a:v1",
        &format!(
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/a@sha256:{}",
            "a".repeat(64)
        ),
    ));
    let go = zip_bytes(&[ZipEntry::File("main", b"\x7fELF", 0o755)]);
    world
        .fake
        .add_function(FunctionSpec::zip("gopher", "go1.x", "main", go));
    let code = zip_bytes(&[ZipEntry::File(
        "app.py",
        b"def handler(e, c): pass\n",
        0o644,
    )]);
    world.fake.add_function(FunctionSpec::zip(
        "typo",
        "python3.12",
        "main.handler",
        code,
    ));
    let tagged = manifest_puts(&world);
    let cases: [(&[&str], &str); 4] = [
        (&["nosuch", "--push", &target, "--base", &base], "not found"),
        (
            &["already", "--push", &target, "--base", &base],
            "already an image function",
        ),
        (&["gopher", "--push", &target], "provided.al2023"),
        (
            &["typo", "--push", &target, "--base", &base],
            "handler-missing",
        ),
    ];
    for (args, says) in cases {
        let (code, stdout, stderr) = world.migrate(args);
        assert_eq!(code, 1, "{args:?}: {stdout}{stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(stderr.contains("hint:"), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
    }
    assert_eq!(manifest_puts(&world), tagged, "an image was tagged");
}

#[test]
fn access_denied_names_the_iam_action() {
    let world = World::new();
    world.python_function("orders");
    world.fake.deny_action("GetFunction");
    let target = world.target("orders:v1");
    let (code, _, stderr) = world.migrate(&["orders", "--push", &target, "--base", &world.base()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("lambda:GetFunction"), "{stderr}");
    assert!(stderr.contains(REGION), "{stderr}");
}

#[test]
fn a_dry_run_prints_the_plan_and_writes_nothing() {
    let world = World::new();
    world.python_function("orders");
    let target = world.target("orders:v1");
    let uploads = world.reg.upload_requests();
    let (code, stdout, stderr) = world.migrate(&[
        "orders",
        "--push",
        &target,
        "--base",
        &world.base(),
        "--create-function",
        "orders-image",
        "--dry-run",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("layer:helpers:3"), "{stdout}");
    assert!(stdout.contains("would-create orders-image"), "{stdout}");
    assert!(stdout.contains(&world.base()), "{stdout}");
    assert_eq!(world.reg.upload_requests(), uploads);
    assert_eq!(world.fake.lambda_calls("CreateFunction"), 0);
    assert_eq!(world.fake.code_download_count("orders"), 0);
}

#[test]
fn update_function_points_an_image_function_at_the_new_digest_once() {
    let world = World::new();
    world.python_function("orders");
    world.fake.add_function(FunctionSpec::image(
        "orders-image",
        "old/repo:v0",
        &format!("old/repo@sha256:{}", "b".repeat(64)),
    ));
    let target = world.target("orders:v1");
    let args = [
        "orders",
        "--push",
        &target,
        "--base",
        &world.base(),
        "--update-function",
        "orders-image",
        "--json",
    ];
    let (code, stdout, stderr) = world.migrate(&args);
    assert_eq!(code, 0, "{stderr}");
    let doc = json(&stdout);
    assert_eq!(doc["functionAction"]["action"], "updated", "{doc}");
    let updates = world.fake.update_function_code_requests();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].1["ImageUri"], doc["image"]);

    let (code, stdout, stderr) = world.migrate(&args);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json(&stdout)["functionAction"]["action"], "unchanged");
    assert_eq!(
        world.fake.update_function_code_requests().len(),
        1,
        "called again"
    );
}

#[test]
fn bake_env_writes_the_variables_and_names_them_without_their_values() {
    let world = World::new();
    world.python_function("orders");
    let target = world.target("orders:baked");
    let (code, _, stderr) = world.migrate(&[
        "orders",
        "--push",
        &target,
        "--base",
        &world.base(),
        "--bake-env",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("DATABASE_URL"),
        "the variable is not named: {stderr}"
    );
    let env = world.reg.config("orders:baked")["config"]["Env"].to_string();
    assert!(env.contains("DATABASE_URL="), "{env}");
}

#[test]
fn what_must_move_by_hand_is_reported() {
    let world = World::new();
    let arn = world.python_function("orders");
    world.fake.add_event_source_mapping(
        &arn,
        &format!("arn:aws:sqs:{REGION}:123456789012:orders-queue"),
    );
    world.fake.set_function_url(&arn, None, "NONE");
    world.fake.add_policy_statement(
        &arn,
        json!({"Sid": "apigw", "Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"}, "Action": "lambda:InvokeFunction", "Resource": arn}),
    );
    let version = world.fake.publish_version(&arn);
    world.fake.add_alias(&arn, "live", &version.to_string());
    let target = world.target("orders:v1");
    let (code, stdout, stderr) = world.migrate(&[
        "orders",
        "--push",
        &target,
        "--base",
        &world.base(),
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let doc = json(&stdout);
    let kinds: Vec<&str> = doc["manualSteps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "event-source-mapping",
        "function-url",
        "resource-policy",
        "alias",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing: {doc}");
    }
    assert!(stderr.contains("to move by hand"), "{stderr}");

    world.fake.deny_action("GetPolicy");
    let (code, stdout, _) = world.migrate(&[
        "orders",
        "--push",
        &target,
        "--base",
        &world.base(),
        "--json",
    ]);
    assert_eq!(code, 0);
    assert!(stdout.contains("lambda:GetPolicy"), "{stdout}");
}
