//! The web UI and the terminal progress of a running application: the
//! status store built from the engine's events, the HTTP server with its
//! pages and REST API, the DAG drawn as SVG, and the progress lines.
//!
//! This layer sits below the dataset layer so a
//! [`ContextBuilder`](crate::ContextBuilder) can start it; the streaming layer feeds it
//! rows it shapes itself (`streaming::status`), and the history view
//! (`observe`) serves it from event logs.

mod progress;
mod server;
mod status;
mod svg;

pub(crate) use progress::Progress;
pub(crate) use server::{Apps, UiServer};
pub(crate) use status::{AppInfo, Status, StreamingRow, ms};

use crate::error::Result;
use crate::runtime::Runtime;
use std::net::SocketAddr;
use std::sync::Arc;

/// A running application's live UI: its status, kept by the bus's events,
/// and the server that shows it. Dropped with its context.
pub(crate) struct Ui {
    status: Arc<Status>,
    server: UiServer,
}

impl Ui {
    /// Starts keeping `rt`'s status and serving it on `addr`.
    pub(crate) fn start(rt: &Runtime, addr: SocketAddr) -> Result<Ui> {
        let status = Arc::new(Status::new(AppInfo {
            id: rt.app_id().to_string(),
            spate_version: env!("CARGO_PKG_VERSION").to_string(),
            parallelism: rt.parallelism(),
            processes: rt.processes(),
            memory_limit: rt.memory().limit() as u64,
            start_ms: rt.start_ms(),
        }));
        rt.listeners().add_timed(status.clone());
        let shown = status.clone();
        let apps: Apps = Arc::new(move || vec![shown.clone()]);
        let server = UiServer::start(apps, addr)?;
        Ok(Ui { status, server })
    }

    /// The status it shows.
    pub(crate) fn status(&self) -> &Arc<Status> {
        &self.status
    }

    /// Its address, as a URL.
    pub(crate) fn url(&self) -> String {
        format!("http://{}/", self.server.addr())
    }
}
