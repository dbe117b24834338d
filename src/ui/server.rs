//! The web UI's HTTP server (axum): the pages, their script and style
//! (compiled into the binary), and the REST API under `/api/v1`, shaped
//! after Spark's monitoring API. Read-only: every route is a GET; a path or
//! id that does not name something is a 404.

use super::status::Status;
use super::svg::dag_svg;
use crate::error::{Error, Result};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;

/// The applications a server shows: the running one (live UI), or those
/// of an event log directory (history view), listed again on each request
/// so new logs appear.
pub(crate) type Apps = Arc<dyn Fn() -> Vec<Arc<Status>> + Send + Sync>;

const PAGE: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");

/// A running server; dropping it stops it (open connections are cut).
pub(crate) struct UiServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl UiServer {
    /// Listens on `addr` (port 0 picks a free one) and serves on a thread
    /// of its own, so no request runs on a task's thread.
    pub(crate) fn start(apps: Apps, addr: SocketAddr) -> Result<UiServer> {
        let bind_error = |source| Error::UiBind { addr, source };
        let listener = std::net::TcpListener::bind(addr).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let bound = listener.local_addr().map_err(bind_error)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(bind_error)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = router(apps);
        let thread = std::thread::Builder::new()
            .name("spate-ui".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::warn!(target: "spate::ui", error = %e, "web UI cannot serve");
                            return;
                        }
                    };
                    tokio::select! {
                        served = axum::serve(listener, router) => {
                            if let Err(e) = served {
                                tracing::warn!(target: "spate::ui", error = %e, "web UI stopped");
                            }
                        }
                        _ = stopped => {}
                    }
                });
                // Connections still open are cut, not waited for.
                runtime.shutdown_timeout(std::time::Duration::from_millis(100));
            })
            .map_err(bind_error)?;
        Ok(UiServer {
            addr: bound,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for UiServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn router(apps: Apps) -> Router {
    let page = || get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE) });
    Router::new()
        .route("/", page())
        .route("/jobs/", page())
        .route("/jobs/job/", page())
        .route("/stages/", page())
        .route("/stages/stage/", page())
        .route("/storage/", page())
        .route("/executors/", page())
        .route("/streaming/", page())
        .route(
            "/static/app.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    SCRIPT,
                )
            }),
        )
        .route(
            "/static/style.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE) }),
        )
        .route("/api/v1/{*rest}", get(api))
        .with_state(apps)
}

async fn api(State(apps): State<Apps>, Path(rest): Path<String>) -> Response {
    match answer(&apps(), &rest) {
        Some(Answer::Json(v)) => {
            ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
        }
        Some(Answer::Svg(s)) => ([(header::CONTENT_TYPE, "image/svg+xml")], s).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ "error": format!("no such resource: /api/v1/{rest}") }).to_string(),
        )
            .into_response(),
    }
}

/// What an API path answers.
enum Answer {
    Json(Value),
    Svg(String),
}

/// A decimal id: digits only (no sign, no spaces), fitting in a u64.
fn id<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The answer to `/api/v1/<rest>`, or `None` (a 404).
fn answer(apps: &[Arc<Status>], rest: &str) -> Option<Answer> {
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["applications"] => Some(Answer::Json(apps.iter().map(|a| a.application()).collect())),
        ["applications", app, tail @ ..] => {
            let app = apps.iter().find(|a| a.app_id() == *app)?;
            app_answer(app, tail)
        }
        _ => None,
    }
}

fn app_answer(app: &Status, tail: &[&str]) -> Option<Answer> {
    let json = match tail {
        [] => app.application(),
        ["jobs"] => app.jobs(),
        ["jobs", job] => app.job(id(job)?)?,
        ["jobs", job, "dag.svg"] => {
            let (graph, stages) = app.job_graph(id(job)?)?;
            return Some(Answer::Svg(dag_svg(&graph, &stages)));
        }
        ["stages"] => app.stages(),
        ["stages", stage] => app.stage_attempts(id(stage)?)?,
        ["stages", stage, attempt] => app.stage(id(stage)?, id(attempt)?)?,
        ["stages", stage, attempt, "taskList"] => app.task_list(id(stage)?, id(attempt)?)?,
        ["stages", stage, attempt, "taskSummary"] => app.task_summary(id(stage)?, id(attempt)?)?,
        ["storage", "rdd"] => app.storage(),
        ["storage", "rdd", rdd] => app.storage_rdd(id(rdd)?)?,
        ["executors"] | ["allexecutors"] => app.executors(),
        ["streaming", "statistics"] => app.streaming_statistics()?,
        ["streaming", "batches"] => app.streaming_batches()?,
        _ => return None,
    };
    Some(Answer::Json(json))
}
