//! The AWS edge: one SDK configuration for the whole run (aws-config's default chain, `--profile`,
//! `--region`, the SDK's own endpoint overrides), loaded once and lazily, and clients per region
//! built from it; the services' operations live in the files beside this one.

pub mod arn;
pub mod cache;
pub mod download;
pub mod ecr;
pub mod error;
pub mod fetch;
pub mod function_extras;
pub mod function_write;
pub mod functions;
pub mod lambda;
pub mod publish;

use std::collections::HashMap;
use std::sync::Mutex;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use tokio::sync::OnceCell;

/// What a user chose on the command line that shapes every AWS call.
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    pub profile: Option<String>,
    pub region: Option<String>,
}

/// The SDK configuration, loaded on first use, and clients per region built from it.
pub struct AwsClients {
    settings: AwsSettings,
    config: OnceCell<SdkConfig>,
    lambda: Mutex<HashMap<String, aws_sdk_lambda::Client>>,
    ecr: Mutex<HashMap<String, aws_sdk_ecr::Client>>,
    s3: Mutex<HashMap<String, aws_sdk_s3::Client>>,
    /// CodeSha256 by layer version ARN: a layer version never changes, so one run asks once.
    layer_sha256: Mutex<HashMap<String, String>>,
}

impl AwsClients {
    pub fn new(settings: AwsSettings) -> Self {
        AwsClients {
            settings,
            config: OnceCell::new(),
            lambda: Mutex::new(HashMap::new()),
            ecr: Mutex::new(HashMap::new()),
            s3: Mutex::new(HashMap::new()),
            layer_sha256: Mutex::new(HashMap::new()),
        }
    }

    /// The one SDK configuration of the run (credentials, profile, endpoint overrides).
    pub async fn config(&self) -> &SdkConfig {
        self.config
            .get_or_init(|| async {
                let mut loader = aws_config::defaults(BehaviorVersion::latest())
                    .retry_config(RetryConfig::standard().with_max_attempts(5));
                if let Some(profile) = &self.settings.profile {
                    loader = loader.profile_name(profile);
                }
                if let Some(region) = &self.settings.region {
                    loader = loader.region(Region::new(region.clone()));
                }
                loader.load().await
            })
            .await
    }

    /// `--region`, else the default chain's region.
    pub async fn default_region(&self) -> Option<String> {
        self.config().await.region().map(|r| r.to_string())
    }

    /// A Lambda client signing for `region` (a layer or function ARN is used in its own region).
    pub async fn lambda(&self, region: &str) -> aws_sdk_lambda::Client {
        let config = self.config().await;
        cached(&self.lambda, region, || {
            let conf = aws_sdk_lambda::config::Builder::from(config)
                .region(Region::new(region.to_string()))
                .retry_classifier(error::UnknownHostIsFinal)
                .build();
            aws_sdk_lambda::Client::from_conf(conf)
        })
    }

    /// An ECR client for `region` (a registry host's own region).
    pub async fn ecr(&self, region: &str) -> aws_sdk_ecr::Client {
        let config = self.config().await;
        cached(&self.ecr, region, || {
            let conf = aws_sdk_ecr::config::Builder::from(config)
                .region(Region::new(region.to_string()))
                .retry_classifier(error::UnknownHostIsFinal)
                .build();
            aws_sdk_ecr::Client::from_conf(conf)
        })
    }

    /// An S3 client for `region`. Custom endpoints (S3-compatible stores, local fakes) expect
    /// path-style addressing; AWS itself gets the default virtual-hosted style.
    pub async fn s3(&self, region: &str) -> aws_sdk_s3::Client {
        let config = self.config().await;
        cached(&self.s3, region, || {
            let custom_endpoint = config.endpoint_url().is_some()
                || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
            let conf = aws_sdk_s3::config::Builder::from(config)
                .region(Region::new(region.to_string()))
                .retry_classifier(error::UnknownHostIsFinal)
                .force_path_style(custom_endpoint)
                .build();
            aws_sdk_s3::Client::from_conf(conf)
        })
    }
}

fn cached<C: Clone>(map: &Mutex<HashMap<String, C>>, region: &str, build: impl FnOnce() -> C) -> C {
    map.lock()
        .expect("no panics while locked")
        .entry(region.to_string())
        .or_insert_with(build)
        .clone()
}
