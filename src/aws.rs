//! The AWS edge: one SDK configuration for the whole program (aws-config's default chain, `--profile`,
//! `--region`, the SDK's own endpoint overrides), and per-region Lambda clients built from it.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_lambda::error::DisplayErrorContext;
use aws_sdk_lambda::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_lambda::operation::get_layer_version_by_arn::GetLayerVersionByArnError;

use crate::arn::LayerArn;

/// What a user chose on the command line that shapes every AWS call.
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    pub profile: Option<String>,
    pub region: Option<String>,
}

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
            .field("location", &crate::redact::url_for_log(&self.location))
            .field("code_sha256", &self.code_sha256)
            .field("code_size", &self.code_size)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AwsError {
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
        "no AWS credentials found while fetching {arn}\n  hint: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, choose a profile with --profile or AWS_PROFILE, run `aws sso login`, or run where a role is available (instance profile, ECS task role, web identity); in a Docker build pass them as a BuildKit secret (see Dockerfile.example)"
    )]
    NoCredentials { arn: String },
    #[error(
        "Lambda kept throttling GetLayerVersionByArn for {arn} after retries\n  hint: run fewer conversions at once, or retry later"
    )]
    Throttled { arn: String },
    #[error("GetLayerVersionByArn failed for {arn}: {detail}\n  hint: {hint}")]
    Other {
        arn: String,
        detail: String,
        hint: &'static str,
    },
}

/// Lambda clients per region, all built from one loaded SDK configuration.
pub struct LambdaClients {
    config: SdkConfig,
    clients: Mutex<HashMap<String, aws_sdk_lambda::Client>>,
}

/// Loads the one SDK configuration of the program (credentials, profile, endpoint overrides).
pub async fn load_sdk_config(settings: &AwsSettings) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(5));
    if let Some(profile) = &settings.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    }
    loader.load().await
}

impl LambdaClients {
    pub fn new(config: SdkConfig) -> Self {
        LambdaClients {
            config,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// A client signing for `region` (a layer ARN is always fetched in its own region).
    fn client(&self, region: &str) -> aws_sdk_lambda::Client {
        let mut clients = self.clients.lock().expect("no panics while locked");
        clients
            .entry(region.to_string())
            .or_insert_with(|| {
                let conf = aws_sdk_lambda::config::Builder::from(&self.config)
                    .region(Region::new(region.to_string()))
                    .build();
                aws_sdk_lambda::Client::from_conf(conf)
            })
            .clone()
    }

    pub async fn get_layer_version(&self, arn: &LayerArn) -> Result<LayerVersionInfo, AwsError> {
        let text = arn.to_string();
        let out = self
            .client(&arn.region)
            .get_layer_version_by_arn()
            .arn(&text)
            .send()
            .await
            .map_err(|e| map_error(arn, e))?;
        let content = out.content().ok_or_else(|| AwsError::Other {
            arn: text.clone(),
            detail: "the answer has no Content".into(),
            hint: "retry; if it persists, check the endpoint (AWS_ENDPOINT_URL)",
        })?;
        let (Some(location), Some(sha)) = (content.location(), content.code_sha256()) else {
            return Err(AwsError::Other {
                arn: text,
                detail: "the answer has no Content.Location or CodeSha256".into(),
                hint: "retry; if it persists, check the endpoint (AWS_ENDPOINT_URL)",
            });
        };
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

fn map_error<R>(arn: &LayerArn, err: SdkError<GetLayerVersionByArnError, R>) -> AwsError
where
    R: std::fmt::Debug,
{
    let text = arn.to_string();
    if let SdkError::ServiceError(service) = &err {
        let e = service.err();
        let message = e.message().unwrap_or("no message").to_string();
        return match e {
            GetLayerVersionByArnError::ResourceNotFoundException(_) => AwsError::NotFound {
                arn: text,
                region: arn.region.clone(),
                account: arn.account.clone(),
                name: arn.name.clone(),
                version: arn.version,
            },
            GetLayerVersionByArnError::TooManyRequestsException(_) => {
                AwsError::Throttled { arn: text }
            }
            other if other.code() == Some("AccessDeniedException") => AwsError::AccessDenied {
                arn: text,
                name: arn.name.clone(),
                version: arn.version,
                message,
            },
            other
                if matches!(
                    other.code(),
                    Some(
                        "UnrecognizedClientException"
                            | "InvalidSignatureException"
                            | "ExpiredTokenException"
                    )
                ) =>
            {
                AwsError::Other {
                    arn: text,
                    detail: format!("{}: {message}", other.code().unwrap_or_default()),
                    hint: "the AWS credentials were rejected; refresh them (e.g. `aws sso login`) or check the profile",
                }
            }
            other => AwsError::Other {
                arn: text,
                detail: format!("{}: {message}", other.code().unwrap_or("error")),
                hint: "retry later; if it persists, check the layer ARN and your AWS configuration",
            },
        };
    }
    let detail = DisplayErrorContext(&err).to_string();
    let lower = detail.to_ascii_lowercase();
    if lower.contains("no credentials")
        || lower.contains("credentials provider")
        || lower.contains("failed to load credentials")
    {
        return AwsError::NoCredentials { arn: text };
    }
    AwsError::Other {
        arn: text,
        detail: crate::redact::scrub(&detail),
        hint: "check the network and the endpoint (AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_LAMBDA), then retry",
    }
}
