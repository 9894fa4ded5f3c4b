//! Logging of `rill-broker`, `rill-controller` and `rill-operator`: tracing
//! to stderr, text or JSON lines, filtered by an `EnvFilter` expression
//! (`--log`, or `--log-filter` for the operator).

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}

/// Checks a `--log` filter; the error says what is wrong with it.
pub fn check_filter(filter: &str) -> Result<(), String> {
    EnvFilter::try_new(filter)
        .map(drop)
        .map_err(|e| format!("bad filter {filter:?}: {e}"))
}

/// Installs the global tracing subscriber: lines on stderr, coloured only
/// for a terminal. A filter that does not parse (configuration validation
/// has refused it already) falls back to `info`.
pub fn init(filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a terminal, not for files and log collectors.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
