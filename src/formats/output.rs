//! Writing a dataset as a directory of part files, committed as Hadoop's
//! file output committer does. In a local directory every task writes a
//! temporary file under `dir/_temporary` and renames it to `part-NNNNN`
//! once it is complete. Under an object store URL (the `object-store`
//! feature) every task writes a local scratch file and uploads it as
//! `part-NNNNN` once it is complete, in one PUT or one multipart upload,
//! neither of which shows a partial object. When every task has
//! succeeded, the driver writes an empty `_SUCCESS`. A failed or retried
//! task never leaves a partial or duplicate part file, and a reader that
//! waits for `_SUCCESS` sees the job's output whole.

use super::compression::{Compression, Encoder};
#[cfg(not(feature = "object-store"))]
use super::input::no_object_stores;
use super::input::{file_url_path, is_url};
#[cfg(feature = "object-store")]
use super::store::Object;
use crate::chunk::ChunkIter;
use crate::data::Data;
use crate::error::{Error, Result};
use crate::rdd::{Rdd, run_job};
use crate::runtime::TaskContext;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// One part file being written: buffered, through its codec.
pub(crate) struct PartFile {
    path: PathBuf,
    out: BufWriter<Encoder>,
}

impl PartFile {
    /// Where the bytes go (for errors).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The buffered writer; its errors should name [`path`](Self::path).
    pub(crate) fn writer(&mut self) -> &mut BufWriter<Encoder> {
        &mut self.out
    }

    /// Writes `bytes`, naming the file on failure.
    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.out
            .write_all(bytes)
            .map_err(|e| Error::io(&self.path, e))
    }

    fn finish(self) -> Result<()> {
        let PartFile { path, out } = self;
        out.into_inner()
            .map_err(|e| Error::io(&path, e.into_error()))?
            .finish()
            .map_err(|e| Error::io(&path, e))?;
        Ok(())
    }
}

/// Where a dataset's part files go, and how they are committed.
enum Target {
    /// A local directory, with the task attempts' files in `temp`.
    Local { dir: PathBuf, temp: PathBuf },
    /// A prefix in an object store.
    #[cfg(feature = "object-store")]
    Object(Object),
}

/// Where a task attempt's part file is before its commit: a local file
/// (a scratch file of an object store upload is removed when this drops).
struct Staged {
    path: PathBuf,
    _scratch: Option<tempfile::TempPath>,
}

impl Target {
    fn new(dir: &Path) -> Result<Target> {
        let dir = file_url_path(dir).unwrap_or(dir);
        if is_url(dir) {
            #[cfg(feature = "object-store")]
            return Ok(Target::Object(Object::parse(dir)?));
            #[cfg(not(feature = "object-store"))]
            return Err(no_object_stores(dir));
        }
        Ok(Target::Local {
            dir: dir.to_path_buf(),
            temp: dir.join("_temporary"),
        })
    }

    /// Before any task (on the driver): an existing output is an error.
    fn prepare(&self) -> Result<()> {
        match self {
            Target::Local { dir, temp } => {
                if dir.exists() {
                    return Err(Error::OutputExists(dir.clone()));
                }
                std::fs::create_dir_all(temp).map_err(|e| Error::io(temp, e))
            }
            #[cfg(feature = "object-store")]
            Target::Object(prefix) => {
                if prefix.exists_or_has_children()? {
                    return Err(Error::OutputExists(prefix.url().to_path_buf()));
                }
                Ok(())
            }
        }
    }

    /// A new file for the attempt `tc` runs to write part `name` into.
    fn stage(&self, name: &str, tc: &TaskContext) -> Result<(std::fs::File, Staged)> {
        match self {
            Target::Local { temp, .. } => {
                let path = temp.join(format!("{name}-attempt-{}", tc.id.attempt));
                let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
                let staged = Staged {
                    path,
                    _scratch: None,
                };
                Ok((file, staged))
            }
            #[cfg(feature = "object-store")]
            Target::Object(_) => {
                let dir = tc.rt.scratch_dir();
                let (file, path) = tempfile::Builder::new()
                    .prefix("upload-")
                    .tempfile_in(dir)
                    .map_err(|e| Error::io(dir, e))?
                    .into_parts();
                let staged = Staged {
                    path: path.to_path_buf(),
                    _scratch: Some(path),
                };
                Ok((file, staged))
            }
        }
    }

    /// Makes a complete part visible as `name`.
    fn commit_task(&self, staged: &Staged, name: &str) -> Result<()> {
        match self {
            Target::Local { dir, .. } => {
                let dest = dir.join(name);
                std::fs::rename(&staged.path, &dest).map_err(|e| Error::io(&dest, e))
            }
            #[cfg(feature = "object-store")]
            Target::Object(prefix) => prefix.child(name).upload(&staged.path),
        }
    }

    /// Once every task has committed (on the driver): marks the output
    /// complete.
    fn commit_job(&self) -> Result<()> {
        match self {
            Target::Local { dir, temp } => {
                std::fs::remove_dir_all(temp).map_err(|e| Error::io(temp, e))?;
                let success = dir.join("_SUCCESS");
                std::fs::write(&success, b"").map_err(|e| Error::io(&success, e))
            }
            #[cfg(feature = "object-store")]
            Target::Object(prefix) => prefix.child("_SUCCESS").put(Vec::new()),
        }
    }
}

/// Writes each partition of `rdd` through `write` into `part-NNNNN` files
/// (with `compression`'s extension after `suffix`) of the new directory
/// `dir` (a path or an object store URL), committed as the module says.
/// An existing `dir` is an error.
pub(crate) fn save_parts<T: Data>(
    rdd: &Rdd<T>,
    dir: &Path,
    action: &'static str,
    suffix: &str,
    compression: Compression,
    write: impl Fn(&mut PartFile, ChunkIter<T>) -> Result<()> + Sync,
) -> Result<()> {
    let target = Target::new(dir)?;
    let ctx = rdd.context();
    // One process checks and prepares the directory, and commits it.
    ctx.on_driver(action, || target.prepare())?;
    let name = |p: usize| format!("part-{p:05}{suffix}{}", compression.extension());
    run_job(ctx, rdd, &rdd.all_partitions(), action, |tc, it| {
        let name = name(tc.id.partition);
        let (file, staged) = target.stage(&name, tc)?;
        let encoder = compression
            .writer(file)
            .map_err(|e| Error::io(&staged.path, e))?;
        let mut part = PartFile {
            path: staged.path.clone(),
            out: BufWriter::with_capacity(1 << 20, encoder),
        };
        write(&mut part, it)?;
        part.finish()?;
        target.commit_task(&staged, &name)
    })?;
    ctx.on_driver(action, || target.commit_job())
}
