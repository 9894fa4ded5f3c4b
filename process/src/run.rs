//! Running a server process: shutdown on SIGTERM (Kubernetes stopping the
//! pod) or SIGINT (Ctrl-C), serving until then or until the server fails,
//! draining the gRPC server on shutdown, the exit code, and the
//! `RILL_READY` line.

use std::fmt::Display;
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::process::ExitCode;

/// The shutdown future [`until_signal`] hands to the server.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Installs SIGTERM and SIGINT handlers now, before the process reports
/// ready, and returns a future that resolves on the first of them. Must run
/// inside the runtime.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}

/// Runs `serve` on a multi-threaded runtime until it returns; `serve` gets
/// the [`shutdown_signal`] future. `binary` prefixes the lines written to
/// stderr and `role` names the server in the error log line. Returns exit
/// code 0 on a clean shutdown and 1 when the runtime, the signal handlers
/// or the server fail.
pub fn until_signal<S, F, E>(binary: &str, role: &str, serve: S) -> ExitCode
where
    S: FnOnce(Shutdown) -> F,
    F: Future<Output = Result<(), E>>,
    E: Display,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{binary}: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let shutdown = match shutdown_signal() {
            Ok(shutdown) => shutdown,
            Err(e) => {
                eprintln!("{binary}: cannot install signal handlers: {e}");
                return Err(None);
            }
        };
        serve(Box::pin(shutdown)).await.map_err(Some)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(None) => ExitCode::FAILURE,
        Err(Some(e)) => {
            tracing::error!(error = %e, "{role} failed");
            eprintln!("{binary}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Serves until `shutdown` resolves or the server fails on its own.
/// `failed` resolves with why the server stopped serving; `stop` shuts it
/// down gracefully. On a failure, `failure` is logged with the error, the
/// server is shut down anyway and the failure is returned.
pub async fn serve_until<H, E: Display>(
    mut server: H,
    shutdown: impl Future<Output = ()>,
    failed: impl AsyncFnOnce(&mut H) -> E,
    stop: impl AsyncFnOnce(H) -> Result<(), E>,
    failure: &str,
) -> Result<(), E> {
    let err = tokio::select! {
        () = shutdown => {
            tracing::info!("shutdown requested");
            return stop(server).await;
        }
        err = failed(&mut server) => err,
    };
    tracing::error!(error = %err, "{failure}");
    if let Err(e) = stop(server).await {
        tracing::error!(error = %e, "shutdown after the failure was not clean");
    }
    Err(err)
}

/// Waits up to `timeout` for a gRPC server task whose stop has been asked
/// for to finish the requests in flight; past that, aborts the task, which
/// closes their connections. An error or a failed task is logged.
pub async fn drain_grpc<E: Display>(
    mut task: tokio::task::JoinHandle<Result<(), E>>,
    timeout: std::time::Duration,
) {
    match tokio::time::timeout(timeout, &mut task).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "gRPC server ended with an error"),
        Ok(Err(e)) => tracing::warn!(error = %e, "gRPC server task failed"),
        Err(_) => {
            tracing::warn!(
                timeout_ms = timeout.as_millis() as u64,
                "in-flight requests did not finish in time; closing their connections"
            );
            task.abort();
        }
    }
}

/// The line a server prints on stdout once serving:
/// `RILL_READY key=value key=value ...`, space-separated fields in the
/// order given, which tools and tests parse to learn port-0 addresses.
pub fn ready_line(fields: &[(&str, &dyn Display)]) -> String {
    let mut line = String::from("RILL_READY");
    for (key, value) in fields {
        line.push_str(&format!(" {key}={value}"));
    }
    line
}

/// Prints [`ready_line`] on stdout and flushes it.
pub fn announce_ready(fields: &[(&str, &dyn Display)]) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", ready_line(fields));
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_fields_when_formatting_the_ready_line_then_they_follow_in_order() {
        let addr: std::net::SocketAddr = "127.0.0.1:9092".parse().expect("addr");
        assert_eq!(
            ready_line(&[("controller", &addr), ("http", &"[::1]:80")]),
            "RILL_READY controller=127.0.0.1:9092 http=[::1]:80"
        );
    }
}
