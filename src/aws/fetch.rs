//! Resolves layer version ARNs to verified local zips: GetLayerVersionByArn in the ARN's region, then
//! the cache, else a verified download (re-requesting the location when a presigned URL expires).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use tracing::{debug, info, warn};

use super::AwsClients;
use super::arn::LayerArn;
use super::cache::{ZipCache, decode_code_sha256};
use super::download::{DownloadError, Expected, download};
use super::lambda::LayerVersionInfo;
use crate::net::retry::RetryPolicy;

/// How many times an expired presigned URL is replaced by a fresh one.
const LOCATION_REFRESHES: u32 = 2;

/// What can be downloaded: a layer version, or a function's code zip.
#[derive(Debug, Clone)]
pub enum FetchSource {
    Layer(LayerArn),
    /// A function's code (GetFunction's `Code.Location`), asked for again when the URL expires.
    FunctionCode {
        /// The function's ARN (with its qualifier, if any), as GetFunction takes it.
        function: String,
        region: String,
        /// The location GetFunction already gave, if it was asked.
        first: Option<LayerVersionInfo>,
    },
}

impl FetchSource {
    /// How messages and image history name it: the layer version or function ARN.
    pub fn label(&self) -> String {
        match self {
            FetchSource::Layer(arn) => arn.to_string(),
            FetchSource::FunctionCode { function, .. } => function.clone(),
        }
    }
}

/// Two sources are the same download when they name the same layer version or function.
impl PartialEq for FetchSource {
    fn eq(&self, other: &Self) -> bool {
        self.label() == other.label()
    }
}

impl Eq for FetchSource {}

impl std::hash::Hash for FetchSource {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.label().hash(state);
    }
}

/// A layer version or function code downloaded and verified: where its zip is, and what Lambda
/// says of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FetchedLayer {
    /// The layer version or function ARN.
    pub label: String,
    pub path: PathBuf,
    /// The raw sha256 of the zip (Lambda's CodeSha256, decoded).
    pub sha256: [u8; 32],
    pub compatible_architectures: Vec<String>,
    /// Bytes this fetch downloaded (0 when the cache or an earlier fetch had it).
    pub downloaded: u64,
}

/// One fetch per source and run, shared by everyone who asks for it.
type Inflight = tokio::sync::OnceCell<Result<(FetchedLayer, Arc<AtomicBool>), String>>;

pub struct ArnFetcher {
    aws: Arc<AwsClients>,
    inflight: Mutex<HashMap<String, Arc<Inflight>>>,
    http: reqwest::Client,
    cache: Option<ZipCache>,
    /// Where downloads go when there is no cache (`--no-cache`); lives as long as the fetcher.
    scratch: tempfile::TempDir,
    policy: RetryPolicy,
}

impl ArnFetcher {
    pub fn new(aws: Arc<AwsClients>, cache: Option<ZipCache>) -> Result<Self> {
        let http = crate::net::http_client(Duration::from_secs(60))
            .context("cannot set up the HTTP client")?;
        let scratch = tempfile::Builder::new()
            .prefix("layerport-")
            .tempdir()
            .context("cannot create a temporary directory for downloads")?;
        Ok(ArnFetcher {
            aws,
            inflight: Mutex::new(HashMap::new()),
            http,
            cache,
            scratch,
            policy: RetryPolicy::default(),
        })
    }

    /// Starts fetching each `(key, arn)` on `handle`, at most four at a time, and calls `done` with
    /// the key as each one finishes — so callers can use a layer while the others still download.
    pub fn fetch_each(
        self: Arc<Self>,
        sources: Vec<(usize, FetchSource)>,
        handle: &tokio::runtime::Handle,
        done: impl Fn(usize, Result<FetchedLayer>) + Send + Sync + 'static,
    ) {
        let limit = Arc::new(tokio::sync::Semaphore::new(4));
        let done = Arc::new(done);
        for (key, source) in sources {
            let me = Arc::clone(&self);
            let limit = Arc::clone(&limit);
            let done = Arc::clone(&done);
            handle.spawn(async move {
                let _permit = limit.acquire_owned().await.expect("semaphore never closed");
                done(key, me.fetch(&source).await);
            });
        }
    }

    /// Where to download `source` from now (a fresh presigned URL).
    async fn locate(&self, source: &FetchSource) -> Result<LayerVersionInfo> {
        Ok(match source {
            FetchSource::Layer(arn) => self.aws.get_layer_version(arn).await?,
            FetchSource::FunctionCode {
                function, region, ..
            } => self.aws.function_code(function, region).await?,
        })
    }

    /// Fetches `source` once per run: concurrent and later callers share the first fetch (its
    /// bytes counted once, for the first caller to take the result).
    pub async fn fetch(&self, source: &FetchSource) -> Result<FetchedLayer> {
        let cell = {
            let mut inflight = self.inflight.lock().expect("no panics while locked");
            Arc::clone(inflight.entry(source.label()).or_default())
        };
        let shared = cell
            .get_or_init(|| async {
                self.fetch_uncached(source)
                    .await
                    .map(|f| (f, Arc::new(AtomicBool::new(false))))
                    .map_err(|e| format!("{e:#}"))
            })
            .await;
        match shared {
            Ok((layer, counted)) => {
                let mut layer = layer.clone();
                if counted.swap(true, Ordering::SeqCst) {
                    layer.downloaded = 0;
                }
                Ok(layer)
            }
            Err(message) => Err(anyhow::anyhow!("{message}")),
        }
    }

    async fn fetch_uncached(&self, source: &FetchSource) -> Result<FetchedLayer> {
        let what = source.label();
        let mut info = match source {
            FetchSource::FunctionCode {
                first: Some(info), ..
            } => info.clone(),
            _ => self.locate(source).await?,
        };
        let sha = decode_code_sha256(&info.code_sha256).with_context(|| {
            format!("Lambda returned a CodeSha256 for {what} that is not base64 of a sha256")
        })?;
        if let Some(cache) = &self.cache
            && let Some(path) = cache.lookup(&sha)
        {
            info!("{what}: using cached {}", path.display());
            return Ok(local(&what, path, &sha, &info, 0));
        }
        // Another process sharing the cache may be downloading the same zip: wait for it.
        let _entry =
            match &self.cache {
                Some(cache) => Some(cache.lock(&sha).await.context(
                    "cannot lock the layer cache entry (use --no-cache to skip the cache)",
                )?),
                None => None,
            };
        if let Some(cache) = &self.cache
            && let Some(path) = cache.lookup(&sha)
        {
            info!(
                "{what}: using cached {} (downloaded by another process)",
                path.display()
            );
            return Ok(local(&what, path, &sha, &info, 0));
        }
        let mut refreshes = 0;
        loop {
            let (tmp, tmp_path) = self.temp_target()?;
            let expected = Expected {
                code_sha256: info.code_sha256.clone(),
                size: info.code_size,
            };
            info!("{what}: downloading {} bytes", info.code_size);
            match download(
                &self.http,
                &info.location,
                &what,
                &expected,
                &tmp_path,
                self.policy,
            )
            .await
            {
                Ok(actual) => {
                    debug!("{what}: verified sha256");
                    let path = match (&self.cache, tmp) {
                        (Some(cache), Some(tmp)) => cache
                            .insert(tmp, &actual)
                            .with_context(|| format!("cannot store {what} in the cache"))?,
                        _ => tmp_path,
                    };
                    return Ok(local(&what, path, &actual, &info, info.code_size));
                }
                Err(DownloadError::Expired { .. }) if refreshes < LOCATION_REFRESHES => {
                    refreshes += 1;
                    warn!("{what}: the download URL expired; asking Lambda for a fresh one");
                    info = self.locate(source).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A download target: in the cache (renamed into place when verified), or in the scratch dir.
    fn temp_target(&self) -> Result<(Option<tempfile::TempPath>, PathBuf)> {
        match &self.cache {
            Some(cache) => {
                let tmp = cache
                    .temp_path()
                    .context("cannot write to the layer cache (use --no-cache to skip it)")?;
                let path = tmp.to_path_buf();
                Ok((Some(tmp), path))
            }
            None => {
                let file = tempfile::Builder::new()
                    .prefix("layer-")
                    .suffix(".zip")
                    .tempfile_in(self.scratch.path())
                    .context("cannot create a temporary download file")?;
                let (_, path) = file.keep().context("cannot keep the download file")?;
                Ok((None, path))
            }
        }
    }
}

fn local(
    label: &str,
    path: PathBuf,
    sha: &[u8; 32],
    info: &LayerVersionInfo,
    downloaded: u64,
) -> FetchedLayer {
    FetchedLayer {
        label: label.to_string(),
        path,
        sha256: *sha,
        compatible_architectures: info.compatible_architectures.clone(),
        downloaded,
    }
}
