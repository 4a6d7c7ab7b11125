//! What a migration cannot carry over, because Lambda cannot change a function's package type: the
//! old function's triggers, URL, resource policy, aliases, provisioned concurrency, and settings an
//! image function does not support. Each is looked up and reported for the user to move by hand;
//! a lookup the caller may not make is reported as such, not as a failure of the migration.

use serde::Serialize;

use super::AwsClients;
use super::error::{Failure, classify};
use super::functions::FunctionInfo;

/// One thing to move by hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManualStep {
    /// What it is: `event-source-mapping`, `function-url`, `resource-policy`, `alias`,
    /// `provisioned-concurrency`, `code-signing`, `snap-start`, `runtime-management`.
    pub kind: &'static str,
    pub detail: String,
}

fn step(kind: &'static str, detail: impl Into<String>) -> ManualStep {
    ManualStep {
        kind,
        detail: detail.into(),
    }
}

/// Why a lookup found nothing to report: not found is nothing; anything else is said.
fn unknown(kind: &'static str, action: &str, failure: Failure) -> Option<ManualStep> {
    match failure {
        Failure::NotFound { .. } => None,
        Failure::AccessDenied { .. } => Some(step(
            kind,
            format!("could not check (the caller lacks lambda:{action}); check it by hand"),
        )),
        other => Some(step(kind, format!("could not check ({})", other.detail()))),
    }
}

impl AwsClients {
    /// Everything attached to `function` that a new image function does not get.
    pub async fn manual_steps(&self, function: &FunctionInfo) -> Vec<ManualStep> {
        let client = self.lambda(&function.region).await;
        let name = function.arn.as_str();
        let mut steps = Vec::new();
        match client
            .list_event_source_mappings()
            .function_name(name)
            .send()
            .await
        {
            Ok(out) => steps.extend(out.event_source_mappings().iter().map(|m| {
                step(
                    "event-source-mapping",
                    format!(
                        "{} (UUID {}): recreate it for the new function, then delete the old one",
                        m.event_source_arn().unwrap_or("a source"),
                        m.uuid().unwrap_or("?")
                    ),
                )
            })),
            Err(e) => steps.extend(unknown(
                "event-source-mapping",
                "ListEventSourceMappings",
                classify(&e),
            )),
        }
        match client
            .get_function_url_config()
            .function_name(name)
            .send()
            .await
        {
            Ok(out) => steps.push(step(
                "function-url",
                format!(
                    "{} (auth {}): create a URL for the new function; its address will differ",
                    out.function_url(),
                    out.auth_type().as_str()
                ),
            )),
            Err(e) => steps.extend(unknown(
                "function-url",
                "GetFunctionUrlConfig",
                classify(&e),
            )),
        }
        match client.get_policy().function_name(name).send().await {
            Ok(out) => {
                let statements = out
                    .policy()
                    .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
                    .and_then(|p| p["Statement"].as_array().map(Vec::len))
                    .unwrap_or(0);
                steps.push(step(
                    "resource-policy",
                    format!("{statements} statement(s) let other services or accounts invoke it: add them to the new function (`aws lambda add-permission`)"),
                ));
            }
            Err(e) => steps.extend(unknown("resource-policy", "GetPolicy", classify(&e))),
        }
        match client.list_aliases().function_name(name).send().await {
            Ok(out) => steps.extend(out.aliases().iter().map(|a| {
                step(
                    "alias",
                    format!("{} → version {}: publish a version of the new function and create the alias there", a.name().unwrap_or("?"), a.function_version().unwrap_or("?")),
                )
            })),
            Err(e) => steps.extend(unknown("alias", "ListAliases", classify(&e))),
        }
        match client
            .list_provisioned_concurrency_configs()
            .function_name(name)
            .send()
            .await
        {
            Ok(out) => steps.extend(out.provisioned_concurrency_configs().iter().map(|c| {
                step(
                    "provisioned-concurrency",
                    format!(
                        "{} instance(s) on {}: configure it on the new function's version or alias",
                        c.requested_provisioned_concurrent_executions().unwrap_or(0),
                        c.function_arn().unwrap_or("?")
                    ),
                )
            })),
            Err(e) => steps.extend(unknown(
                "provisioned-concurrency",
                "ListProvisionedConcurrencyConfigs",
                classify(&e),
            )),
        }
        match client.get_function_code_signing_config().function_name(name).send().await {
            Ok(out) if !out.code_signing_config_arn().is_empty() => steps.push(step(
                "code-signing",
                format!("{}: code signing applies to zip functions only; an image is verified by its digest (consider ECR image signing)", out.code_signing_config_arn()),
            )),
            Ok(_) => {}
            Err(e) => steps.extend(unknown("code-signing", "GetFunctionCodeSigningConfig", classify(&e))),
        }
        steps.extend(unsupported_settings(function));
        steps
    }
}

/// Settings of the old function an image function does not take.
fn unsupported_settings(function: &FunctionInfo) -> Vec<ManualStep> {
    let config = &function.configuration;
    let mut steps = Vec::new();
    if let Some(snap) = config.snap_start()
        && snap.apply_on().is_some_and(|a| a.as_str() != "None")
    {
        steps.push(step(
            "snap-start",
            "SnapStart is on, and image functions do not support it: expect longer cold starts, or keep the zip function",
        ));
    }
    if config
        .runtime_version_config()
        .and_then(|r| r.runtime_version_arn())
        .is_some()
    {
        steps.push(step(
            "runtime-management",
            "runtime updates are managed by Lambda for zip functions; an image's runtime is the base image's: rebuild it to update",
        ));
    }
    steps
}
