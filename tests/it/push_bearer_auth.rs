//! Registry auth through the Docker/OCI bearer-token challenge: a fault proxy in bearer-front mode
//! plays a token-authenticated registry (401 with `WWW-Authenticate: Bearer realm=…,service=…`, its
//! own token endpoint) in front of docker-registry's htpasswd auth. Anonymous pushes and `zip` pulls
//! must fetch a token for the right scope, retry with it, and never print it.

use crate::support::fault_proxy::{BEARER_SERVICE, BearerProxy, TokenRequest};
use crate::support::images::lambda_like_base;
use crate::support::registry::{
    PushHome, Registry, basic_auth_secrets, digest_of, push_args, write_docker_config,
};
use crate::support::tools::assert_no_secrets;

fn start() -> (Registry, BearerProxy) {
    let reg = Registry::start();
    let proxy = BearerProxy::start(&reg.host(), &reg.user, &reg.password);
    (reg, proxy)
}

fn anonymous(args: Vec<String>) -> Vec<String> {
    let mut all = vec!["--registry-auth".to_string(), "anonymous".into()];
    all.extend(args);
    all
}

fn scopes(requests: &[TokenRequest]) -> Vec<String> {
    requests.iter().flat_map(|r| r.scopes.clone()).collect()
}

/// Every token request named our service and came without Basic credentials.
fn assert_anonymous_token_requests(requests: &[TokenRequest]) {
    assert!(!requests.is_empty(), "the token endpoint was never asked");
    for r in requests {
        assert_eq!(r.service, BEARER_SERVICE, "{r:?}");
        assert!(!r.basic, "an anonymous run sent Basic credentials: {r:?}");
    }
}

/// The bearer challenge was given, and requests with the token reached the registry and succeeded.
fn assert_forwarded(proxy: &BearerProxy) {
    let requests = proxy.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.injected && r.target.starts_with("/v2/") && r.status == 401),
        "the bearer challenge was never given: {requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| !r.injected && r.target.starts_with("/v2/") && r.status / 100 == 2),
        "no authorized request reached the registry: {requests:?}"
    );
}

#[test]
fn anonymous_push_through_a_bearer_challenge_uses_a_pull_push_token() {
    let (reg, proxy) = start();
    let home = PushHome::default(); // empty DOCKER_CONFIG directory
    let host = proxy.host();
    let target = format!("{host}/lambda/bearer:v1");
    let args = anonymous(push_args(&["deps.zip"], None, &target));
    let (code, stdout, stderr) = home.run(&[&host], &args);
    assert_eq!(code, 0, "push failed\nstdout: {stdout}\nstderr: {stderr}");
    let digest = stdout
        .strip_suffix('\n')
        .and_then(|l| l.strip_prefix(&format!("{host}/lambda/bearer@")))
        .unwrap_or_else(|| panic!("stdout is not {host}/lambda/bearer@sha256:…: {stdout:?}"));

    let tokens = proxy.token_requests();
    assert_anonymous_token_requests(&tokens);
    assert!(
        scopes(&tokens).contains(&"repository:lambda/bearer:pull,push".to_string()),
        "no pull,push token requested: {tokens:?}"
    );
    assert_forwarded(&proxy);

    // skopeo, straight to the registry with Basic credentials, sees what layerport reported.
    let raw = reg.raw_manifest("lambda/bearer:v1");
    assert_eq!(digest_of(&raw), digest);
}

#[test]
fn auto_auth_with_an_empty_docker_config_also_answers_the_bearer_challenge() {
    let (reg, proxy) = start();
    let home = PushHome::default();
    let host = proxy.host();
    let target = format!("{host}/auto/app:v1");
    let doc = home.push_json(&[&host], &push_args(&["deps.zip"], None, &target));
    let tokens = proxy.token_requests();
    assert_anonymous_token_requests(&tokens);
    assert!(
        scopes(&tokens).contains(&"repository:auto/app:pull,push".to_string()),
        "{tokens:?}"
    );
    let raw = reg.raw_manifest("auto/app:v1");
    let json = doc.to_string();
    assert!(
        json.contains(&digest_of(&raw)),
        "the registry's digest is not in the push JSON: {json}"
    );
}

#[test]
fn a_base_and_a_target_on_one_bearer_registry_share_one_token_which_also_mounts() {
    let (reg, proxy) = start();
    let seeder = PushHome::default();
    reg.docker_config(&seeder.docker_dir(), &[]);
    let work = tempfile::tempdir().unwrap();
    lambda_like_base(work.path(), "base");
    reg.push_oci(work.path(), "base", "lambda/base:v1", false);

    let home = PushHome::default();
    let host = proxy.host();
    let base = format!("{host}/lambda/base:v1");
    let args = anonymous(push_args(
        &["deps.zip"],
        Some(&base),
        &format!("{host}/lambda/app:v1"),
    ));
    let mut args = args;
    args.push("--json".into());
    let (code, stdout, stderr) = home.run(&[&host], &args);
    assert_eq!(code, 0, "push failed\nstdout: {stdout}\nstderr: {stderr}");
    let tokens = proxy.token_requests();
    assert_anonymous_token_requests(&tokens);
    assert_eq!(
        tokens.len(),
        1,
        "one token for the base and the target: {tokens:?}"
    );
    let mut asked = tokens[0].scopes.clone();
    asked.sort();
    assert_eq!(
        asked,
        [
            "repository:lambda/app:pull,push",
            "repository:lambda/base:pull"
        ]
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let mounted = doc["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["status"] == "mounted")
        .count();
    assert_eq!(mounted, 2, "the base layers were not mounted: {doc}");
}

#[test]
fn anonymous_zip_through_a_bearer_challenge_uses_a_pull_token() {
    let (reg, proxy) = start();
    // Seed the image straight into the registry with Basic credentials.
    let seeder = PushHome::default();
    reg.docker_config(&seeder.docker_dir(), &[]);
    let direct = reg.host();
    seeder.push_json(
        &[&direct],
        &push_args(&["deps.zip"], None, &format!("{direct}/fn/zipme:v1")),
    );

    let home = PushHome::default();
    let host = proxy.host();
    let source = format!("{host}/fn/zipme:v1");
    let args = anonymous(vec!["zip".into(), source, "-o".into(), "x.zip".into()]);
    let (code, stdout, stderr) = home.run(&[&host], &args);
    assert_eq!(code, 0, "zip failed\nstdout: {stdout}\nstderr: {stderr}");
    assert_eq!(stdout.trim(), "x.zip");
    let zip = std::fs::read(home.path("x.zip")).expect("x.zip written");
    assert!(zip.starts_with(b"PK"), "x.zip is not a zip");

    let tokens = proxy.token_requests();
    assert_anonymous_token_requests(&tokens);
    for t in &tokens {
        assert_eq!(
            t.scopes,
            ["repository:fn/zipme:pull"],
            "a pull needs only pull: {t:?}"
        );
    }
    assert_forwarded(&proxy);
}

#[test]
fn the_bearer_token_never_reaches_stdout_or_stderr() {
    // Anonymous: layerport never sees the registry's password (only the proxy holds it), so only
    // the token is looked for here; credentials from a Docker config are checked below.
    let (_reg, proxy) = start();
    let home = PushHome::default();
    let host = proxy.host();
    let token = proxy.token();

    let target = format!("{host}/secret/app:v1");
    let mut args = vec!["-vv".to_string()];
    args.extend(anonymous(push_args(&["deps.zip"], None, &target)));
    let (code, stdout, stderr) = home.run(&[&host], &args);
    assert_eq!(code, 0, "push failed\nstdout: {stdout}\nstderr: {stderr}");
    assert!(!proxy.token_requests().is_empty(), "no token was fetched");
    assert!(
        stderr.to_ascii_lowercase().contains("debug"),
        "-vv gave no debug output: {stderr}"
    );
    assert_no_secrets(&[&token], &[&stdout, &stderr]);

    let args = vec![
        "-vv".to_string(),
        "--registry-auth".into(),
        "anonymous".into(),
        "zip".into(),
        target,
        "-o".into(),
        "x.zip".into(),
    ];
    let (code, stdout, stderr) = home.run(&[&host], &args);
    assert_eq!(code, 0, "zip failed\nstdout: {stdout}\nstderr: {stderr}");
    assert_no_secrets(&[&token], &[&stdout, &stderr]);
}

#[test]
fn docker_config_credentials_for_a_bearer_registry_never_reach_stdout_or_stderr() {
    let (reg, proxy) = start();
    let home = PushHome::default();
    let host = proxy.host();
    write_docker_config(
        &home.docker_dir(),
        &[(host.clone(), reg.user.clone(), reg.password.clone())],
    );
    let mut secrets = basic_auth_secrets(&reg.user, &reg.password);
    secrets.push(proxy.token());

    let target = format!("{host}/creds/app:v1");
    let mut args = vec!["-vv".to_string()];
    args.extend(push_args(&["deps.zip"], None, &target));
    let (code, stdout, stderr) = home.run(&[&host], &args);
    assert_eq!(code, 0, "push failed\nstdout: {stdout}\nstderr: {stderr}");
    assert!(
        stderr.to_ascii_lowercase().contains("debug"),
        "-vv gave no debug output: {stderr}"
    );
    // The Docker config's credentials were really used: Basic, to the token endpoint.
    let tokens = proxy.token_requests();
    assert!(!tokens.is_empty(), "the token endpoint was never asked");
    for t in &tokens {
        assert_eq!(t.service, BEARER_SERVICE, "{t:?}");
        assert_eq!(
            t.basic_user.as_deref(),
            Some(reg.user.as_str()),
            "a token request without the Docker config's credentials: {t:?}"
        );
    }
    assert_forwarded(&proxy);
    assert_no_secrets(&secrets, &[&stdout, &stderr]);

    let args = ["-vv", "zip", target.as_str(), "-o", "x.zip"];
    let (code, stdout, stderr) = home.run(&[&host], &args);
    assert_eq!(code, 0, "zip failed\nstdout: {stdout}\nstderr: {stderr}");
    assert_eq!(stdout.trim(), "x.zip");
    assert_no_secrets(&secrets, &[&stdout, &stderr]);
}
