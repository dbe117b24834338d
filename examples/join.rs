//! Inner join of orders with customers on the customer id.
//!
//! ```text
//! cargo run --release --example join -- ORDERS CUSTOMERS --output DIR
//! ```
//! ORDERS holds `oid<TAB>cid<TAB>amount` lines, CUSTOMERS `cid<TAB>name`
//! lines; writes `oid<TAB>cid<TAB>amount<TAB>name` lines. Malformed lines
//! are skipped and counted (the count is printed).

mod workloads;

use clap::Parser;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser)]
#[command(about = "Join orders with customers with Spate")]
struct Args {
    /// `oid<TAB>cid<TAB>amount` lines.
    orders: PathBuf,
    /// `cid<TAB>name` lines.
    customers: PathBuf,
    /// Output directory (must not exist).
    #[arg(long)]
    output: PathBuf,
    /// Print each stage's duration and shuffle volume on stderr.
    #[arg(long)]
    verbose: bool,
    #[command(flatten)]
    ui: workloads::UiArgs,
}

fn main() -> Result<(), spate::Report> {
    let args = Args::parse();
    let started = Instant::now();
    let (ctx, log) = workloads::context(args.verbose, None, &args.ui)?;
    let malformed = ctx.sum_accumulator::<u64>("malformed lines");
    let n = ctx.default_parallelism();
    let orders = ctx.text_file(&args.orders, n)?;
    let customers = ctx.text_file(&args.customers, n)?;
    workloads::joined_orders(&orders, &customers, &malformed).save_as_text_file(&args.output)?;
    workloads::finish(&ctx, "join", &malformed, &log, started);
    args.ui.linger(&ctx);
    Ok(())
}
