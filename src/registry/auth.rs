//! Chooses credentials per registry host: ECR hosts through GetAuthorizationToken in the host's
//! region, else the Docker config (auths, credsStore, credHelpers), else anonymous (bearer flow).

use aws_config::{Region, SdkConfig};
use aws_sdk_ecr::error::{DisplayErrorContext, ProvideErrorMetadata};
use base64::Engine;
use tracing::debug;

use super::client::Credentials;
use crate::cli::RegistryAuth;

/// `<account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]` → region.
pub fn ecr_region(host: &str) -> Option<String> {
    let host = host.split(':').next().unwrap_or(host);
    let rest = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"))?;
    let parts: Vec<&str> = rest.split('.').collect();
    match parts.as_slice() {
        [account, "dkr", ecr, region]
            if account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && (*ecr == "ecr" || *ecr == "ecr-fips") =>
        {
            Some(region.to_string())
        }
        _ => None,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(
        "cannot get an ECR token for {host} (GetAuthorizationToken in {region}): {detail}\n  hint: the caller needs ecr:GetAuthorizationToken; check the AWS credentials (--profile, AWS_PROFILE, environment) and the region"
    )]
    Ecr {
        host: String,
        region: String,
        detail: String,
    },
    #[error(
        "--registry-auth ecr for {host} needs a region\n  hint: pass --region or set AWS_REGION"
    )]
    NoRegion { host: String },
    #[error(
        "cannot read Docker credentials for {host}: {detail}\n  hint: run `docker login {host}` again, or check the credential helper named in ~/.docker/config.json"
    )]
    Docker { host: String, detail: String },
}

/// Resolves credentials for `host` according to `mode`.
pub async fn credentials_for(
    host: &str,
    mode: RegistryAuth,
    sdk: impl AsyncFnOnce() -> SdkConfig,
) -> Result<Credentials, AuthError> {
    let ecr = ecr_region(host);
    match mode {
        RegistryAuth::Anonymous => Ok(Credentials::Anonymous),
        RegistryAuth::Docker => docker_credentials(host),
        RegistryAuth::Ecr => {
            let config = sdk().await;
            let region = ecr
                .or_else(|| config.region().map(|r| r.to_string()))
                .ok_or_else(|| AuthError::NoRegion { host: host.into() })?;
            ecr_credentials(host, &region, &config).await
        }
        RegistryAuth::Auto => match ecr {
            Some(region) => ecr_credentials(host, &region, &sdk().await).await,
            None => match docker_credentials(host) {
                Ok(c) => Ok(c),
                Err(e) => {
                    debug!("{e}; continuing anonymously");
                    Ok(Credentials::Anonymous)
                }
            },
        },
    }
}

async fn ecr_credentials(
    host: &str,
    region: &str,
    config: &SdkConfig,
) -> Result<Credentials, AuthError> {
    let conf = aws_sdk_ecr::config::Builder::from(config)
        .region(Region::new(region.to_string()))
        .build();
    let client = aws_sdk_ecr::Client::from_conf(conf);
    let err = |detail: String| AuthError::Ecr {
        host: host.into(),
        region: region.into(),
        detail,
    };
    let out = client.get_authorization_token().send().await.map_err(|e| {
        let detail = match e.code() {
            Some(code) => format!("{code}: {}", e.message().unwrap_or("")),
            None => crate::redact::scrub(&DisplayErrorContext(&e).to_string()),
        };
        err(detail)
    })?;
    let token = out
        .authorization_data()
        .first()
        .and_then(|d| d.authorization_token())
        .ok_or_else(|| err("the answer holds no token".into()))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| err("the token is not base64 text".into()))?;
    let (username, password) = decoded
        .split_once(':')
        .ok_or_else(|| err("the token is not USER:PASSWORD".into()))?;
    Ok(Credentials::Basic {
        username: username.to_string(),
        password: password.to_string(),
    })
}

fn docker_credentials(host: &str) -> Result<Credentials, AuthError> {
    let server = if host == "docker.io" {
        "https://index.docker.io/v1/"
    } else {
        host
    };
    match docker_credential::get_credential(server) {
        Ok(docker_credential::DockerCredential::UsernamePassword(username, password)) => {
            Ok(Credentials::Basic { username, password })
        }
        Ok(docker_credential::DockerCredential::IdentityToken(_)) => Err(AuthError::Docker {
            host: host.into(),
            detail: "the Docker config holds an identity token, which layerport cannot use".into(),
        }),
        Err(e) => {
            // A helper's own output may hold secrets: report only the kind of failure.
            let detail = match e {
                docker_credential::CredentialRetrievalError::HelperFailure { helper, .. } => {
                    format!("credential helper {helper} failed")
                }
                other => other.to_string(),
            };
            Err(AuthError::Docker {
                host: host.into(),
                detail,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_ecr_hosts() {
        assert_eq!(
            ecr_region("123456789012.dkr.ecr.us-east-1.amazonaws.com").as_deref(),
            Some("us-east-1")
        );
        assert_eq!(
            ecr_region("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn").as_deref(),
            Some("cn-north-1")
        );
        assert_eq!(
            ecr_region("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com").as_deref(),
            Some("us-gov-west-1")
        );
        assert_eq!(ecr_region("public.ecr.aws"), None);
        assert_eq!(ecr_region("localhost:5000"), None);
        assert_eq!(ecr_region("12345.dkr.ecr.us-east-1.amazonaws.com"), None);
    }
}
