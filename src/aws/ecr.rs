//! Amazon ECR as layerport uses it: registry credentials from `GetAuthorizationToken` in the
//! registry host's own region (kept in memory only), and `--create-repository`.

use std::time::{Duration, SystemTime};

use base64::Engine;
use tracing::debug;

use super::AwsClients;
use super::error::{Failure, classify};

/// A registry login from `GetAuthorizationToken`: user `AWS` and a token valid for 12 hours.
pub struct EcrLogin {
    pub username: String,
    pub password: String,
    /// When the token stops working (as ECR reports it).
    pub expires: Option<SystemTime>,
}

impl std::fmt::Debug for EcrLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EcrLogin({}, <redacted>)", self.username)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EcrError {
    #[error(
        "cannot get an ECR token for {host} (GetAuthorizationToken in {region}): {detail}\n  hint: {hint}"
    )]
    Token {
        host: String,
        region: String,
        detail: String,
        hint: String,
    },
    #[error(
        "cannot create ECR repository {repository} in {region}: {detail}\n  hint: the caller needs ecr:CreateRepository and ecr:DescribeRepositories"
    )]
    CreateRepository {
        repository: String,
        region: String,
        detail: String,
    },
}

impl AwsClients {
    /// Logs in to the ECR registry at `host`, whose region is `region`.
    pub async fn ecr_login(&self, host: &str, region: &str) -> Result<EcrLogin, EcrError> {
        let err = |detail: String, hint: String| EcrError::Token {
            host: host.into(),
            region: region.into(),
            detail,
            hint,
        };
        let out = self
            .ecr(region)
            .await
            .get_authorization_token()
            .send()
            .await
            .map_err(|e| {
                let failure = classify(&e);
                let hint = match failure {
                    Failure::NoCredentials { .. } | Failure::Network { .. } => {
                        failure.hint("AWS_ENDPOINT_URL_ECR")
                    }
                    _ => "the caller needs ecr:GetAuthorizationToken; check the AWS credentials (--profile, AWS_PROFILE, environment) and the region".into(),
                };
                err(failure.detail(), hint)
            })?;
        let bad = |detail: &str| {
            err(
                detail.into(),
                "retry; if it persists, check the endpoint (AWS_ENDPOINT_URL_ECR)".into(),
            )
        };
        let data = out
            .authorization_data()
            .first()
            .ok_or_else(|| bad("the answer holds no authorization data"))?;
        let token = data
            .authorization_token()
            .ok_or_else(|| bad("the answer holds no token"))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| bad("the token is not base64 text"))?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or_else(|| bad("the token is not USER:PASSWORD"))?;
        let expires = data.expires_at().and_then(|t| {
            u64::try_from(t.secs())
                .ok()
                .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
        });
        debug!("got an ECR token for {host} from {region}");
        Ok(EcrLogin {
            username: username.to_string(),
            password: password.to_string(),
            expires,
        })
    }

    /// `--create-repository`: makes sure the repository exists (DescribeRepositories, then
    /// CreateRepository). True when it was created.
    pub async fn ensure_ecr_repository(
        &self,
        region: &str,
        repository: &str,
    ) -> Result<bool, EcrError> {
        let client = self.ecr(region).await;
        let err = |detail: String| EcrError::CreateRepository {
            repository: repository.into(),
            region: region.into(),
            detail,
        };
        match client
            .describe_repositories()
            .repository_names(repository)
            .send()
            .await
        {
            Ok(_) => return Ok(false),
            Err(e) => match classify(&e) {
                Failure::NotFound { code, .. } if code == "RepositoryNotFoundException" => {}
                other => return Err(err(other.detail())),
            },
        }
        match client
            .create_repository()
            .repository_name(repository)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => match classify(&e) {
                Failure::Service { code, .. } if code == "RepositoryAlreadyExistsException" => {
                    Ok(false)
                }
                other => Err(err(other.detail())),
            },
        }
    }
}
