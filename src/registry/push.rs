//! Pushes a built image, as the registry's `ImageSink`: HEAD every blob, upload (or mount, or copy
//! from the base's store) only the missing ones with bounded concurrency, as soon as each exists,
//! then the manifest last — so a tag never points at missing blobs.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::runtime::Handle;
use tokio::sync::OnceCell;
use tracing::info;

use super::client::{RegistryClient, RegistryError};
use super::errors::ErrorCode;
use crate::core::digest::Digest;
use crate::core::error::LayerError;
use crate::core::layer_gzip::LayerDigests;
use crate::core::staging::Staging;
use crate::oci::image::BaseImage;
use crate::oci::reference::ImageRef;
use crate::oci::sink::{
    BlobReport, BlobStatus, FinishedImage, ImageSink, PushReport, SinkError, SinkKind, SinkReport,
};
use crate::oci::source::{BlobRef, ImageStore};

/// Blobs this run pushed, by registry and digest, with the repository holding each: pushing one
/// to another repository of the same registry mounts it instead of uploading it again, and two
/// jobs needing the same missing blob at once upload it once (the other waits, then mounts).
#[derive(Debug, Default)]
pub struct PushedBlobs {
    held: Mutex<HashMap<(String, Digest), Holder>>,
}

/// The repository a blob was pushed to, once it is there.
type Holder = Arc<OnceCell<String>>;

impl PushedBlobs {
    fn cell(&self, registry: &str, digest: &Digest) -> Holder {
        let mut held = self.held.lock().expect("no panics while locked");
        Arc::clone(
            held.entry((registry.to_string(), digest.clone()))
                .or_default(),
        )
    }
}

/// How many blobs move at once.
const CONCURRENT_BLOBS: usize = 3;

#[derive(Clone)]
pub enum BlobSource {
    /// A blob we wrote (layer or config).
    File(PathBuf),
    /// A layer of the base image, read from the base's store (or mounted from its repository).
    Base(Arc<dyn ImageStore>, BlobRef),
}

#[derive(Clone)]
pub struct PushBlob {
    pub digest: Digest,
    pub size: u64,
    pub source: BlobSource,
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
    #[error(transparent)]
    Base(#[from] crate::oci::source::ImageError),
    #[error("a blob transfer task failed: {0}")]
    Task(String),
}

/// Where blobs go.
pub struct PushTarget {
    pub target: Arc<RegistryClient>,
    pub image: ImageRef,
    pub pushed: Arc<PushedBlobs>,
    /// Scratch space for base blobs copied from another registry or a local store.
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
    digest: &Digest,
) -> Result<bool, PushError> {
    let repo = &to.image.repository;
    let reference = to.image.tag.clone().unwrap_or_else(|| digest.to_string());
    let existing = match &to.image.tag {
        Some(tag) => to.target.manifest_digest(repo, tag).await?,
        None => None,
    };
    if existing.as_ref() == Some(digest) {
        info!("{}: tag already points at {digest}", to.image);
        return Ok(false);
    }
    match to
        .target
        .put_manifest(repo, &reference, media_type, manifest)
        .await
    {
        Ok(()) => Ok(true),
        Err(RegistryError::Status { body, .. }) if body.is_immutable_tag() => {
            Err(PushError::ImmutableTag {
                target: to.image.to_string(),
                existing: existing.map_or_else(|| "another digest".into(), |d| d.to_string()),
            })
        }
        Err(e) => Err(map_missing_repo(to, PushError::Registry(e))),
    }
}

fn map_missing_repo(job: &PushTarget, err: PushError) -> PushError {
    if let PushError::Registry(RegistryError::Status { body, .. }) = &err
        && body.has(&ErrorCode::NameUnknown)
    {
        return PushError::MissingRepository {
            target: job.image.to_string(),
            repository: job.image.repository.clone(),
        };
    }
    err
}

/// Makes sure the target repository holds `blob`: already there, mounted from where this run
/// pushed it, or sent (by the first job that needs it; the others wait and mount).
async fn ensure_blob(job: &PushTarget, blob: &PushBlob) -> Result<BlobReport, PushError> {
    let repo = &job.image.repository;
    let report = |status: BlobStatus| BlobReport {
        digest: blob.digest.clone(),
        size: blob.size,
        status,
    };
    let cell = job.pushed.cell(&job.image.registry, &blob.digest);
    if job.target.blob_exists(repo, &blob.digest).await? {
        info!("{}: {} already there", job.image.name(), blob.digest);
        let _ = cell.set(repo.clone());
        return Ok(report(BlobStatus::Exists));
    }
    let mut sent = None;
    let holder = cell
        .get_or_try_init(|| async {
            sent = Some(send_blob(job, blob).await?);
            Ok::<_, PushError>(repo.clone())
        })
        .await?;
    if let Some(status) = sent {
        return Ok(report(status));
    }
    if holder == repo {
        return Ok(report(BlobStatus::Exists));
    }
    if job
        .target
        .upload_blob(repo, &blob.digest, None, Some(holder))
        .await
        .unwrap_or(false)
    {
        info!(
            "{}: mounted {} from {holder}",
            job.image.name(),
            blob.digest
        );
        return Ok(report(BlobStatus::Mounted));
    }
    Ok(report(send_blob(job, blob).await?))
}

/// Sends a missing blob: ours from its file; a base's mounted from its repository, or copied.
async fn send_blob(job: &PushTarget, blob: &PushBlob) -> Result<BlobStatus, PushError> {
    let repo = &job.image.repository;
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
            Ok(BlobStatus::Uploaded)
        }
        BlobSource::Base(store, base_blob) => {
            if let Some((registry, repository)) = store.registry_repository()
                && registry == job.image.registry
                && job
                    .target
                    .upload_blob(repo, &blob.digest, None, Some(repository))
                    .await
                    .unwrap_or(false)
            {
                info!(
                    "{}: mounted {} from {repository}",
                    job.image.name(),
                    blob.digest
                );
                return Ok(BlobStatus::Mounted);
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
                store.name()
            );
            let (store, base_blob, dest) =
                (Arc::clone(store), base_blob.clone(), tmp.to_path_buf());
            tokio::task::spawn_blocking(move || store.copy_blob_to(&base_blob, &dest))
                .await
                .map_err(|e| PushError::Task(e.to_string()))??;
            job.target
                .upload_blob(repo, &blob.digest, Some((&tmp, blob.size)), None)
                .await?;
            Ok(BlobStatus::Copied)
        }
    }
}

/// An image being pushed: new blobs are staged in the temporary directory and each starts
/// uploading as soon as it is complete.
pub struct RegistrySink {
    target: Arc<PushTarget>,
    uploads: BlobUploads,
    handle: Handle,
    staging: Staging,
    blobs: PathBuf,
    base_layers: usize,
}

impl RegistrySink {
    pub fn new(
        client: Arc<RegistryClient>,
        image: ImageRef,
        pushed: Arc<PushedBlobs>,
        handle: Handle,
    ) -> Result<Self, LayerError> {
        let staging = Staging::in_temp()?;
        let blobs = staging.path().join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(|e| LayerError::io(&blobs, e))?;
        let target = Arc::new(PushTarget {
            target: client,
            image,
            pushed,
            scratch: staging.path().to_path_buf(),
        });
        Ok(RegistrySink {
            uploads: BlobUploads::new(Arc::clone(&target), handle.clone()),
            target,
            handle,
            staging,
            blobs,
            base_layers: 0,
        })
    }

    fn blob_file(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }
}

impl ImageSink for RegistrySink {
    fn describe(&self) -> String {
        self.target.image.to_string()
    }

    fn blob_dir(&self) -> &Path {
        &self.blobs
    }

    fn start_base(&mut self, base: &BaseImage) -> Result<(), SinkError> {
        self.base_layers = base.layers.len();
        for (i, layer) in base.layers.iter().enumerate() {
            self.uploads.start(
                i,
                PushBlob {
                    digest: layer.blob.digest.clone(),
                    size: layer.blob.size.unwrap_or(0),
                    source: BlobSource::Base(Arc::clone(&base.store), layer.blob.clone()),
                },
            );
        }
        Ok(())
    }

    fn layer_ready(&mut self, index: usize, layer: &LayerDigests) -> Result<(), SinkError> {
        let path = self.blob_file(&layer.digest);
        self.uploads.start(
            self.base_layers + index,
            PushBlob {
                digest: layer.digest.clone(),
                size: layer.size,
                source: BlobSource::File(path),
            },
        );
        Ok(())
    }

    fn finish(self: Box<Self>, image: FinishedImage<'_>) -> Result<SinkReport, SinkError> {
        let RegistrySink {
            target,
            mut uploads,
            handle,
            staging,
            base_layers,
            ..
        } = *self;
        let built = image.built;
        let config_path = staging
            .path()
            .join("blobs/sha256")
            .join(built.config_digest.hex());
        fs::write(&config_path, &built.config).map_err(|e| LayerError::io(&config_path, e))?;
        uploads.start(
            base_layers + image.added.len(),
            PushBlob {
                digest: built.config_digest.clone(),
                size: built.config.len() as u64,
                source: BlobSource::File(config_path),
            },
        );
        let report = handle.block_on(async {
            let blobs = uploads.finish().await?;
            let manifest_pushed = put_manifest(
                &target,
                &built.manifest,
                &built.manifest_media_type,
                &built.manifest_digest,
            )
            .await?;
            Ok::<_, PushError>(PushReport {
                blobs,
                manifest_pushed,
            })
        })?;
        let sent = report
            .blobs
            .iter()
            .filter(|b| b.status != BlobStatus::Exists)
            .count();
        info!(
            "pushed {}: {sent} of {} blobs transferred{}",
            target.image,
            report.blobs.len(),
            if report.manifest_pushed {
                ""
            } else {
                ", tag already up to date"
            }
        );
        drop(staging);
        Ok(SinkReport {
            kind: SinkKind::Registry,
            reference: format!("{}@{}", target.image.name(), built.manifest_digest),
            push: Some(report),
        })
    }
}
