//! Streaming checkpoints: what a restarted program needs to continue where
//! a crashed one stopped. Data only, never code: the program rebuilds the
//! same stream graph (streams are matched by their creation order), and the
//! checkpoint supplies the zero time, the last finished batch, each
//! replayable input's offset ranges, each stateful stream's last
//! checkpointed dataset (window state included), each event stream's
//! recent watermarks, and the program's parts these belong to (checked at
//! restart).
//!
//! Layout of the checkpoint directory: `metadata` (one checksummed frame,
//! replaced atomically at the start and at the end of every batch),
//! `.lock` (the owning process, see `checkpoint_dir`) and
//! `run-<pid>-<ms>/rdd-<id>/` (state datasets written by each run, named
//! in the metadata relative to the directory, so a checkpoint can be moved
//! or copied, and restarted from any working directory).

use super::watermark::Progress;
use crate::codec;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Bumped when the layout changes; an unknown version is an error.
pub(crate) const VERSION: u32 = 4;

/// The saved progress of a streaming context.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub(crate) struct Checkpoint {
    pub(crate) version: u32,
    pub(crate) batch_ms: u64,
    pub(crate) zero_ms: u64,
    /// The latest batch whose outputs all finished.
    pub(crate) last_done_ms: Option<u64>,
    pub(crate) inputs: Vec<SavedInput>,
    pub(crate) states: Vec<SavedState>,
    /// Each event stream's watermark at recent batch boundaries.
    pub(crate) watermarks: Vec<(usize, Vec<(u64, Progress)>)>,
    /// The program that wrote it, for the check at restart.
    pub(crate) program: Vec<ProgramPart>,
}

/// A part of a streaming program a checkpoint depends on: an input, a
/// stateful stream or an event stream, with what it is (operation and
/// element types, as the compiler names them).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ProgramPart {
    pub(crate) stream: usize,
    pub(crate) what: String,
}

/// The first difference between the program that wrote a checkpoint and
/// this one, `None` if they agree. Both lists are sorted by stream.
pub(crate) fn program_difference(saved: &[ProgramPart], now: &[ProgramPart]) -> Option<String> {
    let (mut a, mut b) = (saved.iter().peekable(), now.iter().peekable());
    loop {
        return match (a.peek(), b.peek()) {
            (None, None) => None,
            (Some(x), Some(y)) if x == y => {
                a.next();
                b.next();
                continue;
            }
            (Some(x), Some(y)) if x.stream == y.stream => Some(format!(
                "stream {} is {} in the checkpoint but {} in this program",
                x.stream, x.what, y.what
            )),
            (Some(x), y) if y.is_none_or(|y| x.stream < y.stream) => Some(format!(
                "the checkpoint has stream {} ({}), which this program does not have",
                x.stream, x.what
            )),
            (_, Some(y)) => Some(format!(
                "this program has stream {} ({}), which the checkpoint does not have",
                y.stream, y.what
            )),
            (Some(_), None) => unreachable!("handled above"),
        };
    }
}

/// A replayable input's ranges, offsets encoded by the source's codec.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub(crate) struct SavedInput {
    pub(crate) stream: usize,
    /// Where the next new batch starts.
    pub(crate) next: Option<Vec<u8>>,
    /// `(batch ms, from, to)` of the batches a recovery may replay.
    pub(crate) batches: Vec<(u64, Vec<u8>, Vec<u8>)>,
    /// The largest batch before the crash, in the source's units: the
    /// most a catch-up batch takes.
    pub(crate) largest_batch: u64,
}

/// A stateful stream's last reliably checkpointed dataset.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub(crate) struct SavedState {
    pub(crate) stream: usize,
    pub(crate) time_ms: u64,
    /// Relative to the checkpoint directory.
    pub(crate) dir: PathBuf,
}

pub(crate) fn metadata_path(dir: &Path) -> PathBuf {
    dir.join("metadata")
}

/// Reads the checkpoint in `dir`, `None` if there is none.
pub(crate) fn read(dir: &Path) -> Result<Option<Checkpoint>> {
    let path = metadata_path(dir);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let (cp, _): (Checkpoint, usize) =
        codec::read_frame(&bytes).map_err(|reason| Error::CorruptCheckpoint {
            path: path.clone(),
            reason,
        })?;
    if cp.version != VERSION {
        return Err(Error::CorruptCheckpoint {
            path,
            reason: format!(
                "streaming checkpoint version {} is not {VERSION}",
                cp.version
            ),
        });
    }
    Ok(Some(cp))
}

/// Replaces the checkpoint in `dir` atomically (write, then rename).
pub(crate) fn write(dir: &Path, cp: &Checkpoint) -> Result<()> {
    let mut frame = Vec::new();
    codec::write_frame(cp, &mut Vec::new(), &mut frame)?;
    let tmp = dir.join(".metadata.tmp");
    std::fs::write(&tmp, &frame).map_err(|e| Error::io(&tmp, e))?;
    let path = metadata_path(dir);
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
}

/// Encodes an offset for the checkpoint.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    codec::write_frame(value, &mut Vec::new(), &mut out)?;
    Ok(out)
}

/// Decodes an offset from the checkpoint in `dir`.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(dir: &Path, bytes: &[u8]) -> Result<T> {
    codec::read_frame(bytes)
        .map(|(v, _)| v)
        .map_err(|reason| Error::CorruptCheckpoint {
            path: metadata_path(dir),
            reason: format!(
                "an input offset does not decode ({reason}); was the stream graph changed?"
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(stream: usize, what: &str) -> ProgramPart {
        ProgramPart {
            stream,
            what: what.into(),
        }
    }

    #[test]
    fn the_first_difference_between_two_programs_is_named() {
        let saved = [part(0, "input"), part(2, "state of u64")];
        assert_eq!(program_difference(&saved, &saved), None);
        assert_eq!(
            program_difference(&saved, &[part(0, "input")]).unwrap(),
            "the checkpoint has stream 2 (state of u64), which this program does not have"
        );
        assert_eq!(
            program_difference(
                &saved,
                &[part(0, "input"), part(1, "x"), part(2, "state of u64")]
            )
            .unwrap(),
            "this program has stream 1 (x), which the checkpoint does not have"
        );
        assert_eq!(
            program_difference(&saved, &[part(0, "input"), part(2, "state of i64")]).unwrap(),
            "stream 2 is state of u64 in the checkpoint but state of i64 in this program"
        );
        assert_eq!(
            program_difference(&[], &saved).unwrap(),
            "this program has stream 0 (input), which the checkpoint does not have"
        );
    }
}
