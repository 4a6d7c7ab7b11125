//! From a zip function to the image that replaces it: the base for its runtime, the platform for
//! its architecture, its code at /var/task and its layers at /opt (in order), a custom runtime's
//! `bootstrap` copied to /var/runtime, `Cmd = [Handler]`, and annotations recording every input —
//! with one fingerprint of them all, so that a later run can tell the pushed image is up to date.

use std::collections::BTreeMap;

use serde_json::json;

use super::MigrateError;
use super::runtimes;
use crate::aws::fetch::FetchSource;
use crate::aws::functions::{FunctionCode, FunctionInfo};
use crate::core::digest::Digest;
use crate::oci::canonical_json::to_canonical_bytes;
use crate::oci::platform::Platform;
use crate::oci::reference::ImageSpec;
use crate::pipeline::LayerInput;
use crate::pipeline::inputs::LayerRef;

use crate::pipeline::fingerprint::INPUTS_ANNOTATION;

/// What the function is, checked to be migratable.
#[derive(Debug, Clone)]
pub struct Function {
    pub arn: String,
    pub region: String,
    pub runtime: String,
    pub handler: String,
    pub code_sha256: String,
    pub platform: Platform,
    /// Each layer version's ARN and CodeSha256, in order.
    pub layers: Vec<(String, String)>,
}

impl Function {
    /// Refuses what cannot be migrated: image functions, runtimes without a base image (unless
    /// `base` is given), functions without a handler.
    pub fn new(
        info: &FunctionInfo,
        layers: Vec<(String, String)>,
        base_given: bool,
        platform: Option<&Platform>,
    ) -> Result<Function, MigrateError> {
        let function = info.arn.clone();
        if info.package_type == "Image" || matches!(info.code, FunctionCode::Image { .. }) {
            return Err(MigrateError::AlreadyImage { function });
        }
        let runtime = info
            .runtime
            .clone()
            .ok_or_else(|| MigrateError::NoRuntime {
                function: function.clone(),
            })?;
        if !base_given {
            runtimes::base_image(&runtime).map_err(|message| MigrateError::Unsupported {
                function: function.clone(),
                message,
            })?;
        }
        let handler = info
            .handler
            .clone()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| MigrateError::NoHandler {
                function: function.clone(),
            })?;
        let architecture = info.architectures.first().map_or("x86_64", String::as_str);
        let platform = match platform {
            Some(p) => p.clone(),
            None => {
                Platform::from_lambda_architecture(architecture).unwrap_or_else(Platform::amd64)
            }
        };
        Ok(Function {
            arn: function,
            region: info.region.clone(),
            runtime,
            handler,
            code_sha256: info.code_sha256.clone(),
            platform,
            layers,
        })
    }

    /// `--base`, else the runtime's AWS base image.
    pub fn base(&self, given: Option<&ImageSpec>) -> Result<ImageSpec, MigrateError> {
        match given {
            Some(spec) => Ok(spec.clone()),
            None => {
                let image = runtimes::base_image(&self.runtime).map_err(|message| {
                    MigrateError::Unsupported {
                        function: self.arn.clone(),
                        message,
                    }
                })?;
                ImageSpec::parse(image).map_err(|message| MigrateError::Unsupported {
                    function: self.arn.clone(),
                    message,
                })
            }
        }
    }
}

/// The image's inputs: the code at /var/task, the layers at /opt in order, and for a custom
/// runtime the `bootstrap` of `bootstrap_from` (an index into these inputs) at /var/runtime.
pub fn inputs(
    code: LayerRef,
    layers: Vec<LayerRef>,
    bootstrap_from: Option<usize>,
) -> Vec<LayerInput> {
    let mut inputs = vec![LayerInput {
        source: code,
        prefix: Some("var/task".into()),
        only: None,
    }];
    inputs.extend(layers.into_iter().map(|source| LayerInput {
        source,
        prefix: Some("opt".into()),
        only: None,
    }));
    if let Some(i) = bootstrap_from {
        inputs.push(LayerInput {
            source: inputs[i].source.clone(),
            prefix: Some("var/runtime".into()),
            only: Some("bootstrap".into()),
        });
    }
    inputs
}

/// Where the code zip is downloaded from (GetFunction already gave its location).
pub fn code_source(info: &FunctionInfo) -> LayerRef {
    let first = match &info.code {
        FunctionCode::Zip(location) => Some(location.clone()),
        FunctionCode::Image { .. } => None,
    };
    LayerRef::Remote(FetchSource::FunctionCode {
        function: info.arn.clone(),
        region: info.region.clone(),
        first,
    })
}

/// What the image's annotations record: every input, and their fingerprint.
pub fn annotations(
    function: &Function,
    base: &ImageSpec,
    base_digest: &Digest,
    baked_env: Option<&BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    // The environment's values are secrets: only a digest of them enters the fingerprint.
    let env = baked_env.map(|e| Digest::of(&to_canonical_bytes(&json!(e))).to_string());
    let inputs = json!({
        "kind": "layerport migrate 1",
        "function": function.arn,
        "codeSha256": function.code_sha256,
        "runtime": function.runtime,
        "handler": function.handler,
        "platform": function.platform.to_string(),
        "layers": function.layers,
        "base": base.to_string(),
        "baseDigest": base_digest,
        "bakedEnvironment": env,
    });
    let fingerprint = Digest::of(&to_canonical_bytes(&inputs));
    BTreeMap::from([
        ("dev.layerport.function".into(), function.arn.clone()),
        (
            "dev.layerport.function.code-sha256".into(),
            function.code_sha256.clone(),
        ),
        (
            "dev.layerport.function.runtime".into(),
            function.runtime.clone(),
        ),
        (
            "dev.layerport.function.handler".into(),
            function.handler.clone(),
        ),
        ("dev.layerport.base".into(), base.to_string()),
        ("dev.layerport.base.digest".into(), base_digest.to_string()),
        (INPUTS_ANNOTATION.into(), fingerprint.to_string()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function() -> Function {
        Function {
            arn: "arn:aws:lambda:eu-west-1:123456789012:function:f".into(),
            region: "eu-west-1".into(),
            runtime: "python3.12".into(),
            handler: "app.handler".into(),
            code_sha256: "abc=".into(),
            platform: Platform::arm64(),
            layers: vec![("arn:l:1".into(), "s1=".into())],
        }
    }

    #[test]
    fn the_fingerprint_changes_with_every_input_and_never_holds_a_value() {
        let base = ImageSpec::parse("public.ecr.aws/lambda/python:3.12").unwrap();
        let digest = Digest::of(b"base");
        let a = annotations(&function(), &base, &digest, None);
        assert_eq!(a, annotations(&function(), &base, &digest, None));
        let mut other = function();
        other.layers[0].1 = "s2=".into();
        let b = annotations(&other, &base, &digest, None);
        assert_ne!(a[INPUTS_ANNOTATION], b[INPUTS_ANNOTATION]);
        let c = annotations(&function(), &base, &Digest::of(b"newer base"), None);
        assert_ne!(a[INPUTS_ANNOTATION], c[INPUTS_ANNOTATION]);
        let env = BTreeMap::from([("DB_PASSWORD".to_string(), "hunter2-secret".to_string())]);
        let d = annotations(&function(), &base, &digest, Some(&env));
        assert_ne!(a[INPUTS_ANNOTATION], d[INPUTS_ANNOTATION]);
        assert!(!format!("{d:?}").contains("hunter2-secret"));
    }

    #[test]
    fn code_goes_to_var_task_layers_to_opt_and_bootstrap_to_var_runtime() {
        let zip = |p: &str| LayerRef::Zip(p.into());
        let inputs = inputs(zip("code.zip"), vec![zip("a.zip"), zip("b.zip")], Some(0));
        let places: Vec<_> = inputs
            .iter()
            .map(|i| (i.prefix.as_deref().unwrap(), i.only.as_deref()))
            .collect();
        assert_eq!(
            places,
            [
                ("var/task", None),
                ("opt", None),
                ("opt", None),
                ("var/runtime", Some("bootstrap")),
            ]
        );
        assert_eq!(inputs[3].source, inputs[0].source);
    }
}
