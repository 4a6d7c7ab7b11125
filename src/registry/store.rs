//! Lets `layerport zip` read images straight from a registry: an `ImageStore` over the registry client,
//! bridging its async calls from the synchronous core with `block_on`.

use std::fs::File;
use std::io::Read;
use std::sync::Arc;

use super::client::RegistryClient;
use super::reference::ImageRef;
use crate::image_source::{
    BlobRef, Document, ImageError, ImageStore, VerifyingReader, check_document,
};

pub struct RegistryStore {
    name: String,
    image: ImageRef,
    client: Arc<RegistryClient>,
    runtime: tokio::runtime::Runtime,
    scratch: tempfile::TempDir,
}

impl RegistryStore {
    pub fn new(
        image: ImageRef,
        client: Arc<RegistryClient>,
        runtime: tokio::runtime::Runtime,
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
            runtime,
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
            .runtime
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
            .runtime
            .block_on(
                self.client
                    .get_manifest(&self.image.repository, &blob.digest),
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
        // Spooled to disk (verified while streaming), then read back: never a whole blob in memory.
        let tmp = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(self.scratch.path())
            .map_err(|e| ImageError::Io {
                image: self.name.clone(),
                path: self.scratch.path().to_path_buf(),
                source: e,
            })?
            .into_temp_path();
        self.runtime
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
        // The open handle keeps the data readable after the path is removed.
        drop(tmp);
        Ok(Box::new(VerifyingReader::blob(file, &self.name, blob)))
    }
}
