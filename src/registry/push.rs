//! Pushes a built image: HEAD every blob, upload (or mount, or copy from the base's registry) only the
//! missing ones with bounded concurrency, then the manifest last — so a tag never points at missing blobs.

use std::path::PathBuf;
use std::sync::Arc;

use aws_config::{Region, SdkConfig};
use aws_sdk_ecr::error::ProvideErrorMetadata;
use serde::Serialize;
use tracing::info;

use super::client::{RegistryClient, RegistryError};
use super::reference::ImageRef;

/// How many blobs move at once.
const CONCURRENT_BLOBS: usize = 3;

#[derive(Debug, Clone)]
pub enum BlobSource {
    /// A blob we wrote (layer or config).
    File(PathBuf),
    /// A layer of the base image, in the base's repository.
    Base,
}

#[derive(Debug, Clone)]
pub struct PushBlob {
    pub digest: String,
    pub size: u64,
    pub source: BlobSource,
}

#[derive(Debug, Clone, Serialize)]
pub struct BlobReport {
    pub digest: String,
    pub size: u64,
    /// `uploaded`, `exists`, `mounted` (cross-repository) or `copied` (from the base's registry).
    pub status: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(
        "{target}: the tag already holds another image ({existing}) and the repository refuses to overwrite it (immutable tags)\n  hint: push under a new tag, or delete the old image first"
    )]
    ImmutableTag { target: String, existing: String },
    #[error(
        "{target}: the repository {repository} does not exist\n  hint: create it (`aws ecr create-repository --repository-name {repository}`) or rerun with --create-repository"
    )]
    MissingRepository { target: String, repository: String },
    #[error(
        "cannot create ECR repository {repository} in {region}: {detail}\n  hint: the caller needs ecr:CreateRepository and ecr:DescribeRepositories"
    )]
    CreateRepository {
        repository: String,
        region: String,
        detail: String,
    },
    #[error("a blob transfer task failed: {0}")]
    Task(String),
}

pub struct PushReport {
    pub blobs: Vec<BlobReport>,
    /// False when the tag already pointed at this exact manifest.
    pub manifest_pushed: bool,
}

pub struct PushJob {
    pub target: Arc<RegistryClient>,
    pub image: ImageRef,
    pub base: Option<(Arc<RegistryClient>, ImageRef)>,
    pub blobs: Vec<PushBlob>,
    pub manifest: Vec<u8>,
    pub manifest_media_type: String,
    pub manifest_digest: String,
    pub scratch: PathBuf,
}

pub async fn push(job: PushJob) -> Result<PushReport, PushError> {
    let job = Arc::new(job);
    let limit = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_BLOBS));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, blob) in job.blobs.iter().cloned().enumerate() {
        let job = Arc::clone(&job);
        let limit = Arc::clone(&limit);
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await.expect("semaphore never closed");
            (i, ensure_blob(&job, &blob).await)
        });
    }
    let mut reports: Vec<Option<BlobReport>> = vec![None; job.blobs.len()];
    while let Some(joined) = tasks.join_next().await {
        let (i, result) = joined.map_err(|e| PushError::Task(e.to_string()))?;
        match result {
            Ok(r) => reports[i] = Some(r),
            Err(e) => {
                tasks.abort_all();
                return Err(map_missing_repo(&job, e));
            }
        }
    }
    let repo = &job.image.repository;
    let reference = job
        .image
        .tag
        .clone()
        .unwrap_or_else(|| job.manifest_digest.clone());
    let existing = match &job.image.tag {
        Some(tag) => job.target.manifest_digest(repo, tag).await?,
        None => None,
    };
    let manifest_pushed = if existing.as_deref() == Some(job.manifest_digest.as_str()) {
        info!(
            "{}: tag already points at {}",
            job.image, job.manifest_digest
        );
        false
    } else {
        match job
            .target
            .put_manifest(repo, &reference, &job.manifest_media_type, &job.manifest)
            .await
        {
            Ok(()) => true,
            Err(RegistryError::Status { status, body, .. })
                if (status == 400 || status == 409)
                    && (body.contains("ImageTagAlreadyExists")
                        || body.contains("immutable")
                        || body.contains("cannot be overwritten")) =>
            {
                return Err(PushError::ImmutableTag {
                    target: job.image.to_string(),
                    existing: existing.unwrap_or_else(|| "another digest".into()),
                });
            }
            Err(e) => return Err(map_missing_repo(&job, PushError::Registry(e))),
        }
    };
    Ok(PushReport {
        blobs: reports
            .into_iter()
            .map(|r| r.expect("every blob reported"))
            .collect(),
        manifest_pushed,
    })
}

fn map_missing_repo(job: &PushJob, err: PushError) -> PushError {
    if let PushError::Registry(RegistryError::Status {
        status: 404, body, ..
    }) = &err
        && (body.contains("NAME_UNKNOWN") || body.contains("does not exist"))
    {
        return PushError::MissingRepository {
            target: job.image.to_string(),
            repository: job.image.repository.clone(),
        };
    }
    err
}

async fn ensure_blob(job: &PushJob, blob: &PushBlob) -> Result<BlobReport, PushError> {
    let repo = &job.image.repository;
    let report = |status| BlobReport {
        digest: blob.digest.clone(),
        size: blob.size,
        status,
    };
    if job.target.blob_exists(repo, &blob.digest).await? {
        info!("{}: {} already there", job.image.name(), blob.digest);
        return Ok(report("exists"));
    }
    match &blob.source {
        BlobSource::File(path) => {
            info!(
                "{}: uploading {} ({} bytes)",
                job.image.name(),
                blob.digest,
                blob.size
            );
            job.target
                .upload_blob(repo, &blob.digest, Some((path, blob.size)), None)
                .await?;
            Ok(report("uploaded"))
        }
        BlobSource::Base => {
            let (base_client, base_ref) = job.base.as_ref().expect("base blobs come with a base");
            if base_ref.registry == job.image.registry
                && job
                    .target
                    .upload_blob(repo, &blob.digest, None, Some(&base_ref.repository))
                    .await
                    .unwrap_or(false)
            {
                info!(
                    "{}: mounted {} from {}",
                    job.image.name(),
                    blob.digest,
                    base_ref.repository
                );
                return Ok(report("mounted"));
            }
            let tmp = tempfile::Builder::new()
                .prefix("base-blob-")
                .tempfile_in(&job.scratch)
                .map_err(|e| RegistryError::Io {
                    path: job.scratch.clone(),
                    source: e,
                })?
                .into_temp_path();
            info!(
                "{}: copying {} from {}",
                job.image.name(),
                blob.digest,
                base_ref
            );
            base_client
                .download_blob(&base_ref.repository, &blob.digest, Some(blob.size), &tmp)
                .await?;
            job.target
                .upload_blob(repo, &blob.digest, Some((&tmp, blob.size)), None)
                .await?;
            Ok(report("copied"))
        }
    }
}

/// `--create-repository`: makes sure the ECR repository exists (DescribeRepositories, then CreateRepository).
pub async fn ensure_ecr_repository(
    config: &SdkConfig,
    region: &str,
    repository: &str,
) -> Result<bool, PushError> {
    let conf = aws_sdk_ecr::config::Builder::from(config)
        .region(Region::new(region.to_string()))
        .build();
    let client = aws_sdk_ecr::Client::from_conf(conf);
    let err = |detail: String| PushError::CreateRepository {
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
        Err(e) if e.code() == Some("RepositoryNotFoundException") => {}
        Err(e) => {
            return Err(err(format!(
                "{}: {}",
                e.code().unwrap_or("error"),
                e.message().unwrap_or("")
            )));
        }
    }
    match client
        .create_repository()
        .repository_name(repository)
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if e.code() == Some("RepositoryAlreadyExistsException") => Ok(false),
        Err(e) => Err(err(format!(
            "{}: {}",
            e.code().unwrap_or("error"),
            e.message().unwrap_or("")
        ))),
    }
}
