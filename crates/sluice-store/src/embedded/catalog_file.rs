//! The embedded engine's catalog file: one JSON document in the data directory,
//! replaced atomically (write, fsync, rename, fsync the directory), so a crash leaves
//! either the old catalog or the new one.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::EngineError;
use crate::catalog::Catalog;

/// The catalog's file inside a data directory.
#[derive(Debug, Clone)]
pub struct CatalogFile {
    path: PathBuf,
}

impl CatalogFile {
    /// The catalog of the data directory `dir`.
    pub fn new(dir: &Path) -> Self {
        CatalogFile {
            path: dir.join("catalog.json"),
        }
    }

    /// Reads the catalog; a missing file is an empty catalog (a fresh directory).
    pub fn load(&self) -> Result<Catalog, EngineError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| EngineError::Corrupt {
                path: self.path.clone(),
                offset: e.column() as u64,
                reason: format!("catalog is not valid JSON: {e}"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Catalog::default()),
            Err(e) => Err(EngineError::io(&self.path, e)),
        }
    }

    /// Replaces the catalog atomically: a crash leaves either the old or the new file.
    pub fn save(&self, catalog: &Catalog) -> Result<(), EngineError> {
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(catalog).map_err(|e| EngineError::Io {
            path: tmp.clone(),
            source: std::io::Error::other(e),
        })?;
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            Ok(())
        };
        write().map_err(|e| EngineError::io(&tmp, e))?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        super::fsutil::sync_dir(dir)
    }
}
