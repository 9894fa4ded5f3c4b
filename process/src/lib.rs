//! What Rill's server binaries (`rill-broker`, `rill-controller`,
//! `rill-operator`) share as processes, so each keeps only what differs:
//!
//! - [`logging`]: the `--log-format` choice, the `--log` filter check and
//!   the tracing setup (log lines on stderr).
//! - [`run`]: the SIGTERM/SIGINT shutdown future, running a server until it
//!   resolves or the server fails, with the exit codes the binaries
//!   document, draining the gRPC server on shutdown, and the
//!   `RILL_READY key=value ...` line tools and tests parse.
//! - [`http`]: the `/metrics`, `/healthz` and `/readyz` router, where each
//!   process says how it renders metrics and when it is ready, and the
//!   server task that runs it.
//! - [`metrics`]: Prometheus text encoding, metric registration and the
//!   latency buckets, and the per-request metrics of the gRPC services.
//! - [`config`]: the configuration error that names a flag and its
//!   environment variable.
//! - [`tls`]: the `--internal-tls-*` flags and mutual TLS between Rill's
//!   own processes (replication, controller, the gRPC client API).

pub mod config;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod run;
pub mod tls;
