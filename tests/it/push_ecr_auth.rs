//! Registry authentication for pushes, with real parts: Docker config credentials and credential
//! helpers against docker-registry's htpasswd auth, refusals that name the fix, and ECR — the fake
//! AWS endpoint answers GetAuthorizationToken (user `AWS` and a password the registry accepts),
//! DescribeRepositories and CreateRepository, while a fault proxy in front of docker-registry plays
//! ECR's NAME_UNKNOWN for repositories the fake does not hold and its immutable-tag refusal.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use serde_json::json;

use crate::support::fake_aws::{FakeAws, Fault, RecordedRequest};
use crate::support::fault_proxy::FaultProxy;
use crate::support::images::lambda_like_base;
use crate::support::registry::{
    PushHome, Registry, basic_auth_secrets, push_args, write_docker_config,
};
use crate::support::tools::{assert_no_secrets, sha256_hex};

const ECR_PASSWORD: &str = "ECR-token-password-7c1e9b2a-doNotLeak";
const SECRET_KEY: &str = "SECRETKEYlayerportECRTEST0123456789";
const SESSION_TOKEN: &str = "SESSIONTOKENlayerportECRTEST";

#[test]
fn refused_or_missing_credentials_name_the_registry_and_the_fix() {
    let reg = Registry::start();
    let home = PushHome::default();
    let host = reg.host();
    let args = push_args(&["deps.zip"], None, &format!("{host}/app:v1"));

    let wrong = "Wrong-Password-4711";
    write_docker_config(
        &home.docker_dir(),
        &[(host.clone(), reg.user.clone(), wrong.into())],
    );
    let (code, stdout, stderr) = home.run(&[&host], &args);
    assert_eq!(code, 1, "stderr: {stderr}");
    assert!(stdout.is_empty(), "stdout: {stdout}");
    assert!(
        stderr.contains(&host),
        "the registry is not named: {stderr}"
    );
    assert!(
        stderr.contains("authentication"),
        "not an auth error: {stderr}"
    );
    assert!(stderr.contains("hint:"), "no hint: {stderr}");
    assert!(!stderr.contains(wrong), "the password leaked: {stderr}");

    fs::remove_file(home.docker_dir().join("config.json")).unwrap();
    let (code, _, stderr) = home.run(&[&host], &args);
    assert_eq!(code, 1, "stderr: {stderr}");
    assert!(stderr.contains(&host), "{stderr}");
    assert!(
        stderr.contains("docker login"),
        "no docker login hint: {stderr}"
    );

    reg.docker_config(&home.docker_dir(), &[]);
    let mut anonymous = vec!["--registry-auth".to_string(), "anonymous".into()];
    anonymous.extend(args);
    let (code, _, stderr) = home.run(&[&host], &anonymous);
    assert_eq!(
        code, 1,
        "--registry-auth anonymous used the Docker config: {stderr}"
    );
    assert!(stderr.contains("docker login"), "{stderr}");
    assert_eq!(reg.upload_requests(), 0, "uploads without credentials");
}

#[test]
fn docker_config_credentials_never_reach_stdout_or_stderr_even_at_debug_verbosity() {
    let reg = Registry::start();
    let home = PushHome::default();
    let host = reg.host();
    reg.docker_config(&home.docker_dir(), &[]);
    let secrets = basic_auth_secrets(&reg.user, &reg.password);

    let target = format!("{host}/creds/app:v1");
    let mut push = vec!["-vv".to_string()];
    push.extend(push_args(&["deps.zip"], None, &target));
    let (code, stdout, stderr) = home.run(&[&host], &push);
    assert_eq!(code, 0, "push failed\nstdout: {stdout}\nstderr: {stderr}");
    assert!(
        stderr.to_ascii_lowercase().contains("debug"),
        "-vv gave no debug output: {stderr}"
    );
    assert!(
        reg.upload_requests_for("creds/app") > 0,
        "nothing was uploaded with the Docker config's credentials"
    );
    assert_no_secrets(&secrets, &[&stdout, &stderr]);

    // Pulling it back with the same credentials.
    let zip = ["-vv", "zip", target.as_str(), "-o", "x.zip"];
    let (code, stdout, stderr) = home.run(&[&host], &zip);
    assert_eq!(code, 0, "zip failed\nstdout: {stdout}\nstderr: {stderr}");
    assert_eq!(stdout.trim(), "x.zip");
    assert_no_secrets(&secrets, &[&stdout, &stderr]);

    // Refused credentials: the error path prints none of them either.
    let wrong = "Wrong-Password-at-debug-0815";
    write_docker_config(
        &home.docker_dir(),
        &[(host.clone(), reg.user.clone(), wrong.into())],
    );
    let mut push = vec!["-vv".to_string()];
    push.extend(push_args(
        &["deps.zip"],
        None,
        &format!("{host}/creds/app:v2"),
    ));
    let (code, stdout, stderr) = home.run(&[&host], &push);
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stderr.contains("hint:"), "no hint: {stderr}");
    assert_no_secrets(&basic_auth_secrets(&reg.user, wrong), &[&stdout, &stderr]);
}

#[test]
fn docker_credential_helpers_are_asked_for_the_registry() {
    let reg = Registry::start();
    let mut home = PushHome::default();
    let host = reg.host();
    let bin = home.path("bin");
    fs::create_dir_all(&bin).unwrap();
    let asked = home.path("helper-asked");
    let script = format!(
        "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread -r server\necho \"$server\" >> '{}'\n\
         printf '{{\"ServerURL\":\"%s\",\"Username\":\"{}\",\"Secret\":\"{}\"}}\\n' \"$server\"\n",
        asked.display(),
        reg.user,
        reg.password
    );
    let helper = bin.join("docker-credential-lptest");
    fs::write(&helper, script).unwrap();
    fs::set_permissions(&helper, fs::Permissions::from_mode(0o755)).unwrap();
    let path = std::env::var("PATH").unwrap_or_default();
    home.set_env("PATH", &format!("{}:{path}", bin.display()));
    for (n, config) in [
        json!({"credHelpers": {host.clone(): "lptest"}}),
        json!({"credsStore": "lptest"}),
    ]
    .iter()
    .enumerate()
    {
        fs::write(home.docker_dir().join("config.json"), config.to_string()).unwrap();
        let args = push_args(&["deps.zip"], None, &format!("{host}/app:v{n}"));
        let (code, stdout, stderr) = home.run(&[&host], &args);
        assert_eq!(code, 0, "push with {config} failed: {stderr}");
        assert_no_secrets(
            &basic_auth_secrets(&reg.user, &reg.password),
            &[&stdout, &stderr],
        );
        let asked = fs::read_to_string(&asked).unwrap_or_default();
        assert_eq!(
            asked.lines().filter(|l| l.contains(&host)).count(),
            n + 1,
            "{asked}"
        );
    }
}

/// A registry whose only user is `AWS` with the password the fake's GetAuthorizationToken returns,
/// a proxy in front of it that knows only the fake's ECR repositories, and a home whose
/// environment reaches only the fake (default region deliberately not us-east-1).
struct Ecr {
    fake: Arc<FakeAws>,
    reg: Registry,
    proxy: FaultProxy,
    home: PushHome,
}

impl Ecr {
    fn new() -> Ecr {
        let reg = Registry::start_with_users(&[("AWS", ECR_PASSWORD)]);
        let fake = Arc::new(FakeAws::start());
        fake.set_ecr_password(ECR_PASSWORD);
        fake.add_ecr_repository("fn");
        let proxy = FaultProxy::start(&reg.host());
        let known = Arc::clone(&fake);
        proxy.set_repository_filter(move |repo| known.ecr_repositories().iter().any(|r| r == repo));
        let mut home = PushHome::default();
        for (k, v) in [
            ("AWS_ENDPOINT_URL", fake.endpoint().as_str()),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDLAYERPORTECRTEST"),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_SESSION_TOKEN", SESSION_TOKEN),
        ] {
            home.set_env(k, v);
        }
        Ecr {
            fake,
            reg,
            proxy,
            home,
        }
    }

    fn target(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.proxy.host())
    }

    /// `layerport -vv --registry-auth ecr --region us-east-1 image ZIP --push PROXY/REPO:TAG EXTRA...`
    fn push(&self, zip: &str, repo_tag: &str, extra: &[&str]) -> (i32, String, String) {
        self.push_on(zip, None, repo_tag, extra)
    }

    /// The same, on `--base BASE` when given.
    fn push_on(
        &self,
        zip: &str,
        base: Option<&str>,
        repo_tag: &str,
        extra: &[&str],
    ) -> (i32, String, String) {
        let global = ["-vv", "--registry-auth", "ecr", "--region", "us-east-1"];
        let mut args: Vec<String> = global.iter().map(|s| s.to_string()).collect();
        args.extend(push_args(&[zip], base, &self.target(repo_tag)));
        args.extend(extra.iter().map(|s| s.to_string()));
        let out = self.home.run(&[&self.proxy.host()], &args);
        let mut secrets = self.fake.secret_strings();
        secrets.extend([SECRET_KEY.to_string(), SESSION_TOKEN.to_string()]);
        assert_no_secrets(&secrets, &[&out.1, &out.2]);
        out
    }

    fn ecr_calls(&self, op: &str) -> Vec<RecordedRequest> {
        let target = format!("AmazonEC2ContainerRegistry_V20150921.{op}");
        self.fake
            .requests()
            .into_iter()
            .filter(|r| r.target.as_deref() == Some(target.as_str()))
            .collect()
    }

    fn manifest_puts(&self) -> usize {
        self.proxy
            .requests()
            .iter()
            .filter(|r| r.method == "PUT" && r.target.contains("/manifests/"))
            .count()
    }
}

fn digest_of(stdout: &str) -> String {
    stdout
        .trim()
        .split_once('@')
        .unwrap_or_else(|| panic!("stdout is not REF@DIGEST: {stdout:?}"))
        .1
        .to_string()
}

#[test]
fn ecr_auth_uses_the_token_of_get_authorization_token_and_never_prints_it() {
    let ecr = Ecr::new();
    let (code, stdout, stderr) = ecr.push("deps.zip", "fn:v1", &[]);
    assert_eq!(code, 0, "stderr: {stderr}");
    let digest = digest_of(&stdout);
    assert_eq!(stdout.trim(), format!("{}@{digest}", ecr.target("fn")));
    let raw = ecr.reg.raw_manifest("fn:v1");
    assert_eq!(format!("sha256:{}", sha256_hex(&raw)), digest);

    let calls = ecr.ecr_calls("GetAuthorizationToken");
    assert!(!calls.is_empty(), "no GetAuthorizationToken call");
    for c in &calls {
        assert_eq!(c.region.as_deref(), Some("us-east-1"), "{c:?}");
        assert_eq!(c.service.as_deref(), Some("ecr"), "{c:?}");
    }
    assert!(
        ecr.ecr_calls("CreateRepository").is_empty(),
        "a repository was created without --create-repository"
    );
    let log = ecr.reg.synced_log();
    assert!(
        log.contains("auth.user.name=AWS"),
        "the registry never saw user AWS"
    );
}

#[test]
fn a_base_and_a_target_on_one_registry_share_one_token() {
    let ecr = Ecr::new();
    let work = tempfile::tempdir().unwrap();
    lambda_like_base(work.path(), "base");
    ecr.reg.push_oci(work.path(), "base", "base:v1", false);
    ecr.fake.add_ecr_repository("base");
    let base = ecr.target("base:v1");
    let (code, stdout, stderr) = ecr.push_on("deps.zip", Some(&base), "fn:v1", &[]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(
        ecr.ecr_calls("GetAuthorizationToken").len(),
        1,
        "one login for the base and the target on one host"
    );
    let config = ecr.reg.config("fn:v1");
    assert_eq!(config["config"]["WorkingDir"], "/var/task");
}

#[test]
fn get_authorization_token_refused_is_a_clear_error() {
    let ecr = Ecr::new();
    ecr.fake.inject(Fault::EcrStatus {
        status: 400,
        error_type: "AccessDeniedException".into(),
        message: "User is not authorized to perform: ecr:GetAuthorizationToken".into(),
    });
    let (code, stdout, stderr) = ecr.push("deps.zip", "fn:v1", &[]);
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("GetAuthorizationToken"), "{stderr}");
    assert!(
        stderr.contains("us-east-1"),
        "the region is not named: {stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");
    assert_eq!(ecr.reg.upload_requests(), 0);
}

#[test]
fn missing_repository_hints_create_repository_which_creates_it() {
    let ecr = Ecr::new();
    let (code, stdout, stderr) = ecr.push("deps.zip", "team/new-fn:v1", &[]);
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("--create-repository"), "no hint: {stderr}");
    assert!(
        stderr.contains("team/new-fn"),
        "the repository is not named: {stderr}"
    );
    assert!(ecr.ecr_calls("CreateRepository").is_empty());
    assert!(
        !ecr.fake
            .ecr_repositories()
            .contains(&"team/new-fn".to_string())
    );
    // NAME_UNKNOWN is final: no blob asks for an upload session twice.
    let requests = ecr.proxy.requests();
    let count = |method: &str, part: &str| {
        requests
            .iter()
            .filter(|r| r.method == method && r.target.contains(part))
            .count()
    };
    let starts = count("POST", "/team/new-fn/blobs/uploads/");
    let blobs = count("HEAD", "/team/new-fn/blobs/sha256:");
    assert!(starts >= 1, "no upload was tried");
    assert!(starts <= blobs, "{starts} upload starts for {blobs} blobs");
    assert!(!stderr.contains("retrying"), "{stderr}");

    let (code, stdout, stderr) = ecr.push("deps.zip", "team/new-fn:v1", &["--create-repository"]);
    assert_eq!(code, 0, "stderr: {stderr}");
    let describe = ecr.ecr_calls("DescribeRepositories");
    let create = ecr.ecr_calls("CreateRepository");
    assert_eq!(describe.len(), 1, "{describe:?}");
    assert_eq!(create.len(), 1, "{create:?}");
    assert_eq!(create[0].region.as_deref(), Some("us-east-1"));
    assert!(
        ecr.fake
            .ecr_repositories()
            .contains(&"team/new-fn".to_string())
    );
    let calls = ecr.fake.requests();
    let pos = |op: &str| {
        calls
            .iter()
            .position(|r| r.target.as_deref().is_some_and(|t| t.ends_with(op)))
            .unwrap()
    };
    assert!(pos("DescribeRepositories") < pos("CreateRepository"));
    let raw = ecr.reg.raw_manifest("team/new-fn:v1");
    assert_eq!(format!("sha256:{}", sha256_hex(&raw)), digest_of(&stdout));

    // Now it exists: --create-repository only looks.
    let (code, _, stderr) = ecr.push("ext.zip", "team/new-fn:v2", &["--create-repository"]);
    assert_eq!(code, 0, "stderr: {stderr}");
    assert_eq!(ecr.ecr_calls("DescribeRepositories").len(), 2);
    assert_eq!(ecr.ecr_calls("CreateRepository").len(), 1, "created twice");
}

#[test]
fn create_repository_on_a_host_that_is_not_ecr_is_a_usage_error_that_creates_nothing() {
    let ecr = Ecr::new();
    // The registry answers on 127.0.0.1, not an ECR host, and nothing says it is an ECR: AWS
    // credentials and a region are there, but no repository may be created with them.
    let mut args = vec!["--region".to_string(), "us-east-1".to_string()];
    args.extend(push_args(
        &["deps.zip"],
        None,
        &ecr.target("team/new-fn:v1"),
    ));
    args.push("--create-repository".into());
    let (code, stdout, stderr) = ecr.home.run(&[&ecr.proxy.host()], &args);
    assert_eq!(code, 2, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("not an ECR registry host") && stderr.contains("--registry-auth ecr"),
        "{stderr}"
    );
    assert!(ecr.ecr_calls("DescribeRepositories").is_empty());
    assert!(ecr.ecr_calls("CreateRepository").is_empty());
    assert_eq!(ecr.reg.upload_requests(), 0);
}

#[test]
fn immutable_tag_refuses_another_digest_and_accepts_the_same() {
    let ecr = Ecr::new();
    ecr.proxy.set_immutable_tags(true);
    let (code, stdout, stderr) = ecr.push("deps.zip", "fn:v1", &[]);
    assert_eq!(code, 0, "stderr: {stderr}");
    let first = digest_of(&stdout);

    let (code, stdout, stderr) = ecr.push("ext.zip", "fn:v1", &[]);
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("immutable"), "{stderr}");
    assert!(stderr.contains("fn:v1"), "the tag is not named: {stderr}");
    assert!(
        stderr.contains(&first),
        "the digest the tag holds is not named: {stderr}"
    );
    assert!(
        ecr.proxy
            .requests()
            .iter()
            .any(|r| r.injected && r.status == 400),
        "the refusal was never served"
    );
    let raw = ecr.reg.raw_manifest("fn:v1");
    assert_eq!(
        format!("sha256:{}", sha256_hex(&raw)),
        first,
        "the tag moved"
    );

    let puts = ecr.manifest_puts();
    let (code, stdout, stderr) = ecr.push("deps.zip", "fn:v1", &["--json"]);
    assert_eq!(code, 0, "the same digest again must succeed: {stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["manifestDigest"], first.as_str());
    assert_eq!(doc["manifestPushed"], false, "{doc}");
    assert!(
        doc["blobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["status"] == "exists"),
        "{doc}"
    );
    assert_eq!(ecr.manifest_puts(), puts, "the manifest was put again");
}
