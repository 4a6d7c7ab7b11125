//! The model behind the fake's Lambda function APIs: what a test registers ([`FunctionSpec`]), what
//! the fake stores per function (versions, aliases, the state machine Lambda reports while it
//! creates or updates a function), FunctionName/ARN resolution, and the `FunctionConfiguration`
//! JSON shape (member names as in the `aws-sdk-lambda` 1.156 deserialisers).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use super::ACCOUNT;
use super::util::{hex, iso8601_lambda};

/// The function's code: a zip (with its runtime and handler) or a container image.
#[derive(Clone, Debug)]
pub enum FunctionCode {
    Zip {
        runtime: String,
        handler: String,
        zip: Vec<u8>,
    },
    /// `resolved_image_uri` is `repo@sha256:<hex>`; its hex is what Lambda reports as CodeSha256.
    Image {
        image_uri: String,
        resolved_image_uri: String,
    },
}

/// A function as a test registers it with [`FakeAws::add_function`](super::FakeAws::add_function).
/// Start from [`FunctionSpec::zip`] or [`FunctionSpec::image`] and override fields with struct
/// update syntax. Nested settings are given in the CreateFunction *request* shape (e.g.
/// `json!({"SubnetIds": [..], "SecurityGroupIds": [..]})`); the fake answers the response shape.
#[derive(Clone, Debug)]
pub struct FunctionSpec {
    pub name: String,
    pub region: String,
    pub account: String,
    pub code: FunctionCode,
    /// Layer version ARNs, in order; each must have been added with `add_layer` (zip only).
    pub layers: Vec<String>,
    pub architectures: Vec<String>,
    pub role: String,
    pub description: String,
    pub memory_size: i64,
    pub timeout: i64,
    pub ephemeral_storage: i64,
    pub environment: BTreeMap<String, String>,
    pub vpc_config: Option<Value>,
    /// `Active` or `PassThrough` (the default).
    pub tracing_mode: String,
    pub dead_letter_target: Option<String>,
    pub kms_key_arn: Option<String>,
    /// `[{"Arn": .., "LocalMountPath": ..}]`.
    pub file_system_configs: Vec<Value>,
    /// Default `{"LogFormat": "Text", "LogGroup": "/aws/lambda/<name>"}`.
    pub logging_config: Option<Value>,
    /// SnapStart `ApplyOn`: `None` (default) or `PublishedVersions`.
    pub snap_start: String,
    /// `{"EntryPoint": [..], "Command": [..], "WorkingDirectory": ..}` (image only).
    pub image_config: Option<Value>,
    pub tags: BTreeMap<String, String>,
    pub reserved_concurrency: Option<i64>,
    pub code_signing_config_arn: Option<String>,
}

impl FunctionSpec {
    /// A zip function in eu-west-1 owned by [`ACCOUNT`], x86_64, 128 MB, 3 s, with Lambda's
    /// defaults for everything else.
    pub fn zip(name: &str, runtime: &str, handler: &str, zip: Vec<u8>) -> FunctionSpec {
        FunctionSpec::new(
            name,
            FunctionCode::Zip {
                runtime: runtime.into(),
                handler: handler.into(),
                zip,
            },
        )
    }

    /// An image function; `resolved_image_uri` must be `repo@sha256:<64 hex>`.
    pub fn image(name: &str, image_uri: &str, resolved_image_uri: &str) -> FunctionSpec {
        FunctionSpec::new(
            name,
            FunctionCode::Image {
                image_uri: image_uri.into(),
                resolved_image_uri: resolved_image_uri.into(),
            },
        )
    }

    fn new(name: &str, code: FunctionCode) -> FunctionSpec {
        FunctionSpec {
            name: name.into(),
            region: "eu-west-1".into(),
            account: ACCOUNT.into(),
            code,
            layers: Vec::new(),
            architectures: vec!["x86_64".into()],
            role: format!("arn:aws:iam::{ACCOUNT}:role/service-role/{name}-role"),
            description: String::new(),
            memory_size: 128,
            timeout: 3,
            ephemeral_storage: 512,
            environment: BTreeMap::new(),
            vpc_config: None,
            tracing_mode: "PassThrough".into(),
            dead_letter_target: None,
            kms_key_arn: None,
            file_system_configs: Vec::new(),
            logging_config: None,
            snap_start: "None".into(),
            image_config: None,
            tags: BTreeMap::new(),
            reserved_concurrency: None,
            code_signing_config_arn: None,
        }
    }

    /// `arn:aws:lambda:<region>:<account>:function:<name>`.
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{}",
            self.region, self.account, self.name
        )
    }
}

/// What a function looks like to Lambda right now, for assertions (reading it does not advance
/// the state machine).
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionStatus {
    pub arn: String,
    pub package_type: String,
    pub state: String,
    pub state_reason_code: Option<String>,
    pub last_update_status: Option<String>,
    pub last_update_status_reason_code: Option<String>,
    /// Image functions: the ImageUri as given and as resolved to a digest.
    pub image_uri: Option<String>,
    pub resolved_image_uri: Option<String>,
    pub code_sha256: String,
    pub architectures: Vec<String>,
    /// Published version numbers, oldest first.
    pub versions: Vec<u64>,
}

/// One version of a function ($LATEST or a published snapshot).
#[derive(Clone, Debug)]
pub(super) struct VersionConfig {
    pub(super) spec: FunctionSpec,
    /// The zip (empty for images).
    pub(super) zip: Arc<Vec<u8>>,
    pub(super) code_sha256: String,
    /// `(version ARN, CodeSize)` of each layer.
    pub(super) layers: Vec<(String, i64)>,
    pub(super) last_modified: String,
    pub(super) revision_id: String,
    /// Presigned download of the zip: path and X-Amz-Signature ("" for images).
    pub(super) download_path: String,
    pub(super) signature: String,
}

impl VersionConfig {
    pub(super) fn new(spec: FunctionSpec, layers: Vec<(String, i64)>, nonce: u64) -> VersionConfig {
        let (zip, code_sha256) = match &spec.code {
            FunctionCode::Zip { zip, .. } => {
                (Arc::new(zip.clone()), B64.encode(Sha256::digest(zip)))
            }
            FunctionCode::Image {
                resolved_image_uri, ..
            } => (
                Arc::new(Vec::new()),
                resolved_image_uri
                    .rsplit_once("@sha256:")
                    .map(|(_, h)| h.to_string())
                    .unwrap_or_default(),
            ),
        };
        let seed = hex(&Sha256::digest(
            format!("{}:{}:{nonce}", spec.arn(), code_sha256).as_bytes(),
        ));
        let uuid = format!(
            "{}-{}-{}-{}-{}",
            &seed[0..8],
            &seed[8..12],
            &seed[12..16],
            &seed[16..20],
            &seed[20..32]
        );
        let is_zip = matches!(spec.code, FunctionCode::Zip { .. });
        VersionConfig {
            download_path: if is_zip {
                format!("/snapshots/{}/{}-{uuid}", spec.account, spec.name)
            } else {
                String::new()
            },
            signature: if is_zip {
                hex(&Sha256::digest(
                    format!("fake-aws-presign-signature:{seed}").as_bytes(),
                ))
            } else {
                String::new()
            },
            revision_id: uuid,
            spec,
            zip,
            code_sha256,
            layers,
            last_modified: iso8601_lambda(SystemTime::now()),
        }
    }

    pub(super) fn is_image(&self) -> bool {
        matches!(self.spec.code, FunctionCode::Image { .. })
    }
}

/// How a pending create or update ends.
#[derive(Clone, Debug)]
pub(super) enum Outcome {
    Succeeds,
    /// (reason code, reason)
    Fails(String, String),
}

#[derive(Clone, Debug)]
pub(super) enum Transition {
    Creating { reads_left: u32, outcome: Outcome },
    Updating { reads_left: u32, outcome: Outcome },
}

/// The State / LastUpdateStatus fields of $LATEST and the transition in progress.
#[derive(Clone, Debug)]
pub(super) struct Lifecycle {
    pub(super) state: &'static str,
    pub(super) state_reason: Option<String>,
    pub(super) state_reason_code: Option<String>,
    pub(super) last_update_status: Option<&'static str>,
    pub(super) last_update_reason: Option<String>,
    pub(super) last_update_reason_code: Option<String>,
    pub(super) transition: Option<Transition>,
}

impl Lifecycle {
    pub(super) fn active() -> Lifecycle {
        Lifecycle {
            state: "Active",
            state_reason: None,
            state_reason_code: None,
            last_update_status: Some("Successful"),
            last_update_reason: None,
            last_update_reason_code: None,
            transition: None,
        }
    }

    /// What CreateFunction answers: Pending/Creating (as in Lambda's "function states" guide).
    pub(super) fn creating(reads: u32, outcome: Outcome) -> Lifecycle {
        Lifecycle {
            state: "Pending",
            state_reason: Some("The function is being created.".into()),
            state_reason_code: Some("Creating".into()),
            last_update_status: None,
            last_update_reason: None,
            last_update_reason_code: None,
            transition: Some(Transition::Creating {
                reads_left: reads,
                outcome,
            }),
        }
    }

    /// What UpdateFunctionCode answers: still Active, LastUpdateStatus InProgress.
    pub(super) fn start_update(&mut self, reads: u32, outcome: Outcome) {
        self.last_update_status = Some("InProgress");
        self.last_update_reason = Some("The function is being created.".into());
        self.last_update_reason_code = Some("Creating".into());
        self.transition = Some(Transition::Updating {
            reads_left: reads,
            outcome,
        });
    }

    /// One read of the configuration (GetFunction or GetFunctionConfiguration): a transition
    /// answers its in-progress fields `reads` times, then settles.
    pub(super) fn tick(&mut self) {
        let settle = match &mut self.transition {
            Some(Transition::Creating { reads_left, .. })
            | Some(Transition::Updating { reads_left, .. }) => {
                if *reads_left > 0 {
                    *reads_left -= 1;
                    false
                } else {
                    true
                }
            }
            None => false,
        };
        if !settle {
            return;
        }
        match self.transition.take() {
            Some(Transition::Creating { outcome, .. }) => match outcome {
                Outcome::Succeeds => *self = Lifecycle::active(),
                Outcome::Fails(code, reason) => {
                    self.state = "Failed";
                    self.state_reason = Some(reason.clone());
                    self.state_reason_code = Some(code.clone());
                    self.last_update_status = Some("Failed");
                    self.last_update_reason = Some(reason);
                    self.last_update_reason_code = Some(code);
                }
            },
            Some(Transition::Updating { outcome, .. }) => match outcome {
                Outcome::Succeeds => {
                    self.last_update_status = Some("Successful");
                    self.last_update_reason = None;
                    self.last_update_reason_code = None;
                }
                Outcome::Fails(code, reason) => {
                    self.last_update_status = Some("Failed");
                    self.last_update_reason = Some(reason);
                    self.last_update_reason_code = Some(code);
                }
            },
            None => {}
        }
    }
}

#[derive(Clone, Debug)]
pub(super) struct Alias {
    pub(super) version: String,
    pub(super) description: String,
    pub(super) revision_id: String,
}

#[derive(Clone, Debug)]
pub(super) struct UrlConfig {
    pub(super) auth_type: String,
    pub(super) created: String,
    pub(super) url: String,
}

/// Everything the fake holds about one function.
#[derive(Clone, Debug)]
pub(super) struct StoredFunction {
    pub(super) latest: VersionConfig,
    pub(super) versions: BTreeMap<u64, VersionConfig>,
    pub(super) aliases: BTreeMap<String, Alias>,
    pub(super) lifecycle: Lifecycle,
    /// Resource policy statements (GetPolicy answers ResourceNotFound when empty).
    pub(super) policy: Vec<Value>,
    pub(super) policy_revision: String,
    /// Function URL per qualifier ("" for the unqualified function).
    pub(super) urls: BTreeMap<String, UrlConfig>,
    /// Provisioned concurrency per qualifier.
    pub(super) provisioned: BTreeMap<String, i64>,
}

impl StoredFunction {
    pub(super) fn new(latest: VersionConfig, lifecycle: Lifecycle) -> StoredFunction {
        StoredFunction {
            policy_revision: format!("{}-policy", latest.revision_id),
            latest,
            versions: BTreeMap::new(),
            aliases: BTreeMap::new(),
            lifecycle,
            policy: Vec::new(),
            urls: BTreeMap::new(),
            provisioned: BTreeMap::new(),
        }
    }

    pub(super) fn arn(&self) -> String {
        self.latest.spec.arn()
    }

    /// The version a qualifier names: `None`/`$LATEST`, a version number, or an alias.
    /// Returns (config, version string, is $LATEST).
    pub(super) fn resolve(
        &self,
        qualifier: Option<&str>,
    ) -> Option<(&VersionConfig, String, bool)> {
        match qualifier {
            None | Some("$LATEST") => Some((&self.latest, "$LATEST".into(), true)),
            Some(q) => {
                let version = match self.aliases.get(q) {
                    Some(a) => a.version.clone(),
                    None => q.to_string(),
                };
                if version == "$LATEST" {
                    return Some((&self.latest, version, true));
                }
                let n: u64 = version.parse().ok()?;
                self.versions.get(&n).map(|v| (v, version, false))
            }
        }
    }

    pub(super) fn status(&self) -> FunctionStatus {
        let (image_uri, resolved_image_uri) = match &self.latest.spec.code {
            FunctionCode::Image {
                image_uri,
                resolved_image_uri,
            } => (Some(image_uri.clone()), Some(resolved_image_uri.clone())),
            FunctionCode::Zip { .. } => (None, None),
        };
        FunctionStatus {
            arn: self.arn(),
            package_type: if self.latest.is_image() {
                "Image"
            } else {
                "Zip"
            }
            .into(),
            state: self.lifecycle.state.into(),
            state_reason_code: self.lifecycle.state_reason_code.clone(),
            last_update_status: self.lifecycle.last_update_status.map(String::from),
            last_update_status_reason_code: self.lifecycle.last_update_reason_code.clone(),
            image_uri,
            resolved_image_uri,
            code_sha256: self.latest.code_sha256.clone(),
            architectures: self.latest.spec.architectures.clone(),
            versions: self.versions.keys().copied().collect(),
        }
    }
}

/// A FunctionName resolved against the signing region and the caller's account.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct FunctionRef {
    /// Unqualified function ARN.
    pub(super) arn: String,
    pub(super) region: String,
    pub(super) name: String,
    pub(super) qualifier: Option<String>,
}

impl FunctionRef {
    pub(super) fn qualified_arn(&self) -> String {
        match &self.qualifier {
            Some(q) => format!("{}:{q}", self.arn),
            None => self.arn.clone(),
        }
    }
}

/// The FunctionName pattern from the Lambda model, quoted in ValidationException messages.
pub(super) const FUNCTION_NAME_PATTERN: &str = "(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?(\\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?";

fn is_region(s: &str) -> bool {
    let p: Vec<&str> = s.split('-').collect();
    p.len() >= 3
        && p[0].len() == 2
        && p.iter().all(|x| !x.is_empty())
        && p[..p.len() - 1]
            .iter()
            .all(|x| x.chars().all(|c| c.is_ascii_lowercase()))
        && p[p.len() - 1].len() == 1
        && p[p.len() - 1].chars().all(|c| c.is_ascii_digit())
}

fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Parses a FunctionName as Lambda accepts it: `name`, `name:qualifier`,
/// `123456789012:function:name[:qualifier]`, or
/// `arn:aws:lambda:<region>:<account>:function:<name>[:qualifier]`. `None` when it does not match
/// the model's pattern. A bare name resolves in `signing_region` and [`ACCOUNT`].
pub(super) fn parse_function_name(input: &str, signing_region: &str) -> Option<FunctionRef> {
    let mut parts: Vec<&str> = input.split(':').collect();
    let mut region = signing_region.to_string();
    let mut account = ACCOUNT.to_string();
    if parts.first() == Some(&"arn") {
        if parts.len() < 4 || !parts[1].starts_with("aws") || parts[2] != "lambda" {
            return None;
        }
        parts.drain(..3);
    }
    if parts.first().is_some_and(|p| is_region(p)) && parts.len() > 1 {
        region = parts.remove(0).to_string();
    }
    if parts
        .first()
        .is_some_and(|p| p.len() == 12 && p.chars().all(|c| c.is_ascii_digit()))
        && parts.len() > 1
    {
        account = parts.remove(0).to_string();
    }
    if parts.first() == Some(&"function") && parts.len() > 1 {
        parts.remove(0);
    }
    let (name, qualifier) = match parts.as_slice() {
        [name] => (*name, None),
        [name, q] if *q == "$LATEST" || is_ident(q) => (*name, Some(q.to_string())),
        _ => return None,
    };
    if !is_ident(name) || name.len() > 64 || input.len() > 170 {
        return None;
    }
    Some(FunctionRef {
        arn: format!("arn:aws:lambda:{region}:{account}:function:{name}"),
        region,
        name: name.into(),
        qualifier,
    })
}

/// The `FunctionConfiguration` JSON for `v`, reported as `version` under `function_arn`.
pub(super) fn configuration_json(
    v: &VersionConfig,
    function_arn: &str,
    version: &str,
    lifecycle: &Lifecycle,
) -> Value {
    let s = &v.spec;
    let mut c = Map::new();
    let mut put = |k: &str, val: Value| {
        c.insert(k.to_string(), val);
    };
    put("FunctionName", json!(s.name));
    put("FunctionArn", json!(function_arn));
    if let FunctionCode::Zip {
        runtime, handler, ..
    } = &s.code
    {
        put("Runtime", json!(runtime));
        put("Handler", json!(handler));
    }
    put("Role", json!(s.role));
    put("CodeSize", json!(v.zip.len()));
    put("Description", json!(s.description));
    put("Timeout", json!(s.timeout));
    put("MemorySize", json!(s.memory_size));
    put("LastModified", json!(v.last_modified));
    put("CodeSha256", json!(v.code_sha256));
    put("Version", json!(version));
    if let Some(vpc) = &s.vpc_config {
        let digest = hex(&Sha256::digest(vpc.to_string().as_bytes()));
        put(
            "VpcConfig",
            json!({
                "SubnetIds": vpc.get("SubnetIds").cloned().unwrap_or(json!([])),
                "SecurityGroupIds": vpc.get("SecurityGroupIds").cloned().unwrap_or(json!([])),
                "VpcId": format!("vpc-{}", &digest[..17]),
                "Ipv6AllowedForDualStack": vpc.get("Ipv6AllowedForDualStack").cloned().unwrap_or(json!(false)),
            }),
        );
    }
    if !s.environment.is_empty() {
        put("Environment", json!({ "Variables": s.environment }));
    }
    if let Some(t) = &s.dead_letter_target {
        put("DeadLetterConfig", json!({ "TargetArn": t }));
    }
    if let Some(k) = &s.kms_key_arn {
        put("KMSKeyArn", json!(k));
    }
    put("TracingConfig", json!({ "Mode": s.tracing_mode }));
    put("RevisionId", json!(v.revision_id));
    if !v.layers.is_empty() {
        let layers: Vec<Value> = v
            .layers
            .iter()
            .map(|(arn, size)| json!({"Arn": arn, "CodeSize": size}))
            .collect();
        put("Layers", json!(layers));
    }
    put("State", json!(lifecycle.state));
    if let Some(r) = &lifecycle.state_reason {
        put("StateReason", json!(r));
    }
    if let Some(r) = &lifecycle.state_reason_code {
        put("StateReasonCode", json!(r));
    }
    if let Some(u) = lifecycle.last_update_status {
        put("LastUpdateStatus", json!(u));
    }
    if let Some(r) = &lifecycle.last_update_reason {
        put("LastUpdateStatusReason", json!(r));
    }
    if let Some(r) = &lifecycle.last_update_reason_code {
        put("LastUpdateStatusReasonCode", json!(r));
    }
    if !s.file_system_configs.is_empty() {
        put("FileSystemConfigs", json!(s.file_system_configs));
    }
    put(
        "PackageType",
        json!(if v.is_image() { "Image" } else { "Zip" }),
    );
    if let Some(ic) = &s.image_config {
        put("ImageConfigResponse", json!({ "ImageConfig": ic }));
    }
    put("Architectures", json!(s.architectures));
    put("EphemeralStorage", json!({ "Size": s.ephemeral_storage }));
    let on = s.snap_start == "PublishedVersions" && version != "$LATEST";
    put(
        "SnapStart",
        json!({"ApplyOn": s.snap_start, "OptimizationStatus": if on { "On" } else { "Off" }}),
    );
    if let FunctionCode::Zip { runtime, .. } = &s.code {
        let h = hex(&Sha256::digest(runtime.as_bytes()));
        put(
            "RuntimeVersionConfig",
            json!({"RuntimeVersionArn": format!("arn:aws:lambda:{}::runtime:{h}", s.region)}),
        );
    }
    put(
        "LoggingConfig",
        s.logging_config.clone().unwrap_or_else(
            || json!({"LogFormat": "Text", "LogGroup": format!("/aws/lambda/{}", s.name)}),
        ),
    );
    Value::Object(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_resolve_like_lambda() {
        let full = "arn:aws:lambda:eu-west-1:123456789012:function:f";
        let r = parse_function_name("f", "eu-west-1").unwrap();
        assert_eq!((r.arn.as_str(), r.qualifier), (full, None));
        let r = parse_function_name("f:prod", "eu-west-1").unwrap();
        assert_eq!(r.qualifier.as_deref(), Some("prod"));
        let r = parse_function_name("123456789012:function:f:7", "eu-west-1").unwrap();
        assert_eq!((r.arn.as_str(), r.qualifier.as_deref()), (full, Some("7")));
        let r = parse_function_name(&format!("{full}:$LATEST"), "us-east-1").unwrap();
        assert_eq!(r.region, "eu-west-1");
        assert_eq!(r.qualified_arn(), format!("{full}:$LATEST"));
        for bad in [
            "",
            "a b",
            "arn:aws:s3:::x",
            "f:g:h",
            "arn:aws:lambda:eu-west-1:1:function:f",
        ] {
            assert!(parse_function_name(bad, "eu-west-1").is_none(), "{bad}");
        }
    }

    #[test]
    fn lifecycle_settles_after_the_configured_reads() {
        let mut l = Lifecycle::creating(2, Outcome::Succeeds);
        for _ in 0..2 {
            l.tick();
            assert_eq!(l.state, "Pending");
        }
        l.tick();
        assert_eq!(
            (l.state, l.last_update_status),
            ("Active", Some("Successful"))
        );
        l.start_update(0, Outcome::Fails("InvalidImage".into(), "bad".into()));
        assert_eq!(l.last_update_status, Some("InProgress"));
        l.tick();
        assert_eq!((l.state, l.last_update_status), ("Active", Some("Failed")));
    }
}
