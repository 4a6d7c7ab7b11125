//! Builds an image's config and manifest from its layers, canonically, so the same layers and
//! sources always give the same digests.

use oci_spec::image::MediaType;
use serde_json::{Map, Value, json};

use crate::canonical_json::to_canonical_bytes;
use crate::digest::sha256_digest;
use crate::layer_build::LayerDigests;
use crate::platform::Platform;

/// Annotation keys that record where each input layer came from, so a later run can compare.
pub const ANNOTATION_SOURCE: &str = "dev.layerport.layer.{}.source";
pub const ANNOTATION_CODE_SHA256: &str = "dev.layerport.layer.{}.code-sha256";

/// Where an input layer zip came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSource {
    /// The layer version ARN, or the zip's base name: never a directory path or URL.
    pub label: String,
    /// Base64 of the raw sha256 of the zip, as Lambda reports `CodeSha256`.
    pub code_sha256: String,
    /// The same sha256, hex, for people.
    pub sha256_hex: String,
}

impl LayerSource {
    pub fn describe(&self) -> String {
        if self.label.starts_with("arn:") {
            self.label.clone()
        } else {
            format!("{} sha256:{}", self.label, self.sha256_hex)
        }
    }
}

/// One layer added to the image and the inputs it was made from (several with `--squash`).
#[derive(Debug, Clone)]
pub struct AddedLayer {
    pub digests: LayerDigests,
    pub sources: Vec<LayerSource>,
}

#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub config: Vec<u8>,
    pub config_digest: String,
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
}

/// Assembles the config and manifest for `layers` on an empty base.
pub fn build_image(layers: &[AddedLayer], platform: &Platform) -> BuiltImage {
    let diff_ids: Vec<Value> = layers
        .iter()
        .map(|l| Value::String(l.digests.diff_id.clone()))
        .collect();
    let history: Vec<Value> = layers
        .iter()
        .map(|l| {
            let sources: Vec<String> = l.sources.iter().map(LayerSource::describe).collect();
            json!({
                "created_by": format!("layerport: {}", sources.join(", ")),
                "comment": "Lambda layer contents",
            })
        })
        .collect();
    let mut config = json!({
        "architecture": platform.architecture,
        "os": platform.os,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    });
    if let Some(variant) = &platform.variant {
        config["variant"] = Value::String(variant.clone());
    }
    let config = to_canonical_bytes(&config);
    let config_digest = sha256_digest(&config);

    let layer_type = MediaType::ImageLayerGzip.to_string();
    let descriptors: Vec<Value> = layers
        .iter()
        .map(|l| {
            json!({
                "mediaType": layer_type,
                "digest": l.digests.digest,
                "size": l.digests.size,
            })
        })
        .collect();
    let mut annotations = Map::new();
    let mut index = 0;
    for layer in layers {
        for source in &layer.sources {
            annotations.insert(
                ANNOTATION_SOURCE.replace("{}", &index.to_string()),
                Value::String(source.label.clone()),
            );
            annotations.insert(
                ANNOTATION_CODE_SHA256.replace("{}", &index.to_string()),
                Value::String(source.code_sha256.clone()),
            );
            index += 1;
        }
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MediaType::ImageManifest.to_string(),
        "config": {
            "mediaType": MediaType::ImageConfig.to_string(),
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": descriptors,
        "annotations": annotations,
    });
    let manifest = to_canonical_bytes(&manifest);
    let manifest_digest = sha256_digest(&manifest);
    BuiltImage {
        config,
        config_digest,
        manifest,
        manifest_digest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(n: u8) -> AddedLayer {
        AddedLayer {
            digests: LayerDigests {
                digest: format!("sha256:{}", format!("{n:02x}").repeat(32)),
                size: 10 + u64::from(n),
                diff_id: format!("sha256:{}", format!("{:02x}", n + 100).repeat(32)),
                tar_size: 1024,
            },
            sources: vec![LayerSource {
                label: format!("layer{n}.zip"),
                code_sha256: "AAAA".into(),
                sha256_hex: "00".repeat(32),
            }],
        }
    }

    #[test]
    fn manifest_and_config_are_valid_oci_and_deterministic() {
        let layers = vec![layer(1), layer(2)];
        let a = build_image(&layers, &Platform::arm64());
        let b = build_image(&layers, &Platform::arm64());
        assert_eq!(a.manifest, b.manifest);
        let manifest: oci_spec::image::ImageManifest = serde_json::from_slice(&a.manifest).unwrap();
        assert_eq!(manifest.layers().len(), 2);
        assert_eq!(manifest.config().digest().to_string(), a.config_digest);
        let config: oci_spec::image::ImageConfiguration =
            serde_json::from_slice(&a.config).unwrap();
        assert_eq!(config.architecture().to_string(), "arm64");
        assert_eq!(config.rootfs().diff_ids()[1], layers[1].digests.diff_id);
        let text = String::from_utf8(a.manifest).unwrap();
        assert!(text.contains("\"dev.layerport.layer.1.source\":\"layer2.zip\""));
        assert!(!text.contains(' '));
    }
}
