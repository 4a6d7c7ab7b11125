//! The Lambda layer APIs (restJson1): Get/List/Publish layer versions, layer ARN parsing, and the
//! JSON shapes and presigned `Content.Location` URLs Lambda returns.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::SystemTime;

use super::http::{Request, Response};
use super::util::{amz_date, hex, iso8601_lambda, percent_decode, query_pairs};
use super::{ACCOUNT, Fault, PRESIGN_TOKEN, State, StoredLayerVersion};

/// Lambda's error shape: the SDK takes the code from the `x-amzn-ErrorType` header first, then body
/// `code`, then `__type`; Lambda itself sends the header plus `{"Type":..,"message":..}`. We send
/// header and `__type` so either path yields the same code.
pub(super) fn lambda_error(status: u16, error_type: &str, message: &str) -> Response {
    let kind = if status >= 500 { "Service" } else { "User" };
    Response::json(
        status,
        &json!({"Type": kind, "__type": error_type, "message": message}),
    )
    .header("x-amzn-ErrorType", error_type)
}

pub(super) fn access_denied_message(arn: &str) -> String {
    format!(
        "User: arn:aws:sts::{ACCOUNT}:assumed-role/fake/session is not authorized to perform: \
         lambda:GetLayerVersion on resource: {arn} because no resource-based policy allows the \
         lambda:GetLayerVersion action"
    )
}

pub(super) enum LambdaOp {
    GetByArn(String),
    Get(String, String),
    List(String),
    Publish(String),
    ListLayers,
}

pub(super) fn lambda(
    st: &mut State,
    endpoint: &str,
    req: &Request,
    signed: bool,
    region: Option<&str>,
) -> Response {
    let segs: Vec<String> = req
        .path
        .trim_start_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let q = query_pairs(&req.query);
    let qget = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let op = match (req.method.as_str(), segs.as_slice()) {
        ("GET", ["2018-10-31", "layers"]) if qget("find").as_deref() == Some("LayerVersion") => {
            LambdaOp::GetByArn(qget("Arn").unwrap_or_default())
        }
        ("GET", ["2018-10-31", "layers"]) => LambdaOp::ListLayers,
        ("GET", ["2018-10-31", "layers", name, "versions"]) => LambdaOp::List(name.to_string()),
        ("POST", ["2018-10-31", "layers", name, "versions"]) => LambdaOp::Publish(name.to_string()),
        ("GET", ["2018-10-31", "layers", name, "versions", n]) => {
            LambdaOp::Get(name.to_string(), n.to_string())
        }
        _ => return lambda_error(404, "UnknownOperationException", "Unknown operation"),
    };
    if !signed {
        return lambda_error(
            403,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        );
    }
    let region = region.unwrap_or("us-east-1");

    // Resolve the version a content-returning op refers to, so a WrongCode* fault is only consumed
    // by a response that actually carries content.
    let target: Result<Option<(String, i64)>, Response> = match &op {
        LambdaOp::GetByArn(arn) => match parse_layer_arn(arn) {
            Some(LayerArn {
                version: Some(v),
                layer_arn,
                region: arn_region,
                ..
            }) => {
                // Real Lambda answers a layer from another region as a permission problem.
                if arn_region != region || st.denied_layers.contains(arn.as_str()) {
                    Err(lambda_error(
                        403,
                        "AccessDeniedException",
                        &access_denied_message(arn),
                    ))
                } else {
                    Ok(Some((layer_arn, v)))
                }
            }
            _ => Err(lambda_error(
                400,
                "ValidationException",
                &arn_validation_message(arn),
            )),
        },
        LambdaOp::Get(name, n) => match (resolve_layer_name(name, region), n.parse::<i64>()) {
            (Some(layer_arn), Ok(v)) => Ok(Some((layer_arn, v))),
            _ => Err(lambda_error(
                400,
                "InvalidParameterValueException",
                "Invalid layer name or version number",
            )),
        },
        _ => Ok(None),
    };
    let found = match &target {
        Ok(Some((layer_arn, v))) => st.layers.get(layer_arn).and_then(|m| m.get(v)).cloned(),
        _ => None,
    };
    let has_content = found.is_some();
    match st.take_fault(|f| f.is_lambda_status() || (has_content && f.is_content())) {
        Some(Fault::LambdaStatus {
            status,
            error_type,
            message,
        }) => {
            return lambda_error(status, &error_type, &message);
        }
        Some(Fault::LambdaRaw { status, body }) => {
            return Response::new(status, "text/html", body.into_bytes());
        }
        Some(Fault::LocationBase { base }) => {
            if let Some(v) = &found {
                return Response::json(200, &layer_version_json(v, &base, None));
            }
        }
        Some(fault) => {
            if let Some(v) = &found {
                return Response::json(200, &layer_version_json(v, endpoint, Some(&fault)));
            }
        }
        None => {}
    }
    let target = match target {
        Ok(t) => t,
        Err(resp) => return resp,
    };

    match op {
        LambdaOp::GetByArn(_) | LambdaOp::Get(..) => match found {
            Some(v) => Response::json(200, &layer_version_json(&v, endpoint, None)),
            None => {
                let (layer_arn, v) = target.expect("content ops resolve a target");
                lambda_error(
                    404,
                    "ResourceNotFoundException",
                    &format!("The resource you requested does not exist. ({layer_arn}:{v})"),
                )
            }
        },
        LambdaOp::List(name) => {
            let Some(layer_arn) = resolve_layer_name(&name, region) else {
                return lambda_error(400, "InvalidParameterValueException", "Invalid layer name");
            };
            let arch = qget("CompatibleArchitecture");
            let runtime = qget("CompatibleRuntime");
            let max: usize = qget("MaxItems")
                .and_then(|m| m.parse().ok())
                .unwrap_or(50)
                .clamp(1, 50);
            let marker: Option<i64> = qget("Marker").and_then(|m| m.parse().ok());
            // Newest first, as Lambda lists them.
            let matching: Vec<StoredLayerVersion> = st
                .layers
                .get(&layer_arn)
                .map(|m| m.values().rev().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
                .into_iter()
                .filter(|v| {
                    arch.as_ref()
                        .is_none_or(|a| v.compatible_architectures.contains(a))
                })
                .filter(|v| {
                    runtime
                        .as_ref()
                        .is_none_or(|r| v.compatible_runtimes.contains(r))
                })
                .filter(|v| marker.is_none_or(|m| v.version < m))
                .collect();
            let page: Vec<Value> = matching.iter().take(max).map(list_item_json).collect();
            let mut body = json!({ "LayerVersions": page });
            if matching.len() > max {
                body["NextMarker"] = json!(matching[max - 1].version.to_string());
            }
            Response::json(200, &body)
        }
        LambdaOp::ListLayers => {
            let layers: Vec<Value> = st
                .layers
                .iter()
                .filter_map(|(arn, m)| {
                    let latest = m.values().next_back()?;
                    let name = arn.rsplit(':').next().unwrap_or_default();
                    Some(json!({"LayerName": name, "LayerArn": arn, "LatestMatchingVersion": list_item_json(latest)}))
                })
                .collect();
            Response::json(200, &json!({ "Layers": layers }))
        }
        LambdaOp::Publish(name) => publish(st, endpoint, &name, region, &req.body),
    }
}

pub(super) fn publish(
    st: &mut State,
    endpoint: &str,
    name: &str,
    region: &str,
    body: &[u8],
) -> Response {
    let Some(layer_arn) = resolve_layer_name(name, region) else {
        return lambda_error(400, "InvalidParameterValueException", "Invalid layer name");
    };
    let input: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return lambda_error(
                400,
                "InvalidRequestContentException",
                &format!("Could not parse request body: {e}"),
            );
        }
    };
    let content = &input["Content"];
    let zip = if let Some(b64) = content["ZipFile"].as_str() {
        match B64.decode(b64) {
            Ok(z) => Arc::new(z),
            Err(e) => {
                return lambda_error(
                    400,
                    "InvalidParameterValueException",
                    &format!("ZipFile is not base64: {e}"),
                );
            }
        }
    } else if let (Some(bucket), Some(key)) =
        (content["S3Bucket"].as_str(), content["S3Key"].as_str())
    {
        match st.s3_objects.get(&(bucket.to_string(), key.to_string())) {
            Some(z) => z.clone(),
            None => {
                return lambda_error(
                    400,
                    "InvalidParameterValueException",
                    "Error occurred while GetObject. S3 Error Code: NoSuchKey. S3 Error Message: The specified key does not exist.",
                );
            }
        }
    } else {
        return lambda_error(
            400,
            "InvalidParameterValueException",
            "Content must have ZipFile or S3Bucket and S3Key",
        );
    };
    let strings = |k: &str| -> Vec<String> {
        input[k]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let parsed = parse_layer_arn(&layer_arn).expect("resolve_layer_name yields a valid ARN");
    let next = st
        .layers
        .get(&layer_arn)
        .and_then(|m| m.keys().next_back().copied())
        .unwrap_or(0)
        + 1;
    let stored = store_version(
        st,
        &parsed,
        next,
        zip,
        strings("CompatibleArchitectures"),
        strings("CompatibleRuntimes"),
        input["Description"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        input["LicenseInfo"].as_str().map(String::from),
    );
    // Lambda answers PublishLayerVersion with 201 Created.
    Response::json(201, &layer_version_json(&stored, endpoint, None))
}

#[allow(clippy::too_many_arguments)]
pub(super) fn store_version(
    st: &mut State,
    arn: &LayerArn,
    version: i64,
    zip: Arc<Vec<u8>>,
    compatible_architectures: Vec<String>,
    compatible_runtimes: Vec<String>,
    description: String,
    license_info: Option<String>,
) -> StoredLayerVersion {
    let version_arn = format!("{}:{}", arn.layer_arn, version);
    let arn_hash = hex(&Sha256::digest(version_arn.as_bytes()));
    // uuid-shaped suffix, like real snapshot keys; derived from the ARN so URLs are stable.
    let uuid = format!(
        "{}-{}-{}-{}-{}",
        &arn_hash[0..8],
        &arn_hash[8..12],
        &arn_hash[12..16],
        &arn_hash[16..20],
        &arn_hash[20..32]
    );
    let download_path = format!("/snapshots/{}/{}-{}", arn.account, arn.name, uuid);
    // A distinctive, valid-looking 64-hex signature: tests grep output for it.
    let signature = hex(&Sha256::digest(
        format!("fake-aws-presign-signature:{version_arn}").as_bytes(),
    ));
    let stored = StoredLayerVersion {
        layer_arn: arn.layer_arn.clone(),
        version,
        code_sha256: B64.encode(Sha256::digest(zip.as_slice())),
        zip: zip.clone(),
        compatible_architectures,
        compatible_runtimes,
        description,
        license_info,
        created_date: iso8601_lambda(SystemTime::now()),
        download_path: download_path.clone(),
        signature: signature.clone(),
    };
    st.downloads.insert(download_path, (zip, signature));
    st.layers
        .entry(arn.layer_arn.clone())
        .or_default()
        .insert(version, stored.clone());
    stored
}

pub(super) fn layer_version_json(
    v: &StoredLayerVersion,
    endpoint: &str,
    fault: Option<&Fault>,
) -> Value {
    let mut sha = v.code_sha256.clone();
    let mut size = v.zip.len() as i64;
    match fault {
        Some(Fault::WrongCodeSha256) => sha = B64.encode(Sha256::digest(b"not the layer zip")),
        Some(Fault::WrongCodeSize) => size += 1,
        _ => {}
    }
    let region = parse_layer_arn(&v.layer_arn)
        .map(|a| a.region)
        .unwrap_or_default();
    let mut out = json!({
        "Content": {"Location": presigned_url(v, endpoint, &region), "CodeSha256": sha, "CodeSize": size},
        "LayerArn": v.layer_arn,
        "LayerVersionArn": v.version_arn(),
        "Description": v.description,
        "CreatedDate": v.created_date,
        "Version": v.version,
        "CompatibleRuntimes": v.compatible_runtimes,
        "CompatibleArchitectures": v.compatible_architectures,
    });
    if let Some(l) = &v.license_info {
        out["LicenseInfo"] = json!(l);
    }
    out
}

pub(super) fn list_item_json(v: &StoredLayerVersion) -> Value {
    let mut out = json!({
        "LayerVersionArn": v.version_arn(),
        "Version": v.version,
        "Description": v.description,
        "CreatedDate": v.created_date,
        "CompatibleRuntimes": v.compatible_runtimes,
        "CompatibleArchitectures": v.compatible_architectures,
    });
    if let Some(l) = &v.license_info {
        out["LicenseInfo"] = json!(l);
    }
    out
}

pub(super) fn presigned_url(v: &StoredLayerVersion, endpoint: &str, region: &str) -> String {
    let version_id = format!("FaKeVeRsIoNiD.{}", v.version);
    presigned_location(
        endpoint,
        &v.download_path,
        &v.signature,
        &version_id,
        region,
    )
}

/// An S3-style presigned GET URL for a download path (layer content or function code), carrying
/// the session token and signature the download handler checks.
pub(super) fn presigned_location(
    endpoint: &str,
    path: &str,
    signature: &str,
    version_id: &str,
    region: &str,
) -> String {
    let now = SystemTime::now();
    let amz_date = amz_date(now);
    format!(
        "{endpoint}{path}?versionId={version_id}&X-Amz-Security-Token={PRESIGN_TOKEN}\
         &X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date={amz_date}&X-Amz-SignedHeaders=host&X-Amz-Expires=600\
         &X-Amz-Credential=ASIAFAKEPRESIGNKEY01%2F{day}%2F{region}%2Fs3%2Faws4_request&X-Amz-Signature={signature}",
        day = &amz_date[..8],
    )
}

pub(super) struct LayerArn {
    /// Unversioned layer ARN.
    pub(super) layer_arn: String,
    pub(super) region: String,
    pub(super) account: String,
    pub(super) name: String,
    pub(super) version: Option<i64>,
}

/// `arn:<partition>:lambda:<region>:<12 digits>:layer:<name>[:<version>]`.
pub(super) fn parse_layer_arn(arn: &str) -> Option<LayerArn> {
    let p: Vec<&str> = arn.split(':').collect();
    if !(7..=8).contains(&p.len())
        || p[0] != "arn"
        || !p[1].starts_with("aws")
        || p[2] != "lambda"
        || p[5] != "layer"
    {
        return None;
    }
    let ok_region = !p[3].is_empty()
        && p[3]
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let ok_account = p[4].len() == 12 && p[4].chars().all(|c| c.is_ascii_digit());
    let ok_name = !p[6].is_empty()
        && p[6].len() <= 140
        && p[6]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !(ok_region && ok_account && ok_name) {
        return None;
    }
    let version = match p.get(7) {
        Some(v) => Some(v.parse::<i64>().ok().filter(|v| *v >= 1)?),
        None => None,
    };
    Some(LayerArn {
        layer_arn: p[..7].join(":"),
        region: p[3].into(),
        account: p[4].into(),
        name: p[6].into(),
        version,
    })
}

/// LayerName in a path may be a bare name (the caller's own account, the signing region) or an
/// unversioned ARN.
pub(super) fn resolve_layer_name(name: &str, region: &str) -> Option<String> {
    let arn = if name.starts_with("arn:") {
        name.to_string()
    } else {
        format!("arn:aws:lambda:{region}:{ACCOUNT}:layer:{name}")
    };
    match parse_layer_arn(&arn)? {
        LayerArn {
            version: None,
            layer_arn,
            ..
        } => Some(layer_arn),
        _ => None,
    }
}

pub(super) fn arn_validation_message(arn: &str) -> String {
    format!(
        "1 validation error detected: Value '{arn}' at 'arn' failed to satisfy constraint: Member must satisfy \
         regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:[a-z]{{2}}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{{1}}:\\d{{12}}:layer:[a-zA-Z0-9-_]+:[0-9]+)"
    )
}
