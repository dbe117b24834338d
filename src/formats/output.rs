//! Writing a dataset as a directory of part files, committed as Hadoop's
//! file output committer does: every task writes a temporary file under
//! `dir/_temporary` and renames it to `part-NNNNN` once it is complete;
//! when every task has succeeded, the driver removes `_temporary` and
//! writes an empty `_SUCCESS`. A failed or retried task never leaves a
//! partial or duplicate part file, and a reader that waits for `_SUCCESS`
//! sees the job's output whole.

use super::compression::{Compression, Encoder};
use crate::chunk::ChunkIter;
use crate::data::Data;
use crate::error::{Error, Result};
use crate::rdd::{Rdd, run_job};
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

/// Writes each partition of `rdd` through `write` into `part-NNNNN` files
/// (with `compression`'s extension after `suffix`) of the new directory
/// `dir`, committed as the module says. An existing `dir` is an error.
pub(crate) fn save_parts<T: Data>(
    rdd: &Rdd<T>,
    dir: &Path,
    action: &'static str,
    suffix: &str,
    compression: Compression,
    write: impl Fn(&mut PartFile, ChunkIter<T>) -> Result<()> + Sync,
) -> Result<()> {
    let temp = dir.join("_temporary");
    let ctx = rdd.context();
    // One process checks and prepares the directory, and commits it.
    ctx.on_driver(action, || {
        if dir.exists() {
            return Err(Error::OutputExists(dir.to_path_buf()));
        }
        std::fs::create_dir_all(&temp).map_err(|e| Error::io(&temp, e))
    })?;
    let name = |p: usize| format!("part-{p:05}{suffix}{}", compression.extension());
    run_job(ctx, rdd, &rdd.all_partitions(), action, |tc, it| {
        let id = tc.id;
        let tmp = temp.join(format!("{}-attempt-{}", name(id.partition), id.attempt));
        let file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let encoder = compression.writer(file).map_err(|e| Error::io(&tmp, e))?;
        let mut part = PartFile {
            path: tmp.clone(),
            out: BufWriter::with_capacity(1 << 20, encoder),
        };
        write(&mut part, it)?;
        part.finish()?;
        let dest = dir.join(name(id.partition));
        std::fs::rename(&tmp, &dest).map_err(|e| Error::io(&dest, e))
    })?;
    ctx.on_driver(action, || {
        std::fs::remove_dir_all(&temp).map_err(|e| Error::io(&temp, e))?;
        let success = dir.join("_SUCCESS");
        std::fs::write(&success, b"").map_err(|e| Error::io(&success, e))
    })
}
