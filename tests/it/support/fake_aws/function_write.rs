//! The two Lambda function APIs that write: CreateFunction and UpdateFunctionCode, with the
//! validation Lambda applies before it accepts them (package-type rules, value ranges, conflicts,
//! image resolution) and the Pending/InProgress transitions they start.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use std::collections::BTreeMap;

use super::State;
use super::function_state::{
    FunctionCode, FunctionSpec, Lifecycle, StoredFunction, Transition, configuration_json,
};
use super::functions::{
    fn_error, invalid, layer_sizes, next_outcome, not_found, publish_version, resolve_name,
    store_version_config, validation,
};
use super::http::Response;

fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array().map(|a| {
        a.iter()
            .filter_map(|s| s.as_str().map(String::from))
            .collect()
    })
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// `Architectures` as Lambda validates it: at most one, `x86_64` or `arm64`.
fn architectures(v: &Value) -> Result<Option<Vec<String>>, Response> {
    let Some(archs) = strings(v) else {
        return Ok(None);
    };
    if archs.len() > 1 {
        return Err(validation(
            &format!("[{}]", archs.join(", ")),
            "architectures",
            "Member must have length less than or equal to 1",
        ));
    }
    if let Some(a) = archs.iter().find(|a| *a != "x86_64" && *a != "arm64") {
        return Err(validation(
            &format!("[{a}]"),
            "architectures",
            "Member must satisfy constraint: [Member must satisfy enum value set: [x86_64, arm64]]",
        ));
    }
    Ok(Some(archs))
}

fn in_range(input: &Value, key: &str, member: &str, lo: i64, hi: i64) -> Result<(), Response> {
    let Some(n) = input.pointer(key).and_then(Value::as_i64) else {
        return Ok(());
    };
    if n < lo {
        return Err(validation(
            &n.to_string(),
            member,
            &format!("Member must have value greater than or equal to {lo}"),
        ));
    }
    if n > hi {
        return Err(validation(
            &n.to_string(),
            member,
            &format!("Member must have value less than or equal to {hi}"),
        ));
    }
    Ok(())
}

/// `repo@sha256:<hex>` for an ImageUri: a digest reference as is, a tag through the digests tests
/// registered with `set_image_digest`.
fn resolve_image(st: &State, uri: &str) -> Result<String, Response> {
    if let Some((_, hex)) = uri.rsplit_once("@sha256:")
        && hex.len() == 64
        && hex.chars().all(|c| c.is_ascii_hexdigit())
    {
        return Ok(uri.to_string());
    }
    st.image_digests.get(uri).cloned().ok_or_else(|| {
        invalid(&format!(
            "Source image {uri} does not exist. Provide a valid source image."
        ))
    })
}

/// Zip bytes from `ZipFile` (base64) or `S3Bucket`/`S3Key`; `Ok(None)` when neither is given.
fn zip_source(st: &State, code: &Value) -> Result<Option<Vec<u8>>, Response> {
    if let Some(b64) = code["ZipFile"].as_str() {
        return B64
            .decode(b64)
            .map(Some)
            .map_err(|e| invalid(&format!("ZipFile is not base64: {e}")));
    }
    if let (Some(bucket), Some(key)) = (code["S3Bucket"].as_str(), code["S3Key"].as_str()) {
        return match st.s3_objects.get(&(bucket.to_string(), key.to_string())) {
            Some(z) => Ok(Some(z.to_vec())),
            None => Err(invalid(
                "Error occurred while GetObject. S3 Error Code: NoSuchKey. S3 Error Message: The specified key does not exist.",
            )),
        };
    }
    Ok(None)
}

fn parse_body(body: &[u8]) -> Result<Value, Response> {
    serde_json::from_slice(body).map_err(|e| {
        fn_error(
            400,
            "InvalidRequestContentException",
            &format!("Could not parse request body into json: {e}"),
        )
    })
}

pub(super) fn create_function(st: &mut State, body: &[u8], region: &str) -> Response {
    match try_create(st, body, region) {
        Ok(r) | Err(r) => r,
    }
}

fn try_create(st: &mut State, body: &[u8], region: &str) -> Result<Response, Response> {
    let input = parse_body(body)?;
    for (key, member) in [
        ("FunctionName", "functionName"),
        ("Role", "role"),
        ("Code", "code"),
    ] {
        if input.get(key).is_none_or(Value::is_null) {
            return Err(fn_error(
                400,
                "ValidationException",
                &format!(
                    "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
                ),
            ));
        }
    }
    let name = input["FunctionName"].as_str().unwrap_or_default();
    let r = resolve_name(name, None, region)?;
    if r.qualifier.is_some() {
        return Err(invalid(&format!(
            "fake AWS: CreateFunction takes an unqualified function name, got {name}"
        )));
    }
    let archs = architectures(&input["Architectures"])?.unwrap_or_else(|| vec!["x86_64".into()]);
    in_range(&input, "/MemorySize", "memorySize", 128, 10240)?;
    in_range(&input, "/Timeout", "timeout", 1, 900)?;
    in_range(
        &input,
        "/EphemeralStorage/Size",
        "ephemeralStorage.size",
        512,
        10240,
    )?;
    let code = &input["Code"];
    let layers_given = strings(&input["Layers"]).unwrap_or_default();
    let (function_code, layers) = if input["PackageType"].as_str() == Some("Image") {
        if input.get("Runtime").is_some()
            || input.get("Handler").is_some()
            || !layers_given.is_empty()
        {
            return Err(invalid(
                "Please don't provide Handler or Runtime or Layer when the intended function PackageType is Image.",
            ));
        }
        let Some(uri) = code["ImageUri"].as_str() else {
            return Err(invalid("Please provide a source for function code."));
        };
        let resolved = resolve_image(st, uri)?;
        let code = FunctionCode::Image {
            image_uri: uri.into(),
            resolved_image_uri: resolved,
        };
        (code, Vec::new())
    } else {
        let (Some(runtime), Some(handler)) = (input["Runtime"].as_str(), input["Handler"].as_str())
        else {
            return Err(invalid(
                "Runtime and Handler are mandatory parameters for functions created with deployment packages.",
            ));
        };
        if code.get("ImageUri").is_some() {
            return Err(invalid(
                "fake AWS: Code.ImageUri needs PackageType Image (a zip function takes ZipFile or S3Bucket/S3Key)",
            ));
        }
        let Some(zip) = zip_source(st, code)? else {
            return Err(invalid("Please provide a source for function code."));
        };
        let layers = layer_sizes(st, &layers_given)
            .map_err(|arn| invalid(&format!("Layer version {arn} does not exist.")))?;
        let code = FunctionCode::Zip {
            runtime: runtime.into(),
            handler: handler.into(),
            zip,
        };
        (code, layers)
    };
    if st.functions.contains_key(&r.arn) {
        return Err(fn_error(
            409,
            "ResourceConflictException",
            &format!("Function already exist: {}", r.name),
        ));
    }

    let mut spec = FunctionSpec::zip(&r.name, "", "", Vec::new());
    spec.region = r.region.clone();
    spec.account = r.arn.split(':').nth(4).unwrap_or_default().to_string();
    spec.code = function_code;
    spec.layers = layers_given;
    spec.architectures = archs;
    spec.role = input["Role"].as_str().unwrap_or_default().into();
    spec.description = input["Description"].as_str().unwrap_or_default().into();
    spec.memory_size = input["MemorySize"].as_i64().unwrap_or(128);
    spec.timeout = input["Timeout"].as_i64().unwrap_or(3);
    spec.ephemeral_storage = input
        .pointer("/EphemeralStorage/Size")
        .and_then(Value::as_i64)
        .unwrap_or(512);
    spec.environment = string_map(&input["Environment"]["Variables"]);
    spec.vpc_config = input
        .get("VpcConfig")
        .filter(|v| v["SubnetIds"].as_array().is_some_and(|a| !a.is_empty()))
        .cloned();
    spec.tracing_mode = input["TracingConfig"]["Mode"]
        .as_str()
        .unwrap_or("PassThrough")
        .into();
    spec.dead_letter_target = input["DeadLetterConfig"]["TargetArn"]
        .as_str()
        .map(String::from);
    spec.kms_key_arn = input["KMSKeyArn"].as_str().map(String::from);
    spec.file_system_configs = input["FileSystemConfigs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    spec.logging_config = input.get("LoggingConfig").map(|l| {
        let mut l = l.clone();
        if l.get("LogFormat").is_none() {
            l["LogFormat"] = json!("Text");
        }
        if l.get("LogGroup").is_none() {
            l["LogGroup"] = json!(format!("/aws/lambda/{}", r.name));
        }
        l
    });
    spec.snap_start = input["SnapStart"]["ApplyOn"]
        .as_str()
        .unwrap_or("None")
        .into();
    spec.image_config = input.get("ImageConfig").cloned();
    spec.tags = string_map(&input["Tags"]);
    spec.code_signing_config_arn = input["CodeSigningConfigArn"].as_str().map(String::from);

    let outcome = next_outcome(st, true);
    let latest = store_version_config(st, spec, layers);
    let lifecycle = Lifecycle::creating(st.pending_reads, outcome);
    st.functions
        .insert(r.arn.clone(), StoredFunction::new(latest, lifecycle));
    Ok(Response::json(
        201,
        &written_config(st, &r.arn, input["Publish"].as_bool() == Some(true)),
    ))
}

/// The configuration a write answers: $LATEST, or the version it published.
fn written_config(st: &mut State, arn: &str, publish: bool) -> Value {
    let version = if publish {
        publish_version(st, arn)
    } else {
        None
    };
    let func = &st.functions[arn];
    match version {
        Some(n) => configuration_json(
            &func.versions[&n],
            &format!("{arn}:{n}"),
            &n.to_string(),
            &func.lifecycle,
        ),
        None => configuration_json(&func.latest, arn, "$LATEST", &func.lifecycle),
    }
}

pub(super) fn update_function_code(
    st: &mut State,
    name: &str,
    body: &[u8],
    region: &str,
) -> Response {
    match try_update(st, name, body, region) {
        Ok(r) | Err(r) => r,
    }
}

fn try_update(st: &mut State, name: &str, body: &[u8], region: &str) -> Result<Response, Response> {
    let r = resolve_name(name, None, region)?;
    if r.qualifier.is_some() {
        return Err(invalid(&format!(
            "fake AWS: UpdateFunctionCode takes an unqualified function name, got {name}"
        )));
    }
    let Some(func) = st.functions.get(&r.arn) else {
        return Err(not_found(&r.arn));
    };
    let input = parse_body(body)?;
    if let Some(rev) = input["RevisionId"].as_str()
        && rev != func.latest.revision_id
    {
        return Err(fn_error(
            412,
            "PreconditionFailedException",
            "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id",
        ));
    }
    match &func.lifecycle.transition {
        Some(Transition::Creating { .. }) => {
            return Err(fn_error(
                409,
                "ResourceConflictException",
                &format!(
                    "The operation cannot be performed at this time. The resource {} is currently in the following state: 'Pending'. StateReasonCode: 'Creating'",
                    r.arn
                ),
            ));
        }
        Some(Transition::Updating { .. }) => {
            return Err(fn_error(
                409,
                "ResourceConflictException",
                &format!(
                    "The operation cannot be performed at this time. An update is in progress for resource: {}",
                    r.arn
                ),
            ));
        }
        None => {}
    }
    let mut spec = func.latest.spec.clone();
    let layers = func.latest.layers.clone();
    if let Some(archs) = architectures(&input["Architectures"])? {
        spec.architectures = archs;
    }
    spec.code = match &spec.code {
        FunctionCode::Image { .. } => {
            let Some(uri) = input["ImageUri"].as_str() else {
                return Err(invalid(
                    "Please provide ImageUri when updating a function with packageType Image.",
                ));
            };
            FunctionCode::Image {
                image_uri: uri.into(),
                resolved_image_uri: resolve_image(st, uri)?,
            }
        }
        FunctionCode::Zip {
            runtime, handler, ..
        } => {
            if input.get("ImageUri").is_some() {
                return Err(invalid(
                    "Please don't provide ImageUri when updating a function with packageType Zip.",
                ));
            }
            let Some(zip) = zip_source(st, &input)? else {
                return Err(invalid("Please provide a source for function code."));
            };
            FunctionCode::Zip {
                runtime: runtime.clone(),
                handler: handler.clone(),
                zip,
            }
        }
    };
    if input["DryRun"].as_bool() == Some(true) {
        let func = &st.functions[&r.arn];
        return Ok(Response::json(
            200,
            &configuration_json(&func.latest, &r.arn, "$LATEST", &func.lifecycle),
        ));
    }
    let outcome = next_outcome(st, false);
    let latest = store_version_config(st, spec, layers);
    let reads = st.pending_reads;
    let func = st.functions.get_mut(&r.arn).expect("checked above");
    func.latest = latest;
    func.lifecycle.start_update(reads, outcome);
    Ok(Response::json(
        200,
        &written_config(st, &r.arn, input["Publish"].as_bool() == Some(true)),
    ))
}
