//! This process's place in a running cluster: the connections to the other
//! processes, the block server that hands this process's shuffle blocks to
//! reducers elsewhere, and the client that fetches theirs.
//!
//! Every process is an executor; rank 0 is also the driver, which talks to
//! every other process. Executors talk to the driver, and to each other only
//! to fetch shuffle blocks. Each connection has a reader and a writer task
//! on a small tokio runtime of its own; the writer sends a heartbeat every
//! second, and a reader that hears nothing for the heartbeat timeout
//! declares the peer lost.
//!
//! Invariants:
//! - A task dispatched to an executor gets exactly one [`Reply`]: its
//!   report, or `Lost` when the executor is (or already was) lost.
//! - An executor whose driver is lost without saying goodbye exits the
//!   process at once (no orphans), unless built for a test.

use super::driver_data::DriverData;
use super::handshake::{Identity, accept_handshake, connect_handshake};
use super::protocol::{Bytes, Message, TaskReport, TaskSpec};
use super::topology::Topology;
use super::transport::{Heartbeats, Link, accept_executors, connect_to_driver};
use crate::error::{Error, Result};
use crate::ids::{RddId, ShuffleId};
use crate::runtime::TaskId;
use crate::shuffle::ShuffleManager;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

/// How a task sent to an executor ended.
pub(crate) enum Reply {
    /// The executor ran the attempt.
    Done(u32, Box<TaskReport>),
    /// The executor was lost before it answered.
    Lost {
        task: TaskId,
        rank: u32,
        reason: String,
    },
    /// A task the driver ran on its own pool ended (the scheduler keeps
    /// its outcome), so one channel carries every end of a stage.
    Local { partition: usize },
}

/// The driver's view of its executors.
#[derive(Default)]
struct Executors {
    /// Tasks sent and not answered yet: the executor and where the reply goes.
    pending: HashMap<TaskId, (u32, mpsc::Sender<Reply>)>,
    /// Executors lost (or gone), with why.
    lost: HashMap<u32, String>,
    /// Each executor's task slots, from its hello.
    slots: HashMap<u32, usize>,
}

enum Role {
    Driver(Arc<DriverLinks>),
    Executor {
        to_driver: UnboundedSender<Message>,
        inbox: Mutex<mpsc::Receiver<Message>>,
        /// Awaited at shutdown so the goodbye goes out.
        writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    },
}

/// The driver's links to its executors, shared with the task that accepts
/// executors joining late.
struct DriverLinks {
    to: Mutex<HashMap<u32, UnboundedSender<Message>>>,
    executors: Arc<Mutex<Executors>>,
    /// Every job's end (`JobDone`, `JobFailed`), in order: replayed to an
    /// executor that joins late, whose program starts from the beginning
    /// and must meet the same results.
    history: Mutex<Vec<Message>>,
    writers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    beats: Heartbeats,
}

impl DriverLinks {
    /// Runs the link to a (new) executor; the job ends so far go first.
    fn attach(self: &Arc<Self>, tokio: &tokio::runtime::Handle, link: Link) {
        let peer_rank = link.rank;
        let on_message = {
            let executors = self.executors.clone();
            move |msg: Message| {
                if let Message::TaskDone(report) = msg {
                    let waiting = executors.lock().pending.remove(&report.id);
                    if let Some((_, reply)) = waiting {
                        let _ = reply.send(Reply::Done(peer_rank, Box::new(report)));
                    }
                }
            }
        };
        let on_end = {
            let executors = self.executors.clone();
            move |reason: String, _clean: bool| {
                tracing::warn!(target: "spate::cluster", rank = peer_rank, %reason, "executor lost");
                let mut ex = executors.lock();
                ex.lost.insert(peer_rank, reason.clone());
                let gone: Vec<TaskId> = ex
                    .pending
                    .iter()
                    .filter(|(_, (r, _))| *r == peer_rank)
                    .map(|(id, _)| *id)
                    .collect();
                for id in gone {
                    if let Some((_, reply)) = ex.pending.remove(&id) {
                        let _ = reply.send(Reply::Lost {
                            task: id,
                            rank: peer_rank,
                            reason: reason.clone(),
                        });
                    }
                }
            }
        };
        let (tx, writer) = spawn_link(tokio, link, self.beats, on_message, on_end);
        self.writers.lock().push(writer);
        // Under the history lock: no job end slips between the replay and
        // the executor's first broadcast.
        let history = self.history.lock();
        for msg in history.iter() {
            let _ = tx.send(msg.clone());
        }
        self.to.lock().insert(peer_rank, tx);
        self.executors.lock().lost.remove(&peer_rank);
    }

    fn broadcast(&self, msg: &Message) {
        let mut history = self.history.lock();
        if matches!(msg, Message::JobDone { .. } | Message::JobFailed { .. }) {
            history.push(msg.clone());
        }
        for tx in self.to.lock().values() {
            let _ = tx.send(msg.clone());
        }
    }
}

/// On the driver, after start-up: accepts an executor that joins late to
/// replace a lost one (a restarted pod, a new `srun` step). It gets the
/// process list, then every job end so far (its program starts from the
/// beginning), then tasks; the others learn its new block server.
async fn accept_late(
    listener: TcpListener,
    me: Identity,
    world: usize,
    total_slots: usize,
    links: Arc<DriverLinks>,
    fetcher: Arc<Fetcher>,
    tokio: tokio::runtime::Handle,
) {
    loop {
        let Ok((mut stream, addr)) = listener.accept().await else {
            continue;
        };
        let peer = addr.to_string();
        let rank = match accept_handshake(&mut stream, &me, &peer).await {
            Ok(rank) => rank,
            Err(e) => {
                tracing::warn!(target: "spate::cluster", %peer, error = %e, "refused a connection");
                continue;
            }
        };
        let replaces_lost = links.executors.lock().lost.contains_key(&rank);
        if rank == 0 || rank as usize >= world || !replaces_lost {
            tracing::warn!(target: "spate::cluster", %peer, rank, "refused: not the rank of a lost executor");
            continue;
        }
        let mut link = Link::new(stream, rank, format!("executor {rank} ({peer})"));
        let hello = tokio::time::timeout(links.beats.timeout, link.recv()).await;
        let Ok(Ok(Message::Hello { blocks, slots })) = hello else {
            tracing::warn!(target: "spate::cluster", %peer, rank, "refused: no hello");
            continue;
        };
        fetcher.moved(rank, blocks.clone());
        links.executors.lock().slots.insert(rank, slots);
        let peers = Message::Peers {
            blocks: fetcher.blocks.lock().clone(),
            slots: total_slots,
        };
        if link.send(&peers).await.is_err() {
            continue;
        }
        for tx in links.to.lock().values() {
            let _ = tx.send(Message::PeerMoved {
                rank,
                blocks: blocks.clone(),
            });
        }
        tracing::warn!(target: "spate::cluster", rank, %peer, "an executor joined to replace a lost one");
        links.attach(&tokio, link);
    }
}

/// A process's membership in a cluster; see the module docs.
pub(crate) struct Node {
    topology: Topology,
    role: Role,
    /// This process's task slots.
    slots: usize,
    /// Task slots of all processes together.
    total_slots: usize,
    fetcher: Arc<Fetcher>,
    /// On the driver: the parallelized datasets whose slices executors fetch.
    driver_data: Arc<DriverData>,
    tokio: tokio::runtime::Runtime,
}

/// Settings read from the environment, with their defaults.
fn env_duration(name: &str, default: Duration) -> Duration {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or(default)
}

impl Node {
    /// Joins the cluster `topology` describes: the driver waits for every
    /// executor, an executor connects to the driver, both within the
    /// start-up timeout (`SPATE_STARTUP_TIMEOUT_MS`, default 60 s).
    /// `shuffles` is what this process's block server serves.
    pub(crate) fn start(
        topology: Topology,
        shuffles: Arc<ShuffleManager>,
        slots: usize,
        exit_on_driver_loss: bool,
    ) -> Result<Node> {
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("spate-net")
            .enable_all()
            .build()
            .map_err(|e| Error::Cluster(format!("cannot start the network runtime: {e}")))?;
        let rank = topology.rank as u32;
        let identity = Identity::of_this_binary(rank, &topology.secret)?;
        let defaults = Heartbeats::default();
        let beats = Heartbeats {
            every: env_duration("SPATE_HEARTBEAT_INTERVAL_MS", defaults.every),
            timeout: env_duration("SPATE_HEARTBEAT_TIMEOUT_MS", defaults.timeout),
        };
        let startup = env_duration("SPATE_STARTUP_TIMEOUT_MS", Duration::from_secs(60));
        let world = topology.world_size;
        let (links, blocks, total_slots, slots_by_rank, block_listener, driver_listener) = tokio
            .block_on(async {
                if rank == 0 {
                    let listener = TcpListener::bind(&topology.driver).await.map_err(|e| {
                        Error::Cluster(format!("cannot listen at {}: {e}", topology.driver))
                    })?;
                    let ip = listener
                        .local_addr()
                        .map_err(|e| Error::io("the driver's address", e))?
                        .ip();
                    let block_listener = bind_blocks(ip).await?;
                    let mut joined = accept_executors(&listener, &identity, world, startup).await?;
                    let mut blocks = vec![local_addr(&block_listener)?; world];
                    let mut total = slots;
                    let mut by_rank = HashMap::new();
                    for (rank, link) in joined.iter_mut() {
                        match tokio::time::timeout(startup, link.recv()).await {
                            Ok(Ok(Message::Hello {
                                blocks: addr,
                                slots,
                            })) => {
                                blocks[*rank as usize] = addr;
                                total += slots;
                                by_rank.insert(*rank, slots);
                            }
                            Ok(Ok(other)) => {
                                return Err(Error::Cluster(format!(
                                    "{} sent {other:?} instead of its hello",
                                    link.peer
                                )));
                            }
                            Ok(Err(e)) => return Err(e),
                            Err(_) => {
                                return Err(Error::Cluster(format!(
                                    "{} joined but said nothing within {startup:?}",
                                    link.peer
                                )));
                            }
                        }
                    }
                    for link in joined.values_mut() {
                        link.send(&Message::Peers {
                            blocks: blocks.clone(),
                            slots: total,
                        })
                        .await?;
                    }
                    Ok((
                        joined.into_values().collect::<Vec<_>>(),
                        blocks,
                        total,
                        by_rank,
                        block_listener,
                        Some(listener),
                    ))
                } else {
                    let mut link = connect_to_driver(&topology.driver, &identity, startup).await?;
                    let ip = link
                        .local
                        .map(|a| a.ip())
                        .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
                    let block_listener = bind_blocks(ip).await?;
                    link.send(&Message::Hello {
                        blocks: local_addr(&block_listener)?,
                        slots,
                    })
                    .await?;
                    match tokio::time::timeout(startup, link.recv()).await {
                        Ok(Ok(Message::Peers { blocks, slots })) if blocks.len() == world => Ok((
                            vec![link],
                            blocks,
                            slots,
                            HashMap::new(),
                            block_listener,
                            None,
                        )),
                        Ok(Ok(other)) => Err(Error::Cluster(format!(
                            "the driver sent {other:?} instead of the list of processes"
                        ))),
                        Ok(Err(e)) => Err(e),
                        Err(_) => Err(Error::Cluster(format!(
                            "the driver did not list the processes within {startup:?}"
                        ))),
                    }
                }
            })?;
        let driver_data = Arc::new(DriverData::default());
        tokio.spawn(serve_blocks(
            block_listener,
            identity.clone(),
            shuffles,
            driver_data.clone(),
        ));
        let executors = (rank == 0).then(|| {
            Arc::new(Mutex::new(Executors {
                slots: slots_by_rank,
                ..Executors::default()
            }))
        });
        let fetcher = Arc::new(Fetcher {
            identity: identity.clone(),
            blocks: Mutex::new(blocks),
            idle: Mutex::new(HashMap::new()),
            timeout: beats.timeout,
            executors: executors.clone(),
        });
        let role = match executors {
            Some(executors) => {
                let links_in = Arc::new(DriverLinks {
                    to: Mutex::new(HashMap::new()),
                    executors,
                    history: Mutex::new(Vec::new()),
                    writers: Mutex::new(Vec::new()),
                    beats,
                });
                for link in links {
                    links_in.attach(tokio.handle(), link);
                }
                if let Some(listener) = driver_listener {
                    tokio.spawn(accept_late(
                        listener,
                        identity,
                        world,
                        total_slots,
                        links_in.clone(),
                        fetcher.clone(),
                        tokio.handle().clone(),
                    ));
                }
                Role::Driver(links_in)
            }
            None => {
                let (inbox_tx, inbox) = mpsc::channel();
                let on_message = {
                    let inbox_tx = inbox_tx.clone();
                    let fetcher = fetcher.clone();
                    move |msg: Message| match msg {
                        Message::PeerMoved { rank, blocks } => fetcher.moved(rank, blocks),
                        msg => {
                            let _ = inbox_tx.send(msg);
                        }
                    }
                };
                let on_end = move |reason: String, clean: bool| {
                    if !clean && exit_on_driver_loss {
                        eprintln!("spate: executor {rank}: {reason}; exiting");
                        std::process::exit(70);
                    }
                    let _ = inbox_tx.send(Message::Goodbye(reason));
                };
                let link = links.into_iter().next().expect("an executor has one link");
                let (to_driver, writer) =
                    spawn_link(tokio.handle(), link, beats, on_message, on_end);
                Role::Executor {
                    to_driver,
                    inbox: Mutex::new(inbox),
                    writer: Mutex::new(Some(writer)),
                }
            }
        };
        Ok(Node {
            topology,
            role,
            slots,
            total_slots,
            fetcher,
            driver_data,
            tokio,
        })
    }

    pub(crate) fn rank(&self) -> u32 {
        self.topology.rank as u32
    }

    pub(crate) fn world_size(&self) -> usize {
        self.topology.world_size
    }

    /// Task slots of all processes together: the cluster's default
    /// partition count, the same in every process.
    pub(crate) fn total_slots(&self) -> usize {
        self.total_slots
    }

    pub(crate) fn is_driver(&self) -> bool {
        self.topology.rank == 0
    }

    /// On the driver: the task slots of every live process not in
    /// `avoid`, by rank; the driver's own always among them.
    pub(crate) fn usable_slots(&self, avoid: &HashSet<u32>) -> Vec<(u32, usize)> {
        let mut out = vec![(0, self.slots)];
        if let Role::Driver(links) = &self.role {
            let ex = links.executors.lock();
            let mut executors: Vec<(u32, usize)> = ex
                .slots
                .iter()
                .filter(|(r, _)| !ex.lost.contains_key(r) && !avoid.contains(r))
                .map(|(r, n)| (*r, *n))
                .collect();
            executors.sort();
            out.extend(executors);
        }
        out
    }

    /// Live executors (the driver not counted).
    pub(crate) fn live_executors(&self) -> usize {
        match &self.role {
            Role::Driver(links) => self.world_size() - 1 - links.executors.lock().lost.len(),
            Role::Executor { .. } => 0,
        }
    }

    /// On the driver: sends `spec` to executor `rank`; the outcome comes
    /// on `reply`, exactly once.
    pub(crate) fn dispatch(&self, rank: u32, spec: TaskSpec, reply: mpsc::Sender<Reply>) {
        let Role::Driver(links) = &self.role else {
            panic!("only the driver dispatches tasks");
        };
        let mut ex = links.executors.lock();
        if let Some(reason) = ex.lost.get(&rank) {
            let _ = reply.send(Reply::Lost {
                task: spec.id,
                rank,
                reason: reason.clone(),
            });
            return;
        }
        ex.pending.insert(spec.id, (rank, reply));
        // A closed channel means the link's writer ended: its reader
        // reports the loss and answers the task.
        if let Some(tx) = links.to.lock().get(&rank) {
            let _ = tx.send(Message::RunTask(spec));
        }
    }

    /// On the driver: a message to every live executor (job ends are also
    /// kept for executors that join later).
    pub(crate) fn broadcast(&self, msg: &Message) {
        if let Role::Driver(links) = &self.role {
            links.broadcast(msg);
        }
    }

    /// On an executor: a message to the driver.
    pub(crate) fn send_to_driver(&self, msg: Message) {
        if let Role::Executor { to_driver, .. } = &self.role {
            let _ = to_driver.send(msg);
        }
    }

    /// On an executor: the next message from the driver; a `Goodbye` when
    /// the driver is gone.
    pub(crate) fn next_message(&self) -> Message {
        match &self.role {
            Role::Executor { inbox, .. } => inbox
                .lock()
                .recv()
                .unwrap_or_else(|_| Message::Goodbye("the driver's connection closed".into())),
            Role::Driver(_) => panic!("only executors take messages from the driver"),
        }
    }

    /// Starts fetching reduce partition `reduce`'s block of map output
    /// `map` of `shuffle` from process `rank`'s block server; the fetch
    /// runs on the network runtime while the caller goes on.
    pub(crate) fn start_fetch(
        &self,
        rank: u32,
        shuffle: ShuffleId,
        map: usize,
        reduce: usize,
    ) -> PendingFetch {
        let fetcher = self.fetcher.clone();
        let asked = Message::FetchBlock {
            shuffle,
            map,
            reduce,
        };
        PendingFetch(
            self.tokio
                .spawn(async move { fetcher.ask(rank, asked).await }),
        )
    }

    /// On the driver: the registry of parallelized datasets it serves.
    pub(crate) fn driver_data(&self) -> &DriverData {
        &self.driver_data
    }

    /// On an executor: partition `partition` of the driver's parallelized
    /// dataset `rdd`, encoded, fetched from the driver's block server.
    pub(crate) fn fetch_slice(
        &self,
        rdd: RddId,
        partition: usize,
    ) -> std::result::Result<Vec<u8>, String> {
        let fetcher = self.fetcher.clone();
        let asked = Message::FetchSlice { rdd, partition };
        self.finish_fetch(PendingFetch(
            self.tokio.spawn(async move { fetcher.ask(0, asked).await }),
        ))
    }

    /// Waits for a fetch: the block's frames, or why it could not be had.
    pub(crate) fn finish_fetch(&self, fetch: PendingFetch) -> std::result::Result<Vec<u8>, String> {
        self.tokio
            .block_on(fetch.0)
            .unwrap_or_else(|e| Err(format!("the fetch failed: {e}")))
    }
}

/// A block fetch under way (see [`Node::start_fetch`]).
pub(crate) struct PendingFetch(tokio::task::JoinHandle<std::result::Result<Vec<u8>, String>>);

/// Fetches shuffle blocks from other processes' block servers, keeping
/// idle connections for the next fetch.
struct Fetcher {
    identity: Identity,
    /// Every process's block server, by rank.
    blocks: Mutex<Vec<String>>,
    idle: Mutex<HashMap<u32, Vec<Link>>>,
    /// How long a connection or an answer may take.
    timeout: Duration,
    /// On the driver: executors known lost (their blocks fail at once).
    executors: Option<Arc<Mutex<Executors>>>,
}

impl Fetcher {
    /// Process `rank` was replaced: its block server is now at `blocks`.
    fn moved(&self, rank: u32, blocks: String) {
        if let Some(slot) = self.blocks.lock().get_mut(rank as usize) {
            *slot = blocks;
        }
        self.idle.lock().remove(&rank);
    }

    /// Asks process `rank`'s block server for one block (`asked` is a
    /// `FetchBlock` or a `FetchSlice`) and waits for its bytes.
    async fn ask(&self, rank: u32, asked: Message) -> std::result::Result<Vec<u8>, String> {
        if let Some(executors) = &self.executors
            && let Some(reason) = executors.lock().lost.get(&rank)
        {
            return Err(format!("process {rank} was lost: {reason}"));
        }
        let addr = self
            .blocks
            .lock()
            .get(rank as usize)
            .ok_or_else(|| format!("no process {rank}"))?
            .clone();
        let pooled = self.idle.lock().get_mut(&rank).and_then(Vec::pop);
        let timeout = self.timeout;
        let mut link = match pooled {
            Some(link) => link,
            None => {
                let peer = format!("the block server of process {rank} ({addr})");
                let mut stream = tokio::time::timeout(timeout, TcpStream::connect(&addr))
                    .await
                    .map_err(|_| format!("cannot reach {peer} within {timeout:?}"))?
                    .map_err(|e| format!("cannot reach {peer}: {e}"))?;
                connect_handshake(&mut stream, &self.identity, &peer)
                    .await
                    .map_err(|e| e.to_string())?;
                Link::new(stream, rank, peer)
            }
        };
        let answer = tokio::time::timeout(timeout, async {
            link.send(&asked).await?;
            link.recv().await
        })
        .await
        .map_err(|_| format!("{} did not answer within {timeout:?}", link.peer))?
        .map_err(|e| e.to_string())?;
        match answer {
            Message::Block(block) => {
                self.idle.lock().entry(rank).or_default().push(link);
                block.map(|b| b.0)
            }
            other => Err(format!("{} answered {other:?}", link.peer)),
        }
    }
}

impl Drop for Node {
    /// Says goodbye to every peer and waits (briefly) until it is sent.
    fn drop(&mut self) {
        let bye = Message::Goodbye(format!("process {} finished", self.rank()));
        let writers = match &self.role {
            Role::Driver(links) => {
                for tx in links.to.lock().values() {
                    let _ = tx.send(bye.clone());
                }
                std::mem::take(&mut *links.writers.lock())
            }
            Role::Executor {
                to_driver, writer, ..
            } => {
                let _ = to_driver.send(bye);
                writer.lock().take().into_iter().collect()
            }
        };
        let _ = self.tokio.block_on(async {
            tokio::time::timeout(Duration::from_secs(2), async {
                for w in writers {
                    let _ = w.await;
                }
            })
            .await
        });
    }
}

async fn bind_blocks(ip: std::net::IpAddr) -> Result<TcpListener> {
    TcpListener::bind((ip, 0))
        .await
        .map_err(|e| Error::Cluster(format!("cannot listen for shuffle fetches on {ip}: {e}")))
}

fn local_addr(listener: &TcpListener) -> Result<String> {
    listener
        .local_addr()
        .map(|a| a.to_string())
        .map_err(|e| Error::io("the block server's address", e))
}

/// Runs a link: a writer task sending what comes on the returned channel
/// (and a heartbeat every `beats.every`), and a reader task handing every
/// message but heartbeats to `on_message`, until the peer is gone; then
/// `on_end(why, said_goodbye)`.
fn spawn_link(
    tokio: &tokio::runtime::Handle,
    link: Link,
    beats: Heartbeats,
    mut on_message: impl FnMut(Message) + Send + 'static,
    on_end: impl FnOnce(String, bool) + Send + 'static,
) -> (UnboundedSender<Message>, tokio::task::JoinHandle<()>) {
    let (mut reader, mut writer) = link.into_halves();
    let (tx, mut rx) = unbounded_channel::<Message>();
    let writer = tokio.spawn(async move {
        let mut ticker = tokio::time::interval(beats.every);
        loop {
            tokio::select! {
                msg = rx.recv() => {
                    let Some(msg) = msg else { return };
                    let bye = matches!(msg, Message::Goodbye(_));
                    if writer.send(&msg).await.is_err() || bye {
                        return;
                    }
                }
                _ = ticker.tick() => {
                    if writer.send(&Message::Heartbeat).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    tokio.spawn(async move {
        let peer = reader.peer.clone();
        let (why, clean) = loop {
            match tokio::time::timeout(beats.timeout, reader.recv()).await {
                Err(_) => {
                    break (
                        format!("no word from {peer} for {:?}", beats.timeout),
                        false,
                    );
                }
                Ok(Err(e)) => break (format!("lost the connection to {peer}: {e}"), false),
                Ok(Ok(Message::Heartbeat)) => {}
                Ok(Ok(Message::Goodbye(why))) => break (format!("{peer} left: {why}"), true),
                Ok(Ok(msg)) => on_message(msg),
            }
        };
        on_end(why, clean);
    });
    (tx, writer)
}

/// Serves this process's shuffle blocks (and, on the driver, the slices of
/// parallelized datasets) to authenticated peers, one connection per
/// fetching process, until the runtime shuts down.
async fn serve_blocks(
    listener: TcpListener,
    me: Identity,
    shuffles: Arc<ShuffleManager>,
    driver_data: Arc<DriverData>,
) {
    loop {
        let Ok((mut stream, addr)) = listener.accept().await else {
            continue;
        };
        let me = me.clone();
        let shuffles = shuffles.clone();
        let driver_data = driver_data.clone();
        tokio::spawn(async move {
            let peer = format!("a block fetch from {addr}");
            let rank = match accept_handshake(&mut stream, &me, &peer).await {
                Ok(rank) => rank,
                Err(e) => {
                    tracing::warn!(target: "spate::cluster", %peer, error = %e, "refused a connection");
                    return;
                }
            };
            let mut link = Link::new(stream, rank, peer);
            loop {
                let serve: Box<dyn FnOnce() -> std::result::Result<Vec<u8>, String> + Send> =
                    match link.recv().await {
                        Ok(Message::FetchBlock {
                            shuffle,
                            map,
                            reduce,
                        }) => {
                            let shuffles = shuffles.clone();
                            Box::new(move || match shuffles.get(shuffle, map) {
                                Some(output) => output.block_frames(reduce),
                                None => Err(format!(
                                    "map output {map} of shuffle {shuffle} is not here"
                                )),
                            })
                        }
                        Ok(Message::FetchSlice { rdd, partition }) => {
                            let driver_data = driver_data.clone();
                            Box::new(move || driver_data.slice(rdd, partition))
                        }
                        _ => return,
                    };
                let block = tokio::task::spawn_blocking(serve)
                    .await
                    .unwrap_or_else(|e| Err(format!("serving the block failed: {e}")));
                if link.send(&Message::Block(block.map(Bytes))).await.is_err() {
                    return;
                }
            }
        });
    }
}
