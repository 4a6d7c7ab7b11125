//! The one place that tells what an AWS call's failure means — denied, not found, throttled, no
//! credentials, rejected credentials, the network — so that each operation's error can name its
//! fix, and no message ever carries more of the SDK's text than the service's own code and message.

use std::error::Error as StdError;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_lambda::config::http::HttpResponse;
use aws_sdk_lambda::config::interceptors::InterceptorContext;
use aws_sdk_lambda::config::retry::{ClassifyRetry, RetryAction};
use aws_sdk_lambda::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::net::is_unknown_host_error;
use crate::net::redact::scrub;

/// What went wrong with an AWS call, whatever the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The caller lacks a permission (the service's message usually names the action).
    AccessDenied { message: String },
    /// The named resource does not exist (or is not visible to the caller).
    NotFound { code: String, message: String },
    /// The service kept throttling after the SDK's retries.
    Throttled,
    /// No credentials could be loaded from any source of the default chain.
    NoCredentials { detail: String },
    /// Credentials were found but refused: expired, unknown key, bad signature.
    BadCredentials { code: String, message: String },
    /// The request itself was refused as invalid.
    Invalid { code: String, message: String },
    /// Any other answer from the service; `code` is empty when its body was not understood.
    Service {
        code: String,
        message: String,
        status: Option<u16>,
    },
    /// The service could not be reached (DNS, connection, timeout, TLS).
    Network { detail: String },
}

/// Codes of refused credentials, across Lambda, ECR, S3 and STS.
const BAD_CREDENTIALS: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "ExpiredToken",
    "InvalidClientTokenId",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AuthFailure",
];

impl Failure {
    /// A short description for messages: the service's code and message, or what failed.
    pub fn detail(&self) -> String {
        match self {
            Failure::AccessDenied { message } => format!("AccessDenied: {message}"),
            Failure::NotFound { code, message }
            | Failure::BadCredentials { code, message }
            | Failure::Invalid { code, message } => format!("{code}: {message}"),
            Failure::Throttled => "throttled (TooManyRequests) after retries".into(),
            Failure::NoCredentials { detail } => format!("no AWS credentials: {detail}"),
            Failure::Service {
                code,
                message,
                status,
            } => match (code.is_empty(), status) {
                (false, _) => format!("{code}: {message}"),
                (true, Some(s)) => format!("HTTP {s} with a body that is not an AWS error"),
                (true, None) => format!("an answer that is not an AWS error ({message})"),
            },
            Failure::Network { detail } => detail.clone(),
        }
    }

    /// The generic fix for this kind of failure; operations add their own where they know better.
    pub fn hint(&self, service_env: &str) -> String {
        match self {
            Failure::AccessDenied { .. } => {
                "the caller lacks a permission; check its IAM policy".into()
            }
            Failure::NotFound { .. } => "check the name, the region and the account".into(),
            Failure::Throttled => "run fewer operations at once, or retry later".into(),
            Failure::NoCredentials { .. } => NO_CREDENTIALS_HINT.into(),
            Failure::BadCredentials { .. } => {
                "the AWS credentials were rejected; refresh them (e.g. `aws sso login`) or check the profile".into()
            }
            Failure::Invalid { .. } => "check the values given for this call".into(),
            Failure::Service { .. } => "retry later; if it persists, check your AWS configuration".into(),
            Failure::Network { .. } => format!(
                "check the network and the endpoint (AWS_ENDPOINT_URL / {service_env}), then retry"
            ),
        }
    }
}

/// How to provide credentials, for every "no credentials" error.
pub const NO_CREDENTIALS_HINT: &str = "configure AWS credentials: choose a profile with AWS_PROFILE or --profile (made with `aws configure`, or `aws configure sso` then `aws sso login`), or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where a role is available (instance profile, ECS task role, web identity); in a Docker build pass them as a BuildKit secret (see Dockerfile.example)";

/// Classifies a failed SDK call.
pub fn classify<E>(err: &SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    if let Some(detail) = credentials_failure(err) {
        return Failure::NoCredentials { detail };
    }
    match err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let status = service.raw().status().as_u16();
            let code = e.code().unwrap_or("").to_string();
            let message = e.message().unwrap_or("no message").to_string();
            classify_code(code, message, Some(status))
        }
        SdkError::TimeoutError(_) => Failure::Network {
            detail: "the request timed out".into(),
        },
        SdkError::DispatchFailure(_) if is_unknown_host_error(err) => Failure::Network {
            detail: "the endpoint's host name does not resolve (DNS: name not known); not retried"
                .into(),
        },
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => Failure::Network {
            detail: messages(err),
        },
        _ => Failure::Service {
            code: String::new(),
            message: scrub(&DisplayErrorContext(err).to_string()),
            status: None,
        },
    }
}

/// Sorts a service's error code into a kind (also for errors the SDK surfaces only as code and
/// message, such as S3's).
pub fn classify_code(code: String, message: String, status: Option<u16>) -> Failure {
    let lower = code.to_ascii_lowercase();
    if lower.contains("accessdenied") || code == "AccessDenied" || code == "Forbidden" {
        return Failure::AccessDenied { message };
    }
    if BAD_CREDENTIALS.contains(&code.as_str()) {
        return Failure::BadCredentials { code, message };
    }
    if lower.contains("notfound") || lower.starts_with("nosuch") {
        return Failure::NotFound { code, message };
    }
    if lower.contains("toomanyrequests") || lower.contains("throttl") || code == "SlowDown" {
        return Failure::Throttled;
    }
    if lower.contains("invalidparameter") || lower.contains("validation") {
        return Failure::Invalid { code, message };
    }
    Failure::Service {
        code,
        message,
        status,
    }
}

/// The credential chain's own failure, when that is why the call never went out.
fn credentials_failure(err: &(dyn StdError + 'static)) -> Option<String> {
    let mut cause: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cause {
        if let Some(creds) = e.downcast_ref::<CredentialsError>() {
            const NONE: &str = "no source of the default chain (environment, profile, SSO, web identity, container, instance metadata) provided any";
            let detail = match creds {
                CredentialsError::CredentialsNotLoaded(_) => NONE.to_string(),
                // The chain's last source was the instance metadata, which refused: in a
                // container or CI runner that only means no credentials were configured.
                other => format!("{NONE}; the last one tried said: {}", messages(other)),
            };
            return Some(detail);
        }
        cause = e.source();
    }
    None
}

/// Makes the SDK give up at once on a host name that does not resolve: its standard retry
/// classifier treats every connection error as transient, and five attempts with backoff only
/// delay the same answer.
#[derive(Debug, Default)]
pub struct UnknownHostIsFinal;

impl ClassifyRetry for UnknownHostIsFinal {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        match ctx.output_or_error() {
            Some(Err(err)) => match err.as_connector_error() {
                Some(conn) if is_unknown_host_error(conn) => RetryAction::RetryForbidden,
                _ => RetryAction::NoActionIndicated,
            },
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "layerport: unknown host is final"
    }
}

/// An error's own messages, each cause once, joined by ": " — without the debug dumps of SDK
/// responses that `DisplayErrorContext` appends.
fn messages(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cause: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cause {
        let text = scrub(&e.to_string());
        let text = text.trim().trim_end_matches('.').to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_sort_into_kinds() {
        let kind = |code: &str| classify_code(code.into(), "m".into(), Some(400));
        assert_eq!(
            kind("AccessDeniedException"),
            Failure::AccessDenied {
                message: "m".into()
            }
        );
        assert!(matches!(
            kind("ResourceNotFoundException"),
            Failure::NotFound { .. }
        ));
        assert!(matches!(kind("NoSuchBucket"), Failure::NotFound { .. }));
        assert!(matches!(
            kind("ExpiredTokenException"),
            Failure::BadCredentials { .. }
        ));
        assert_eq!(kind("TooManyRequestsException"), Failure::Throttled);
        assert!(matches!(
            kind("InvalidParameterValueException"),
            Failure::Invalid { .. }
        ));
        assert!(matches!(kind("ServiceException"), Failure::Service { .. }));
    }

    #[test]
    fn a_body_that_is_not_an_aws_error_says_the_status() {
        let f = classify_code(String::new(), "no message".into(), Some(502));
        assert_eq!(f.detail(), "HTTP 502 with a body that is not an AWS error");
    }
}
