//! What one run shares across its work: one tokio runtime, the AWS clients (the SDK configuration
//! loaded once, lazily), registry clients cached per host (one login per host), the layer fetcher
//! with its download cache, and the printer. Commands, the pipeline and batch jobs all draw on it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::Context as _;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::OnceCell;
use tracing::debug;

use crate::aws::AwsClients;
use crate::aws::AwsSettings;
use crate::aws::cache::ZipCache;
use crate::aws::ecr::EcrError;
use crate::aws::fetch::ArnFetcher;
use crate::oci::reference::ImageRef;
use crate::pipeline::layer_cache::LayerCache;
use crate::printer::Printer;
use crate::registry::auth::{
    AuthError, AuthMode, CredentialSource, credential_source, docker_config_credentials,
};
use crate::registry::auth::{Login, Renewal};
use crate::registry::client::{Credentials, RegistryClient};
use crate::registry::push::PushedBlobs;

/// Options every command shares.
#[derive(Debug, Clone)]
pub struct GlobalSettings {
    pub aws: AwsSettings,
    /// One JSON document on stdout instead of text.
    pub json: bool,
    pub quiet: bool,
    pub verbose: u8,
    /// Read and write the download cache.
    pub use_cache: bool,
    pub registry: RegistrySettings,
}

/// How registries are reached.
#[derive(Debug, Clone, Default)]
pub struct RegistrySettings {
    /// Hosts (`host[:port]`) spoken to over plain HTTP.
    pub plain_http: Vec<String>,
    pub auth: AuthMode,
}

pub struct Context {
    runtime: Runtime,
    aws: Arc<AwsClients>,
    registry: RegistrySettings,
    /// One cell per host, so concurrent first uses of a host still log in once.
    registries: Mutex<HashMap<String, Arc<OnceCell<Arc<RegistryClient>>>>>,
    use_cache: bool,
    fetcher: OnceLock<Arc<ArnFetcher>>,
    printer: Printer,
    /// Conversions shared across images (set up by `batch`).
    layer_cache: OnceLock<LayerCache>,
    /// Where each blob was pushed in this run, so another repository of the registry mounts it.
    pushed: Arc<PushedBlobs>,
}

impl Context {
    pub fn new(global: &GlobalSettings) -> anyhow::Result<Context> {
        // Two workers: downloads and uploads wait on the network; conversions run on plain threads.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        Ok(Context {
            runtime,
            aws: Arc::new(AwsClients::new(global.aws.clone())),
            registry: global.registry.clone(),
            registries: Mutex::new(HashMap::new()),
            use_cache: global.use_cache,
            fetcher: OnceLock::new(),
            printer: Printer::new(global.json, global.quiet),
            layer_cache: OnceLock::new(),
            pushed: Arc::new(PushedBlobs::default()),
        })
    }

    /// Runs `future` to completion; call from plain threads, never from inside the runtime.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    pub fn handle(&self) -> &Handle {
        self.runtime.handle()
    }

    pub fn aws(&self) -> &Arc<AwsClients> {
        &self.aws
    }

    pub fn printer(&self) -> &Printer {
        &self.printer
    }

    /// From now on, the same zip converted the same way is converted once for all images.
    pub fn share_conversions(&self) -> anyhow::Result<()> {
        if self.layer_cache.get().is_none() {
            let cache =
                LayerCache::new().context("cannot create a scratch directory for layers")?;
            let _ = self.layer_cache.set(cache);
        }
        Ok(())
    }

    pub fn layer_cache(&self) -> Option<&LayerCache> {
        self.layer_cache.get()
    }

    pub fn pushed_blobs(&self) -> &Arc<PushedBlobs> {
        &self.pushed
    }

    /// The layer fetcher (GetLayerVersionByArn, verified downloads, the cache), made on first use.
    pub fn fetcher(&self) -> anyhow::Result<Arc<ArnFetcher>> {
        if let Some(f) = self.fetcher.get() {
            return Ok(Arc::clone(f));
        }
        let cache = if self.use_cache {
            ZipCache::from_env()
        } else {
            None
        };
        let made = Arc::new(ArnFetcher::new(Arc::clone(&self.aws), cache)?);
        Ok(Arc::clone(self.fetcher.get_or_init(|| made)))
    }

    /// `--registry-auth ecr`: every registry is an ECR, whatever its host name.
    pub fn forces_ecr(&self) -> bool {
        self.registry.auth == AuthMode::Ecr
    }

    /// The region whose ECR serves `image`: its host's, else, only under `--registry-auth ecr`
    /// (an ECR behind another name), --region / the default chain. `None` for other registries.
    pub async fn ecr_region(&self, image: &ImageRef) -> Option<String> {
        match credential_source(&image.registry, self.registry.auth) {
            CredentialSource::Ecr(Some(region)) => Some(region),
            CredentialSource::Ecr(None) => self.aws.default_region().await,
            _ => None,
        }
    }

    /// The client for `image`'s registry host: one per host for the whole run, so a base and a
    /// target on the same registry share one login and one set of tokens.
    pub async fn registry(&self, image: &ImageRef) -> anyhow::Result<Arc<RegistryClient>> {
        let cell = {
            let mut cells = self.registries.lock().expect("no panics while locked");
            Arc::clone(cells.entry(image.registry.clone()).or_default())
        };
        let client = cell
            .get_or_try_init(|| async {
                let plain = self
                    .registry
                    .plain_http
                    .iter()
                    .any(|h| h == &image.registry || h == image.api_host());
                let (login, renewal) = self.login(image).await?;
                let mut client =
                    RegistryClient::new(image.api_host(), &image.registry, plain, login)
                        .with_progress(self.printer.progress().clone());
                if let Some(renewal) = renewal {
                    client = client.with_renewal(renewal);
                }
                anyhow::Ok(Arc::new(client))
            })
            .await?;
        Ok(Arc::clone(client))
    }

    /// The host's login, and for ECR how to log in again when it expires.
    async fn login(&self, image: &ImageRef) -> anyhow::Result<(Login, Option<Renewal>)> {
        let host = &image.registry;
        let credentials = match credential_source(host, self.registry.auth) {
            CredentialSource::Anonymous => Credentials::Anonymous,
            CredentialSource::Docker { fallback } => docker_config_credentials(host, fallback)?,
            CredentialSource::Ecr(region) => {
                let region = match region {
                    Some(r) => r,
                    None => self
                        .aws
                        .default_region()
                        .await
                        .ok_or_else(|| AuthError::NoRegion { host: host.clone() })?,
                };
                let login = ecr_login(&self.aws, host, &region).await?;
                debug!("logged in to {host} with an ECR token from {region}");
                let (aws, host, region) = (Arc::clone(&self.aws), host.clone(), region.clone());
                let renewal: Renewal = Arc::new(move || {
                    let (aws, host, region) = (Arc::clone(&aws), host.clone(), region.clone());
                    Box::pin(async move {
                        ecr_login(&aws, &host, &region)
                            .await
                            .map_err(|e| e.to_string())
                    })
                });
                return Ok((login, Some(renewal)));
            }
        };
        Ok((
            Login {
                credentials,
                expires: None,
            },
            None,
        ))
    }
}

async fn ecr_login(aws: &AwsClients, host: &str, region: &str) -> Result<Login, EcrError> {
    let login = aws.ecr_login(host, region).await?;
    Ok(Login {
        credentials: Credentials::Basic {
            username: login.username,
            password: login.password,
        },
        expires: login.expires,
    })
}
