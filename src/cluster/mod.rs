//! Cluster mode (in progress; see the README's limits): the same program on
//! many processes. Landed so far: where a process stands in the cluster,
//! read from its launcher's environment (`topology.rs`), the
//! authenticated handshake every connection between processes begins with
//! (`handshake.rs`), and the connections themselves (`transport.rs`:
//! start-up with deadlines, typed messages, heartbeats, loss detection). The transport, the driver's task scheduling over
//! executors and executor-loss recovery build on these.

// The handshake and transport's user is the driver's task scheduling over
// executors, the next step of cluster mode; until it lands, only their
// tests call them.
#[allow(dead_code)]
mod handshake;
mod topology;
#[allow(dead_code)]
mod transport;

pub use topology::{DEFAULT_DRIVER_PORT, Launcher, Topology};
