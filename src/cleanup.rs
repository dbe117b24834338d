//! Deleting the files the engine owns (shuffle outputs, spills, cached
//! blocks on disk, superseded checkpoints). A delete that fails for any
//! reason but "already gone" is logged (`tracing`, target `spate::cleanup`)
//! with the path and the cause, never dropped silently: it means disk space
//! the engine cannot give back.

use std::path::Path;

/// Removes a file; `false` (and a warning) if it exists and cannot be
/// removed.
pub(crate) fn remove_file(path: &Path) -> bool {
    report(path, std::fs::remove_file(path))
}

/// Removes a directory and everything in it; `false` (and a warning) if it
/// exists and cannot be removed.
pub(crate) fn remove_dir_all(path: &Path) -> bool {
    report(path, std::fs::remove_dir_all(path))
}

fn report(path: &Path, result: std::io::Result<()>) -> bool {
    match result {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => {
            tracing::warn!(
                target: "spate::cleanup",
                path = %path.display(),
                error = %e,
                "could not delete a file the engine no longer needs"
            );
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_already_deleted_and_a_failed_delete_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert!(remove_file(&file));
        assert!(!file.exists());
        assert!(remove_file(&file), "already gone is fine");
        // A directory is not a file: the delete fails and says so.
        assert!(!remove_file(dir.path()));
        assert!(dir.path().exists());
        let sub = dir.path().join("sub");
        std::fs::create_dir_all(sub.join("deeper")).unwrap();
        assert!(remove_dir_all(&sub));
        assert!(!sub.exists());
    }
}
