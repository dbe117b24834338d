//! Cluster mode: the same program on many processes. Where a process
//! stands, read from its launcher's environment (`topology.rs`); the
//! authenticated handshake every connection between processes begins with
//! (`handshake.rs`); the connections (`transport.rs`: start-up with
//! deadlines, framing, heartbeats); the messages (`protocol.rs`); and a
//! process's membership in a running cluster (`node.rs`: links to its
//! peers, the block server and fetch client of shuffle blocks). The
//! driver's scheduling over executors lives in the scheduler, which uses
//! a `Node` (`node.rs`) through the runtime.

pub(crate) mod driver_data;
mod handshake;
pub(crate) mod node;
pub(crate) mod protocol;
mod topology;
mod transport;

pub use topology::{DEFAULT_DRIVER_PORT, Launcher, Topology};
