//! Cluster mode (in progress; see the README's limits): the same program on
//! many processes. Landed so far: where a process stands in the cluster,
//! read from its launcher's environment (`topology.rs`), and the
//! authenticated handshake every connection between processes will begin
//! with (`handshake.rs`). The transport, the driver's task scheduling over
//! executors and executor-loss recovery build on these.

// The handshake's user is the executor transport, the next step of cluster
// mode; until it lands, only its tests call it.
#[allow(dead_code)]
mod handshake;
mod topology;

pub use topology::{DEFAULT_DRIVER_PORT, Launcher, Topology};
