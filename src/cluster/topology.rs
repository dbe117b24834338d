//! Where a process stands in a cluster: its rank, the number of processes,
//! the driver's address and the shared secret, read from the launcher's
//! environment rather than from a configuration file.
//!
//! Sources, first match wins:
//! 1. Spate's own variables: `SPATE_RANK`, `SPATE_WORLD_SIZE`,
//!    `SPATE_DRIVER=host:port` (what `spate-launch` sets).
//! 2. Slurm (`srun`): `SLURM_PROCID`, `SLURM_NTASKS`; the driver is the
//!    first host of `SLURM_STEP_NODELIST` (or `SLURM_JOB_NODELIST`).
//! 3. MPI launchers: `OMPI_COMM_WORLD_RANK`/`OMPI_COMM_WORLD_SIZE`, or
//!    `PMI_RANK`/`PMI_SIZE`; they name no driver, so `SPATE_DRIVER` (or
//!    its host, `SPATE_DRIVER_HOST`) is required.
//! 4. A Kubernetes StatefulSet: the rank is the pod's ordinal (the number
//!    ending `HOSTNAME`), the world size `SPATE_WORLD_SIZE`, and the driver
//!    ordinal 0 of the headless service `SPATE_SERVICE`.
//!
//! The driver's port is `SPATE_DRIVER_PORT` (default 7077) where the source
//! names only a host. Every cluster process needs `SPATE_SECRET`: every
//! connection is authenticated with it. With none of these variables the
//! program runs in local mode.

use crate::error::{Error, Result};
use std::fmt;

/// The driver's port when the launcher names only its host.
pub const DEFAULT_DRIVER_PORT: u16 = 7077;

/// Which launcher the topology came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launcher {
    /// `SPATE_RANK`, `SPATE_WORLD_SIZE`, `SPATE_DRIVER` (`spate-launch`, or
    /// set by hand).
    Spate,
    /// Slurm's `srun`.
    Slurm,
    /// An MPI launcher (Open MPI, or a PMI one such as MPICH's or Slurm's
    /// PMI mode).
    Mpi,
    /// A Kubernetes StatefulSet.
    Kubernetes,
}

/// A process's place in a cluster.
#[derive(Clone, PartialEq, Eq)]
pub struct Topology {
    /// This process's rank: 0 is the driver, the others are executors.
    pub rank: usize,
    /// How many processes run the program.
    pub world_size: usize,
    /// Where the driver listens, `host:port`.
    pub driver: String,
    /// Where the topology came from.
    pub launcher: Launcher,
    /// The shared secret connections prove they know.
    pub(crate) secret: String,
}

impl fmt::Debug for Topology {
    /// Everything but the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Topology")
            .field("rank", &self.rank)
            .field("world_size", &self.world_size)
            .field("driver", &self.driver)
            .field("launcher", &self.launcher)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let role = if self.rank == 0 { "driver" } else { "executor" };
        write!(
            f,
            "rank {} of {} ({role}), driver at {}, from {:?}",
            self.rank, self.world_size, self.driver, self.launcher
        )
    }
}

impl Topology {
    /// Whether this process runs the scheduler.
    ///
    /// ```no_run
    /// if let Some(t) = spate::cluster::Topology::from_env()? {
    ///     println!("{} of {}", if t.is_driver() { "driver" } else { "executor" }, t.world_size);
    /// }
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn is_driver(&self) -> bool {
        self.rank == 0
    }

    /// The topology described by this process's environment; `None` for
    /// local mode.
    ///
    /// ```no_run
    /// // Under srun or spate-launch: this process's rank and the driver's address.
    /// match spate::cluster::Topology::from_env()? {
    ///     Some(t) => println!("rank {} of {}, driver at {}", t.rank, t.world_size, t.driver),
    ///     None => println!("not launched as a cluster"),
    /// }
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn from_env() -> Result<Option<Topology>> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// The topology described by `var` (a variable's value by name).
    pub(crate) fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Topology>> {
        let number = |name: &str| -> Result<Option<usize>> {
            match var(name) {
                None => Ok(None),
                Some(v) => v.trim().parse().map(Some).map_err(|_| {
                    Error::InvalidArgument(format!("{name}={v:?} is not a whole number"))
                }),
            }
        };
        let port = match var("SPATE_DRIVER_PORT") {
            None => DEFAULT_DRIVER_PORT,
            Some(p) => p.trim().parse().map_err(|_| {
                Error::InvalidArgument(format!("SPATE_DRIVER_PORT={p:?} is not a port"))
            })?,
        };
        let explicit_driver = || {
            var("SPATE_DRIVER").or_else(|| var("SPATE_DRIVER_HOST").map(|h| format!("{h}:{port}")))
        };
        let found = if let (Some(rank), Some(size)) =
            (number("SPATE_RANK")?, number("SPATE_WORLD_SIZE")?)
        {
            let driver =
                var("SPATE_DRIVER").ok_or_else(|| missing("SPATE_DRIVER", "SPATE_RANK"))?;
            Some((rank, size, driver, Launcher::Spate))
        } else if let (Some(rank), Some(size)) = (
            number("SLURM_PROCID")?,
            number("SLURM_NTASKS")?.or(number("SLURM_NPROCS")?),
        ) {
            let driver = match explicit_driver() {
                Some(d) => d,
                None => {
                    let list = var("SLURM_STEP_NODELIST")
                        .or_else(|| var("SLURM_JOB_NODELIST"))
                        .ok_or_else(|| missing("SLURM_STEP_NODELIST", "SLURM_PROCID"))?;
                    format!("{}:{port}", first_host(&list)?)
                }
            };
            Some((rank, size, driver, Launcher::Slurm))
        } else if let (Some(rank), Some(size)) = (
            number("OMPI_COMM_WORLD_RANK")?.or(number("PMI_RANK")?),
            number("OMPI_COMM_WORLD_SIZE")?.or(number("PMI_SIZE")?),
        ) {
            let driver = explicit_driver().ok_or_else(|| missing("SPATE_DRIVER", "an MPI rank"))?;
            Some((rank, size, driver, Launcher::Mpi))
        } else if let (Some(service), Some(_)) =
            (var("SPATE_SERVICE"), var("KUBERNETES_SERVICE_HOST"))
        {
            let host = var("HOSTNAME").ok_or_else(|| missing("HOSTNAME", "SPATE_SERVICE"))?;
            let (set, ordinal) = host
                .rsplit_once('-')
                .and_then(|(set, n)| Some((set, n.parse::<usize>().ok()?)))
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "HOSTNAME={host:?} is not a StatefulSet pod name (<set>-<ordinal>)"
                    ))
                })?;
            let size = number("SPATE_WORLD_SIZE")?
                .ok_or_else(|| missing("SPATE_WORLD_SIZE", "SPATE_SERVICE"))?;
            let driver = format!("{set}-0.{service}:{port}");
            Some((ordinal, size, driver, Launcher::Kubernetes))
        } else {
            None
        };
        let Some((rank, world_size, driver, launcher)) = found else {
            return Ok(None);
        };
        if world_size == 0 || rank >= world_size {
            return Err(Error::InvalidArgument(format!(
                "rank {rank} is not below the world size {world_size} ({launcher:?})"
            )));
        }
        if world_size == 1 {
            // One process (`srun -n 1`, a one-pod set): local mode, and no
            // secret needed.
            return Ok(None);
        }
        let secret = var("SPATE_SECRET")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing("SPATE_SECRET", "a cluster topology"))?;
        Ok(Some(Topology {
            rank,
            world_size,
            driver,
            launcher,
            secret,
        }))
    }
}

fn missing(name: &str, because: &str) -> Error {
    Error::InvalidArgument(format!("{name} must be set with {because}"))
}

/// The first host of a Slurm host list: `node[03-05,9],login` → `node03`.
fn first_host(list: &str) -> Result<String> {
    let bad = || Error::InvalidArgument(format!("cannot read the Slurm host list {list:?}"));
    let first = list.trim();
    let Some(open) = first.find('[') else {
        return first
            .split(',')
            .next()
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .ok_or_else(bad);
    };
    // A comma before the bracket ends the first host already.
    if let Some(comma) = first[..open].find(',') {
        return Ok(first[..comma].to_string());
    }
    let close = first[open..].find(']').ok_or_else(bad)? + open;
    let range = first[open + 1..close].split(',').next().ok_or_else(bad)?;
    let start = range
        .split('-')
        .next()
        .filter(|s| !s.is_empty())
        .ok_or_else(bad)?;
    Ok(format!("{}{start}", &first[..open]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn topology(vars: &[(&str, &str)]) -> Result<Option<Topology>> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Topology::from_vars(|name| map.get(name).cloned())
    }

    fn placed(t: Result<Option<Topology>>) -> (usize, usize, String, Launcher) {
        let t = t.unwrap().unwrap();
        (t.rank, t.world_size, t.driver, t.launcher)
    }

    #[test]
    fn no_launcher_variables_mean_local_mode() {
        assert!(topology(&[("HOME", "/root")]).unwrap().is_none());
    }

    #[test]
    fn a_single_process_step_is_local_mode_and_needs_no_secret() {
        let t = topology(&[
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "1"),
            ("SLURM_STEP_NODELIST", "node1"),
        ]);
        assert!(t.unwrap().is_none());
    }

    #[test]
    fn spate_variables_come_first() {
        let t = topology(&[
            ("SPATE_RANK", "2"),
            ("SPATE_WORLD_SIZE", "4"),
            ("SPATE_DRIVER", "10.0.0.1:9000"),
            ("SPATE_SECRET", "s"),
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "3"),
        ]);
        assert_eq!(placed(t), (2, 4, "10.0.0.1:9000".into(), Launcher::Spate));
    }

    #[test]
    fn slurm_places_the_driver_on_the_first_host_of_the_step() {
        let t = topology(&[
            ("SLURM_PROCID", "1"),
            ("SLURM_NTASKS", "3"),
            ("SLURM_STEP_NODELIST", "node[03-05,9],login"),
            ("SPATE_SECRET", "s"),
        ]);
        assert_eq!(placed(t), (1, 3, "node03:7077".into(), Launcher::Slurm));
        let t = topology(&[
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "2"),
            ("SLURM_JOB_NODELIST", "localhost"),
            ("SPATE_DRIVER_PORT", "7100"),
            ("SPATE_SECRET", "s"),
        ]);
        assert_eq!(placed(t), (0, 2, "localhost:7100".into(), Launcher::Slurm));
    }

    #[test]
    fn slurm_host_lists_give_their_first_host() {
        for (list, first) in [
            ("a", "a"),
            ("a,b", "a"),
            ("n[1-4]", "n1"),
            ("n[07,9]", "n07"),
            ("login,n[1-2]", "login"),
        ] {
            assert_eq!(first_host(list).unwrap(), first, "{list}");
        }
        assert!(first_host("n[1-").is_err());
    }

    #[test]
    fn mpi_ranks_need_a_driver_address() {
        let t = topology(&[
            ("OMPI_COMM_WORLD_RANK", "0"),
            ("OMPI_COMM_WORLD_SIZE", "2"),
            ("SPATE_SECRET", "s"),
        ]);
        assert!(matches!(t, Err(Error::InvalidArgument(m)) if m.contains("SPATE_DRIVER")));
        let t = topology(&[
            ("PMI_RANK", "3"),
            ("PMI_SIZE", "4"),
            ("SPATE_DRIVER_HOST", "head"),
            ("SPATE_SECRET", "s"),
        ]);
        assert_eq!(placed(t), (3, 4, "head:7077".into(), Launcher::Mpi));
    }

    #[test]
    fn a_statefulset_pod_takes_its_ordinal_and_finds_ordinal_zero() {
        let t = topology(&[
            ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
            ("SPATE_SERVICE", "spate"),
            ("HOSTNAME", "spate-job-2"),
            ("SPATE_WORLD_SIZE", "3"),
            ("SPATE_SECRET", "s"),
        ]);
        assert_eq!(
            placed(t),
            (2, 3, "spate-job-0.spate:7077".into(), Launcher::Kubernetes)
        );
    }

    #[test]
    fn bad_settings_are_errors_naming_the_variable() {
        let cases: [(&[(&str, &str)], &str); 4] = [
            (
                &[("SPATE_RANK", "x"), ("SPATE_WORLD_SIZE", "2")],
                "SPATE_RANK",
            ),
            (
                &[
                    ("SPATE_RANK", "2"),
                    ("SPATE_WORLD_SIZE", "2"),
                    ("SPATE_DRIVER", "h:1"),
                    ("SPATE_SECRET", "s"),
                ],
                "not below the world size",
            ),
            (
                &[
                    ("SPATE_RANK", "0"),
                    ("SPATE_WORLD_SIZE", "2"),
                    ("SPATE_DRIVER", "h:1"),
                ],
                "SPATE_SECRET",
            ),
            (
                &[("SPATE_RANK", "0"), ("SPATE_WORLD_SIZE", "2")],
                "SPATE_DRIVER",
            ),
        ];
        for (vars, named) in cases {
            match topology(vars) {
                Err(Error::InvalidArgument(m)) => assert!(m.contains(named), "{m}"),
                other => panic!("{vars:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_secret_is_never_printed() {
        let t = topology(&[
            ("SPATE_RANK", "0"),
            ("SPATE_WORLD_SIZE", "2"),
            ("SPATE_DRIVER", "127.0.0.1:7077"),
            ("SPATE_SECRET", "hunter2"),
        ])
        .unwrap()
        .unwrap();
        assert!(t.is_driver());
        assert!(!format!("{t:?} {t}").contains("hunter2"));
        assert_eq!(
            t.to_string(),
            "rank 0 of 2 (driver), driver at 127.0.0.1:7077, from Spate"
        );
    }
}
