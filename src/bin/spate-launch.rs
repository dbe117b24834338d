//! `spate-launch -n N [--threads T] [--port P] -- BIN ARGS…`: runs N copies
//! of a Spate program on this machine as one cluster (rank 0 is the
//! driver), for development and tests. Each copy gets `SPATE_RANK`,
//! `SPATE_WORLD_SIZE`, `SPATE_THREADS` (with `--threads`),
//! `SPATE_DRIVER` (loopback) and a fresh random `SPATE_SECRET`; their
//! output is passed through. An executor that dies is reported and the
//! others go on (the driver recovers its work); when the driver fails the
//! executors are stopped. The launcher exits with the driver's status.

use rand::Rng;
use std::process::{Child, Command, ExitCode};
use std::time::Duration;

const USAGE: &str =
    "usage: spate-launch -n PROCESSES [--threads T] [--port PORT] -- PROGRAM [ARGS...]";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(message) => {
            eprintln!("spate-launch: {message}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<ExitCode, String> {
    let mut args = std::env::args().skip(1);
    let (mut n, mut port, mut threads) = (None, None, None);
    let mut program = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-n" | "--processes" => n = Some(number(args.next(), &arg)?),
            "--port" => port = Some(number(args.next(), &arg)?),
            "--threads" => threads = Some(number(args.next(), &arg)?),
            "--" => {
                program.extend(args.by_ref());
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    let n: usize = n.ok_or("-n PROCESSES is required")?;
    if n == 0 {
        return Err("-n must be at least 1".into());
    }
    let (bin, bin_args) = program.split_first().ok_or("no program after --")?;
    let port = match port {
        Some(p) => u16::try_from(p).map_err(|_| format!("{p} is not a port"))?,
        None => free_port()?,
    };
    let secret: String = {
        let bytes: [u8; 16] = rand::rng().random();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    };
    let mut children: Vec<Child> = Vec::new();
    for rank in 0..n {
        let mut cmd = Command::new(bin);
        if let Some(t) = threads {
            cmd.env("SPATE_THREADS", t.to_string());
        }
        let child = cmd
            .args(bin_args)
            .env("SPATE_RANK", rank.to_string())
            .env("SPATE_WORLD_SIZE", n.to_string())
            .env("SPATE_DRIVER", format!("127.0.0.1:{port}"))
            .env("SPATE_SECRET", &secret)
            .spawn();
        match child {
            Ok(c) => children.push(c),
            Err(e) => {
                stop(&mut children);
                return Err(format!("cannot start {bin}: {e}"));
            }
        }
    }
    // Wait for all; a failed driver stops the rest.
    let mut done = vec![false; n];
    let mut failure = None;
    while done.iter().any(|d| !d) {
        for (rank, child) in children.iter_mut().enumerate() {
            if done[rank] {
                continue;
            }
            match child.try_wait() {
                Ok(Some(status)) => {
                    done[rank] = true;
                    if status.success() {
                        continue;
                    }
                    if rank == 0 {
                        eprintln!(
                            "spate-launch: the driver ended with {status}; stopping the executors"
                        );
                        failure = Some(status.code().unwrap_or(1));
                    } else {
                        eprintln!("spate-launch: executor {rank} ended with {status}");
                    }
                }
                Ok(None) => {}
                Err(e) => return Err(format!("cannot wait for rank {rank}: {e}")),
            }
        }
        if failure.is_some() {
            stop(&mut children);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(match failure {
        None => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1).max(1)),
    })
}

fn number(value: Option<String>, flag: &str) -> Result<usize, String> {
    let value = value.ok_or_else(|| format!("{flag} needs a number"))?;
    value
        .parse()
        .map_err(|_| format!("{flag} {value:?} is not a number"))
}

/// A loopback port free right now.
fn free_port() -> Result<u16, String> {
    let probe = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("cannot find a free port: {e}"))?;
    probe
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

fn stop(children: &mut [Child]) {
    for child in children.iter_mut() {
        let _ = child.kill();
    }
    for child in children.iter_mut() {
        let _ = child.wait();
    }
}
