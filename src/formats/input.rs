//! Where an input's bytes come from: a local file, or an object in a store
//! when the path is a URL (`store`, with the `object-store` feature). The
//! readers reach every input through here.

#[cfg(feature = "object-store")]
use super::store::Object;
use crate::error::{Error, Result};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Whether `path` is a URL (`scheme://…`) rather than a local path.
pub(crate) fn is_url(path: &Path) -> bool {
    let Some((scheme, _)) = path.to_str().and_then(|t| t.split_once("://")) else {
        return false;
    };
    scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// The local path a `file://` URL names (`file:///data/x` is `/data/x`).
pub(crate) fn file_url_path(path: &Path) -> Option<&Path> {
    path.to_str()?.strip_prefix("file://").map(Path::new)
}

/// The error for a URL in a build without the `object-store` feature.
#[cfg(not(feature = "object-store"))]
pub(crate) fn no_object_stores(url: &Path) -> Error {
    Error::InvalidArgument(format!(
        "{} is a URL: reading and writing object stores needs Spate's `object-store` feature",
        url.display()
    ))
}

/// The objects a URL names (see [`Object::list`]).
pub(crate) fn list_objects(url: &Path) -> Result<Vec<PathBuf>> {
    #[cfg(feature = "object-store")]
    {
        let objects = Object::parse(url)?.list()?;
        Ok(objects.iter().map(|o| o.url().to_path_buf()).collect())
    }
    #[cfg(not(feature = "object-store"))]
    Err(no_object_stores(url))
}

/// The length of an input: an object's size, or the length of a local
/// file, which must be a regular file (a FIFO would block forever or fail
/// to seek, and a device may never end).
pub(crate) fn input_len(path: &Path) -> Result<u64> {
    if is_url(path) {
        #[cfg(feature = "object-store")]
        return Object::parse(path)?.size();
        #[cfg(not(feature = "object-store"))]
        return Err(no_object_stores(path));
    }
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::InvalidArgument(format!(
            "{} is not a regular file (a FIFO, device or socket); input is read \
             from regular files only",
            path.display()
        )));
    }
    Ok(meta.len())
}

/// The input's bytes from `start` on (an object's by a ranged GET).
pub(crate) fn open_at(path: &Path, start: u64) -> Result<Box<dyn Read>> {
    if is_url(path) {
        #[cfg(feature = "object-store")]
        return Ok(Box::new(Object::parse(path)?.open_at(start)?));
        #[cfg(not(feature = "object-store"))]
        return Err(no_object_stores(path));
    }
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    if start > 0 {
        file.seek(SeekFrom::Start(start))
            .map_err(|e| Error::io(path, e))?;
    }
    Ok(Box::new(file))
}

/// The whole input.
pub(crate) fn read_all(path: &Path) -> Result<Vec<u8>> {
    if is_url(path) {
        #[cfg(feature = "object-store")]
        return Object::parse(path)?.read_all();
        #[cfg(not(feature = "object-store"))]
        return Err(no_object_stores(path));
    }
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_from_local_paths() {
        for url in [
            "s3://b/k",
            "gs://b",
            "az://c/k",
            "abfss://c@a/k",
            "https://h/x",
            "s3a://b/k",
        ] {
            assert!(is_url(Path::new(url)), "{url}");
        }
        for path in [
            "data/x.txt",
            "/tmp/a://b",
            "://x",
            "1s3://b",
            "C:\\x",
            "./s3:/b",
        ] {
            assert!(!is_url(Path::new(path)), "{path}");
        }
        assert_eq!(
            file_url_path(Path::new("file:///data/x")),
            Some(Path::new("/data/x"))
        );
        assert_eq!(file_url_path(Path::new("/data/x")), None);
    }
}
