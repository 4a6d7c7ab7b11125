//! Builds registry clients for the command line's settings: one SDK config, credentials per host,
//! plain HTTP only for the hosts the user named.

use std::sync::Arc;

use aws_config::SdkConfig;
use tokio::sync::OnceCell;

use crate::aws::{AwsSettings, load_sdk_config};
use crate::cli::GlobalArgs;
use crate::progress::Progress;
use crate::registry::auth::credentials_for;
use crate::registry::client::RegistryClient;
use crate::registry::reference::ImageRef;

pub struct Registries {
    settings: AwsSettings,
    plain_http: Vec<String>,
    auth: crate::cli::RegistryAuth,
    sdk: OnceCell<SdkConfig>,
    progress: Progress,
}

impl Registries {
    pub fn new(global: &GlobalArgs) -> Self {
        Registries {
            settings: AwsSettings {
                profile: global.profile.clone(),
                region: global.region.clone(),
            },
            plain_http: global.plain_http.clone(),
            auth: global.registry_auth,
            sdk: OnceCell::new(),
            progress: Progress::for_terminal(global.quiet || global.json),
        }
    }

    pub async fn sdk(&self) -> &SdkConfig {
        self.sdk
            .get_or_init(|| async { load_sdk_config(&self.settings).await })
            .await
    }

    pub async fn client(&self, image: &ImageRef) -> anyhow::Result<Arc<RegistryClient>> {
        let plain = self
            .plain_http
            .iter()
            .any(|h| h == &image.registry || h == image.api_host());
        let credentials = credentials_for(&image.registry, self.auth, async || {
            self.sdk().await.clone()
        })
        .await?;
        Ok(Arc::new(
            RegistryClient::new(image.api_host(), &image.registry, plain, credentials)
                .with_progress(self.progress.clone()),
        ))
    }

    /// `--registry-auth ecr`: every registry is an ECR, whatever its host name.
    pub fn forces_ecr(&self) -> bool {
        self.auth == crate::cli::RegistryAuth::Ecr
    }

    /// The region whose ECR serves `image`: its host's, else, only under `--registry-auth ecr`
    /// (an ECR behind another name), --region / the default chain. `None` for other registries.
    pub async fn ecr_region(&self, image: &ImageRef) -> Option<String> {
        match crate::registry::auth::ecr_region(&image.registry) {
            Some(r) => Some(r),
            None if self.forces_ecr() => self.sdk().await.region().map(|r| r.to_string()),
            None => None,
        }
    }
}
