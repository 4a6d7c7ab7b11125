//! The tests' API for Lambda functions on [`FakeAws`]: registering zip and image functions (and
//! what `migrate` must report as "move by hand": versions, aliases, triggers, policy, URL,
//! provisioned concurrency), steering state transitions and permissions, and reading back what the
//! client asked for (CreateFunction / UpdateFunctionCode bodies, code downloads, current state).

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::function_state::{
    Alias, FunctionCode, FunctionSpec, FunctionStatus, Lifecycle, StoredFunction, UrlConfig,
    parse_function_name,
};
use super::functions::{layer_sizes, publish_version, store_version_config};
use super::util::{hex, iso8601_lambda, now_epoch};
use super::{FakeAws, State};

/// The unqualified ARN of a stored function named by ARN (a qualifier is ignored) or by a name
/// that is unique across regions. Panics otherwise: that is a bug in the test.
fn find(st: &State, function: &str) -> String {
    if function.starts_with("arn:") {
        let r = parse_function_name(function, "")
            .unwrap_or_else(|| panic!("not a function ARN: {function}"));
        assert!(st.functions.contains_key(&r.arn), "no function {function}");
        return r.arn;
    }
    let found: Vec<&String> = st
        .functions
        .iter()
        .filter(|(_, f)| f.latest.spec.name == function)
        .map(|(arn, _)| arn)
        .collect();
    match found.as_slice() {
        [arn] => (*arn).clone(),
        [] => panic!("no function named {function}"),
        _ => panic!("function name {function} is ambiguous; use its ARN"),
    }
}

fn uuid_from(seed: &str) -> String {
    let h = hex(&Sha256::digest(seed.as_bytes()));
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

impl FakeAws {
    /// Registers an existing, Active function (zip or image) and returns its ARN. Its layers must
    /// have been added with `add_layer`; its zip is served at a presigned `Code.Location`.
    /// Panics when the function exists, a layer is unknown, or an image is not `repo@sha256:..`.
    pub fn add_function(&self, spec: FunctionSpec) -> String {
        let mut st = self.shared.state();
        let arn = spec.arn();
        assert!(
            !st.functions.contains_key(&arn),
            "add_function: {arn} exists"
        );
        if let FunctionCode::Image {
            resolved_image_uri, ..
        } = &spec.code
        {
            assert!(
                resolved_image_uri.rsplit_once("@sha256:").is_some(),
                "add_function: resolved_image_uri must be repo@sha256:<hex>, got {resolved_image_uri}"
            );
            assert!(
                spec.layers.is_empty(),
                "add_function: image functions have no layers"
            );
        }
        let layers = layer_sizes(&st, &spec.layers)
            .unwrap_or_else(|arn| panic!("add_function: add_layer({arn}) first"));
        let latest = store_version_config(&mut st, spec, layers);
        st.functions.insert(
            arn.clone(),
            StoredFunction::new(latest, Lifecycle::active()),
        );
        arn
    }

    /// Publishes the function's current $LATEST as the next version; returns its number.
    pub fn publish_version(&self, function: &str) -> u64 {
        let mut st = self.shared.state();
        let arn = find(&st, function);
        publish_version(&mut st, &arn).expect("function exists")
    }

    /// Points alias `name` at `version` ("$LATEST" or a published number).
    pub fn add_alias(&self, function: &str, name: &str, version: &str) {
        let mut st = self.shared.state();
        let arn = find(&st, function);
        let f = st.functions.get_mut(&arn).expect("found");
        assert!(
            version == "$LATEST" || f.resolve(Some(version)).is_some(),
            "add_alias: {arn} has no version {version}"
        );
        f.aliases.insert(
            name.into(),
            Alias {
                version: version.into(),
                description: String::new(),
                revision_id: uuid_from(&format!("{arn}:{name}")),
            },
        );
    }

    /// An event source mapping (trigger) from `event_source_arn` to the function (its ARN may carry
    /// a qualifier); returns the mapping's UUID.
    pub fn add_event_source_mapping(&self, function: &str, event_source_arn: &str) -> String {
        let mut st = self.shared.state();
        let arn = find(&st, function);
        let qualified = match parse_function_name(function, "").and_then(|r| r.qualifier) {
            Some(q) if function.starts_with("arn:") => format!("{arn}:{q}"),
            _ => arn.clone(),
        };
        let uuid = uuid_from(&format!("{qualified}->{event_source_arn}"));
        let (region, account) = {
            let p: Vec<&str> = arn.split(':').collect();
            (p[3].to_string(), p[4].to_string())
        };
        st.event_source_mappings.push(json!({
            "UUID": uuid,
            "BatchSize": 10,
            "MaximumBatchingWindowInSeconds": 0,
            "EventSourceArn": event_source_arn,
            "FunctionArn": qualified,
            "LastModified": now_epoch(),
            "State": "Enabled",
            "StateTransitionReason": "USER_INITIATED",
            "FunctionResponseTypes": [],
            "EventSourceMappingArn": format!("arn:aws:lambda:{region}:{account}:event-source-mapping:{uuid}"),
        }));
        uuid
    }

    /// Adds a statement to the function's resource-based policy (what GetPolicy returns), e.g.
    /// `json!({"Sid": "s3", "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"},
    /// "Action": "lambda:InvokeFunction", "Resource": arn})`.
    pub fn add_policy_statement(&self, function: &str, statement: Value) {
        let mut st = self.shared.state();
        let arn = find(&st, function);
        let f = st.functions.get_mut(&arn).expect("found");
        f.policy.push(statement);
        f.policy_revision = uuid_from(&format!("{arn}:policy:{}", f.policy.len()));
    }

    /// Gives the function (or one alias, with `qualifier`) a function URL; returns the URL.
    pub fn set_function_url(
        &self,
        function: &str,
        qualifier: Option<&str>,
        auth_type: &str,
    ) -> String {
        let mut st = self.shared.state();
        let arn = find(&st, function);
        let f = st.functions.get_mut(&arn).expect("found");
        let id = &hex(&Sha256::digest(format!("{arn}:{qualifier:?}").as_bytes()))[..32];
        let url = format!("https://{id}.lambda-url.{}.on.aws/", f.latest.spec.region);
        f.urls.insert(
            qualifier.unwrap_or_default().into(),
            UrlConfig {
                auth_type: auth_type.into(),
                created: iso8601_lambda(std::time::SystemTime::now()),
                url: url.clone(),
            },
        );
        url
    }

    /// Provisioned concurrency on a version or alias.
    pub fn set_provisioned_concurrency(&self, function: &str, qualifier: &str, executions: i64) {
        let mut st = self.shared.state();
        let arn = find(&st, function);
        st.functions
            .get_mut(&arn)
            .expect("found")
            .provisioned
            .insert(qualifier.into(), executions);
    }

    /// Lets CreateFunction / UpdateFunctionCode resolve a tag ImageUri to `repo@sha256:..` (a
    /// digest ImageUri resolves to itself; any other is "Source image ... does not exist").
    pub fn set_image_digest(&self, image_uri: &str, resolved_image_uri: &str) {
        self.shared
            .state()
            .image_digests
            .insert(image_uri.into(), resolved_image_uri.into());
    }

    /// How many configuration reads (GetFunction or GetFunctionConfiguration of $LATEST) a
    /// function created or updated from now on answers Pending / InProgress before it settles.
    /// Default 1; 0 settles on the first read (the write's own answer is always in progress).
    pub fn set_pending_reads(&self, reads: u32) {
        self.shared.state().pending_reads = reads;
    }

    /// Denies the caller a Lambda operation (its IAM action, e.g. "GetFunction"): every call of it
    /// answers 403 AccessDeniedException naming `lambda:<operation>` and the resource.
    /// GetLayerVersionByArn of `arn` answers AccessDeniedException (no permission on that layer).
    pub fn deny_layer(&self, arn: &str) {
        self.shared.state().denied_layers.insert(arn.into());
    }

    pub fn deny_action(&self, operation: &str) {
        self.shared.state().denied_actions.insert(operation.into());
    }

    pub fn allow_action(&self, operation: &str) {
        self.shared.state().denied_actions.remove(operation);
    }

    /// Every CreateFunction body received, parsed, in order (refused ones included).
    pub fn create_function_requests(&self) -> Vec<Value> {
        self.shared.state().create_requests.clone()
    }

    /// Every UpdateFunctionCode received: (FunctionName as in the path, body), in order.
    pub fn update_function_code_requests(&self) -> Vec<(String, Value)> {
        self.shared.state().update_code_requests.clone()
    }

    /// The function's current state, by name or ARN; `None` when it does not exist. Reading it
    /// does not advance a transition.
    pub fn function_status(&self, function: &str) -> Option<FunctionStatus> {
        let st = self.shared.state();
        let arn = if function.starts_with("arn:") {
            parse_function_name(function, "")?.arn
        } else {
            st.functions
                .iter()
                .find(|(_, f)| f.latest.spec.name == function)?
                .0
                .clone()
        };
        st.functions.get(&arn).map(StoredFunction::status)
    }

    /// The spec a function's $LATEST was registered or created with (CreateFunction's request
    /// mapped back onto a [`FunctionSpec`]).
    pub fn function_spec(&self, function: &str) -> FunctionSpec {
        let st = self.shared.state();
        let arn = find(&st, function);
        st.functions[&arn].latest.spec.clone()
    }

    /// How many requests were routed to a function operation ("GetFunction", "CreateFunction",
    /// "UpdateFunctionCode", ...), whatever they were answered.
    pub fn lambda_calls(&self, operation: &str) -> usize {
        self.shared
            .state()
            .requests
            .iter()
            .filter(|r| r.operation == Some(operation))
            .count()
    }

    /// Every function ARN the fake holds.
    pub fn function_arns(&self) -> Vec<String> {
        self.shared.state().functions.keys().cloned().collect()
    }

    /// Downloads answered (any status) of the function's current code zip; with `arn:<n>`, of
    /// version n's.
    pub fn code_download_count(&self, function: &str) -> usize {
        let st = self.shared.state();
        let arn = find(&st, function);
        let qualifier = parse_function_name(function, "").and_then(|r| r.qualifier);
        let f = &st.functions[&arn];
        let (v, _, _) = f
            .resolve(
                qualifier
                    .filter(|_| function.starts_with("arn:"))
                    .as_deref(),
            )
            .expect("version exists");
        st.download_hits.get(&v.download_path).copied().unwrap_or(0)
    }

    /// The X-Amz-Signature of the function's current `Code.Location` (a secret: never printed).
    pub fn function_presign_signature(&self, function: &str) -> String {
        let st = self.shared.state();
        let arn = find(&st, function);
        st.functions[&arn].latest.signature.clone()
    }
}
