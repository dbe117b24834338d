//! Fallible closures: `try_map`, `try_flat_map`, `try_filter` and
//! `try_for_each`, whose closures return `Result`. An `Err` fails the task
//! with [`Error::User`] holding the user's error (a `spate::Error` passed on
//! stays itself), and the task is retried like one whose closure panicked; the job's error names the stage and
//! partition ([`Error::TaskFailed`]).

use super::Rdd;
use crate::chunk::for_each_chunk;
use crate::data::Data;
use crate::error::{Error, Result};

/// What a fallible closure may return as its error: any error type, or a
/// message (`String`, `&str`).
pub type UserError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The task's error for a closure's `Err`: a `spate::Error` the closure
/// passed on (from an action it should not have called, say) stays itself,
/// so it is retried or not as the engine's own; anything else is
/// [`Error::User`].
fn user<E: Into<UserError>>(e: E) -> Error {
    match e.into().downcast::<Error>() {
        Ok(engine) => *engine,
        Err(other) => Error::User(other),
    }
}

impl<T: Data> Rdd<T> {
    /// Applies `f` to every element; an `Err` fails the task.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let lines = ctx.parallelize(vec!["1".to_string(), "22".to_string()], 2);
    /// let n = lines.try_map(|s| s.parse::<u32>());
    /// assert_eq!(n.collect().unwrap(), [1, 22]);
    ///
    /// let bad = ctx.parallelize(vec!["7".to_string(), "x".to_string()], 2);
    /// let err = bad.try_map(|s| s.parse::<u32>()).collect().unwrap_err();
    /// assert!(matches!(err.root_cause(), spate::Error::User(_)));
    /// assert!(err.to_string().contains("invalid digit"), "{err}");
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn try_map<U: Data, E: Into<UserError>>(
        &self,
        f: impl Fn(T) -> std::result::Result<U, E> + Send + Sync + 'static,
    ) -> Rdd<U> {
        self.try_pipe_chunks("try_map", false, move |input, out| {
            out.reserve(input.len());
            for x in input.drain(..) {
                out.push(f(x).map_err(user)?);
            }
            Ok(())
        })
    }

    /// Keeps the elements for which `f` is `Ok(true)` (the partitioner is
    /// kept); an `Err` fails the task.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let even = ctx.range(0, 6, 1, 2).try_filter(|x| {
    ///     if *x < 0 { Err("negative") } else { Ok(x % 2 == 0) }
    /// });
    /// assert_eq!(even.collect().unwrap(), [0, 2, 4]);
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn try_filter<E: Into<UserError>>(
        &self,
        f: impl Fn(&T) -> std::result::Result<bool, E> + Send + Sync + 'static,
    ) -> Rdd<T> {
        self.try_pipe_chunks("try_filter", true, move |input, out| {
            for x in input.drain(..) {
                if f(&x).map_err(user)? {
                    out.push(x);
                }
            }
            Ok(())
        })
    }

    /// Replaces every element by the elements of the iterable `f` returns;
    /// an `Err` fails the task.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let words = ctx.parallelize(vec!["a b".to_string(), "c".to_string()], 2)
    ///     .try_flat_map(|line| {
    ///         if line.is_empty() { return Err("an empty line"); }
    ///         Ok(line.split(' ').map(str::to_string).collect::<Vec<_>>())
    ///     });
    /// assert_eq!(words.collect().unwrap(), ["a", "b", "c"]);
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn try_flat_map<U: Data, I, E>(
        &self,
        f: impl Fn(T) -> std::result::Result<I, E> + Send + Sync + 'static,
    ) -> Rdd<U>
    where
        I: IntoIterator<Item = U>,
        E: Into<UserError>,
    {
        self.try_pipe_chunks("try_flat_map", false, move |input, out| {
            for x in input.drain(..) {
                out.extend(f(x).map_err(user)?);
            }
            Ok(())
        })
    }

    /// Runs `f` on every element (an action); the first `Err` fails its
    /// task, which is retried, and then the job. Like
    /// [`foreach`](Rdd::foreach), effects of a failed attempt are not
    /// undone.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// let ctx = spate::Context::new().unwrap();
    /// let sum = AtomicU64::new(0);
    /// ctx.range(1, 4, 1, 2)
    ///     .try_for_each(|x| {
    ///         sum.fetch_add(x as u64, Ordering::Relaxed);
    ///         Ok::<(), std::io::Error>(())
    ///     })
    ///     .unwrap();
    /// assert_eq!(sum.into_inner(), 6);
    /// ```
    pub fn try_for_each<E: Into<UserError>>(
        &self,
        f: impl Fn(T) -> std::result::Result<(), E> + Sync,
    ) -> Result<()> {
        self.run_partitions("try_for_each", |it| {
            for_each_chunk(it, |b| {
                for x in b.drain(..) {
                    f(x).map_err(user)?;
                }
                Ok(())
            })
        })?;
        Ok(())
    }
}
