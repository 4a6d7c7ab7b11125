//! A content-addressed cache of verified layer zips (`$XDG_CACHE_HOME/layerport/sha256/<hex>.zip`),
//! written by atomic rename and re-verified on every use.

use std::path::{Path, PathBuf};

use crate::core::digest::sha256_file;

pub struct ZipCache {
    root: PathBuf,
}

impl ZipCache {
    /// `$XDG_CACHE_HOME/layerport`, else `~/.cache/layerport`; None when neither can be found.
    pub fn from_env() -> Option<Self> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(ZipCache {
            root: base.join("layerport"),
        })
    }

    pub fn at(root: &Path) -> Self {
        ZipCache {
            root: root.to_path_buf(),
        }
    }

    fn dir(&self) -> PathBuf {
        self.root.join("sha256")
    }

    pub fn path_for(&self, sha: &[u8; 32]) -> PathBuf {
        let hex = crate::core::digest::hex(sha);
        self.dir().join(format!("{hex}.zip"))
    }

    /// The cached zip with this sha256, if present and still intact (a corrupt entry is removed).
    pub fn lookup(&self, sha: &[u8; 32]) -> Option<PathBuf> {
        let path = self.path_for(sha);
        match sha256_file(&path) {
            Ok(actual) if &actual == sha => Some(path),
            Ok(_) => {
                tracing::warn!("cached {} is corrupt; downloading again", path.display());
                let _ = std::fs::remove_file(&path);
                None
            }
            Err(_) => None,
        }
    }

    /// Locks the entry for `sha` against other processes (an empty lock file under `locks/`, kept:
    /// removing it could let two processes hold two different files), waiting for the lock on a
    /// blocking thread; the lock is held until the returned file is dropped.
    pub async fn lock(&self, sha: &[u8; 32]) -> std::io::Result<std::fs::File> {
        let locks = self.root.join("locks");
        std::fs::create_dir_all(&locks)?;
        let path = locks.join(format!("{}.lock", crate::core::digest::hex(sha)));
        tokio::task::spawn_blocking(move || {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            file.lock()?;
            Ok(file)
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// A temp file path inside the cache (same filesystem, so `insert` is an atomic rename).
    pub fn temp_path(&self) -> std::io::Result<tempfile::TempPath> {
        std::fs::create_dir_all(self.dir())?;
        Ok(tempfile::Builder::new()
            .prefix(".download-")
            .tempfile_in(self.dir())?
            .into_temp_path())
    }

    /// Moves a verified download into place. Another process doing the same at once is harmless:
    /// both renames carry identical bytes.
    pub fn insert(&self, tmp: tempfile::TempPath, sha: &[u8; 32]) -> std::io::Result<PathBuf> {
        let path = self.path_for(sha);
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(path)
    }
}

/// Decodes Lambda's CodeSha256 (base64 of the raw digest).
pub fn decode_code_sha256(code: &str) -> Option<[u8; 32]> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(code)
        .ok()?;
    raw.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    #[test]
    fn insert_then_lookup_verifies_content() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ZipCache::at(dir.path());
        let data = b"zip bytes";
        let sha: [u8; 32] = sha2::Sha256::digest(data).into();
        let tmp = cache.temp_path().unwrap();
        std::fs::write(&tmp, data).unwrap();
        let path = cache.insert(tmp, &sha).unwrap();
        assert_eq!(cache.lookup(&sha), Some(path.clone()));
        std::fs::write(&path, b"tampered").unwrap();
        assert_eq!(cache.lookup(&sha), None);
        assert!(!path.exists());
    }
}
