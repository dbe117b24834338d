//! A streaming checkpoint directory as a resource one context owns: a lock
//! file naming its owner, and the removal of state no recovery can need.
//!
//! The directory belongs to the streaming context: besides `metadata` and
//! the lock, it holds `run-*` directories of state datasets, which are
//! deleted once a newer checkpoint supersedes them.

use crate::error::{Error, Result};
use parking_lot::Mutex;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Directories locked by contexts of this process (a second context of the
/// same process is refused too).
static HELD: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

const LOCK_FILE: &str = ".lock";

/// Holds a checkpoint directory for one streaming context; released (the
/// lock file removed) on drop. A lock left by a process that died is taken
/// over.
#[derive(Debug)]
pub(crate) struct DirLock {
    dir: PathBuf,
}

impl DirLock {
    /// Locks `dir` (which must exist), or says who holds it.
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock> {
        let dir = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
        let path = dir.join(LOCK_FILE);
        let mut held = HELD.lock();
        let held = held.get_or_insert_with(HashSet::new);
        if held.contains(&dir) {
            return Err(in_use(&path, std::process::id()));
        }
        let me = Owner::this_process();
        for _ in 0..3 {
            use std::io::Write;
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    file.write_all(me.to_line().as_bytes())
                        .and_then(|()| file.sync_all())
                        .map_err(|e| Error::io(&path, e))?;
                    held.insert(dir.clone());
                    return Ok(DirLock { dir });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = match std::fs::read_to_string(&path) {
                        Ok(t) => t,
                        // Released between our two calls: try again.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(Error::io(&path, e)),
                    };
                    match Owner::parse(&text) {
                        Some(owner) if owner.is_alive() && owner != me => {
                            return Err(in_use(&path, owner.pid));
                        }
                        // A dead owner (or one that wrote nothing yet and
                        // died): the lock is stale.
                        _ => match std::fs::remove_file(&path) {
                            Ok(()) => continue,
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                            Err(e) => return Err(Error::io(&path, e)),
                        },
                    }
                }
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
        Err(Error::io(
            &path,
            std::io::Error::other("the lock file keeps changing; is another program using it?"),
        ))
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        crate::cleanup::remove_file(&self.dir.join(LOCK_FILE));
        if let Some(held) = HELD.lock().as_mut() {
            held.remove(&self.dir);
        }
    }
}

fn in_use(path: &Path, pid: u32) -> Error {
    Error::CheckpointInUse {
        path: path.to_path_buf(),
        pid,
    }
}

/// A process, told apart from a later one with the same pid by its start
/// time (Linux), so a lock is never kept alive by pid reuse.
#[derive(Debug, PartialEq, Eq)]
struct Owner {
    pid: u32,
    started: Option<u64>,
}

impl Owner {
    fn this_process() -> Owner {
        let pid = std::process::id();
        Owner {
            pid,
            started: start_time(pid),
        }
    }

    fn to_line(&self) -> String {
        match self.started {
            Some(s) => format!("{} {s}\n", self.pid),
            None => format!("{}\n", self.pid),
        }
    }

    fn parse(text: &str) -> Option<Owner> {
        let mut words = text.split_whitespace();
        let pid = words.next()?.parse().ok()?;
        let started = words.next().and_then(|w| w.parse().ok());
        Some(Owner { pid, started })
    }

    fn is_alive(&self) -> bool {
        if !Path::new("/proc/self/stat").exists() {
            // No way to tell here: assume the owner is alive.
            return true;
        }
        match (start_time(self.pid), self.started) {
            (None, _) => false,
            (Some(now), Some(then)) => now == then,
            (Some(_), None) => true,
        }
    }
}

/// A process's start time in clock ticks since boot (`/proc/PID/stat`,
/// field 22), if it exists.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count after its `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Deletes what no recovery from the checkpoint in `dir` can need, after its
/// metadata was written: `superseded` state directories of this run, and in
/// every earlier `run-*` directory whatever `referenced` (paths relative to
/// `dir`) does not name. Best effort: a directory that cannot be removed is
/// logged and left for the next time.
pub(crate) fn remove_unreferenced(
    dir: &Path,
    current_run: &Path,
    referenced: &[PathBuf],
    superseded: &[PathBuf],
) {
    for old in superseded.iter().filter(|p| !referenced.contains(p)) {
        crate::cleanup::remove_dir_all(&dir.join(old));
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = PathBuf::from(entry.file_name());
        let is_run = name.to_string_lossy().starts_with("run-");
        if !is_run || name == current_run || !entry.path().is_dir() {
            continue;
        }
        let Ok(children) = std::fs::read_dir(entry.path()) else {
            continue;
        };
        for child in children.flatten() {
            if !referenced.contains(&name.join(child.file_name())) {
                crate::cleanup::remove_dir_all(&child.path());
            }
        }
        // Removed only once empty.
        let _ = std::fs::remove_dir(entry.path());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_names_its_owner_and_a_dead_owners_lock_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let lock = DirLock::acquire(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(Owner::parse(&text), Some(Owner::this_process()));
        assert!(matches!(
            DirLock::acquire(dir.path()),
            Err(Error::CheckpointInUse { pid, .. }) if pid == std::process::id()
        ));
        drop(lock);
        assert!(!dir.path().join(LOCK_FILE).exists(), "released");
        // A process that no longer runs (pid 1's start time is not 1 tick).
        std::fs::write(dir.path().join(LOCK_FILE), "1 1\n").unwrap();
        let taken = DirLock::acquire(dir.path()).unwrap();
        drop(taken);
        // A live process of another program holds it.
        let other = Owner {
            pid: 1,
            started: start_time(1),
        };
        std::fs::write(dir.path().join(LOCK_FILE), other.to_line()).unwrap();
        assert!(matches!(
            DirLock::acquire(dir.path()),
            Err(Error::CheckpointInUse { pid: 1, .. })
        ));
    }
}
