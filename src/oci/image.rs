//! Builds an image's config and manifest from its layers, canonically, so the same layers and
//! sources always give the same digests.

use std::collections::BTreeMap;
use std::sync::Arc;

use oci_spec::image::MediaType;
use serde_json::{Map, Value, json};

use crate::core::digest::Digest;
use crate::core::layer_gzip::LayerDigests;
use crate::oci::canonical_json::to_canonical_bytes;
use crate::oci::platform::Platform;
use crate::oci::resolve::ResolvedImage;
use crate::oci::source::{ImageStore, LayerBlob};

/// Annotation keys that record where each input layer came from, so a later run can compare.
/// `dev.layerport.layer.<input index>.source`: the ARN or zip name of input `index`.
pub fn annotation_source(index: usize) -> String {
    format!("dev.layerport.layer.{index}.source")
}

/// `dev.layerport.layer.<input index>.code-sha256`: its CodeSha256.
pub fn annotation_code_sha256(index: usize) -> String {
    format!("dev.layerport.layer.{index}.code-sha256")
}

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

/// What a base image contributes: its config (Env, Entrypoint, Cmd, WorkingDir, Labels, history,
/// diff_ids), its layers, its media type family — and the store its blobs are read from.
pub struct BaseImage {
    pub name: String,
    pub config: Value,
    pub layers: Vec<LayerBlob>,
    pub docker_media_types: bool,
    pub platform: Platform,
    pub manifest_digest: Digest,
    pub store: Arc<dyn ImageStore>,
}

impl BaseImage {
    pub fn new(resolved: ResolvedImage, store: Arc<dyn ImageStore>) -> Self {
        BaseImage {
            name: resolved.name,
            config: resolved.config,
            layers: resolved.layers,
            docker_media_types: resolved.docker_media_types,
            platform: resolved.platform,
            manifest_digest: resolved.manifest_digest,
            store,
        }
    }

    /// The base's layer descriptors, as its manifest gives them to ours.
    fn descriptors(&self) -> Vec<Value> {
        self.layers
            .iter()
            .map(|l| {
                json!({
                    "mediaType": l.blob.media_type,
                    "digest": l.blob.digest,
                    "size": l.blob.size,
                })
            })
            .collect()
    }
}

pub use crate::oci::source::DOCKER_MANIFEST;
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub config: Vec<u8>,
    pub config_digest: Digest,
    pub manifest: Vec<u8>,
    pub manifest_digest: Digest,
    pub manifest_media_type: String,
    /// Descriptors of every layer, base layers first.
    pub layer_descriptors: Vec<Value>,
}

/// What a caller adds besides layers: nothing for `layerport image`; a function's Cmd, perhaps
/// its environment, and its inputs' annotations for `migrate`.
#[derive(Debug, Clone, Default)]
pub struct ImageExtras {
    /// Replaces the config's Cmd.
    pub cmd: Option<Vec<String>>,
    /// Variables added to the config's Env (replacing ones of the same name).
    pub env: Vec<(String, String)>,
    /// Manifest annotations (config labels on a Docker-typed image).
    pub annotations: BTreeMap<String, String>,
}

/// Assembles the config and manifest for `layers`, on `base` or on an empty image.
pub fn build_image(
    layers: &[AddedLayer],
    platform: &Platform,
    base: Option<&BaseImage>,
    extras: &ImageExtras,
) -> BuiltImage {
    let docker = base.is_some_and(|b| b.docker_media_types);
    let mut config = config_for(layers, platform, base);
    apply_extras(&mut config, extras);
    let layer_type = if docker {
        DOCKER_LAYER_GZIP.to_string()
    } else {
        MediaType::ImageLayerGzip.to_string()
    };
    let mut descriptors: Vec<Value> = base.map(BaseImage::descriptors).unwrap_or_default();
    descriptors.extend(layers.iter().map(|l| {
        json!({
            "mediaType": layer_type,
            "digest": l.digests.digest,
            "size": l.digests.size,
        })
    }));
    let mut annotations = source_annotations(layers);
    for (k, v) in &extras.annotations {
        annotations.insert(k.clone(), Value::String(v.clone()));
    }
    if docker {
        // Docker v2 manifests carry no annotations: the sources go into the config's labels.
        let labels = &mut config["config"]["Labels"];
        if !labels.is_object() {
            *labels = Value::Object(Map::new());
        }
        for (k, v) in &annotations {
            labels[k] = v.clone();
        }
    }
    let config = to_canonical_bytes(&config);
    let config_digest = Digest::of(&config);
    let (manifest_type, config_type) = if docker {
        (DOCKER_MANIFEST.to_string(), DOCKER_CONFIG.to_string())
    } else {
        (
            MediaType::ImageManifest.to_string(),
            MediaType::ImageConfig.to_string(),
        )
    };
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {
            "mediaType": config_type,
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": descriptors,
    });
    if !docker {
        manifest["annotations"] = Value::Object(annotations);
    }
    let manifest = to_canonical_bytes(&manifest);
    let manifest_digest = Digest::of(&manifest);
    BuiltImage {
        config,
        config_digest,
        manifest,
        manifest_digest,
        manifest_media_type: manifest_type,
        layer_descriptors: descriptors,
    }
}

/// The base's config (or an empty one) with our layers' diff_ids and history appended.
fn config_for(layers: &[AddedLayer], platform: &Platform, base: Option<&BaseImage>) -> Value {
    let inherited = |key: &str| -> Vec<Value> {
        base.and_then(|b| b.config.pointer(key))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let mut diff_ids = inherited("/rootfs/diff_ids");
    diff_ids.extend(
        layers
            .iter()
            .map(|l| Value::String(l.digests.diff_id.to_string())),
    );
    let mut history = inherited("/history");
    history.extend(layers.iter().map(|l| {
        let sources: Vec<String> = l.sources.iter().map(LayerSource::describe).collect();
        json!({
            "created_by": format!("layerport: {}", sources.join(", ")),
            "comment": "Lambda layer contents",
        })
    }));
    let mut config = match base {
        Some(b) => b.config.clone(),
        None => json!({
            "architecture": platform.architecture,
            "os": platform.os,
            "config": {},
        }),
    };
    if base.is_none()
        && let Some(variant) = &platform.variant
    {
        config["variant"] = Value::String(variant.clone());
    }
    config["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
    config["history"] = Value::Array(history);
    config
}

fn apply_extras(config: &mut Value, extras: &ImageExtras) {
    if extras.cmd.is_none() && extras.env.is_empty() {
        return;
    }
    if !config["config"].is_object() {
        config["config"] = Value::Object(Map::new());
    }
    let runtime = &mut config["config"];
    if let Some(cmd) = &extras.cmd {
        runtime["Cmd"] = json!(cmd);
    }
    if !extras.env.is_empty() {
        let mut env: Vec<Value> = runtime["Env"].as_array().cloned().unwrap_or_default();
        for (name, value) in &extras.env {
            let prefix = format!("{name}=");
            env.retain(|e| !e.as_str().is_some_and(|e| e.starts_with(&prefix)));
            env.push(Value::String(format!("{name}={value}")));
        }
        runtime["Env"] = Value::Array(env);
    }
}

/// Each input's source and CodeSha256, by input index.
fn source_annotations(layers: &[AddedLayer]) -> Map<String, Value> {
    let mut annotations = Map::new();
    let sources = layers.iter().flat_map(|l| &l.sources);
    for (index, source) in sources.enumerate() {
        annotations.insert(
            annotation_source(index),
            Value::String(source.label.clone()),
        );
        annotations.insert(
            annotation_code_sha256(index),
            Value::String(source.code_sha256.clone()),
        );
    }
    annotations
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(n: u8) -> AddedLayer {
        AddedLayer {
            digests: LayerDigests {
                digest: Digest::of(&[n]),
                size: 10 + u64::from(n),
                diff_id: Digest::of(&[n + 100]),
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
        let a = build_image(&layers, &Platform::arm64(), None, &ImageExtras::default());
        let b = build_image(&layers, &Platform::arm64(), None, &ImageExtras::default());
        assert_eq!(a.manifest, b.manifest);
        let manifest: oci_spec::image::ImageManifest = serde_json::from_slice(&a.manifest).unwrap();
        assert_eq!(manifest.layers().len(), 2);
        assert_eq!(a.config_digest, manifest.config().digest().as_ref());
        let config: oci_spec::image::ImageConfiguration =
            serde_json::from_slice(&a.config).unwrap();
        assert_eq!(config.architecture().to_string(), "arm64");
        assert_eq!(
            layers[1].digests.diff_id,
            config.rootfs().diff_ids()[1].as_str()
        );
        let text = String::from_utf8(a.manifest).unwrap();
        assert!(text.contains("\"dev.layerport.layer.1.source\":\"layer2.zip\""));
        assert!(!text.contains(' '));
    }
}

#[cfg(test)]
mod base_tests {
    use super::*;
    use crate::oci::source::{BlobRef, Document, ImageError};

    /// A base whose blobs are never read by `build_image`.
    struct NoStore;

    impl ImageStore for NoStore {
        fn name(&self) -> &str {
            "none"
        }
        fn root(&self) -> Result<Document, ImageError> {
            unreachable!()
        }
        fn manifest(&self, _: &BlobRef) -> Result<Document, ImageError> {
            unreachable!()
        }
        fn open_blob(&self, _: &BlobRef) -> Result<Box<dyn std::io::Read + Send + '_>, ImageError> {
            unreachable!()
        }
    }

    #[test]
    fn base_config_is_inherited_and_docker_family_kept() {
        let base = BaseImage {
            manifest_digest: Digest::of(b"base manifest"),
            store: Arc::new(NoStore),
            config: json!({
                "architecture": "arm64", "os": "linux", "created": "2024-01-01T00:00:00Z",
                "config": {"Env": ["PATH=/usr/bin"], "Entrypoint": ["/lambda-entrypoint.sh"], "Cmd": ["app.handler"], "WorkingDir": "/var/task"},
                "rootfs": {"type": "layers", "diff_ids": [Digest::of(b"base")]},
                "history": [{"created_by": "base layer"}],
            }),
            name: "base".into(),
            layers: vec![LayerBlob {
                blob: BlobRef {
                    media_type: DOCKER_LAYER_GZIP.into(),
                    digest: Digest::of(b"b"),
                    size: Some(5),
                },
                diff_id: Digest::of(b"base"),
            }],
            docker_media_types: true,
            platform: Platform::arm64(),
        };
        let layer = AddedLayer {
            digests: LayerDigests {
                digest: Digest::of(b"new"),
                size: 9,
                diff_id: Digest::of(b"newdiff"),
                tar_size: 1024,
            },
            sources: vec![LayerSource {
                label: "x.zip".into(),
                code_sha256: "C".into(),
                sha256_hex: "00".into(),
            }],
        };
        let img = build_image(
            &[layer],
            &Platform::arm64(),
            Some(&base),
            &ImageExtras::default(),
        );
        let config: Value = serde_json::from_slice(&img.config).unwrap();
        assert_eq!(config["config"]["Entrypoint"][0], "/lambda-entrypoint.sh");
        assert_eq!(
            config["rootfs"]["diff_ids"],
            json!([Digest::of(b"base"), Digest::of(b"newdiff")])
        );
        assert_eq!(config["history"].as_array().unwrap().len(), 2);
        assert_eq!(
            config["config"]["Labels"]["dev.layerport.layer.0.source"],
            "x.zip"
        );
        let manifest: Value = serde_json::from_slice(&img.manifest).unwrap();
        assert_eq!(manifest["mediaType"], DOCKER_MANIFEST);
        assert_eq!(manifest["layers"][1]["mediaType"], DOCKER_LAYER_GZIP);
        assert!(manifest.get("annotations").is_none());
    }
}
