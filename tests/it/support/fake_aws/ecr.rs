//! ECR (awsJson1.1): GetAuthorizationToken, DescribeRepositories and CreateRepository, enough for
//! pushing images with the real SDK.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use super::http::{Request, Response};
use super::util::now_epoch;
use super::{ACCOUNT, Fault, State};

pub(super) fn ecr_error(status: u16, error_type: &str, message: &str) -> Response {
    Response::new(
        status,
        "application/x-amz-json-1.1",
        json!({"__type": error_type, "message": message})
            .to_string()
            .into_bytes(),
    )
}

pub(super) fn ecr_token(password: &str) -> String {
    B64.encode(format!("AWS:{password}"))
}

pub(super) fn ecr(
    st: &mut State,
    req: &Request,
    target: &str,
    signed: bool,
    region: Option<&str>,
) -> Response {
    let Some(op) = target.strip_prefix("AmazonEC2ContainerRegistry_V20150921.") else {
        return ecr_error(
            400,
            "UnknownOperationException",
            &format!("unknown target {target}"),
        );
    };
    if !signed {
        return ecr_error(
            400,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        );
    }
    if let Some(Fault::EcrStatus {
        status,
        error_type,
        message,
    }) = st.take_fault(|f| matches!(f, Fault::EcrStatus { .. }))
    {
        return ecr_error(status, &error_type, &message);
    }
    let region = region.unwrap_or("us-east-1");
    let input: Value = if req.body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&req.body) {
            Ok(v) => v,
            Err(e) => return ecr_error(400, "SerializationException", &e.to_string()),
        }
    };
    let ok = |v: Value| {
        Response::new(
            200,
            "application/x-amz-json-1.1",
            v.to_string().into_bytes(),
        )
    };
    let repo_json = |name: &str, created: f64| {
        json!({
            "repositoryArn": format!("arn:aws:ecr:{region}:{ACCOUNT}:repository/{name}"),
            "registryId": ACCOUNT,
            "repositoryName": name,
            "repositoryUri": format!("{ACCOUNT}.dkr.ecr.{region}.amazonaws.com/{name}"),
            "createdAt": created,
            "imageTagMutability": "MUTABLE",
            "imageScanningConfiguration": {"scanOnPush": false},
            "encryptionConfiguration": {"encryptionType": "AES256"},
        })
    };
    match op {
        "GetAuthorizationToken" => {
            let proxy = st
                .ecr_proxy_endpoint
                .clone()
                .unwrap_or_else(|| format!("https://{ACCOUNT}.dkr.ecr.{region}.amazonaws.com"));
            ok(json!({"authorizationData": [{
                "authorizationToken": ecr_token(&st.ecr_password),
                "expiresAt": now_epoch() + 12.0 * 3600.0,
                "proxyEndpoint": proxy,
            }]}))
        }
        "DescribeRepositories" => {
            let names: Option<Vec<String>> = input["repositoryNames"].as_array().map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            });
            let mut repos = Vec::new();
            match names {
                Some(names) => {
                    for n in names {
                        let Some(created) = st.ecr_repositories.get(&n) else {
                            return ecr_error(
                                400,
                                "RepositoryNotFoundException",
                                &format!(
                                    "The repository with name '{n}' does not exist in the registry with id '{ACCOUNT}'"
                                ),
                            );
                        };
                        repos.push(repo_json(&n, *created));
                    }
                }
                None => repos.extend(st.ecr_repositories.iter().map(|(n, c)| repo_json(n, *c))),
            }
            ok(json!({ "repositories": repos }))
        }
        "CreateRepository" => {
            let Some(name) = input["repositoryName"].as_str() else {
                return ecr_error(
                    400,
                    "InvalidParameterException",
                    "repositoryName is required",
                );
            };
            if st.ecr_repositories.contains_key(name) {
                return ecr_error(
                    400,
                    "RepositoryAlreadyExistsException",
                    &format!(
                        "The repository with name '{name}' already exists in the registry with id '{ACCOUNT}'"
                    ),
                );
            }
            let created = now_epoch();
            st.ecr_repositories.insert(name.into(), created);
            ok(json!({ "repository": repo_json(name, created) }))
        }
        _ => ecr_error(
            400,
            "UnknownOperationException",
            &format!("the fake does not implement {op}"),
        ),
    }
}
