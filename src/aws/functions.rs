//! Lambda functions as `migrate` reads them: a FUNCTION argument (name, ARN, qualified ARN) and its
//! region, `GetFunction` reduced to what a migration needs, and its failures with the fix. The
//! function's environment values are secrets: no Debug or message ever shows them.

use std::collections::BTreeMap;

use aws_sdk_lambda::config::http::HttpResponse;
use aws_sdk_lambda::error::SdkError;
use aws_sdk_lambda::types::FunctionConfiguration;

use super::AwsClients;
use super::error::{Failure, NO_CREDENTIALS_HINT, classify};
use super::lambda::LayerVersionInfo;

/// A FUNCTION argument: a name, `name:qualifier`, or a (qualified) function ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRef {
    /// As GetFunction takes it (a name, or an ARN with its qualifier).
    pub name: String,
    /// From the ARN; `None` means --region / the default chain.
    pub region: Option<String>,
}

impl FunctionRef {
    pub fn parse(arg: &str) -> Result<FunctionRef, String> {
        let bad = |why: &str| {
            format!(
                "malformed function {arg:?}: {why}\n  expected a function name, NAME:QUALIFIER, or arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]"
            )
        };
        if arg.is_empty() {
            return Err(bad("it is empty"));
        }
        if !arg.starts_with("arn:") {
            if arg.contains(['/', ' ']) || arg.split(':').count() > 3 {
                return Err(bad("a name holds letters, digits, '-' and '_'"));
            }
            return Ok(FunctionRef {
                name: arg.to_string(),
                region: None,
            });
        }
        let parts: Vec<&str> = arg.split(':').collect();
        if !(7..=8).contains(&parts.len()) || parts[2] != "lambda" || parts[5] != "function" {
            return Err(bad("field 3 must be `lambda` and field 6 `function`"));
        }
        if parts[3].is_empty() || parts[4].len() != 12 || parts[6].is_empty() {
            return Err(bad(
                "the region, the 12-digit account and the name must all be given",
            ));
        }
        Ok(FunctionRef {
            name: arg.to_string(),
            region: Some(parts[3].to_string()),
        })
    }
}

/// Where a function's code is.
#[derive(Debug, Clone)]
pub enum FunctionCode {
    Zip(LayerVersionInfo),
    Image {
        uri: String,
        resolved: Option<String>,
    },
}

/// A function as GetFunction describes it.
#[derive(Clone)]
pub struct FunctionInfo {
    pub arn: String,
    pub name: String,
    pub region: String,
    pub runtime: Option<String>,
    pub handler: Option<String>,
    /// `Zip` or `Image`.
    pub package_type: String,
    pub architectures: Vec<String>,
    pub code_sha256: String,
    pub code: FunctionCode,
    pub layer_arns: Vec<String>,
    /// Secret values: never printed.
    pub environment: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    /// Everything else, to carry over to a new function.
    pub configuration: FunctionConfiguration,
}

impl std::fmt::Debug for FunctionInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionInfo")
            .field("arn", &self.arn)
            .field("runtime", &self.runtime)
            .field("handler", &self.handler)
            .field("package_type", &self.package_type)
            .field("environment", &self.environment.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    #[error(
        "access denied to function {function}: {message}\n  hint: the caller needs {action} on the function (arn:aws:lambda:{region}:<account>:function:<name>)"
    )]
    AccessDenied {
        function: String,
        region: String,
        action: String,
        message: String,
    },
    #[error(
        "function {function} not found in {region}\n  hint: check the name (or give its ARN), the region (--region, or the ARN's own) and the account"
    )]
    NotFound { function: String, region: String },
    #[error(
        "no AWS credentials found while reading function {function}: {detail}\n  hint: {NO_CREDENTIALS_HINT}"
    )]
    NoCredentials { function: String, detail: String },
    #[error(
        "no AWS region for function {function}\n  hint: give its ARN, or pass --region or set AWS_REGION"
    )]
    NoRegion { function: String },
    #[error("{operation} failed for function {function}: {detail}\n  hint: {hint}")]
    Other {
        operation: &'static str,
        function: String,
        detail: String,
        hint: String,
    },
}

impl FunctionError {
    /// Names the fix for a failed call on `function`.
    pub fn from_sdk<E>(
        operation: &'static str,
        function: &str,
        region: &str,
        err: &SdkError<E, HttpResponse>,
    ) -> FunctionError
    where
        E: aws_sdk_lambda::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        let function = function.to_string();
        match classify(err) {
            Failure::AccessDenied { message } => FunctionError::AccessDenied {
                function,
                region: region.to_string(),
                action: format!("lambda:{operation}"),
                message,
            },
            Failure::NotFound { .. } => FunctionError::NotFound {
                function,
                region: region.to_string(),
            },
            Failure::NoCredentials { detail } => FunctionError::NoCredentials { function, detail },
            other => FunctionError::Other {
                operation,
                function,
                detail: other.detail(),
                hint: other.hint("AWS_ENDPOINT_URL_LAMBDA"),
            },
        }
    }
}

impl AwsClients {
    /// The region a function is called in: its ARN's, else --region / the default chain.
    pub async fn function_region(&self, function: &FunctionRef) -> Result<String, FunctionError> {
        match &function.region {
            Some(r) => Ok(r.clone()),
            None => self
                .default_region()
                .await
                .ok_or_else(|| FunctionError::NoRegion {
                    function: function.name.clone(),
                }),
        }
    }

    /// `GetFunction`, in the function's region.
    pub async fn get_function(
        &self,
        function: &str,
        region: &str,
    ) -> Result<FunctionInfo, FunctionError> {
        let out = self
            .lambda(region)
            .await
            .get_function()
            .function_name(function)
            .send()
            .await
            .map_err(|e| FunctionError::from_sdk("GetFunction", function, region, &e))?;
        let incomplete = |what: &str| FunctionError::Other {
            operation: "GetFunction",
            function: function.to_string(),
            detail: format!("the answer has no {what}"),
            hint: "retry; if it persists, check the endpoint (AWS_ENDPOINT_URL_LAMBDA)".into(),
        };
        let config = out
            .configuration()
            .ok_or_else(|| incomplete("Configuration"))?
            .clone();
        let location = out.code().ok_or_else(|| incomplete("Code"))?;
        let package_type = config
            .package_type()
            .map_or("Zip", |p| p.as_str())
            .to_string();
        let code_sha256 = config.code_sha256().unwrap_or_default().to_string();
        let code = if package_type == "Image" {
            FunctionCode::Image {
                uri: location.image_uri().unwrap_or_default().to_string(),
                resolved: location.resolved_image_uri().map(str::to_string),
            }
        } else {
            FunctionCode::Zip(LayerVersionInfo {
                location: location
                    .location()
                    .ok_or_else(|| incomplete("Code.Location"))?
                    .to_string(),
                code_sha256: code_sha256.clone(),
                code_size: u64::try_from(config.code_size()).unwrap_or(0),
                compatible_architectures: Vec::new(),
            })
        };
        Ok(FunctionInfo {
            arn: config.function_arn().unwrap_or(function).to_string(),
            name: config.function_name().unwrap_or(function).to_string(),
            region: region.to_string(),
            runtime: config.runtime().map(|r| r.as_str().to_string()),
            handler: config.handler().map(str::to_string),
            package_type,
            architectures: config
                .architectures()
                .iter()
                .map(|a| a.as_str().to_string())
                .collect(),
            code_sha256,
            code,
            layer_arns: config
                .layers()
                .iter()
                .filter_map(|l| l.arn().map(str::to_string))
                .collect(),
            environment: config
                .environment()
                .and_then(|e| e.variables())
                .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            tags: out
                .tags()
                .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            configuration: config,
        })
    }

    /// A fresh location of a zip function's code (the presigned URL lasts 10 minutes).
    pub async fn function_code(
        &self,
        function: &str,
        region: &str,
    ) -> Result<LayerVersionInfo, FunctionError> {
        match self.get_function(function, region).await?.code {
            FunctionCode::Zip(info) => Ok(info),
            FunctionCode::Image { .. } => Err(FunctionError::Other {
                operation: "GetFunction",
                function: function.to_string(),
                detail: "it is now an image function".into(),
                hint: "run the migration again".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_arguments() {
        let name = FunctionRef::parse("orders").unwrap();
        assert_eq!((name.name.as_str(), name.region), ("orders", None));
        let arn = FunctionRef::parse("arn:aws:lambda:eu-west-1:123456789012:function:orders:prod")
            .unwrap();
        assert_eq!(arn.region.as_deref(), Some("eu-west-1"));
        assert_eq!(
            arn.name,
            "arn:aws:lambda:eu-west-1:123456789012:function:orders:prod"
        );
        assert!(FunctionRef::parse("orders:live").is_ok());
        for bad in [
            "",
            "arn:aws:lambda:eu-west-1:123456789012:layer:x:1",
            "arn:aws:lambda::123456789012:function:x",
            "a/b",
        ] {
            let err = FunctionRef::parse(bad).unwrap_err();
            assert!(err.contains("expected a function name"), "{bad}: {err}");
        }
    }
}
