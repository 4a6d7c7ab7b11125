//! Pointing Lambda at a migrated image: `CreateFunction` (an image function carrying the old
//! function's configuration — never its Runtime, Handler or Layers) or `UpdateFunctionCode` of an
//! existing image function, each followed by a wait until Lambda has it ready.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_lambda::types::{
    Architecture, DeadLetterConfig, Environment, EphemeralStorage, FunctionCode as CodeInput,
    FunctionConfiguration, PackageType, TracingConfig, VpcConfig,
};
use tracing::{debug, info};

use super::AwsClients;
use super::functions::{FunctionCode, FunctionError};

/// Polling stops after this long: Lambda usually needs seconds, a VPC function a few minutes.
const WAIT_LIMIT: Duration = Duration::from_secs(15 * 60);

/// What the new function gets from the old one.
pub struct NewFunction<'a> {
    pub name: &'a str,
    pub image_uri: &'a str,
    pub architecture: &'a str,
    /// The old function's configuration (its environment included: it moves to the new function).
    pub from: &'a FunctionConfiguration,
    pub tags: &'a HashMap<String, String>,
}

impl AwsClients {
    /// `CreateFunction` with `PackageType=Image`, then waits until the function is Active.
    /// Returns the new function's ARN.
    pub async fn create_image_function(
        &self,
        region: &str,
        new: &NewFunction<'_>,
    ) -> Result<String, FunctionError> {
        let old = new.from;
        let mut call = self
            .lambda(region)
            .await
            .create_function()
            .function_name(new.name)
            .package_type(PackageType::Image)
            .code(CodeInput::builder().image_uri(new.image_uri).build())
            .architectures(Architecture::from(new.architecture))
            .set_role(old.role().map(str::to_string))
            .set_memory_size(old.memory_size())
            .set_timeout(old.timeout())
            .set_description(old.description().map(str::to_string))
            .set_kms_key_arn(old.kms_key_arn().map(str::to_string))
            .set_logging_config(old.logging_config().cloned())
            .set_tags((!new.tags.is_empty()).then(|| new.tags.clone()));
        if let Some(size) = old.ephemeral_storage().map(|e| e.size())
            && let Ok(storage) = EphemeralStorage::builder().size(size).build()
        {
            call = call.ephemeral_storage(storage);
        }
        if let Some(vars) = old.environment().and_then(|e| e.variables()) {
            call = call.environment(
                Environment::builder()
                    .set_variables(Some(vars.clone()))
                    .build(),
            );
        }
        if let Some(vpc) = old.vpc_config().filter(|v| !v.subnet_ids().is_empty()) {
            call = call.vpc_config(
                VpcConfig::builder()
                    .set_subnet_ids(Some(vpc.subnet_ids().to_vec()))
                    .set_security_group_ids(Some(vpc.security_group_ids().to_vec()))
                    .set_ipv6_allowed_for_dual_stack(vpc.ipv6_allowed_for_dual_stack())
                    .build(),
            );
        }
        if let Some(mode) = old.tracing_config().and_then(|t| t.mode()) {
            call = call.tracing_config(TracingConfig::builder().mode(mode.clone()).build());
        }
        if let Some(target) = old.dead_letter_config().and_then(|d| d.target_arn()) {
            call = call.dead_letter_config(DeadLetterConfig::builder().target_arn(target).build());
        }
        for fs in old.file_system_configs() {
            call = call.file_system_configs(fs.clone());
        }
        let out = call
            .send()
            .await
            .map_err(|e| FunctionError::from_sdk("CreateFunction", new.name, region, &e))?;
        let arn = out.function_arn().unwrap_or(new.name).to_string();
        info!("created {arn}; waiting until it is Active");
        self.wait_ready(new.name, region, Ready::Active).await?;
        Ok(arn)
    }

    /// Points an existing image function at `image_uri` (`REPO@DIGEST`); nothing is called when it
    /// already runs that digest. True when it was updated.
    pub async fn update_image_function(
        &self,
        name: &str,
        region: &str,
        image_uri: &str,
        digest: &str,
    ) -> Result<bool, FunctionError> {
        let current = self.get_function(name, region).await?;
        let FunctionCode::Image { resolved, .. } = &current.code else {
            return Err(FunctionError::Other {
                operation: "UpdateFunctionCode",
                function: name.to_string(),
                detail: "it is a zip function, and Lambda cannot change a function's package type"
                    .into(),
                hint: "create a new image function with --create-function NAME instead".into(),
            });
        };
        if resolved.as_deref().is_some_and(|r| r.ends_with(digest)) {
            info!("{name} already runs {digest}; nothing to update");
            return Ok(false);
        }
        self.lambda(region)
            .await
            .update_function_code()
            .function_name(name)
            .image_uri(image_uri)
            .send()
            .await
            .map_err(|e| FunctionError::from_sdk("UpdateFunctionCode", name, region, &e))?;
        info!("updated {name} to {image_uri}; waiting until the update is done");
        self.wait_ready(name, region, Ready::Updated).await?;
        Ok(true)
    }

    /// Polls `GetFunctionConfiguration` until the function is Active (or its update Successful).
    async fn wait_ready(&self, name: &str, region: &str, want: Ready) -> Result<(), FunctionError> {
        let client = self.lambda(region).await;
        let started = std::time::Instant::now();
        let mut delay = Duration::from_millis(250);
        loop {
            let config = client
                .get_function_configuration()
                .function_name(name)
                .send()
                .await
                .map_err(|e| {
                    FunctionError::from_sdk("GetFunctionConfiguration", name, region, &e)
                })?;
            let state = config.state().map(|s| s.as_str()).unwrap_or("Active");
            let update = config
                .last_update_status()
                .map(|s| s.as_str())
                .unwrap_or("Successful");
            debug!("{name}: State {state}, LastUpdateStatus {update}");
            let (done, failed) = match want {
                Ready::Active => (state == "Active", state == "Failed"),
                Ready::Updated => (update == "Successful", update == "Failed"),
            };
            if failed {
                let reason = config
                    .state_reason()
                    .or(config.last_update_status_reason())
                    .unwrap_or("no reason given");
                return Err(FunctionError::Other {
                    operation: "GetFunctionConfiguration",
                    function: name.to_string(),
                    detail: format!("Lambda could not make the function ready: {reason}"),
                    hint: "check the image (`layerport check`), the role's permissions (ECR pull) and the VPC settings".into(),
                });
            }
            if done {
                return Ok(());
            }
            if started.elapsed() > WAIT_LIMIT {
                return Err(FunctionError::Other {
                    operation: "GetFunctionConfiguration",
                    function: name.to_string(),
                    detail: format!(
                        "still {state} / {update} after {} minutes",
                        WAIT_LIMIT.as_secs() / 60
                    ),
                    hint: "look at the function in the console; it may still become ready".into(),
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Ready {
    Active,
    Updated,
}
