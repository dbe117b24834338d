//! Connections between the driver and its executors: a handshake, then
//! typed messages (bincode) in length-delimited frames, and heartbeats in
//! both directions. At start-up the driver waits for every executor and
//! an executor for the driver, each with a deadline and a clear error,
//! never an endless connect loop; afterwards each side learns promptly
//! when the other is gone (the connection closed, or no message for the
//! heartbeat timeout).

use super::handshake::{
    Identity, MAX_TRUSTED_FRAME, accept_handshake, connect_handshake, read_frame, write_frame,
};
pub(crate) use super::protocol::Message;
use crate::codec;
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// How often each side says it is alive, and how long without a word makes
/// a peer lost.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Heartbeats {
    pub(crate) every: Duration,
    pub(crate) timeout: Duration,
}

impl Default for Heartbeats {
    fn default() -> Self {
        Heartbeats {
            every: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
        }
    }
}

/// An authenticated connection to one peer.
pub(crate) struct Link {
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    /// The peer's rank.
    pub(crate) rank: u32,
    /// The peer, for messages.
    pub(crate) peer: String,
    /// This side's address on the connection: the interface that reaches
    /// the peer.
    pub(crate) local: Option<std::net::SocketAddr>,
}

impl Link {
    pub(crate) fn new(stream: TcpStream, rank: u32, peer: String) -> Link {
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().ok();
        let (reader, writer) = stream.into_split();
        Link {
            reader,
            writer,
            rank,
            peer,
            local,
        }
    }

    pub(crate) async fn send(&mut self, msg: &Message) -> Result<()> {
        let mut bytes = Vec::new();
        codec::encode_record(msg, &mut bytes)?;
        write_frame(&mut self.writer, &bytes, &self.peer).await
    }

    pub(crate) async fn recv(&mut self) -> Result<Message> {
        let bytes = read_frame(&mut self.reader, &self.peer, MAX_TRUSTED_FRAME).await?;
        codec::decode_record(&bytes)
    }

    /// Splits the link into its receiving and sending halves, for a reader
    /// and a writer task.
    pub(crate) fn into_halves(self) -> (LinkReader, LinkWriter) {
        (
            LinkReader {
                reader: self.reader,
                peer: self.peer.clone(),
            },
            LinkWriter {
                writer: self.writer,
                peer: self.peer,
            },
        )
    }

    #[cfg(test)]
    /// Keeps the link alive until the peer is gone: sends a heartbeat every
    /// `beats.every` and returns why the peer is gone (it said goodbye, the
    /// connection closed, or it was silent for `beats.timeout`).
    pub(crate) async fn watch(mut self, beats: Heartbeats) -> String {
        let mut last_heard = Instant::now();
        let mut ticker = tokio::time::interval(beats.every);
        loop {
            let deadline = last_heard + beats.timeout;
            tokio::select! {
                _ = ticker.tick() => {
                    if let Err(e) = self.send(&Message::Heartbeat).await {
                        return format!("cannot reach {}: {e}", self.peer);
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    return format!("no word from {} for {:?}", self.peer, beats.timeout);
                }
                msg = self.recv() => match msg {
                    Ok(Message::Heartbeat) => last_heard = Instant::now(),
                    Ok(Message::Goodbye(why)) => return format!("{} left: {why}", self.peer),
                    Ok(_) => last_heard = Instant::now(),
                    Err(e) => return format!("lost the connection to {}: {e}", self.peer),
                },
            }
        }
    }
}

/// The receiving half of a [`Link`].
pub(crate) struct LinkReader {
    reader: OwnedReadHalf,
    pub(crate) peer: String,
}

impl LinkReader {
    pub(crate) async fn recv(&mut self) -> Result<Message> {
        let bytes = read_frame(&mut self.reader, &self.peer, MAX_TRUSTED_FRAME).await?;
        codec::decode_record(&bytes)
    }
}

/// The sending half of a [`Link`].
pub(crate) struct LinkWriter {
    writer: OwnedWriteHalf,
    pub(crate) peer: String,
}

impl LinkWriter {
    pub(crate) async fn send(&mut self, msg: &Message) -> Result<()> {
        let mut bytes = Vec::new();
        codec::encode_record(msg, &mut bytes)?;
        write_frame(&mut self.writer, &bytes, &self.peer).await
    }
}

#[cfg(test)]
/// The driver's listening address for `port`: loopback unless `host`
/// says otherwise.
pub(crate) fn driver_address(host: Option<&str>, port: u16) -> String {
    format!("{}:{port}", host.unwrap_or("127.0.0.1"))
}

/// On the driver: accepts executors until ranks 1..`world_size` have all
/// joined, or fails at `deadline` naming the missing ranks. A connection
/// that fails its handshake (a stranger, another build, a wrong secret) is
/// refused and logged; it does not stop the others.
pub(crate) async fn accept_executors(
    listener: &TcpListener,
    me: &Identity,
    world_size: usize,
    startup: Duration,
) -> Result<BTreeMap<u32, Link>> {
    let deadline = Instant::now() + startup;
    let mut joined = BTreeMap::new();
    while joined.len() + 1 < world_size {
        let accepted = tokio::time::timeout_at(deadline, listener.accept()).await;
        let Ok(accepted) = accepted else {
            let missing: Vec<usize> = (1..world_size)
                .filter(|r| !joined.contains_key(&(*r as u32)))
                .collect();
            return Err(Error::Cluster(format!(
                "executors {missing:?} of {world_size} processes did not join within {startup:?}"
            )));
        };
        let (mut stream, addr) = accepted.map_err(|e| Error::io("accepting executors", e))?;
        let peer = addr.to_string();
        match accept_handshake(&mut stream, me, &peer).await {
            Ok(rank) if rank == 0 || rank as usize >= world_size => {
                tracing::warn!(target: "spate::cluster", %peer, rank, "refused: rank out of range");
            }
            Ok(rank) if joined.contains_key(&rank) => {
                tracing::warn!(target: "spate::cluster", %peer, rank, "refused: rank joined already");
            }
            Ok(rank) => {
                joined.insert(
                    rank,
                    Link::new(stream, rank, format!("executor {rank} ({peer})")),
                );
            }
            Err(e) => {
                tracing::warn!(target: "spate::cluster", %peer, error = %e, "refused a connection")
            }
        }
    }
    Ok(joined)
}

/// On an executor: connects to the driver, retrying while it is not up yet
/// (it may start later), until `startup` has passed. A refused handshake
/// is final: a wrong secret or another build does not get better by
/// retrying.
pub(crate) async fn connect_to_driver(
    driver: &str,
    me: &Identity,
    startup: Duration,
) -> Result<Link> {
    let deadline = Instant::now() + startup;
    let mut pause = Duration::from_millis(50);
    loop {
        let last_error = match tokio::time::timeout_at(deadline, TcpStream::connect(driver)).await {
            Ok(Ok(mut stream)) => {
                let peer = format!("the driver ({driver})");
                connect_handshake(&mut stream, me, &peer).await?;
                return Ok(Link::new(stream, 0, peer));
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_string(),
        };
        if Instant::now() + pause >= deadline {
            return Err(Error::Cluster(format!(
                "cannot reach the driver at {driver} within {startup:?}: {last_error}"
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::handshake::PROTOCOL_VERSION;

    fn identity(rank: u32) -> Identity {
        Identity {
            fingerprint: [1; 32],
            secret: b"s3cret".to_vec(),
            rank,
            version: PROTOCOL_VERSION,
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// A loopback port nobody listens on (for now).
    async fn free_port() -> u16 {
        let probe = TcpListener::bind("127.0.0.1:0").await.unwrap();
        probe.local_addr().unwrap().port()
    }

    const QUICK: Heartbeats = Heartbeats {
        every: Duration::from_millis(20),
        timeout: Duration::from_millis(300),
    };

    #[test]
    fn the_driver_listens_on_loopback_unless_told_otherwise() {
        assert_eq!(driver_address(None, 7077), "127.0.0.1:7077");
        assert_eq!(driver_address(Some("0.0.0.0"), 7077), "0.0.0.0:7077");
    }

    #[test]
    fn every_executor_joins_even_one_that_starts_before_the_driver() {
        let joined = block_on(async {
            let ids: Vec<Identity> = (0..4).map(identity).collect();
            // Find a free port, then let the driver bind it only later.
            let port = free_port().await;
            let addr = driver_address(None, port);
            let early = connect_to_driver(&addr, &ids[1], Duration::from_secs(10));
            let driver = async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let listener = TcpListener::bind(&addr).await.unwrap();
                let late = async {
                    let mut link = connect_to_driver(&addr, &ids[2], Duration::from_secs(10))
                        .await
                        .unwrap();
                    link.send(&Message::Heartbeat).await.unwrap();
                    link
                };
                let (joined, _late) = tokio::join!(
                    accept_executors(&listener, &ids[0], 3, Duration::from_secs(10)),
                    late
                );
                joined
            };
            let (early, joined) = tokio::join!(early, driver);
            assert_eq!(early.unwrap().rank, 0, "the executor reached the driver");
            joined.unwrap()
        });
        assert_eq!(joined.keys().copied().collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn executors_that_do_not_join_in_time_are_named() {
        let err = block_on(async {
            let ids: Vec<Identity> = (0..4).map(identity).collect();
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            let one = connect_to_driver(&addr, &ids[2], Duration::from_secs(5));
            let driver = accept_executors(&listener, &ids[0], 4, Duration::from_millis(400));
            let (_one, joined) = tokio::join!(one, driver);
            joined.err().unwrap()
        });
        assert!(
            matches!(&err, Error::Cluster(m) if m.contains("executors [1, 3] of 4 processes did not join within 400ms")),
            "{err}"
        );
    }

    #[test]
    fn an_unreachable_driver_is_an_error_after_the_startup_timeout() {
        let started = std::time::Instant::now();
        let err = block_on(async {
            let ids: Vec<Identity> = (0..4).map(identity).collect();
            // A port nobody listens on.
            let port = free_port().await;
            let addr = driver_address(None, port);
            connect_to_driver(&addr, &ids[1], Duration::from_millis(500))
                .await
                .err()
                .unwrap()
        });
        assert!(
            matches!(&err, Error::Cluster(m) if m.starts_with("cannot reach the driver at 127.0.0.1:")),
            "{err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "gave up in time"
        );
    }

    #[test]
    fn a_peer_that_is_killed_or_falls_silent_is_noticed() {
        let (killed, silent) = block_on(async {
            let ids: Vec<Identity> = (0..4).map(identity).collect();
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            // Executor 1 dies (its connection drops); executor 2 stays
            // connected but never says a word.
            let executors = async {
                let dies = connect_to_driver(&addr, &ids[1], Duration::from_secs(5))
                    .await
                    .unwrap();
                let mute = connect_to_driver(&addr, &ids[2], Duration::from_secs(5))
                    .await
                    .unwrap();
                (dies, mute)
            };
            let (joined, (dies, mute)) = tokio::join!(
                accept_executors(&listener, &ids[0], 3, Duration::from_secs(5)),
                executors
            );
            let mut joined = joined.unwrap();
            drop(dies);
            let started = Instant::now();
            let killed = joined.remove(&1).unwrap().watch(QUICK).await;
            let noticed_kill = started.elapsed();
            let silent = joined.remove(&2).unwrap().watch(QUICK).await;
            drop(mute);
            ((killed, noticed_kill), silent)
        });
        assert!(
            killed.0.starts_with("lost the connection to executor 1"),
            "{}",
            killed.0
        );
        assert!(
            killed.1 < Duration::from_secs(2),
            "noticed at once: {:?}",
            killed.1
        );
        assert!(silent.starts_with("no word from executor 2"), "{silent}");
    }

    #[test]
    fn an_executor_learns_the_driver_left() {
        let why = block_on(async {
            let ids: Vec<Identity> = (0..4).map(identity).collect();
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            let (joined, link) = tokio::join!(
                accept_executors(&listener, &ids[0], 2, Duration::from_secs(5)),
                connect_to_driver(&addr, &ids[1], Duration::from_secs(5))
            );
            let mut to_executor = joined.unwrap().remove(&1).unwrap();
            let watch = link.unwrap().watch(QUICK);
            let driver = async {
                to_executor.send(&Message::Heartbeat).await.unwrap();
                to_executor
                    .send(&Message::Goodbye("the job is done".into()))
                    .await
                    .unwrap();
            };
            let (why, ()) = tokio::join!(watch, driver);
            why
        });
        assert!(why.starts_with("the driver (127.0.0.1:"), "{why}");
        assert!(why.ends_with(") left: the job is done"), "{why}");
    }
}
