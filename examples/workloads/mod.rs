//! The benchmark workloads as a user writes them, shared by the examples
//! and `benches/engine.rs` so that both measure the same programs.
//!
//! Malformed input lines are skipped and counted in the `malformed`
//! accumulator, never dropped silently.
#![allow(dead_code)]

use spate::{Accumulator, Context, ContextBuilder, EventLog, Rdd, Str};
use std::io::IsTerminal;
use std::sync::Arc;

/// Every example's `--ui`: the live web UI while it runs.
#[derive(clap::Args)]
pub struct UiArgs {
    /// Serve the live web UI on 127.0.0.1 while the program runs (on a
    /// terminal, the program then waits for Enter before it exits, so the
    /// finished jobs can still be looked at).
    #[arg(long)]
    pub ui: bool,
    /// The web UI's port (0 picks a free one).
    #[arg(long, default_value_t = 4040, requires = "ui")]
    pub ui_port: u16,
}

impl UiArgs {
    /// `builder`, with the web UI turned on when `--ui` asks for it.
    pub fn apply(&self, builder: ContextBuilder) -> ContextBuilder {
        if self.ui {
            builder.ui_port(self.ui_port)
        } else {
            builder
        }
    }

    /// A context as `Context::new()` builds it, with the web UI if asked.
    pub fn context(&self) -> spate::Result<Context> {
        self.apply(Context::builder()).build()
    }

    /// With the UI on and a person at the terminal: keeps the program (and
    /// its UI) up until they press Enter.
    pub fn linger(&self, ctx: &Context) {
        if let Some(url) = ctx.ui_url()
            && std::io::stdin().is_terminal()
        {
            eprintln!("the web UI stays up at {url} until you press Enter");
            let _ = std::io::stdin().read_line(&mut String::new());
        }
    }
}

/// A context (with a memory budget when given, and the web UI when `ui`
/// asks for it) and an event log that records its jobs when `verbose` (for
/// `--verbose` stage reports).
pub fn context(
    verbose: bool,
    memory: Option<usize>,
    ui: &UiArgs,
) -> spate::Result<(Context, Arc<EventLog>)> {
    let mut builder = ui.apply(Context::builder());
    if let Some(bytes) = memory {
        builder = builder.memory_limit(bytes);
    }
    let ctx = builder.build()?;
    let log = Arc::new(EventLog::default());
    if verbose {
        ctx.add_listener(log.clone());
    }
    Ok((ctx, log))
}

/// Reports skipped lines, the stage report and the job time on stderr.
pub fn finish(
    ctx: &Context,
    name: &str,
    malformed: &Accumulator<u64>,
    log: &EventLog,
    started: std::time::Instant,
) {
    // In cluster mode every process runs the program; the driver reports.
    if !ctx.is_driver() {
        return;
    }
    if malformed.value() > 0 {
        eprintln!("skipped {} malformed lines", malformed.value());
    }
    eprint!("{}", log.stage_report());
    eprintln!(
        "JOBTIME spate-{name} {:.3}",
        started.elapsed().as_secs_f64()
    );
}

/// Word counts: lines split on ASCII whitespace.
pub fn word_counts(lines: &Rdd<String>) -> Rdd<(Str, u64)> {
    lines
        .flat_map(|line| {
            line.split_ascii_whitespace()
                .map(Str::from)
                .collect::<Vec<_>>()
        })
        .map(|word| (word, 1u64))
        .reduce_by_key(|a, b| a + b)
}

/// `key<TAB>value` lines as pairs.
pub fn parse_pairs(lines: &Rdd<String>, malformed: &Accumulator<u64>) -> Rdd<(Str, Str)> {
    let bad = malformed.clone();
    lines.flat_map(move |line| match line.split_once('\t') {
        Some((k, v)) => Some((Str::from(k), Str::from(v))),
        None => {
            bad.add(1);
            None
        }
    })
}

/// `key<TAB>value` lines sorted by key, as `key<TAB>value` lines.
pub fn sorted_lines(
    lines: &Rdd<String>,
    partitions: Option<usize>,
    malformed: &Accumulator<u64>,
) -> spate::Result<Rdd<String>> {
    Ok(parse_pairs(lines, malformed)
        .sort_by_key(spate::Order::Ascending, partitions)?
        .map(|(k, v)| format!("{k}\t{v}")))
}

/// Integer values summed per key, as `key<TAB>sum` lines.
pub fn group_sums(lines: &Rdd<String>, malformed: &Accumulator<u64>) -> Rdd<String> {
    let bad = malformed.clone();
    lines
        .flat_map(move |line| {
            let parsed = line
                .split_once('\t')
                .and_then(|(k, v)| Some((Str::from(k), v.parse::<i64>().ok()?)));
            if parsed.is_none() {
                bad.add(1);
            }
            parsed
        })
        .reduce_by_key(|a, b| a + b)
        .map(|(k, sum)| format!("{k}\t{sum}"))
}

/// `oid<TAB>cid<TAB>amount` orders joined with `cid<TAB>name` customers,
/// as `oid<TAB>cid<TAB>amount<TAB>name` lines.
pub fn joined_orders(
    orders: &Rdd<String>,
    customers: &Rdd<String>,
    malformed: &Accumulator<u64>,
) -> Rdd<String> {
    let bad = malformed.clone();
    let orders = orders.flat_map(move |line| {
        let mut f = line.split('\t');
        let parsed = match (f.next(), f.next(), f.next(), f.next()) {
            (Some(oid), Some(cid), Some(amount), None) => {
                Some((Str::from(cid), (Str::from(oid), Str::from(amount))))
            }
            _ => None,
        };
        if parsed.is_none() {
            bad.add(1);
        }
        parsed
    });
    let bad = malformed.clone();
    let customers = customers.flat_map(move |line| {
        let parsed = line
            .split_once('\t')
            .map(|(cid, name)| (Str::from(cid), Str::from(name)));
        if parsed.is_none() {
            bad.add(1);
        }
        parsed
    });
    orders
        .join(&customers)
        .map(|(cid, ((oid, amount), name))| format!("{oid}\t{cid}\t{amount}\t{name}"))
}

/// Parses a byte size such as `256MB`, `64MiB`, `1GB` or `4096` (binary
/// units: MB and MiB both mean 2^20 bytes).
pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let n: usize = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 256MB"))?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        other => return Err(format!("unknown size unit {other:?} in {text:?}")),
    };
    n.checked_mul(1usize << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// `HOST:PORT` as its parts (the streaming examples' address argument).
pub fn host_port(addr: &str) -> spate::Result<(String, u16)> {
    addr.rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
        .ok_or_else(|| spate::Error::InvalidArgument(format!("expected HOST:PORT, got {addr:?}")))
}
