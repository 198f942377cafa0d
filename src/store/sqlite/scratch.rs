//! A directory of its own for a unit test's database files, removed when the test ends, passed
//! or failed (a failed assertion unwinds through `Drop`).

use std::path::{Path, PathBuf};

/// A fresh, empty directory under the system's temporary one.
pub(super) struct ScratchDir(PathBuf);

impl ScratchDir {
    /// `sessionware-<name>-<pid>`, emptied first if an earlier run left it behind.
    pub(super) fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("sessionware-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
