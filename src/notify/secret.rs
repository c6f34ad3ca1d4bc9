//! A secret read from a file (a bearer token, an HMAC key) and read again
//! when the file changes, so rotating a Kubernetes secret needs no restart.
//! The content is never logged.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::delivery::DeliveryError;
use crate::engine::lock;

/// A file's secret, cached until its modification time or length changes.
pub struct SecretFile {
    path: PathBuf,
    cached: Mutex<Option<Cached>>,
}

struct Cached {
    modified: Option<SystemTime>,
    len: u64,
    secret: Arc<[u8]>,
}

impl SecretFile {
    pub fn new(path: &Path) -> SecretFile {
        SecretFile {
            path: path.to_owned(),
            cached: Mutex::new(None),
        }
    }

    /// The secret with trailing whitespace taken off, since files written by
    /// `echo` or editors end in a newline nobody means as part of the key.
    pub async fn read(&self) -> Result<Arc<[u8]>, DeliveryError> {
        let metadata = tokio::fs::metadata(&self.path)
            .await
            .map_err(|e| self.error(e))?;
        let (modified, len) = (metadata.modified().ok(), metadata.len());
        if let Some(cached) = &*lock(&self.cached)
            && cached.modified == modified
            && cached.len == len
            && modified.is_some()
        {
            return Ok(Arc::clone(&cached.secret));
        }
        let mut bytes = tokio::fs::read(&self.path)
            .await
            .map_err(|e| self.error(e))?;
        let end = bytes
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        bytes.truncate(end);
        let secret: Arc<[u8]> = Arc::from(bytes);
        *lock(&self.cached) = Some(Cached {
            modified,
            len,
            secret: Arc::clone(&secret),
        });
        Ok(secret)
    }

    fn error(&self, error: std::io::Error) -> DeliveryError {
        DeliveryError::Secret {
            path: self.path.clone(),
            reason: error.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_changed_file_is_read_again_and_its_newline_is_not_part_of_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "first\n").unwrap();
        let secret = SecretFile::new(&path);
        assert_eq!(&*secret.read().await.unwrap(), b"first");
        std::fs::write(&path, "second-key").unwrap();
        assert_eq!(&*secret.read().await.unwrap(), b"second-key");
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            secret.read().await,
            Err(DeliveryError::Secret { .. })
        ));
    }
}
