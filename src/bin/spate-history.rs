//! `spate-history DIR [--port P] [--address A]`: serves the web UI and the
//! REST API of every application whose event log is in DIR (written with
//! `event_log_dir` or `SPATE_EVENT_LOG_DIR`), as Spark's history server
//! does. Logs that appear or grow are picked up on the next request. Listens
//! on 127.0.0.1:18080 unless told otherwise; runs until killed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;

const USAGE: &str =
    "usage: spate-history DIR [--port PORT (default 18080)] [--address IP (default 127.0.0.1)]";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("spate-history: {message}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let (mut dir, mut port, mut ip) = (None, 18080u16, IpAddr::V4(Ipv4Addr::LOCALHOST));
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                let v = args.next().ok_or("--port needs a value")?;
                port = v.parse().map_err(|_| format!("{v:?} is not a port"))?;
            }
            "--address" => {
                let v = args.next().ok_or("--address needs a value")?;
                ip = v
                    .parse()
                    .map_err(|_| format!("{v:?} is not an IP address"))?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other if other.starts_with('-') => {
                return Err(format!("unexpected argument {other:?}"));
            }
            other if dir.is_none() => dir = Some(other.to_string()),
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    let dir = dir.ok_or("no event log directory given")?;
    let server = spate::observe::HistoryServer::start(&dir, SocketAddr::new(ip, port))
        .map_err(|e| e.to_string())?;
    eprintln!(
        "spate-history: serving the event logs of {dir} at {}",
        server.url()
    );
    loop {
        std::thread::park();
    }
}
