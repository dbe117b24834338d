//! `pipe`: each partition through an external command, elements as lines
//! on its standard input, the lines of its standard output as the result
//! (Spark's `RDD.pipe`).

use super::{ChunkIter, Compute, IterChunks, NewRdd, Rdd, for_each_chunk};
use crate::data::Data;
use crate::error::{Error, Result};
use crate::runtime::TaskContext;
use std::fmt::Display;
use std::io::{BufRead, Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

impl<T: Data + Display> Rdd<T> {
    /// Runs `command` (a program and its arguments, no shell) once per
    /// partition: the partition's elements are written to its standard
    /// input, one per line (`Display`), and the lines it prints are the new
    /// partition. A command that cannot start or exits unsuccessfully fails
    /// the task with [`Error::CommandFailed`], naming the command, its exit
    /// status and the end of what it wrote to standard error. The command's
    /// output for one partition is held in memory.
    ///
    /// ```
    /// # if cfg!(unix) {
    /// let ctx = spate::Context::new().unwrap();
    /// let words = ctx.parallelize(vec!['b', 'a', 'c'], 1);
    /// let sorted = words.pipe(&["sort"]).unwrap();
    /// assert_eq!(sorted.collect().unwrap(), ["a", "b", "c"]);
    /// # }
    /// ```
    pub fn pipe<S: AsRef<str>>(&self, command: &[S]) -> Result<Rdd<String>> {
        let command: Vec<String> = command.iter().map(|s| s.as_ref().to_string()).collect();
        if command.is_empty() {
            return Err(Error::InvalidArgument("pipe needs a command".into()));
        }
        let spec = NewRdd {
            op_name: "pipe",
            num_partitions: self.num_partitions(),
            deps: vec![self.narrow_dep()],
            partitioner: None,
        };
        let op = PipeCommand {
            parent: self.clone(),
            command: Arc::new(command),
        };
        Ok(Rdd::from_op(self.context(), spec, op))
    }
}

struct PipeCommand<T> {
    parent: Rdd<T>,
    command: Arc<Vec<String>>,
}

impl<T: Data + Display> Compute<String> for PipeCommand<T> {
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<ChunkIter<String>> {
        let shown = self.command.join(" ");
        let failed = |status: String, stderr: String| Error::CommandFailed {
            command: shown.clone(),
            status,
            stderr,
        };
        let mut child = Command::new(&self.command[0])
            .args(&self.command[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed(format!("could not start: {e}"), String::new()))?;
        // Output and errors are drained on their own threads while the
        // input is written here, so a command that writes as it reads never
        // blocks on a full pipe.
        let stdout = child.stdout.take().expect("stdout was piped");
        let stderr = child.stderr.take().expect("stderr was piped");
        let lines = std::thread::spawn(move || -> std::io::Result<Vec<String>> {
            std::io::BufReader::new(stdout).lines().collect()
        });
        let errors = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::BufReader::new(stderr).read_to_string(&mut text);
            text
        });
        let written = {
            let mut stdin = std::io::BufWriter::new(child.stdin.take().expect("stdin was piped"));
            let input = self.parent.iterator(split, tc)?;
            let mut broken = None;
            let pulled = for_each_chunk(input, |chunk| {
                for x in chunk.drain(..) {
                    // A command that stops reading early (`head`) is not an
                    // error by itself: its exit status says.
                    if broken.is_none()
                        && let Err(e) = writeln!(stdin, "{x}")
                    {
                        broken = Some(e);
                    }
                }
                Ok(())
            });
            let flushed = stdin.flush();
            drop(stdin);
            pulled.map(|()| broken.or(flushed.err()))
        };
        let status = child.wait();
        let out = lines.join().expect("the output reader does not panic");
        let err_text = errors.join().expect("the error reader does not panic");
        let tail: String = {
            let start = err_text.len().saturating_sub(1000);
            let start = (start..err_text.len())
                .find(|&i| err_text.is_char_boundary(i))
                .unwrap_or(err_text.len());
            err_text[start..].trim_end().to_string()
        };
        let input_error = written?;
        let status =
            status.map_err(|e| failed(format!("could not be waited for: {e}"), tail.clone()))?;
        if !status.success() {
            return Err(failed(status.to_string(), tail));
        }
        if let Some(e) = input_error.filter(|e| e.kind() != std::io::ErrorKind::BrokenPipe) {
            return Err(failed(format!("its input could not be written: {e}"), tail));
        }
        let out = out.map_err(|e| failed(format!("its output could not be read: {e}"), tail))?;
        Ok(Box::new(IterChunks(out.into_iter())))
    }
}
