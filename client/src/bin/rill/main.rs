//! `rill`: the command-line client for Rill brokers.
//!
//! This file owns argument parsing (one clap struct per subcommand), the
//! connection to the broker and error reporting: every failure is printed
//! as one `error: ...` line on stderr and the exit code is 1 (2 for usage
//! errors, from clap). A closed stdout (`rill consume ... | head`) ends the
//! program quietly with 0. The subcommands live in their own modules:
//! [`topic`] (create/list/describe/delete), [`produce`] (lines from stdin
//! or files), [`consume`] (values to stdout, optionally following) and
//! [`offsets`].

mod consume;
mod offsets;
mod produce;
mod table;
mod topic;

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use rill_client::Client;

/// Command-line client for Rill, a Kafka-compatible replicated commit log.
#[derive(Debug, Parser)]
#[command(name = "rill", version, about, long_about = None)]
struct Cli {
    /// Address (host:port) of a broker's client API.
    #[arg(
        long,
        global = true,
        env = "RILL_BROKER",
        default_value = "127.0.0.1:9093"
    )]
    broker: String,
    /// Seconds to wait for each broker reply (long polls wait longer).
    #[arg(long, global = true, env = "RILL_TIMEOUT", default_value_t = 30.0, value_parser = parse_seconds)]
    timeout: f64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, list, describe and delete topics.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// Send lines from stdin or files as records (one line = one record).
    Produce(produce::ProduceArgs),
    /// Print records' values to stdout, one per line.
    Consume(consume::ConsumeArgs),
    /// Show the earliest and latest offsets of each partition, or the
    /// offsets for a timestamp.
    Offsets(offsets::OffsetsArgs),
}

/// Writes a line to stderr, ignoring a closed stderr.
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = io::stdout().flush();
            note!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = Client::connect(&cli.broker)
        .await?
        .with_request_timeout(Duration::from_secs_f64(cli.timeout));
    match cli.command {
        Command::Topic(cmd) => topic::run(&client, cmd).await,
        Command::Produce(args) => produce::run(&client, args).await,
        Command::Consume(args) => consume::run(&client, args).await,
        Command::Offsets(args) => offsets::run(&client, args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
