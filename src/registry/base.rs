//! Pulls what a base image contributes: its manifest (picking a platform from an index), its config
//! and the descriptors of its layers.

use serde_json::Value;

use super::client::{RegistryClient, RegistryError};
use super::reference::ImageRef;
use crate::image::BaseImage;
use crate::platform::Platform;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

#[derive(Debug, thiserror::Error)]
pub enum BaseError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(
        "{image} has no {wanted} image; it has: {present}\n  hint: pick one of those with --platform"
    )]
    NoPlatform {
        image: String,
        wanted: String,
        present: String,
    },
    #[error(
        "{image}: {problem}\n  hint: use a single-platform image or an index of image manifests"
    )]
    Unsupported { image: String, problem: String },
}

/// Fetches the base image for `platform` (default linux/amd64 when it is an index).
pub async fn fetch_base(
    client: &RegistryClient,
    image: &ImageRef,
    platform: Option<&Platform>,
    scratch: &std::path::Path,
) -> Result<BaseImage, BaseError> {
    let repo = &image.repository;
    let platform_wanted = platform;
    let mut manifest = client.get_manifest(repo, image.reference()).await?;
    if manifest.media_type == OCI_INDEX || manifest.media_type == DOCKER_LIST {
        let index: Value = parse(image, &manifest.bytes)?;
        let wanted = platform.cloned().unwrap_or_else(Platform::amd64);
        let entries = index["manifests"].as_array().cloned().unwrap_or_default();
        let mut present = Vec::new();
        let mut chosen = None;
        for entry in &entries {
            let p = &entry["platform"];
            let (os, arch) = (
                p["os"].as_str().unwrap_or(""),
                p["architecture"].as_str().unwrap_or(""),
            );
            if os.is_empty() || os == "unknown" {
                continue; // attestations and other artifacts
            }
            present.push(format!("{os}/{arch}"));
            if chosen.is_none() && os == wanted.os && arch == wanted.architecture {
                chosen = entry["digest"].as_str().map(str::to_string);
            }
        }
        let Some(digest) = chosen else {
            return Err(BaseError::NoPlatform {
                image: image.to_string(),
                wanted: wanted.to_string(),
                present: if present.is_empty() {
                    "no platforms".into()
                } else {
                    present.join(", ")
                },
            });
        };
        manifest = client.get_manifest(repo, &digest).await?;
    }
    let docker = match manifest.media_type.as_str() {
        OCI_MANIFEST => false,
        DOCKER_MANIFEST => true,
        other => {
            return Err(BaseError::Unsupported {
                image: image.to_string(),
                problem: format!("manifest media type {other:?} is not an image manifest"),
            });
        }
    };
    let m: Value = parse(image, &manifest.bytes)?;
    let config_digest = m["config"]["digest"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let config_size = m["config"]["size"].as_u64();
    let path = scratch.join("base-config.json");
    client
        .download_blob(repo, &config_digest, config_size, &path)
        .await?;
    let bytes = std::fs::read(&path).map_err(|e| RegistryError::Io {
        path: path.clone(),
        source: e,
    })?;
    let config: Value = parse(image, &bytes)?;
    let platform = Platform {
        os: config["os"].as_str().unwrap_or("linux").to_string(),
        architecture: config["architecture"]
            .as_str()
            .unwrap_or("amd64")
            .to_string(),
        variant: config["variant"].as_str().map(str::to_string),
    };
    if let Some(wanted) = platform_wanted
        && (wanted.os != platform.os || wanted.architecture != platform.architecture)
    {
        return Err(BaseError::NoPlatform {
            image: image.to_string(),
            wanted: wanted.to_string(),
            present: platform.to_string(),
        });
    }
    Ok(BaseImage {
        name: image.to_string(),
        config,
        layers: m["layers"].as_array().cloned().unwrap_or_default(),
        docker_media_types: docker,
        platform,
    })
}

fn parse(image: &ImageRef, bytes: &[u8]) -> Result<Value, BaseError> {
    serde_json::from_slice(bytes).map_err(|e| BaseError::Unsupported {
        image: image.to_string(),
        problem: format!("invalid JSON: {e}"),
    })
}
