//! The AWS edge of `layerport zip --publish`: PublishLayerVersion, unless the newest version of the
//! layer already holds the same zip (compared by CodeSha256), directly or — over Lambda's 50 MB
//! direct-upload limit — through an S3 object in the same region.

use std::path::{Path, PathBuf};

use aws_sdk_lambda::config::http::HttpResponse;
use aws_sdk_lambda::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Architecture, LayerVersionContentInput, Runtime};
use aws_sdk_s3::primitives::ByteStream;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use tracing::{info, warn};

use super::AwsClients;
use super::cache::decode_code_sha256;
use super::error::{Failure, NO_CREDENTIALS_HINT, classify};

/// Lambda takes a zip of at most 50 MB in the request itself; bigger ones must come from S3.
pub const DIRECT_UPLOAD_LIMIT: u64 = 50 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct PublishRequest {
    /// A layer name or unversioned layer ARN.
    pub layer_name: String,
    pub zip: PathBuf,
    pub zip_size: u64,
    pub sha256: [u8; 32],
    pub compatible_runtimes: Vec<String>,
    pub compatible_architectures: Vec<String>,
    pub description: Option<String>,
    pub license_info: Option<String>,
    pub s3_bucket: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub layer_version_arn: String,
    pub version: i64,
    /// False when the newest version already had this content and nothing was published.
    pub created: bool,
    /// The object the zip was uploaded to (left in place: Lambda keeps its own copy).
    pub s3_object: Option<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(
        "no AWS region to publish layer {name} in\n  hint: pass --region, set AWS_REGION, or set a region in your AWS profile"
    )]
    NoRegion { name: String },
    #[error(
        "no AWS credentials found while publishing layer {name}: {detail}\n  hint: {NO_CREDENTIALS_HINT}"
    )]
    NoCredentials { name: String, detail: String },
    #[error(
        "access denied by {operation} for layer {name} in {region}: {message}\n  hint: the caller needs lambda:PublishLayerVersion, lambda:ListLayerVersions and lambda:GetLayerVersion on arn:aws:lambda:{region}:<account>:layer:{name} (and arn:aws:lambda:{region}:<account>:layer:{name}:*)"
    )]
    AccessDenied {
        operation: &'static str,
        name: String,
        region: String,
        message: String,
    },
    #[error(
        "{zip} is {size} bytes, over the {limit} bytes Lambda accepts in a direct upload\n  hint: add --s3-bucket BUCKET (a bucket in {region}, where the layer is published) to upload it through S3"
    )]
    NeedsS3 {
        zip: PathBuf,
        size: u64,
        limit: u64,
        region: String,
    },
    #[error("cannot upload {zip} to s3://{bucket}/{key}: {detail}\n  hint: {hint}")]
    S3 {
        zip: PathBuf,
        bucket: String,
        key: String,
        detail: String,
        hint: String,
    },
    #[error("{operation} failed for layer {name}: {detail}\n  hint: {hint}")]
    Lambda {
        operation: &'static str,
        name: String,
        detail: String,
        hint: String,
    },
    #[error(
        "Lambda reports CodeSha256 {got} for {arn}, but the zip's is {want}\n  hint: the upload was altered on the way; publish again"
    )]
    ShaMismatch {
        arn: String,
        got: String,
        want: String,
    },
}

/// Publishes `req.zip` as a new version of `req.layer_name`, or returns the newest version if it
/// already has the same CodeSha256.
pub async fn publish(aws: &AwsClients, req: &PublishRequest) -> Result<Published, PublishError> {
    let name = req.layer_name.clone();
    let region = aws
        .default_region()
        .await
        .ok_or_else(|| PublishError::NoRegion { name: name.clone() })?;
    let lambda = aws.lambda(&region).await;
    let ours = B64.encode(req.sha256);

    if let Some(newest) = newest_version(&lambda, &name, &region).await? {
        let out = lambda
            .get_layer_version()
            .layer_name(&name)
            .version_number(newest)
            .send()
            .await
            .map_err(|e| lambda_error("GetLayerVersion", &name, &region, e))?;
        let theirs = out
            .content()
            .and_then(|c| c.code_sha256())
            .unwrap_or_default();
        if decode_code_sha256(theirs) == Some(req.sha256) {
            let arn = out.layer_version_arn().unwrap_or_default().to_string();
            info!("{arn} already holds this zip (CodeSha256 {ours}); nothing published");
            note_metadata_differences(
                req,
                out.compatible_runtimes(),
                out.compatible_architectures(),
            );
            return Ok(Published {
                layer_version_arn: arn,
                version: newest,
                created: false,
                s3_object: None,
            });
        }
    }

    let (content, s3_object) = if req.zip_size > DIRECT_UPLOAD_LIMIT {
        let Some(bucket) = &req.s3_bucket else {
            return Err(PublishError::NeedsS3 {
                zip: req.zip.clone(),
                size: req.zip_size,
                limit: DIRECT_UPLOAD_LIMIT,
                region,
            });
        };
        let key = s3_key(&name, &req.sha256);
        upload_to_s3(&aws.s3(&region).await, &req.zip, bucket, &key, &region).await?;
        let content = LayerVersionContentInput::builder()
            .s3_bucket(bucket)
            .s3_key(&key)
            .build();
        (content, Some((bucket.clone(), key)))
    } else {
        if let Some(bucket) = &req.s3_bucket {
            info!(
                "the zip is {} bytes, within Lambda's {DIRECT_UPLOAD_LIMIT}-byte direct upload limit: uploading it directly, not through s3://{bucket}",
                req.zip_size
            );
        }
        let bytes = tokio::fs::read(&req.zip)
            .await
            .map_err(|e| PublishError::Lambda {
                operation: "PublishLayerVersion",
                name: name.clone(),
                detail: format!("cannot read {}: {e}", req.zip.display()),
                hint: "the zip was just written; check the disk and run again".into(),
            })?;
        (
            LayerVersionContentInput::builder()
                .zip_file(Blob::new(bytes))
                .build(),
            None,
        )
    };
    info!(
        "publishing {} bytes as a new version of {name} in {region}{}",
        req.zip_size,
        s3_object
            .as_ref()
            .map(|(b, k)| format!(" from s3://{b}/{k}"))
            .unwrap_or_default()
    );
    let mut call = lambda
        .publish_layer_version()
        .layer_name(&name)
        .content(content);
    for r in &req.compatible_runtimes {
        call = call.compatible_runtimes(Runtime::from(r.as_str()));
    }
    for a in &req.compatible_architectures {
        call = call.compatible_architectures(Architecture::from(a.as_str()));
    }
    if let Some(d) = &req.description {
        call = call.description(d);
    }
    if let Some(l) = &req.license_info {
        call = call.license_info(l);
    }
    let out = call
        .send()
        .await
        .map_err(|e| lambda_error("PublishLayerVersion", &name, &region, e))?;
    let arn = out.layer_version_arn().unwrap_or_default().to_string();
    let theirs = out
        .content()
        .and_then(|c| c.code_sha256())
        .unwrap_or_default();
    if decode_code_sha256(theirs) != Some(req.sha256) {
        return Err(PublishError::ShaMismatch {
            arn,
            got: theirs.to_string(),
            want: ours,
        });
    }
    Ok(Published {
        layer_version_arn: arn,
        version: out.version(),
        created: true,
        s3_object,
    })
}

/// The highest version number ListLayerVersions reports (it lists newest first), if any.
async fn newest_version(
    lambda: &aws_sdk_lambda::Client,
    name: &str,
    region: &str,
) -> Result<Option<i64>, PublishError> {
    match lambda
        .list_layer_versions()
        .layer_name(name)
        .max_items(50)
        .send()
        .await
    {
        Ok(out) => Ok(out.layer_versions().iter().map(|v| v.version()).max()),
        Err(e) if matches!(classify(&e), Failure::NotFound { .. }) => Ok(None),
        Err(e) => Err(lambda_error("ListLayerVersions", name, region, e)),
    }
}

/// Where a big zip goes: content-addressed, so a retry overwrites the same object.
pub fn s3_key(layer_name: &str, sha256: &[u8; 32]) -> String {
    let safe: String = layer_name
        .rsplit(':')
        .next()
        .unwrap_or(layer_name)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let hex = crate::core::digest::hex(sha256);
    format!("layerport/{safe}/{hex}.zip")
}

async fn upload_to_s3(
    s3: &aws_sdk_s3::Client,
    zip: &Path,
    bucket: &str,
    key: &str,
    region: &str,
) -> Result<(), PublishError> {
    let s3_failed = |detail: String, hint: String| PublishError::S3 {
        zip: zip.to_path_buf(),
        bucket: bucket.to_string(),
        key: key.to_string(),
        detail,
        hint,
    };
    let body = ByteStream::from_path(zip).await.map_err(|e| {
        s3_failed(
            e.to_string(),
            "the zip was just written; check the disk and run again".into(),
        )
    })?;
    info!("uploading {} to s3://{bucket}/{key}", zip.display());
    let err = match s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/zip")
        .body(body)
        .send()
        .await
    {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    let failure = classify(&err);
    let code = err.code().unwrap_or_default();
    let hint = match (&failure, code) {
        (Failure::AccessDenied { .. }, _) => format!(
            "the caller needs s3:PutObject on arn:aws:s3:::{bucket}/{key}, and s3:GetObject on it for Lambda to read it"
        ),
        (_, "NoSuchBucket") => format!("check the bucket name; it must exist in {region}"),
        (
            _,
            "PermanentRedirect"
            | "AuthorizationHeaderMalformed"
            | "IllegalLocationConstraintException",
        ) => format!("the bucket must be in {region}, the region the layer is published in"),
        (Failure::Service { .. }, _) => {
            "retry later; if it persists, check the bucket and your AWS configuration".into()
        }
        _ => failure.hint("AWS_ENDPOINT_URL_S3"),
    };
    Err(s3_failed(failure.detail(), hint))
}

fn lambda_error<E>(
    operation: &'static str,
    name: &str,
    region: &str,
    err: SdkError<E, HttpResponse>,
) -> PublishError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let failure = classify(&err);
    let hint = match &failure {
        Failure::AccessDenied { message } => {
            return PublishError::AccessDenied {
                operation,
                name: name.to_string(),
                region: region.to_string(),
                message: message.clone(),
            };
        }
        Failure::NoCredentials { detail } => {
            return PublishError::NoCredentials {
                name: name.to_string(),
                detail: detail.clone(),
            };
        }
        Failure::Invalid { .. } => "check the layer name, --compatible-runtime values (e.g. python3.12) and --compatible-architecture (x86_64, arm64)".into(),
        Failure::Service { code, .. } if code == "CodeStorageExceededException" => {
            "the account's code storage is full; delete old layer versions".into()
        }
        Failure::Throttled => "Lambda is throttling; retry later".into(),
        Failure::Service { .. } | Failure::NotFound { .. } => {
            "retry later; if it persists, check the layer name and your AWS configuration".into()
        }
        other => other.hint("AWS_ENDPOINT_URL_LAMBDA"),
    };
    PublishError::Lambda {
        operation,
        name: name.to_string(),
        detail: failure.detail(),
        hint,
    }
}

/// Content decides; a difference in metadata is only worth a word.
fn note_metadata_differences(
    req: &PublishRequest,
    runtimes: &[Runtime],
    architectures: &[Architecture],
) {
    let set = |v: Vec<String>| v.into_iter().collect::<std::collections::BTreeSet<_>>();
    let have_rt = set(runtimes.iter().map(|r| r.as_str().to_string()).collect());
    let have_arch = set(architectures
        .iter()
        .map(|a| a.as_str().to_string())
        .collect());
    if have_rt != set(req.compatible_runtimes.clone())
        || have_arch != set(req.compatible_architectures.clone())
    {
        warn!(
            "the newest version of {} has the same zip but other compatible runtimes/architectures ({} / {}); publish with changed content to update them",
            req.layer_name,
            have_rt.into_iter().collect::<Vec<_>>().join(","),
            have_arch.into_iter().collect::<Vec<_>>().join(",")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_keys_are_content_addressed_and_safe() {
        let key = s3_key(
            "arn:aws:lambda:us-east-1:123456789012:layer:my.layer",
            &[0xab; 32],
        );
        assert_eq!(key, format!("layerport/my_layer/{}.zip", "ab".repeat(32)));
        assert!(s3_key("deps", &[0; 32]).starts_with("layerport/deps/"));
    }
}
