//! `layerport migrate` end to end, with real parts: the fake AWS endpoint plays Lambda (GetFunction,
//! the code download, layer versions, CreateFunction with its state transitions,
//! UpdateFunctionCode, the lookups for what must move by hand), a real docker-registry takes the
//! push, skopeo and umoci read the result — and the migrated Python function is run as Lambda's
//! non-root user on a stand-in base, its handler's output checked.

use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::support::fake_aws::{FakeAws, FunctionSpec};
use crate::support::images::{lambda_like_base, lambda_like_base_for};
use crate::support::lambda_base::lambda_base;
use crate::support::lambda_run::{LAMBDA_UID, run_lambda};
use crate::support::registry::{PushHome, Registry, layer_digests};
use crate::support::tools::{ZipEntry, assert_no_secrets, make_zip, tree};

pub const REGION: &str = "eu-west-1";
const ENV_SECRET: &str = "postgres://orders:Sup3rS3cretValue-xyz@db/orders";

/// A handler that needs a module from a layer.
const APP: &str = r#"import os
import helper

def handler(event, context):
    return {"greeting": helper.greet(event["name"]), "uid": os.getuid()}
"#;
const HELPER: &str = "def greet(name):\n    return 'hello, ' + name\n";

pub fn zip_bytes(entries: &[ZipEntry]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.zip");
    make_zip(&path, entries);
    std::fs::read(path).unwrap()
}

/// Lambda (the fake), a registry holding the bases, and a home whose environment reaches only them.
pub struct World {
    pub fake: Arc<FakeAws>,
    pub reg: Registry,
    pub home: PushHome,
    pub host: String,
    _work: tempfile::TempDir,
}

impl World {
    pub fn new() -> World {
        let fake = Arc::new(FakeAws::start());
        let reg = Registry::start();
        let mut home = PushHome::default();
        reg.docker_config(&home.docker_dir(), &[]);
        for (k, v) in [
            ("AWS_ENDPOINT_URL", fake.endpoint().as_str()),
            ("AWS_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", "AKIDLAYERPORTMIGRATE"),
            (
                "AWS_SECRET_ACCESS_KEY",
                "SECRETKEYlayerportMIGRATE0123456789",
            ),
        ] {
            home.set_env(k, v);
        }
        let work = tempfile::tempdir().unwrap();
        lambda_like_base(work.path(), "base");
        reg.push_oci(work.path(), "base", "lambda/base:v1", false);
        let host = reg.host();
        World {
            fake,
            reg,
            home,
            host,
            _work: work,
        }
    }

    pub fn base(&self) -> String {
        format!("{}/lambda/base:v1", self.host)
    }

    pub fn target(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.host)
    }

    /// `layerport migrate ARGS...`: (code, stdout, stderr), checked for leaked secrets.
    pub fn migrate(&self, args: &[&str]) -> (i32, String, String) {
        let mut all = vec!["migrate"];
        all.extend_from_slice(args);
        let out = self.home.run(&[&self.host], &all);
        let mut secrets = self.fake.secret_strings();
        secrets.push("SECRETKEYlayerportMIGRATE0123456789".into());
        assert_no_secrets(&secrets, &[&out.1, &out.2]);
        out
    }

    /// A python function with a layer: its ARN.
    pub fn python_function(&self, name: &str) -> String {
        let layer = format!("arn:aws:lambda:{REGION}:123456789012:layer:helpers:3");
        let layer_zip = zip_bytes(&[
            ZipEntry::Dir("python/"),
            ZipEntry::File("python/helper.py", HELPER.as_bytes(), 0o644),
        ]);
        self.fake.add_layer(&layer, layer_zip, &["x86_64"]);
        let code = zip_bytes(&[ZipEntry::File("app.py", APP.as_bytes(), 0o600)]);
        self.fake.add_function(FunctionSpec {
            layers: vec![layer],
            environment: BTreeMap::from([("DATABASE_URL".into(), ENV_SECRET.into())]),
            ..FunctionSpec::zip(name, "python3.12", "app.handler", code)
        })
    }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The image config and manifest of `repo:tag` in the registry.
fn pushed(world: &World, repo_tag: &str) -> (Value, Value) {
    let manifest = json(&String::from_utf8(world.reg.raw_manifest(repo_tag)).unwrap());
    (world.reg.config(repo_tag), manifest)
}

#[test]
fn a_python_function_becomes_an_image_function_with_its_configuration() {
    let world = World::new();
    let arn = world.python_function("orders");
    let target = world.target("orders:v1");
    let (code, stdout, stderr) = world.migrate(&[
        "orders",
        "--push",
        &target,
        "--base",
        &world.base(),
        "--create-function",
        "orders-image",
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with(&format!("{}/orders@sha256:", world.host)),
        "{stdout}"
    );
    assert!(lines[1].ends_with(":function:orders-image"), "{stdout}");

    let (config, manifest) = pushed(&world, "orders:v1");
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["app.handler"]));
    assert_eq!(config["config"]["Entrypoint"][0], "/lambda-entrypoint.sh");
    let env = config["config"]["Env"].to_string();
    assert!(
        !env.contains("DATABASE_URL"),
        "the environment was baked: {env}"
    );
    assert_eq!(
        layer_digests(&manifest).len(),
        2 + 2,
        "base layers, code, one layer"
    );
    let annotations = &manifest["annotations"];
    assert_eq!(annotations["dev.layerport.function"], arn.as_str());
    assert!(
        annotations["dev.layerport.inputs"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert!(
        annotations["dev.layerport.layer.1.source"]
            .as_str()
            .unwrap()
            .ends_with(":layer:helpers:3")
    );

    // CreateFunction: an image function with the old configuration, never Runtime/Handler/Layers.
    let created = &world.fake.create_function_requests()[0];
    assert_eq!(created["PackageType"], "Image");
    assert_eq!(created["Code"]["ImageUri"], lines[0]);
    for absent in ["Runtime", "Handler", "Layers"] {
        assert!(created.get(absent).is_none(), "{absent} sent: {created}");
    }
    assert_eq!(
        created["Environment"]["Variables"]["DATABASE_URL"],
        ENV_SECRET
    );
    assert_eq!(created["Architectures"], serde_json::json!(["x86_64"]));
    assert_eq!(
        world.fake.function_status("orders-image").unwrap().state,
        "Active"
    );
    assert_eq!(world.fake.code_download_count("orders"), 1);

    // The code at /var/task (made readable for Lambda's user) and the layer at /opt.
    let work = tempfile::tempdir().unwrap();
    let rootfs = world.reg.unpack("orders:v1", work.path());
    let files = tree(&rootfs);
    assert_eq!(files["var/task/app.py"].mode & 0o444, 0o444);
    assert!(files.contains_key("opt/python/helper.py"));
}

#[test]
fn a_second_run_with_the_same_inputs_is_up_to_date_and_moves_nothing() {
    let world = World::new();
    world.python_function("orders");
    let target = world.target("orders:v1");
    let args = ["orders", "--push", &target, "--base", &world.base()];
    let (code, first, stderr) = world.migrate(&args);
    assert_eq!(code, 0, "{stderr}");
    let uploads = world.reg.upload_requests();
    let (code, second, stderr) = world.migrate(&[&args[..], &["--json"]].concat());
    assert_eq!(code, 0, "{stderr}");
    let doc = json(&second);
    assert_eq!(doc["status"], "up-to-date", "{doc}");
    assert_eq!(doc["image"].as_str().unwrap(), first.trim());
    assert_eq!(
        world.reg.upload_requests(),
        uploads,
        "something was uploaded again"
    );
    assert_eq!(
        world.fake.code_download_count("orders"),
        1,
        "the code was downloaded again"
    );
}

#[test]
fn the_migrated_python_function_runs_as_the_lambda_user() {
    let world = World::new();
    world.python_function("orders");
    let base = lambda_base();
    world
        .reg
        .push_oci(&base.layout, base.tag, "lambda/python:3.11", false);
    let base_ref = world.target("lambda/python:3.11");
    let target = world.target("orders:run");
    let (code, _, stderr) = world.migrate(&["orders", "--push", &target, "--base", &base_ref]);
    assert_eq!(code, 0, "{stderr}");
    let work = tempfile::tempdir().unwrap();
    let pulled = work.path().join("pulled");
    world.reg.copy_to_oci("orders:run", &pulled, "fn");
    let (code, stdout, stderr) = run_lambda(&pulled, "fn", r#"{"name": "migrated"}"#);
    assert_eq!(code, 0, "the function failed: {stdout}{stderr}");
    let out = json(&stdout);
    assert_eq!(out["greeting"], "hello, migrated");
    assert_eq!(out["uid"], LAMBDA_UID);
}

#[test]
fn nodejs_on_arm64_and_a_custom_runtime_get_their_platform_and_bootstrap() {
    let world = World::new();
    let node = zip_bytes(&[ZipEntry::File(
        "index.mjs",
        b"export const handler = async () => 1;\n",
        0o644,
    )]);
    world.fake.add_function(FunctionSpec {
        architectures: vec!["arm64".into()],
        ..FunctionSpec::zip("web", "nodejs20.x", "index.handler", node)
    });
    let work = tempfile::tempdir().unwrap();
    lambda_like_base_for(work.path(), "arm", "arm64");
    world
        .reg
        .push_oci(work.path(), "arm", "lambda/base:arm64", false);
    let target = world.target("web:v1");
    let base = world.target("lambda/base:arm64");
    let (code, _, stderr) = world.migrate(&["web", "--push", &target, "--base", &base]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(world.reg.inspect("web:v1")["Architecture"], "arm64");

    let bootstrap = b"#!/bin/sh\necho custom runtime\n";
    let custom = zip_bytes(&[ZipEntry::File("bootstrap", bootstrap, 0o700)]);
    world.fake.add_function(FunctionSpec::zip(
        "rusty",
        "provided.al2023",
        "handler",
        custom,
    ));
    let target = world.target("rusty:v1");
    let (code, _, stderr) = world.migrate(&["rusty", "--push", &target, "--base", &world.base()]);
    assert_eq!(code, 0, "{stderr}");
    let work = tempfile::tempdir().unwrap();
    let rootfs = world.reg.unpack("rusty:v1", work.path());
    let files = tree(&rootfs);
    let copied = &files["var/runtime/bootstrap"];
    assert_eq!(copied.data, bootstrap, "a copy, not a link");
    assert_eq!(copied.mode & 0o555, 0o555, "runnable by Lambda's user");
    assert!(files.contains_key("var/task/bootstrap"));
}
