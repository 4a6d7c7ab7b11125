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

/// Where blobs go, and where base blobs come from.
pub struct PushTarget {
    pub target: Arc<RegistryClient>,
    pub image: ImageRef,
    pub base: Option<(Arc<RegistryClient>, ImageRef)>,
    /// Scratch space for base blobs copied between registries.
    pub scratch: PathBuf,
}

/// Blob transfers started one by one — as soon as each blob exists, so that uploads overlap with
/// building the next layers — and run with bounded concurrency.
pub struct BlobUploads {
    to: Arc<PushTarget>,
    limit: Arc<tokio::sync::Semaphore>,
    tasks: tokio::task::JoinSet<(usize, Result<BlobReport, PushError>)>,
    handle: tokio::runtime::Handle,
}

impl BlobUploads {
    pub fn new(to: Arc<PushTarget>, handle: tokio::runtime::Handle) -> Self {
        BlobUploads {
            to,
            limit: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_BLOBS)),
            tasks: tokio::task::JoinSet::new(),
            handle,
        }
    }

    /// Starts moving `blob`; `key` orders the reports `finish` returns.
    pub fn start(&mut self, key: usize, blob: PushBlob) {
        let to = Arc::clone(&self.to);
        let limit = Arc::clone(&self.limit);
        self.tasks.spawn_on(
            async move {
                let _permit = limit.acquire_owned().await.expect("semaphore never closed");
                (key, ensure_blob(&to, &blob).await)
            },
            &self.handle,
        );
    }

    /// Waits for every transfer; the first failure stops the others.
    pub async fn finish(mut self) -> Result<Vec<BlobReport>, PushError> {
        let mut reports = Vec::new();
        while let Some(joined) = self.tasks.join_next().await {
            let (key, result) = joined.map_err(|e| PushError::Task(e.to_string()))?;
            match result {
                Ok(r) => reports.push((key, r)),
                Err(e) => {
                    self.tasks.abort_all();
                    return Err(map_missing_repo(&self.to, e));
                }
            }
        }
        reports.sort_by_key(|(key, _)| *key);
        Ok(reports.into_iter().map(|(_, r)| r).collect())
    }
}

/// Puts the manifest (last, so a tag never points at missing blobs). False when the tag already
/// pointed at this exact manifest.
pub async fn put_manifest(
    to: &PushTarget,
    manifest: &[u8],
    media_type: &str,
    digest: &str,
) -> Result<bool, PushError> {
    let repo = &to.image.repository;
    let reference = to.image.tag.clone().unwrap_or_else(|| digest.to_string());
    let existing = match &to.image.tag {
        Some(tag) => to.target.manifest_digest(repo, tag).await?,
        None => None,
    };
    if existing.as_deref() == Some(digest) {
        info!("{}: tag already points at {digest}", to.image);
        return Ok(false);
    }
    match to
        .target
        .put_manifest(repo, &reference, media_type, manifest)
        .await
    {
        Ok(()) => Ok(true),
        Err(RegistryError::Status { status, body, .. })
            if (status == 400 || status == 409)
                && (body.contains("ImageTagAlreadyExists")
                    || body.contains("immutable")
                    || body.contains("cannot be overwritten")) =>
        {
            Err(PushError::ImmutableTag {
                target: to.image.to_string(),
                existing: existing.unwrap_or_else(|| "another digest".into()),
            })
        }
        Err(e) => Err(map_missing_repo(to, PushError::Registry(e))),
    }
}

fn map_missing_repo(job: &PushTarget, err: PushError) -> PushError {
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

async fn ensure_blob(job: &PushTarget, blob: &PushBlob) -> Result<BlobReport, PushError> {
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
