//! Is the image already there? A request's inputs — each zip's CodeSha256, where it goes, the
//! base's digest, the options — reduced to one digest recorded as an annotation
//! (`dev.layerport.inputs`); a target whose manifest carries the same one needs no work. No state
//! file: the registry (or layout) is the record.

use std::path::Path;

use anyhow::Result;
use serde_json::{Value, json};

use super::inputs::LayerRef;
use super::{ImageRequest, open_base};
use crate::aws::fetch::FetchSource;
use crate::context::Context;
use crate::core::digest::{Digest, sha256_file};
use crate::core::error::LayerError;
use crate::oci::canonical_json::to_canonical_bytes;
use crate::oci::layout::REF_NAME;
use crate::oci::reference::{ImageRef, ImageSpec};
use crate::oci::sink::SinkSpec;
use crate::registry::client::RegistryError;

/// The annotation holding the fingerprint of an image's inputs.
pub const INPUTS_ANNOTATION: &str = "dev.layerport.inputs";

/// The fingerprint of `request`'s inputs, and the request with its base pinned to the digest the
/// fingerprint names (so the image is built on exactly that).
pub fn fingerprint(ctx: &Context, request: &ImageRequest) -> Result<(Digest, ImageRequest)> {
    let mut layers = Vec::with_capacity(request.layers.len());
    for input in &request.layers {
        let code_sha256 = code_sha256(ctx, &input.source)?;
        layers.push(json!([code_sha256, input.prefix, input.only]));
    }
    let mut pinned = request.clone();
    let base = match &request.base {
        Some(spec) => {
            let base = open_base(ctx, spec, request.platform.as_ref())?;
            pinned.base = Some(pin(spec, &base.manifest_digest));
            json!([spec.to_string(), base.manifest_digest])
        }
        None => Value::Null,
    };
    let b = &request.build;
    let extras = &request.extras;
    let env_digest = (!extras.env.is_empty())
        .then(|| Digest::of(&to_canonical_bytes(&json!(extras.env))).to_string());
    let inputs = json!({
        "kind": "layerport image 1",
        "layers": layers,
        "base": base,
        "platform": request.platform.as_ref().map(|p| p.to_string()),
        "squash": request.squash,
        "build": [b.prefix, b.mtime_override, b.max_unzipped, b.gzip_level, b.recompress],
        "cmd": extras.cmd,
        "env": env_digest,
        "annotations": extras.annotations,
    });
    Ok((Digest::of(&to_canonical_bytes(&inputs)), pinned))
}

/// What identifies a zip's content: Lambda's CodeSha256, or a local file's own sha256.
fn code_sha256(ctx: &Context, source: &LayerRef) -> Result<String> {
    Ok(match source {
        LayerRef::Zip(path) => {
            let sha = sha256_file(path).map_err(|e| LayerError::io(path, e))?;
            crate::core::digest::hex(&sha)
        }
        LayerRef::Fetched(f) => crate::core::digest::hex(&f.sha256),
        LayerRef::Remote(FetchSource::Layer(arn)) => {
            ctx.block_on(ctx.aws().layer_code_sha256(arn))?
        }
        LayerRef::Remote(FetchSource::FunctionCode {
            first: Some(info), ..
        }) => info.code_sha256.clone(),
        LayerRef::Remote(FetchSource::FunctionCode {
            function, region, ..
        }) => {
            ctx.block_on(ctx.aws().function_code(function, region))?
                .code_sha256
        }
    })
}

/// A registry base by its digest; a local one as it is.
pub fn pin(spec: &ImageSpec, digest: &Digest) -> ImageSpec {
    match spec {
        ImageSpec::Registry(r) => ImageSpec::Registry(ImageRef {
            digest: Some(digest.to_string()),
            ..r.clone()
        }),
        local => local.clone(),
    }
}

/// How to name the image at `target` when its manifest records `inputs`; `None` otherwise (or
/// when the target cannot tell: a docker archive).
pub fn existing_image(ctx: &Context, target: &SinkSpec, inputs: &Digest) -> Result<Option<String>> {
    match target {
        SinkSpec::Registry(image) => ctx.block_on(existing_in_registry(ctx, image, inputs)),
        SinkSpec::OciLayout {
            dir,
            tag: Some(tag),
        } => existing_in_layout(dir, tag, inputs).map(|found| found.then(|| target.to_string())),
        _ => Ok(None),
    }
}

async fn existing_in_registry(
    ctx: &Context,
    target: &ImageRef,
    inputs: &Digest,
) -> Result<Option<String>> {
    let Some(tag) = &target.tag else {
        return Ok(None);
    };
    let client = ctx.registry(target).await?;
    let manifest = match client.get_manifest(&target.repository, tag).await {
        Ok(m) => m,
        Err(RegistryError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let doc: Value = serde_json::from_slice(&manifest.bytes).unwrap_or_default();
    Ok(records(&doc, inputs).then(|| format!("{}@{}", target.name(), manifest.digest)))
}

fn existing_in_layout(dir: &Path, tag: &str, inputs: &Digest) -> Result<bool> {
    let Ok(index) = std::fs::read(dir.join("index.json")) else {
        return Ok(false);
    };
    let index: Value = serde_json::from_slice(&index).unwrap_or_default();
    let entry = index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["annotations"][REF_NAME].as_str() == Some(tag));
    let Some(digest) = entry
        .and_then(|m| m["digest"].as_str())
        .and_then(|d| Digest::parse(d).ok())
    else {
        return Ok(false);
    };
    let Ok(bytes) = std::fs::read(dir.join("blobs/sha256").join(digest.hex())) else {
        return Ok(false);
    };
    let doc: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    Ok(Digest::of(&bytes) == digest && records(&doc, inputs))
}

/// Does a manifest record these inputs? (A Docker-typed image keeps them in its config labels,
/// which a manifest does not show: such images are rebuilt.)
fn records(manifest: &Value, inputs: &Digest) -> bool {
    manifest["annotations"][INPUTS_ANNOTATION].as_str() == Some(inputs.as_str())
}
