//! Lambda's layer API as layerport uses it: `GetLayerVersionByArn` in the ARN's own region, its
//! answer reduced to what a download needs, and its failures turned into errors that name the fix.

use aws_sdk_lambda::config::http::HttpResponse;
use aws_sdk_lambda::error::SdkError;
use aws_sdk_lambda::operation::get_layer_version_by_arn::GetLayerVersionByArnError;

use super::AwsClients;
use super::arn::LayerArn;
use super::error::{Failure, NO_CREDENTIALS_HINT, classify};

/// A layer version as `GetLayerVersionByArn` describes it. `location` is a presigned URL: a secret.
#[derive(Clone)]
pub struct LayerVersionInfo {
    pub location: String,
    pub code_sha256: String,
    pub code_size: u64,
    pub compatible_architectures: Vec<String>,
}

impl std::fmt::Debug for LayerVersionInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerVersionInfo")
            .field("location", &crate::net::redact::url_for_log(&self.location))
            .field("code_sha256", &self.code_sha256)
            .field("code_size", &self.code_size)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LayerVersionError {
    #[error(
        "access denied to {arn}: {message}\n  hint: the caller needs lambda:GetLayerVersion on {arn}; for a layer owned by another account, its owner must grant it with `aws lambda add-layer-version-permission --layer-name {name} --version-number {version} --statement-id ... --action lambda:GetLayerVersion --principal <your account or *>`"
    )]
    AccessDenied {
        arn: String,
        name: String,
        version: u64,
        message: String,
    },
    #[error(
        "layer version {arn} not found\n  hint: check the region ({region}), the account ({account}) and that version {version} exists (`aws lambda list-layer-versions --layer-name {name} --region {region}`)"
    )]
    NotFound {
        arn: String,
        region: String,
        account: String,
        name: String,
        version: u64,
    },
    #[error(
        "no AWS credentials found while fetching {arn}: {detail}\n  hint: {NO_CREDENTIALS_HINT}"
    )]
    NoCredentials { arn: String, detail: String },
    #[error(
        "Lambda kept throttling GetLayerVersionByArn for {arn} after retries\n  hint: run fewer conversions at once, or retry later"
    )]
    Throttled { arn: String },
    #[error("GetLayerVersionByArn failed for {arn}: {detail}\n  hint: {hint}")]
    Other {
        arn: String,
        detail: String,
        hint: String,
    },
}

impl AwsClients {
    /// The layer version's CodeSha256: asked of Lambda once per run (`GetLayerVersionByArn`).
    pub async fn layer_code_sha256(&self, arn: &LayerArn) -> Result<String, LayerVersionError> {
        let known = self
            .layer_sha256
            .lock()
            .expect("no panics while locked")
            .get(&arn.to_string())
            .cloned();
        match known {
            Some(sha) => Ok(sha),
            None => Ok(self.get_layer_version(arn).await?.code_sha256),
        }
    }

    /// `GetLayerVersionByArn`, in the ARN's own region.
    pub async fn get_layer_version(
        &self,
        arn: &LayerArn,
    ) -> Result<LayerVersionInfo, LayerVersionError> {
        let text = arn.to_string();
        let out = self
            .lambda(&arn.region)
            .await
            .get_layer_version_by_arn()
            .arn(&text)
            .send()
            .await
            .map_err(|e| layer_version_error(arn, &e))?;
        let incomplete = |what: &str| LayerVersionError::Other {
            arn: text.clone(),
            detail: format!("the answer has no {what}"),
            hint: "retry; if it persists, check the endpoint (AWS_ENDPOINT_URL)".into(),
        };
        let content = out.content().ok_or_else(|| incomplete("Content"))?;
        let (Some(location), Some(sha)) = (content.location(), content.code_sha256()) else {
            return Err(incomplete("Content.Location or CodeSha256"));
        };
        self.layer_sha256
            .lock()
            .expect("no panics while locked")
            .insert(text.clone(), sha.to_string());
        Ok(LayerVersionInfo {
            location: location.to_string(),
            code_sha256: sha.to_string(),
            code_size: u64::try_from(content.code_size()).unwrap_or(0),
            compatible_architectures: out
                .compatible_architectures()
                .iter()
                .map(|a| a.as_str().to_string())
                .collect(),
        })
    }
}

fn layer_version_error(
    arn: &LayerArn,
    err: &SdkError<GetLayerVersionByArnError, HttpResponse>,
) -> LayerVersionError {
    let text = arn.to_string();
    match classify(err) {
        Failure::AccessDenied { message } => LayerVersionError::AccessDenied {
            arn: text,
            name: arn.name.clone(),
            version: arn.version,
            message,
        },
        Failure::NotFound { .. } => LayerVersionError::NotFound {
            arn: text,
            region: arn.region.clone(),
            account: arn.account.clone(),
            name: arn.name.clone(),
            version: arn.version,
        },
        Failure::Throttled => LayerVersionError::Throttled { arn: text },
        Failure::NoCredentials { detail } => LayerVersionError::NoCredentials { arn: text, detail },
        other => LayerVersionError::Other {
            arn: text,
            detail: other.detail(),
            hint: match other {
                Failure::Service { .. } => {
                    "retry later; if it persists, check the layer ARN and your AWS configuration"
                        .into()
                }
                _ => other.hint("AWS_ENDPOINT_URL_LAMBDA"),
            },
        },
    }
}
