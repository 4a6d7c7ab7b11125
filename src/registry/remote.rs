//! Reads images straight from a registry (for `zip`, base images, `check`): an `ImageStore` over the
//! registry client, bridging its async calls from the synchronous core with `block_on` — so call it
//! from plain threads (or `spawn_blocking`), never from inside the runtime's tasks.

use std::fs::File;
use std::io::Read;
use std::sync::Arc;

use std::path::Path;

use tokio::runtime::Handle;

use super::client::RegistryClient;
use crate::oci::reference::ImageRef;
use crate::oci::source::{BlobRef, Document, ImageError, ImageStore, check_document};

pub struct RegistryStore {
    name: String,
    image: ImageRef,
    client: Arc<RegistryClient>,
    handle: Handle,
    scratch: tempfile::TempDir,
}

impl RegistryStore {
    /// A store driven by the runtime behind `handle`; call it from outside that runtime's tasks.
    pub fn new(
        image: ImageRef,
        client: Arc<RegistryClient>,
        handle: Handle,
    ) -> Result<Self, ImageError> {
        let scratch = tempfile::Builder::new()
            .prefix("layerport-pull-")
            .tempdir()
            .map_err(|e| ImageError::Io {
                image: image.to_string(),
                path: std::env::temp_dir(),
                source: e,
            })?;
        Ok(RegistryStore {
            name: image.to_string(),
            image,
            client,
            handle,
            scratch,
        })
    }

    fn remote(&self, err: impl std::error::Error + Send + Sync + 'static) -> ImageError {
        ImageError::Remote(Box::new(err))
    }
}

impl ImageStore for RegistryStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn root(&self) -> Result<Document, ImageError> {
        let m = self
            .handle
            .block_on(
                self.client
                    .get_manifest(&self.image.repository, self.image.reference()),
            )
            .map_err(|e| self.remote(e))?;
        Ok(Document {
            media_type: m.media_type,
            bytes: m.bytes,
        })
    }

    fn manifest(&self, blob: &BlobRef) -> Result<Document, ImageError> {
        let m = self
            .handle
            .block_on(
                self.client
                    .get_manifest(&self.image.repository, blob.digest.as_str()),
            )
            .map_err(|e| self.remote(e))?;
        check_document(&self.name, blob, &m.bytes)?;
        let media_type = if blob.media_type.is_empty() {
            m.media_type
        } else {
            blob.media_type.clone()
        };
        Ok(Document {
            media_type,
            bytes: m.bytes,
        })
    }

    fn open_blob(&self, blob: &BlobRef) -> Result<Box<dyn Read + Send + '_>, ImageError> {
        // Spooled to disk, never a whole blob in memory.
        let tmp = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(self.scratch.path())
            .map_err(|e| ImageError::Io {
                image: self.name.clone(),
                path: self.scratch.path().to_path_buf(),
                source: e,
            })?
            .into_temp_path();
        self.handle
            .block_on(self.client.download_blob(
                &self.image.repository,
                &blob.digest,
                blob.size,
                &tmp,
            ))
            .map_err(|e| self.remote(e))?;
        let file = File::open(&tmp).map_err(|e| ImageError::Io {
            image: self.name.clone(),
            path: tmp.to_path_buf(),
            source: e,
        })?;
        // `download_blob` checked digest and size while streaming, so the bytes are hashed once; the
        // open handle keeps them readable after the path is removed.
        drop(tmp);
        Ok(Box::new(file))
    }

    fn copy_blob_to(&self, blob: &BlobRef, dest: &Path) -> Result<(), ImageError> {
        self.handle
            .block_on(self.client.download_blob(
                &self.image.repository,
                &blob.digest,
                blob.size,
                dest,
            ))
            .map_err(|e| self.remote(e))
    }

    fn registry_repository(&self) -> Option<(&str, &str)> {
        Some((&self.image.registry, &self.image.repository))
    }
}
