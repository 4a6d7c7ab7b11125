//! Narrows an image to what `layerport zip` applies: the platform's manifest (picked from an index
//! as for base images), its config, and each layer paired with its diff_id.

use std::io::Read;

use serde_json::Value;

use super::source::{
    BlobRef, DOCKER_LIST, DOCKER_MANIFEST, ImageError, ImageStore, LayerBlob, MAX_DOCUMENT_BYTES,
    OCI_INDEX, OCI_MANIFEST, descriptor, io_error, too_big,
};
use crate::core::digest::Digest;
use crate::oci::platform::Platform;

/// Layers an image may have: overlayfs stacks at most 128, Docker refuses more than 127.
pub const MAX_LAYERS: usize = 256;

/// An image narrowed to one platform: what `layerport zip` applies.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    pub name: String,
    pub platform: Platform,
    pub layers: Vec<LayerBlob>,
    /// The image config (a base image's Env, Entrypoint, Cmd, history… come from here).
    pub config: Value,
    /// A Docker v2 schema 2 manifest rather than an OCI one.
    pub docker_media_types: bool,
    /// The digest of the platform's image manifest.
    pub manifest_digest: Digest,
    /// That manifest's media type, as the store gave it (or as the manifest says).
    pub manifest_media_type: String,
}

/// Picks the platform (from an index: `wanted`, else linux/amd64), reads the manifest and the
/// config, and pairs each layer with its diff_id.
pub fn resolve(
    store: &dyn ImageStore,
    wanted: Option<&Platform>,
) -> Result<ResolvedImage, ImageError> {
    let image = store.name().to_string();
    let root = store.root()?;
    let root_value = parse_json(&image, "image reference", "", &root.bytes)?;
    let kind = document_kind(&root.media_type, &root_value);
    let (manifest, manifest_digest, manifest_type) = match kind {
        DocKind::Index => {
            let want = wanted.cloned().unwrap_or_else(Platform::amd64);
            let blob = pick_platform(&image, &root_value, &want)?;
            let doc = store.manifest(&blob)?;
            let value = parse_json(&image, "manifest", &blob.digest, &doc.bytes)?;
            (value, blob.digest, doc.media_type)
        }
        DocKind::Manifest => (root_value, Digest::of(&root.bytes), root.media_type.clone()),
        DocKind::Other => {
            return Err(ImageError::BadDocument {
                image,
                what: "document",
                digest: Digest::of(&root.bytes).to_string(),
                detail: format!(
                    "media type {:?} is neither an image index nor an image manifest",
                    root.media_type
                ),
                hint: "give an image (OCI or Docker v2 schema 2), not another kind of artifact",
            });
        }
    };
    let bad = |detail: String| ImageError::BadDocument {
        image: image.clone(),
        what: "manifest",
        digest: manifest_digest.to_string(),
        detail,
        hint: "the manifest does not follow the OCI / Docker v2 schema 2 format; rebuild the image",
    };
    let config_ref = descriptor(&manifest["config"]).map_err(|e| bad(format!("config: {e}")))?;
    let layer_refs = manifest["layers"]
        .as_array()
        .ok_or_else(|| bad("it has no \"layers\" list".into()))?
        .iter()
        .map(descriptor)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("layers: {e}")))?;
    // Each layer is read whole for its digests: a manifest naming one blob thousands of times
    // would keep a run busy for hours. Container runtimes stop far sooner (overlayfs at 128).
    if layer_refs.len() > MAX_LAYERS {
        return Err(bad(format!(
            "it lists {} layers, over the {MAX_LAYERS} any container runtime can stack",
            layer_refs.len()
        )));
    }
    let config_bytes = read_document(store, &config_ref, &image)?;
    let config = parse_json(&image, "config", &config_ref.digest, &config_bytes)?;
    let platform = Platform {
        os: config["os"].as_str().unwrap_or("linux").to_string(),
        architecture: config["architecture"]
            .as_str()
            .unwrap_or("amd64")
            .to_string(),
        variant: config["variant"].as_str().map(str::to_string),
    };
    if kind == DocKind::Manifest
        && let Some(w) = wanted
        && !platform_matches(&platform, w)
    {
        return Err(ImageError::PlatformMismatch {
            image,
            actual: platform.to_string(),
            wanted: w.to_string(),
        });
    }
    let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| d.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if diff_ids.len() != layer_refs.len() {
        return Err(ImageError::BadDocument {
            image,
            what: "config",
            digest: config_ref.digest.to_string(),
            detail: format!(
                "it lists {} diff_ids for {} layers in the manifest",
                diff_ids.len(),
                layer_refs.len()
            ),
            hint: "the config and the manifest disagree; rebuild the image",
        });
    }
    let mut layers = Vec::with_capacity(layer_refs.len());
    for (blob, diff_id) in layer_refs.into_iter().zip(diff_ids) {
        let diff_id = Digest::parse(&diff_id).map_err(|detail| ImageError::BadDocument {
            image: image.clone(),
            what: "config",
            digest: config_ref.digest.to_string(),
            detail: format!("diff_id {diff_id:?}: {detail}"),
            hint: "the config is damaged; rebuild the image",
        })?;
        layers.push(LayerBlob { blob, diff_id });
    }
    let docker_media_types =
        manifest_type == DOCKER_MANIFEST || manifest["mediaType"].as_str() == Some(DOCKER_MANIFEST);
    let manifest_media_type = match manifest["mediaType"].as_str() {
        Some(declared) if manifest_type.is_empty() || manifest_type == "application/json" => {
            declared.to_string()
        }
        _ => manifest_type,
    };
    Ok(ResolvedImage {
        name: image,
        platform,
        layers,
        config,
        docker_media_types,
        manifest_digest,
        manifest_media_type,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DocKind {
    Index,
    Manifest,
    Other,
}

fn document_kind(media_type: &str, value: &Value) -> DocKind {
    let media_type = if media_type.is_empty() || media_type == "application/json" {
        value["mediaType"].as_str().unwrap_or("")
    } else {
        media_type
    };
    match media_type {
        OCI_INDEX | DOCKER_LIST => DocKind::Index,
        OCI_MANIFEST | DOCKER_MANIFEST => DocKind::Manifest,
        "" if value["manifests"].is_array() => DocKind::Index,
        "" if value["layers"].is_array() => DocKind::Manifest,
        _ => DocKind::Other,
    }
}

/// Does an image's platform satisfy `--platform`? arm64 images often say variant `v8` or nothing.
fn platform_matches(have: &Platform, want: &Platform) -> bool {
    let variant_ok = match (&want.variant, &have.variant) {
        (None, _) => true,
        (Some(w), Some(h)) => w == h,
        (Some(w), None) => want.architecture == "arm64" && w == "v8",
    };
    have.os == want.os && have.architecture == want.architecture && variant_ok
}

/// The index entry for `want`, skipping attestations (platform `unknown/unknown`).
fn pick_platform(image: &str, index: &Value, want: &Platform) -> Result<BlobRef, ImageError> {
    let mut present = Vec::new();
    for entry in index["manifests"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let p = &entry["platform"];
        let (os, arch) = (
            p["os"].as_str().unwrap_or(""),
            p["architecture"].as_str().unwrap_or(""),
        );
        if os.is_empty() || os == "unknown" {
            continue;
        }
        let have = Platform {
            os: os.to_string(),
            architecture: arch.to_string(),
            variant: p["variant"].as_str().map(str::to_string),
        };
        if platform_matches(&have, want) {
            return descriptor(entry).map_err(|detail| ImageError::BadDocument {
                image: image.to_string(),
                what: "index entry for",
                digest: want.to_string(),
                detail,
                hint: "the image index is damaged; rebuild or copy the image again",
            });
        }
        present.push(have.to_string());
    }
    Err(ImageError::NoPlatform {
        image: image.to_string(),
        wanted: want.to_string(),
        present: if present.is_empty() {
            "no platforms".into()
        } else {
            present.join(", ")
        },
    })
}

/// An index, manifest or config: always a JSON object (the config is built upon as one, so
/// anything else would be refused here rather than trip up the code that extends it).
fn parse_json(
    image: &str,
    what: &'static str,
    digest: impl std::fmt::Display,
    bytes: &[u8],
) -> Result<Value, ImageError> {
    let bad = |detail: String| ImageError::BadDocument {
        image: image.to_string(),
        what,
        digest: digest.to_string(),
        detail,
        hint: "the image is damaged; copy or save it again",
    };
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("it is not valid JSON ({e})")))?;
    if !value.is_object() {
        return Err(bad("it is not a JSON object".into()));
    }
    if what == "config" && !(value["config"].is_null() || value["config"].is_object()) {
        return Err(bad("its \"config\" field is not an object".into()));
    }
    Ok(value)
}

/// Reads a small blob (a config) whole, verified.
fn read_document(
    store: &dyn ImageStore,
    blob: &BlobRef,
    image: &str,
) -> Result<Vec<u8>, ImageError> {
    let mut reader = store.open_blob(blob)?;
    let mut bytes = Vec::new();
    reader
        .by_ref()
        .take(MAX_DOCUMENT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(e, image, &blob.digest))?;
    if bytes.len() as u64 > MAX_DOCUMENT_BYTES {
        return Err(too_big(image, "config", &blob.digest));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::digest::Digest;
    use crate::oci::source::Document;
    use serde_json::json;

    /// A one-manifest image held in memory, with whatever config bytes the test gives.
    struct Memory {
        manifest: Vec<u8>,
        config: Vec<u8>,
    }

    impl Memory {
        fn with_config(config: &[u8]) -> Memory {
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": Digest::of(config), "size": config.len()},
                "layers": [],
            });
            Memory {
                manifest: serde_json::to_vec(&manifest).unwrap(),
                config: config.to_vec(),
            }
        }
    }

    impl ImageStore for Memory {
        fn name(&self) -> &str {
            "mem:base"
        }
        fn root(&self) -> Result<Document, ImageError> {
            Ok(Document {
                media_type: OCI_MANIFEST.into(),
                bytes: self.manifest.clone(),
            })
        }
        fn manifest(&self, _: &BlobRef) -> Result<Document, ImageError> {
            unreachable!("the root is a manifest")
        }
        fn open_blob(&self, _: &BlobRef) -> Result<Box<dyn Read + Send + '_>, ImageError> {
            Ok(Box::new(&self.config[..]))
        }
    }

    #[test]
    fn configs_that_are_not_objects_are_refused_not_built_upon() {
        let ok = br#"{"architecture":"amd64","os":"linux","config":{"Env":["A=1"]},"rootfs":{"type":"layers","diff_ids":[]}}"#;
        let image = resolve(&Memory::with_config(ok), None).unwrap();
        assert_eq!(image.config["config"]["Env"][0], "A=1");
        for bad in [
            &b"[1, 2]"[..],
            br#""text""#,
            br#"{"config": "x"}"#,
            br#"{"config": [1]}"#,
        ] {
            let err = resolve(&Memory::with_config(bad), None).unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(err, ImageError::BadDocument { what: "config", .. }),
                "{}: {text}",
                String::from_utf8_lossy(bad)
            );
            assert!(
                text.contains("mem:base") && text.contains("hint:"),
                "{text}"
            );
        }
    }

    #[test]
    fn picks_platforms_and_lists_the_present_ones() {
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let index = json!({"manifests": [
            {"digest": d('a'), "size": 1, "mediaType": OCI_MANIFEST, "platform": {"os": "linux", "architecture": "amd64"}},
            {"digest": d('b'), "size": 1, "mediaType": OCI_MANIFEST, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {"digest": d('c'), "size": 1, "mediaType": OCI_MANIFEST, "platform": {"os": "unknown", "architecture": "unknown"}},
        ]});
        assert_eq!(
            pick_platform("i", &index, &Platform::amd64())
                .unwrap()
                .digest,
            d('a').as_str()
        );
        assert_eq!(
            pick_platform("i", &index, &Platform::arm64())
                .unwrap()
                .digest,
            d('b').as_str()
        );
        let s390 = Platform {
            os: "linux".into(),
            architecture: "s390x".into(),
            variant: None,
        };
        let err = pick_platform("i", &index, &s390).unwrap_err().to_string();
        assert!(err.contains("linux/amd64, linux/arm64/v8"), "{err}");
        assert!(!err.contains("unknown"), "{err}");
    }
}
