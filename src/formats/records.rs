//! What a reader of typed records (CSV, JSON lines) does with one that
//! does not parse: fail, skip and count, or keep it as a bad row.

use crate::chunk::Chunks;
use crate::error::{BadRecord, Error, Result};
use crate::runtime::MetricsCell;

/// What a CSV or JSON lines reader does with a malformed record (Spark's
/// `mode` option). Never does a record go missing silently: it fails the
/// job, or is counted, or (with the `*_keeping_bad` readers, Spark's
/// `PERMISSIVE`) comes out as a [`BadRecord`] with its position.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BadRecords {
    /// Fail the task, and so the job, with [`Error::MalformedRecord`]
    /// naming the file, line and column or field (Spark's `FAILFAST`). A
    /// malformed record is not retried: it would fail again.
    #[default]
    Fail,
    /// Skip it and count it in the task's and the job's metrics
    /// (`bad_records_skipped`; Spark's `DROPMALFORMED`, counted).
    Skip,
}

/// The longest text of a bad record kept in a [`BadRecord`].
const KEPT_TEXT: usize = 1024;

/// `bytes` as text for a [`BadRecord`]: invalid UTF-8 replaced, cut to
/// [`KEPT_TEXT`] bytes at a character boundary.
pub(crate) fn record_text(bytes: &[u8]) -> String {
    let mut text = String::from_utf8_lossy(&bytes[..bytes.len().min(KEPT_TEXT + 3)]).into_owned();
    if text.len() > KEPT_TEXT {
        let mut cut = KEPT_TEXT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// A reader of one split's typed records, good or bad.
pub(crate) trait RecordReader {
    /// The type a record parses into.
    type Item;
    /// The next record, or `None` at the end of the split; `Err` for an
    /// I/O error (which fails the task whatever the policy).
    fn next_record(&mut self) -> Result<Option<std::result::Result<Self::Item, BadRecord>>>;
    /// The task's counters.
    fn metrics(&self) -> &MetricsCell;
    /// Adds the input read since the last call to the task's counters
    /// (once per chunk, not per record).
    fn flush(&mut self);
}

/// A split's good records, bad ones handled as `policy` says.
pub(crate) struct Applying<R> {
    pub(crate) reader: R,
    pub(crate) policy: BadRecords,
}

impl<R: RecordReader> Chunks<R::Item> for Applying<R> {
    fn next_chunk(&mut self, out: &mut Vec<R::Item>, hint: usize) -> Result<bool> {
        let mut skipped = 0;
        let mut n = 0;
        let more = loop {
            if n >= hint.max(1) {
                break true;
            }
            match self.reader.next_record()? {
                None => break false,
                Some(Ok(t)) => {
                    out.push(t);
                    n += 1;
                }
                Some(Err(bad)) => match self.policy {
                    BadRecords::Fail => return Err(Error::MalformedRecord(Box::new(bad))),
                    BadRecords::Skip => skipped += 1,
                },
            }
        };
        if skipped > 0 {
            self.reader
                .metrics()
                .update(|m| m.bad_records_skipped += skipped);
        }
        self.reader.flush();
        Ok(more)
    }
}

/// Every record of a split, good or bad.
pub(crate) struct Keeping<R>(pub(crate) R);

impl<R: RecordReader> Chunks<std::result::Result<R::Item, BadRecord>> for Keeping<R> {
    fn next_chunk(
        &mut self,
        out: &mut Vec<std::result::Result<R::Item, BadRecord>>,
        hint: usize,
    ) -> Result<bool> {
        let mut more = true;
        for _ in 0..hint.max(1) {
            match self.0.next_record()? {
                Some(r) => out.push(r),
                None => {
                    more = false;
                    break;
                }
            }
        }
        self.0.flush();
        Ok(more)
    }
}
