//! Chooses where each registry host's credentials come from: ECR hosts through an ECR login in the
//! host's region (obtained by the caller, which holds the AWS clients), else the Docker config
//! (auths, credsStore, credHelpers), else anonymous (the bearer-token flow).

use tracing::debug;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

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

/// What a registry request is sent with.
#[derive(Clone, Default)]
pub enum Credentials {
    #[default]
    Anonymous,
    Basic {
        username: String,
        password: String,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
        }
    }
}

/// Credentials and when they stop working (`None`: they do not expire).
#[derive(Debug, Clone, Default)]
pub struct Login {
    pub credentials: Credentials,
    pub expires: Option<SystemTime>,
}

/// Logs in again (an ECR token): the error says why it could not, with its hint.
pub type Renewal = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = std::result::Result<Login, String>> + Send>>
        + Send
        + Sync,
>;

/// How registries are authenticated (`--registry-auth`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AuthMode {
    /// ECR hosts through GetAuthorizationToken, else the Docker config, else anonymous.
    #[default]
    Auto,
    /// Every registry is an ECR (VPC endpoints, proxies).
    Ecr,
    Docker,
    Anonymous,
}

/// Where a host's credentials come from under `mode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    Anonymous,
    /// An ECR login in this region (`None`: the default region, for `--registry-auth ecr`).
    Ecr(Option<String>),
    /// The Docker config; with `fallback`, anonymous when it has nothing for the host.
    Docker {
        fallback: bool,
    },
}

pub fn credential_source(host: &str, mode: AuthMode) -> CredentialSource {
    match (mode, ecr_region(host)) {
        (AuthMode::Anonymous, _) => CredentialSource::Anonymous,
        (AuthMode::Docker, _) => CredentialSource::Docker { fallback: false },
        (AuthMode::Ecr, region) => CredentialSource::Ecr(region),
        (AuthMode::Auto, Some(region)) => CredentialSource::Ecr(Some(region)),
        (AuthMode::Auto, None) => CredentialSource::Docker { fallback: true },
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(
        "--registry-auth ecr for {host} needs a region\n  hint: pass --region or set AWS_REGION"
    )]
    NoRegion { host: String },
    #[error(
        "cannot read Docker credentials for {host}: {detail}\n  hint: run `docker login {host}` again, or check the credential helper named in ~/.docker/config.json"
    )]
    Docker { host: String, detail: String },
}

/// Credentials for `host` from the Docker config (`auths`, `credsStore`, `credHelpers`); with
/// `fallback`, anonymous access when there are none.
pub fn docker_config_credentials(host: &str, fallback: bool) -> Result<Credentials, AuthError> {
    match docker_credentials(host) {
        Ok(c) => Ok(c),
        Err(e) if fallback => {
            debug!("{e}; continuing anonymously");
            Ok(Credentials::Anonymous)
        }
        Err(e) => Err(e),
    }
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
    fn sources_follow_the_mode_and_the_host() {
        let ecr = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
        assert_eq!(
            credential_source(ecr, AuthMode::Auto),
            CredentialSource::Ecr(Some("eu-west-1".into()))
        );
        assert_eq!(
            credential_source("localhost:5000", AuthMode::Auto),
            CredentialSource::Docker { fallback: true }
        );
        assert_eq!(
            credential_source("localhost:5000", AuthMode::Ecr),
            CredentialSource::Ecr(None)
        );
        assert_eq!(
            credential_source(ecr, AuthMode::Anonymous),
            CredentialSource::Anonymous
        );
    }

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
