//! The checks on an image's documents — index, manifest, layer media types, config — which need
//! no layer bytes.

use serde_json::Value;

use super::{CheckId, CheckOptions, Finding, Level, finding, runtime_config};
use crate::oci::platform::Platform;
use crate::oci::source::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};

const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// What a check reads of one image manifest and its config.
#[derive(Debug, Clone)]
pub struct ImageFacts {
    /// How messages name the image.
    pub name: String,
    pub manifest_media_type: String,
    /// Each layer's media type and digest, lowest first.
    pub layers: Vec<(String, String)>,
    pub config: Value,
    pub platform: Platform,
}

/// What the reference pointed at when it was an image index.
#[derive(Debug, Clone, Default)]
pub struct IndexFacts {
    /// `os/arch` of each image in it.
    pub platforms: Vec<String>,
    /// Digests of attestation manifests (buildx provenance and SBOMs).
    pub attestations: Vec<String>,
}

/// Reads an index's entries, or `None` when `root` is not an index.
pub fn index_facts(media_type: &str, root: &Value) -> Option<IndexFacts> {
    let declared = root["mediaType"].as_str().unwrap_or(media_type);
    let is_index = [media_type, declared]
        .iter()
        .any(|t| *t == OCI_INDEX || *t == DOCKER_LIST)
        || (root["manifests"].is_array() && root.get("layers").is_none());
    if !is_index {
        return None;
    }
    let mut facts = IndexFacts::default();
    for entry in root["manifests"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let os = entry["platform"]["os"].as_str().unwrap_or("unknown");
        let arch = entry["platform"]["architecture"]
            .as_str()
            .unwrap_or("unknown");
        let reference_type = entry["annotations"]["vnd.docker.reference.type"].as_str();
        if reference_type == Some("attestation-manifest") || os == "unknown" {
            facts
                .attestations
                .push(entry["digest"].as_str().unwrap_or("?").to_string());
        } else {
            facts.platforms.push(format!("{os}/{arch}"));
        }
    }
    Some(facts)
}

/// Index, media types, platform and config.
pub fn check_documents(
    facts: &ImageFacts,
    index: Option<&IndexFacts>,
    options: &CheckOptions,
) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(index) = index {
        check_index(&facts.name, index, &mut out);
    }
    check_media_types(facts, &mut out);
    check_platform(facts, options, &mut out);
    let config = runtime_config(&facts.config);
    if options.runnable {
        check_command(&facts.name, config, &mut out);
    }
    check_env(config, &mut out);
    out
}

fn check_index(name: &str, index: &IndexFacts, out: &mut Vec<Finding>) {
    out.push(finding(
        CheckId::ImageIndex,
        Level::Error,
        name,
        format!(
            "the reference is an image index ({}), and Lambda takes only a single image manifest",
            if index.platforms.is_empty() {
                "no platforms".to_string()
            } else {
                index.platforms.join(", ")
            }
        ),
        "push one platform's image under its own tag (e.g. `docker buildx build --platform linux/arm64 --provenance=false --sbom=false`, or `layerport image` which always pushes one manifest)",
    ));
    for digest in &index.attestations {
        out.push(finding(
            CheckId::AttestationManifest,
            Level::Error,
            digest.as_str(),
            "the index carries a build attestation (provenance or SBOM), which Lambda refuses",
            "build with `--provenance=false --sbom=false`, or push one platform's image by itself",
        ));
    }
}

fn check_media_types(facts: &ImageFacts, out: &mut Vec<Finding>) {
    let mt = facts.manifest_media_type.as_str();
    if mt != OCI_MANIFEST && mt != DOCKER_MANIFEST {
        out.push(finding(
            CheckId::ManifestMediaType,
            Level::Error,
            &facts.name,
            format!("manifest media type {mt:?} is not one Lambda takes (OCI image manifest or Docker v2 schema 2)"),
            "copy the image with a current tool (e.g. `skopeo copy --format oci`)",
        ));
    }
    for (media_type, digest) in &facts.layers {
        let (level, problem) = match media_type.as_str() {
            OCI_LAYER_GZIP | DOCKER_LAYER_GZIP => continue,
            OCI_LAYER_TAR | DOCKER_LAYER_TAR => (
                Level::Warning,
                "is an uncompressed tar; Lambda documents gzip-compressed layers",
            ),
            t if t.contains("zstd") => (Level::Error, "is zstd-compressed, which Lambda refuses"),
            t if t.contains("foreign") || t.contains("nondistributable") => (
                Level::Error,
                "is a foreign (non-distributable) layer, which Lambda cannot pull",
            ),
            _ => (Level::Error, "has a media type Lambda does not take"),
        };
        out.push(finding(
            CheckId::LayerMediaType,
            level,
            digest.as_str(),
            format!("layer ({media_type}) {problem}"),
            "recompress the layers with gzip, e.g. `skopeo copy --dest-compress-format gzip`",
        ));
    }
}

fn check_platform(facts: &ImageFacts, options: &CheckOptions, out: &mut Vec<Finding>) {
    let have = &facts.platform;
    if have.os != "linux" || !matches!(have.architecture.as_str(), "amd64" | "arm64") {
        out.push(finding(
            CheckId::UnsupportedPlatform,
            Level::Error,
            &facts.name,
            format!("the image is for {have}; Lambda runs linux/amd64 (x86_64) and linux/arm64"),
            "build the image for linux/amd64 or linux/arm64",
        ));
        return;
    }
    if let Some(want) = &options.platform
        && want.architecture != have.architecture
    {
        out.push(finding(
            CheckId::Architecture,
            Level::Error,
            &facts.name,
            format!(
                "the image is {} ({}) but the function runs on {}",
                have.lambda_architecture(),
                have,
                want.lambda_architecture()
            ),
            format!(
                "build for {want} (e.g. `--platform {want}`), or give the function the {} architecture",
                have.lambda_architecture()
            ),
        ));
    }
}

fn check_command(name: &str, config: &Value, out: &mut Vec<Finding>) {
    let set = |key: &str| config[key].as_array().is_some_and(|a| !a.is_empty());
    if !set("Entrypoint") && !set("Cmd") {
        out.push(finding(
            CheckId::NoEntrypointOrCmd,
            Level::Error,
            name,
            "the config has neither an Entrypoint nor a Cmd, so Lambda has nothing to start",
            "build on a Lambda base image (--base public.ecr.aws/lambda/<runtime>), or set Entrypoint and Cmd",
        ));
    }
}

/// Variables whose names say they hold a credential: listed by name, never by value.
fn check_env(config: &Value, out: &mut Vec<Finding>) {
    for entry in config["Env"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let Some(name) = entry
            .as_str()
            .and_then(|e| e.split_once('='))
            .map(|(n, _)| n)
        else {
            continue;
        };
        let upper = name.to_ascii_uppercase();
        let level = match upper.as_str() {
            "AWS_SECRET_ACCESS_KEY" | "AWS_SESSION_TOKEN" | "AWS_ACCESS_KEY_ID" => Level::Error,
            _ if [
                "SECRET",
                "TOKEN",
                "PASSWORD",
                "PASSWD",
                "PRIVATE_KEY",
                "API_KEY",
            ]
            .iter()
            .any(|w| upper.contains(w)) =>
            {
                Level::Warning
            }
            _ => continue,
        };
        out.push(finding(
            CheckId::CredentialVariable,
            level,
            name,
            "the image config sets this variable, and anyone who can pull the image can read its value",
            "remove it from the image and set it in the function's configuration (environment, or a secrets manager)",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts(config: Value, layers: &[&str]) -> ImageFacts {
        ImageFacts {
            name: "img".into(),
            manifest_media_type: OCI_MANIFEST.into(),
            layers: layers
                .iter()
                .map(|m| (m.to_string(), "sha256:x".to_string()))
                .collect(),
            config,
            platform: Platform::arm64(),
        }
    }

    fn ids(findings: &[Finding]) -> Vec<CheckId> {
        findings.iter().map(|f| f.id).collect()
    }

    #[test]
    fn a_clean_function_image_has_no_findings() {
        let config = json!({"config": {"Entrypoint": ["/lambda-entrypoint.sh"], "Cmd": ["app.handler"], "Env": ["PATH=/bin"]}});
        let options = CheckOptions {
            platform: Some(Platform::arm64()),
            runnable: true,
            ..Default::default()
        };
        assert!(check_documents(&facts(config, &[OCI_LAYER_GZIP]), None, &options).is_empty());
    }

    #[test]
    fn each_defect_gives_its_finding() {
        let config =
            json!({"config": {"Env": ["AWS_SECRET_ACCESS_KEY=abc", "DB_PASSWORD=x", "HOME=/"]}});
        let options = CheckOptions {
            platform: Some(Platform::amd64()),
            runnable: true,
            ..Default::default()
        };
        let found = check_documents(
            &facts(config, &["application/vnd.oci.image.layer.v1.tar+zstd"]),
            None,
            &options,
        );
        assert_eq!(
            ids(&found),
            [
                CheckId::LayerMediaType,
                CheckId::Architecture,
                CheckId::NoEntrypointOrCmd,
                CheckId::CredentialVariable,
                CheckId::CredentialVariable,
            ]
        );
        let text = format!("{found:?}");
        assert!(!text.contains("abc"), "a value leaked: {text}");
        assert_eq!(found[3].level, Level::Error);
        assert_eq!(found[4].level, Level::Warning);
    }

    #[test]
    fn indexes_and_attestations_are_found() {
        let index = json!({"mediaType": OCI_INDEX, "manifests": [
            {"digest": "sha256:a", "platform": {"os": "linux", "architecture": "amd64"}},
            {"digest": "sha256:b", "platform": {"os": "unknown", "architecture": "unknown"},
             "annotations": {"vnd.docker.reference.type": "attestation-manifest"}},
        ]});
        let facts_of = index_facts(OCI_INDEX, &index).unwrap();
        assert_eq!(facts_of.platforms, ["linux/amd64"]);
        assert_eq!(facts_of.attestations, ["sha256:b"]);
        assert!(index_facts(OCI_MANIFEST, &json!({"layers": []})).is_none());
    }
}
