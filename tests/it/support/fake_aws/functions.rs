//! The Lambda function APIs (restJson1) that `layerport migrate` calls: GetFunction,
//! GetFunctionConfiguration, CreateFunction, UpdateFunctionCode, and the read-only calls behind the
//! "move by hand" report (event source mappings, policy, aliases, URL, provisioned concurrency,
//! code signing, tags). Paths, query names and JSON members follow `aws-sdk-lambda` 1.156's
//! serialisers; error bodies use each exception's own `message`/`Message` member.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::function_state::{
    FUNCTION_NAME_PATTERN, FunctionCode, FunctionRef, FunctionSpec, Lifecycle, Outcome,
    StoredFunction, VersionConfig, configuration_json, parse_function_name,
};
use super::function_write::{create_function, update_function_code};
use super::http::{Request, Response};
use super::lambda::presigned_location;
use super::util::{hex, percent_decode, query_pairs};
use super::{ACCOUNT, Fault, State};

/// Whether a path belongs to the function APIs (as opposed to layers, downloads, ECR, S3).
pub(super) fn is_function_path(path: &str) -> bool {
    [
        "/2015-03-31/functions",
        "/2015-03-31/event-source-mappings",
        "/2021-10-31/functions/",
        "/2019-09-30/functions/",
        "/2020-06-30/functions/",
        "/2017-03-31/tags/",
    ]
    .iter()
    .any(|p| path.starts_with(p))
}

/// Lambda's error response: `x-amzn-ErrorType` plus `{"Type": "User"|"Service", <message>}`, the
/// message member spelt as the exception's model spells it (`Message` for ResourceNotFound,
/// Service, CodeSigningConfigNotFound; `message` for the others). AccessDenied, which Lambda's model
/// does not declare, comes as `{"Message": ..}` alone.
pub(super) fn fn_error(status: u16, error_type: &str, message: &str) -> Response {
    let body = match error_type {
        "AccessDeniedException" => json!({ "Message": message }),
        "ResourceNotFoundException"
        | "ServiceException"
        | "CodeSigningConfigNotFoundException"
        | "KMSNotFoundException" => json!({"Type": kind(status), "Message": message}),
        "TooManyRequestsException" => {
            json!({"Type": kind(status), "message": message, "Reason": "CallerRateLimitExceeded"})
        }
        _ => json!({"Type": kind(status), "message": message}),
    };
    Response::json(status, &body).header("x-amzn-ErrorType", error_type)
}

fn kind(status: u16) -> &'static str {
    if status >= 500 { "Service" } else { "User" }
}

pub(super) fn not_found(what: &str) -> Response {
    fn_error(
        404,
        "ResourceNotFoundException",
        &format!("Function not found: {what}"),
    )
}

pub(super) fn validation(value: &str, member: &str, constraint: &str) -> Response {
    fn_error(
        400,
        "ValidationException",
        &format!(
            "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
        ),
    )
}

pub(super) fn invalid(message: &str) -> Response {
    fn_error(400, "InvalidParameterValueException", message)
}

/// The message IAM gives when the caller's identity policy lacks `lambda:<action>`.
pub(super) fn access_denied_message(action: &str, resource: &str) -> String {
    format!(
        "User: arn:aws:sts::{ACCOUNT}:assumed-role/fake/session is not authorized to perform: \
         lambda:{action} on resource: {resource} because no identity-based policy allows the \
         lambda:{action} action"
    )
}

enum Op {
    GetFunction(String),
    GetConfiguration(String),
    Create,
    UpdateCode(String),
    ListEventSourceMappings,
    GetPolicy(String),
    ListAliases(String),
    GetUrl(String),
    ListProvisioned(String),
    GetCodeSigning(String),
    ListTags(String),
}

impl Op {
    /// The operation name, which is also its IAM action.
    fn name(&self) -> &'static str {
        match self {
            Op::GetFunction(_) => "GetFunction",
            Op::GetConfiguration(_) => "GetFunctionConfiguration",
            Op::Create => "CreateFunction",
            Op::UpdateCode(_) => "UpdateFunctionCode",
            Op::ListEventSourceMappings => "ListEventSourceMappings",
            Op::GetPolicy(_) => "GetPolicy",
            Op::ListAliases(_) => "ListAliases",
            Op::GetUrl(_) => "GetFunctionUrlConfig",
            Op::ListProvisioned(_) => "ListProvisionedConcurrencyConfigs",
            Op::GetCodeSigning(_) => "GetFunctionCodeSigningConfig",
            Op::ListTags(_) => "ListTags",
        }
    }

    fn function_name(&self) -> Option<&str> {
        match self {
            Op::GetFunction(n)
            | Op::GetConfiguration(n)
            | Op::UpdateCode(n)
            | Op::GetPolicy(n)
            | Op::ListAliases(n)
            | Op::GetUrl(n)
            | Op::ListProvisioned(n)
            | Op::GetCodeSigning(n)
            | Op::ListTags(n) => Some(n),
            Op::Create | Op::ListEventSourceMappings => None,
        }
    }
}

/// The function operation a request is routed to, if any.
pub(super) fn operation_name(req: &Request) -> Option<&'static str> {
    route(req).map(|op| op.name())
}

fn route(req: &Request) -> Option<Op> {
    // Path parameters arrive percent-encoded (`:` as %3A); decode per segment.
    let segs: Vec<String> = req
        .path
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let n = |s: &&str| s.to_string();
    Some(match (req.method.as_str(), segs.as_slice()) {
        ("GET", ["2015-03-31", "functions", f]) => Op::GetFunction(n(f)),
        ("GET", ["2015-03-31", "functions", f, "configuration"]) => Op::GetConfiguration(n(f)),
        ("POST", ["2015-03-31", "functions"]) => Op::Create,
        ("PUT", ["2015-03-31", "functions", f, "code"]) => Op::UpdateCode(n(f)),
        ("GET", ["2015-03-31", "event-source-mappings"]) => Op::ListEventSourceMappings,
        ("GET", ["2015-03-31", "functions", f, "policy"]) => Op::GetPolicy(n(f)),
        ("GET", ["2015-03-31", "functions", f, "aliases"]) => Op::ListAliases(n(f)),
        ("GET", ["2021-10-31", "functions", f, "url"]) => Op::GetUrl(n(f)),
        ("GET", ["2019-09-30", "functions", f, "provisioned-concurrency"]) => {
            Op::ListProvisioned(n(f))
        }
        ("GET", ["2020-06-30", "functions", f, "code-signing-config"]) => Op::GetCodeSigning(n(f)),
        ("GET", ["2017-03-31", "tags", arn]) => Op::ListTags(n(arn)),
        _ => return None,
    })
}

pub(super) fn functions(
    st: &mut State,
    endpoint: &str,
    req: &Request,
    signed: bool,
    region: Option<&str>,
) -> Response {
    let Some(op) = route(req) else {
        return fn_error(404, "UnknownOperationException", "Unknown operation");
    };
    // Recorded before anything can refuse them: tests assert on what the client sent.
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    match &op {
        Op::Create => st.create_requests.push(body.clone()),
        Op::UpdateCode(name) => st.update_code_requests.push((name.clone(), body.clone())),
        _ => {}
    }
    if !signed {
        return fn_error(
            403,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        );
    }
    let region = region.unwrap_or("us-east-1");
    let q = query_pairs(&req.query);
    let qget = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());

    if st.denied_actions.contains(op.name()) {
        let resource = match (&op, op.function_name()) {
            (Op::Create, _) => body["FunctionName"]
                .as_str()
                .and_then(|n| parse_function_name(n, region))
                .map(|r| r.arn)
                .unwrap_or_default(),
            (_, Some(name)) => parse_function_name(name, region)
                .map(|r| match qget("Qualifier") {
                    Some(q) => format!("{}:{q}", r.arn),
                    None => r.qualified_arn(),
                })
                .unwrap_or_else(|| name.to_string()),
            _ => format!("arn:aws:lambda:{region}:{ACCOUNT}:event-source-mapping:*"),
        };
        return fn_error(
            403,
            "AccessDeniedException",
            &access_denied_message(op.name(), &resource),
        );
    }
    let name = op.name();
    match st.take_fault(|f| f.is_lambda_status() || f.is_lambda_operation(name)) {
        Some(Fault::LambdaStatus {
            status,
            error_type,
            message,
        })
        | Some(Fault::LambdaOperation {
            status,
            error_type,
            message,
            ..
        }) => return fn_error(status, &error_type, &message),
        Some(Fault::LambdaRaw { status, body }) => {
            return Response::new(status, "text/html", body.into_bytes());
        }
        _ => {}
    }

    match op {
        Op::GetFunction(f) => get_function(st, endpoint, &f, qget("Qualifier"), region),
        Op::GetConfiguration(f) => match read_config(st, &f, qget("Qualifier"), region) {
            Ok((config, _)) => Response::json(200, &config),
            Err(resp) => resp,
        },
        Op::Create => create_function(st, &req.body, region),
        Op::UpdateCode(f) => update_function_code(st, &f, &req.body, region),
        Op::ListEventSourceMappings => list_event_source_mappings(st, &qget, region),
        Op::GetPolicy(f) => with_function(st, &f, qget("Qualifier"), region, |func, _| {
            if func.policy.is_empty() {
                return fn_error(
                    404,
                    "ResourceNotFoundException",
                    "The resource you requested does not exist.",
                );
            }
            let doc = json!({"Version": "2012-10-17", "Id": "default", "Statement": func.policy});
            Response::json(
                200,
                &json!({"Policy": doc.to_string(), "RevisionId": func.policy_revision}),
            )
        }),
        Op::ListAliases(f) => with_unqualified(st, &f, region, |func| {
            let filter = qget("FunctionVersion");
            let aliases: Vec<Value> = func
                .aliases
                .iter()
                .filter(|(_, a)| filter.as_ref().is_none_or(|v| *v == a.version))
                .map(|(name, a)| {
                    json!({
                        "AliasArn": format!("{}:{name}", func.arn()),
                        "Name": name,
                        "FunctionVersion": a.version,
                        "Description": a.description,
                        "RevisionId": a.revision_id,
                    })
                })
                .collect();
            Response::json(200, &json!({ "Aliases": aliases }))
        }),
        Op::GetUrl(f) => with_function(st, &f, qget("Qualifier"), region, |func, r| {
            let key = r.qualifier.clone().unwrap_or_default();
            match func.urls.get(&key) {
                Some(u) => Response::json(
                    200,
                    &json!({
                        "FunctionUrl": u.url,
                        "FunctionArn": r.qualified_arn(),
                        "AuthType": u.auth_type,
                        "CreationTime": u.created,
                        "LastModifiedTime": u.created,
                        "InvokeMode": "BUFFERED",
                    }),
                ),
                None => fn_error(
                    404,
                    "ResourceNotFoundException",
                    "The resource you requested does not exist.",
                ),
            }
        }),
        Op::ListProvisioned(f) => with_unqualified(st, &f, region, |func| {
            let configs: Vec<Value> = func
                .provisioned
                .iter()
                .map(|(q, n)| {
                    json!({
                        "FunctionArn": format!("{}:{q}", func.arn()),
                        "RequestedProvisionedConcurrentExecutions": n,
                        "AvailableProvisionedConcurrentExecutions": n,
                        "AllocatedProvisionedConcurrentExecutions": n,
                        "Status": "READY",
                        "LastModified": func.latest.last_modified,
                    })
                })
                .collect();
            Response::json(200, &json!({ "ProvisionedConcurrencyConfigs": configs }))
        }),
        Op::GetCodeSigning(f) => with_unqualified(st, &f, region, |func| {
            let spec = &func.latest.spec;
            Response::json(
                200,
                &json!({
                    "CodeSigningConfigArn": spec.code_signing_config_arn.clone().unwrap_or_default(),
                    "FunctionName": spec.name,
                }),
            )
        }),
        Op::ListTags(arn) => with_unqualified(st, &arn, region, |func| {
            Response::json(200, &json!({ "Tags": func.latest.spec.tags }))
        }),
    }
}

/// Resolves a FunctionName (and the `Qualifier` query parameter) the way Lambda does.
pub(super) fn resolve_name(
    name: &str,
    qualifier: Option<String>,
    region: &str,
) -> Result<FunctionRef, Response> {
    let Some(mut r) = parse_function_name(name, region) else {
        return Err(validation(
            name,
            "functionName",
            &format!("Member must satisfy regular expression pattern: {FUNCTION_NAME_PATTERN}"),
        ));
    };
    if r.region != region {
        return Err(fn_error(
            404,
            "ResourceNotFoundException",
            &format!(
                "Functions from '{}' are not reachable in this region ('{region}')",
                r.region
            ),
        ));
    }
    match (&r.qualifier, qualifier) {
        (Some(a), Some(b)) if *a != b => {
            return Err(invalid(
                "The derived qualifier from the function name does not match the specified qualifier.",
            ));
        }
        (None, Some(b)) => r.qualifier = Some(b),
        _ => {}
    }
    Ok(r)
}

fn with_function(
    st: &mut State,
    name: &str,
    qualifier: Option<String>,
    region: &str,
    f: impl FnOnce(&StoredFunction, &FunctionRef) -> Response,
) -> Response {
    let r = match resolve_name(name, qualifier, region) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    match st.functions.get(&r.arn) {
        Some(func) if func.resolve(r.qualifier.as_deref()).is_some() => f(func, &r),
        _ => not_found(&r.qualified_arn()),
    }
}

fn with_unqualified(
    st: &mut State,
    name: &str,
    region: &str,
    f: impl FnOnce(&StoredFunction) -> Response,
) -> Response {
    let r = match resolve_name(name, None, region) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if r.qualifier.is_some() {
        return invalid(&format!(
            "fake AWS: this operation takes an unqualified function name, got {name}"
        ));
    }
    match st.functions.get(&r.arn) {
        Some(func) => f(func),
        None => not_found(&r.arn),
    }
}

/// One read of a function's configuration: advances $LATEST's state machine, then renders.
/// Returns the configuration and the version it came from.
fn read_config(
    st: &mut State,
    name: &str,
    qualifier: Option<String>,
    region: &str,
) -> Result<(Value, VersionConfig), Response> {
    let r = resolve_name(name, qualifier, region)?;
    let Some(func) = st.functions.get_mut(&r.arn) else {
        return Err(not_found(&r.qualified_arn()));
    };
    let Some((_, _, is_latest)) = func.resolve(r.qualifier.as_deref()) else {
        return Err(not_found(&r.qualified_arn()));
    };
    if is_latest {
        func.lifecycle.tick();
    }
    let (v, version, is_latest) = func
        .resolve(r.qualifier.as_deref())
        .expect("resolved above");
    let lifecycle = if is_latest {
        func.lifecycle.clone()
    } else {
        Lifecycle::active()
    };
    let config = configuration_json(v, &r.qualified_arn(), &version, &lifecycle);
    Ok((config, v.clone()))
}

fn get_function(
    st: &mut State,
    endpoint: &str,
    name: &str,
    qualifier: Option<String>,
    region: &str,
) -> Response {
    let (mut config, v) = match read_config(st, name, qualifier, region) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let code = match &v.spec.code {
        FunctionCode::Zip { .. } => {
            match st.take_fault(Fault::is_function_content) {
                Some(Fault::WrongFunctionCodeSha256) => {
                    config["CodeSha256"] = json!(B64.encode(Sha256::digest(b"not the code zip")));
                }
                Some(Fault::WrongFunctionCodeSize) => {
                    config["CodeSize"] = json!(v.zip.len() + 1);
                }
                _ => {}
            }
            let location = presigned_location(
                endpoint,
                &v.download_path,
                &v.signature,
                &v.revision_id,
                &v.spec.region,
            );
            json!({"RepositoryType": "S3", "Location": location})
        }
        FunctionCode::Image {
            image_uri,
            resolved_image_uri,
        } => json!({
            "RepositoryType": "ECR",
            "ImageUri": image_uri,
            "ResolvedImageUri": resolved_image_uri,
        }),
    };
    let mut out = json!({"Configuration": config, "Code": code});
    if !v.spec.tags.is_empty() {
        out["Tags"] = json!(v.spec.tags);
    }
    if let Some(n) = v.spec.reserved_concurrency {
        out["Concurrency"] = json!({ "ReservedConcurrentExecutions": n });
    }
    Response::json(200, &out)
}

fn list_event_source_mappings(
    st: &State,
    qget: &dyn Fn(&str) -> Option<String>,
    region: &str,
) -> Response {
    let function = match qget("FunctionName") {
        Some(f) => match resolve_name(&f, None, region) {
            Ok(r) => Some(r),
            Err(resp) => return resp,
        },
        None => None,
    };
    let source = qget("EventSourceArn");
    let max: usize = qget("MaxItems")
        .and_then(|m| m.parse().ok())
        .unwrap_or(100)
        .clamp(1, 10_000);
    let start: usize = qget("Marker").and_then(|m| m.parse().ok()).unwrap_or(0);
    let matching: Vec<&Value> = st
        .event_source_mappings
        .iter()
        .filter(|m| {
            let farn = m["FunctionArn"].as_str().unwrap_or_default();
            function.as_ref().is_none_or(|r| match &r.qualifier {
                Some(_) => farn == r.qualified_arn(),
                None => farn == r.arn || farn.starts_with(&format!("{}:", r.arn)),
            })
        })
        .filter(|m| source.as_ref().is_none_or(|s| m["EventSourceArn"] == *s))
        .collect();
    let page: Vec<&Value> = matching.iter().skip(start).take(max).copied().collect();
    let mut body = json!({ "EventSourceMappings": page });
    if matching.len() > start + max {
        body["NextMarker"] = json!((start + max).to_string());
    }
    Response::json(200, &body)
}

/// A new version (or $LATEST) config with its zip registered for presigned download.
pub(super) fn store_version_config(
    st: &mut State,
    spec: FunctionSpec,
    layers: Vec<(String, i64)>,
) -> VersionConfig {
    st.version_nonce += 1;
    let v = VersionConfig::new(spec, layers, st.version_nonce);
    if !v.is_image() {
        st.downloads.insert(
            v.download_path.clone(),
            (v.zip.clone(), v.signature.clone()),
        );
    }
    v
}

/// Snapshots $LATEST as the next version number.
pub(super) fn publish_version(st: &mut State, arn: &str) -> Option<u64> {
    let latest = st.functions.get(arn)?.latest.clone();
    st.version_nonce += 1;
    let mut v = latest;
    v.revision_id = {
        let h = hex(&Sha256::digest(
            format!("{}:{}", v.revision_id, st.version_nonce).as_bytes(),
        ));
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    };
    let func = st.functions.get_mut(arn)?;
    let n = func.versions.keys().next_back().copied().unwrap_or(0) + 1;
    func.versions.insert(n, v);
    Some(n)
}

/// Layer ARNs of a zip function with their CodeSize, `Err(arn)` for one the fake does not hold.
pub(super) fn layer_sizes(st: &State, arns: &[String]) -> Result<Vec<(String, i64)>, String> {
    arns.iter()
        .map(|arn| {
            super::lambda::parse_layer_arn(arn)
                .and_then(|a| st.layers.get(&a.layer_arn)?.get(&a.version?).cloned())
                .map(|v| (arn.clone(), v.zip.len() as i64))
                .ok_or_else(|| arn.clone())
        })
        .collect()
}

/// How the next create/update ends: a queued `Function*Fails` fault, else success.
pub(super) fn next_outcome(st: &mut State, create: bool) -> Outcome {
    let fault = st.take_fault(|f| {
        if create {
            matches!(f, Fault::FunctionCreateFails { .. })
        } else {
            matches!(f, Fault::FunctionUpdateFails { .. })
        }
    });
    match fault {
        Some(Fault::FunctionCreateFails {
            reason_code,
            reason,
        })
        | Some(Fault::FunctionUpdateFails {
            reason_code,
            reason,
        }) => Outcome::Fails(reason_code, reason),
        _ => Outcome::Succeeds,
    }
}
