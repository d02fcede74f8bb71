//! Folders a command creates for its output, removed again when the command ends with them still
//! empty (it failed or was interrupted before writing into them), so that a failed run leaves
//! nothing behind.

use std::path::{Path, PathBuf};

#[derive(Debug, Default)]
pub struct CreatedDirs {
    /// Every folder this created, deepest first within each call.
    dirs: Vec<PathBuf>,
}

impl CreatedDirs {
    /// Creates `dir` and its missing parents, remembering which of them did not exist.
    pub fn create(&mut self, dir: &Path) -> std::io::Result<()> {
        let mut missing = Vec::new();
        let mut at = Some(dir);
        while let Some(d) = at.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            missing.push(d.to_path_buf());
            at = d.parent();
        }
        std::fs::create_dir_all(dir)?;
        self.dirs.extend(missing);
        Ok(())
    }
}

impl Drop for CreatedDirs {
    fn drop(&mut self) {
        for dir in &self.dirs {
            // Fails, leaving the folder, as soon as anything was written into it.
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_created_folders_go_and_used_or_older_ones_stay() {
        let root = tempfile::tempdir().unwrap();
        let older = root.path().join("older");
        std::fs::create_dir(&older).unwrap();
        {
            let mut dirs = CreatedDirs::default();
            dirs.create(&root.path().join("a/b/c")).unwrap();
            dirs.create(&older.join("d")).unwrap();
            dirs.create(&root.path().join("used")).unwrap();
            std::fs::write(root.path().join("used/file"), b"x").unwrap();
            assert!(root.path().join("a/b/c").is_dir());
        }
        assert!(!root.path().join("a").exists());
        assert!(!older.join("d").exists());
        assert!(older.is_dir());
        assert!(root.path().join("used/file").is_file());
    }
}
