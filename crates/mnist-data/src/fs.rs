//! Crash-safe file writes, shared by the downloader and the checkpoint writer.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// Writes `bytes` to a temporary file beside `path`, syncs it, and renames it over `path`, so a
/// crash at any moment leaves either the old file or the new one, never a torn one. The
/// temporary file removes itself if anything fails before the rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?
        .to_string_lossy();
    let prefix = part_prefix(&name);
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(PART_SUFFIX);
    // Temporary files are created private (0600); a checkpoint or data file is not a secret, and
    // other users and tools should read it like any file written with fs::write (umask applies).
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    let mut temp = builder.tempfile_in(dir)?;
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    // Make the rename itself durable. Not every platform can sync a directory, and the file is
    // complete either way, so a failure here is ignored.
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

const PART_SUFFIX: &str = ".part";

/// Temporary files for `name` are `.{name}.XXXXXX.part` beside it.
fn part_prefix(name: &str) -> String {
    format!(".{name}.")
}

/// Removes the temporary files that writers of `path` killed mid-write (SIGKILL, power loss)
/// left beside it; returns how many. Call it before writing `path` again, from the one process
/// that owns it.
pub fn remove_stale_parts(path: &Path) -> io::Result<usize> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(0);
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = part_prefix(&name.to_string_lossy());
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file = entry.file_name();
        let file = file.to_string_lossy();
        if file.starts_with(&prefix) && file.ends_with(PART_SUFFIX) && entry.file_type()?.is_file()
        {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.bin");
        write_atomic(&path, b"old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o644, "readable like any other file, got {mode:o}");
        }
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.bin");
        write_atomic(&path, b"old").unwrap();
        // A missing parent directory makes the temporary file impossible to create.
        assert!(write_atomic(&dir.path().join("missing/x.bin"), b"new").is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }

    #[test]
    fn stale_parts_of_this_file_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("m.safetensors");
        for name in [".m.safetensors.aB3xYz.part", ".m.safetensors.Q9kk2L.part"] {
            std::fs::write(dir.path().join(name), b"torn").unwrap();
        }
        for keep in [
            "m.safetensors",
            ".other.safetensors.aB3xYz.part",
            ".m.safetensors.notes",
        ] {
            std::fs::write(dir.path().join(keep), b"keep").unwrap();
        }
        assert_eq!(remove_stale_parts(&out).unwrap(), 2);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ".m.safetensors.notes",
                ".other.safetensors.aB3xYz.part",
                "m.safetensors"
            ]
        );
    }
}
