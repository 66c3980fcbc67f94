//! `llm-cost`: the metering core on the command line.
//!
//! `llm-cost price [--pricing FILE] [--request FILE] RESPONSE` prints the cost record of a recorded
//! response body (JSON or SSE, detected) as one JSON line: the same record the Envoy filter and the
//! Worker produce for the same bytes. `llm-cost pricing import|diff` keeps price tables current; `llm-cost pricing show MODEL`
//! prints the prices a call of MODEL would be charged.
//! `llm-cost report` sums stored records; `llm-cost collect` receives and stores them;
//! `llm-cost key-id` hashes an API key read from stdin. `llm-cost billing fetch` reads what a
//! provider billed; `llm-cost reconcile` compares it with the records. `llm-cost budgets status`
//! shows spend against the budget rules from a collector's totals.

mod billing;
mod budgets;
mod collect;
mod explain;
mod fetch;
mod grouping;
mod key_id;
mod ledger;
mod price;
mod pricing;
mod reconcile;
mod report;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "llm-cost",
    version,
    about = "Exact cost of LLM API calls, from recorded responses"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the cost record of one response body as one JSON line.
    Price(price::PriceArgs),
    /// Import and compare price tables.
    #[command(subcommand)]
    Pricing(pricing::PricingCommand),
    /// Spend totals and breakdowns over NDJSON cost records.
    Report(report::ReportArgs),
    /// Receive NDJSON cost records over HTTP and append them to daily files (or PostgreSQL).
    Collect(collect::CollectArgs),
    /// Print the `key_id` of the API key read from stdin (for budgets and adjustments).
    KeyId(key_id::KeyIdArgs),
    /// Read what a provider billed (its usage and cost APIs, admin key from the environment).
    #[command(subcommand)]
    Billing(billing::BillingCommand),
    /// Spend against the budget rules, from a collector (`budgets status`).
    #[command(subcommand)]
    Budgets(budgets::BudgetsCommand),
    /// Compare metered records with billing rows; exit 1 when a group is outside the tolerance.
    Reconcile(reconcile::ReconcileArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Price(args) => price::run(&args),
        Command::Pricing(command) => pricing::run(&command),
        Command::Report(args) => report::run(&args),
        Command::Collect(args) => collect::run(&args),
        Command::KeyId(args) => key_id::run(&args),
        Command::Billing(command) => billing::run(&command),
        Command::Budgets(command) => budgets::run(&command),
        Command::Reconcile(args) => match reconcile::run(&args) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(1),
            Err(message) => Err(message),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("llm-cost: {message}");
            ExitCode::from(2)
        }
    }
}
