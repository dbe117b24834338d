//! Which files a path names: a file, a directory's visible files, a glob's
//! matches, or a comma-separated list of those (as Hadoop's input formats
//! take them); the same for objects under an object store URL.

use super::input::{file_url_path, is_url, list_objects};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Files named by a path, or by a comma-separated list of paths (as
/// Hadoop's input formats take; a path that exists is taken whole even if
/// it holds a comma), in the order given; see [`list_one`].
pub(crate) fn list_files(path: &Path) -> Result<Vec<PathBuf>> {
    let text = path.to_string_lossy();
    if !text.contains(',') || std::fs::symlink_metadata(path).is_ok() {
        return list_one(path);
    }
    let mut files = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        files.extend(list_one(Path::new(part))?);
    }
    if files.is_empty() {
        return Err(Error::NoInput(text.into_owned()));
    }
    Ok(files)
}

/// Files named by one path: the file itself, the visible files of a
/// directory, or the files matching a glob pattern; sorted by name. A
/// `file://` URL names a local path; any other URL names objects.
fn list_one(path: &Path) -> Result<Vec<PathBuf>> {
    if let Some(local) = file_url_path(path) {
        return list_one(local);
    }
    if is_url(path) {
        return list_objects(path);
    }
    let text = path.to_string_lossy();
    // `is_dir`/`exists` would turn "permission denied" into "not found".
    let meta = match std::fs::metadata(path) {
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut files = if meta.as_ref().is_some_and(|m| m.is_dir()) {
        let entries = std::fs::read_dir(path).map_err(|e| Error::io(path, e))?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(path, e))?;
            let name = entry.file_name();
            let hidden = name.to_string_lossy().starts_with(['.', '_']);
            // Subdirectories are not read; anything else that is not a
            // regular file is refused by the reader, not skipped silently.
            if !hidden && !entry.path().is_dir() {
                files.push(entry.path());
            }
        }
        files
    } else if meta.is_some() {
        vec![path.to_path_buf()]
    } else if text.contains(['*', '?', '[']) {
        let matches = glob::glob(&text)
            .map_err(|e| Error::InvalidArgument(format!("bad glob {text}: {e}")))?;
        let mut files = Vec::new();
        for m in matches {
            // An unreadable directory on the way is an error, not no match.
            let p = m.map_err(|e| Error::io(e.path().to_path_buf(), e.into()))?;
            if !p.is_dir() {
                files.push(p);
            }
        }
        files
    } else {
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
        ));
    };
    if files.is_empty() {
        return Err(Error::NoInput(text.into_owned()));
    }
    files.sort();
    Ok(files)
}
