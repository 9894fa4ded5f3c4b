//! One Kafka client connection.
//!
//! A reader task cuts the socket into frames and hands them over a small
//! bounded channel (so a slow consumer of responses slows the reader
//! down). The connection task decodes each frame and starts its request in
//! arrival order in a [`FuturesOrdered`]: up to [`MAX_IN_FLIGHT`] requests
//! run concurrently (clients pipeline, e.g. `max.in.flight.requests.per.connection`)
//! and responses are written strictly in request order. Responses that
//! are done at the same time are written together and flushed once; the
//! socket is read through a 64 KiB buffer.
//!
//! Requests are polled for the first time in arrival order, and a produce
//! appends to the log within its first poll (only the durability wait comes
//! after), so the appends of one connection happen in the order its
//! requests arrived. Idempotent producers rely on that.
//!
//! A frame that is too large or cannot be decoded stops the reading: the
//! responses of the requests before it are still written, then the
//! connection is closed, with one log line. It never affects another
//! connection.
//!
//! Every frame's bytes are reserved from the broker-wide budget of
//! [`super::memory`] before its body is read, and returned once its request
//! has been served.
//!
//! Client quotas (see [`super::throttle`]): an answer that comes with a
//! throttle is written first; then no further request is read from the
//! connection until the throttle has passed (requests already running
//! finish and are answered).
//!
//! Security (see [`crate::security`]): on a TLS listener the handshake
//! runs first; a plaintext client or a failed handshake closes the
//! connection with a log line. SaslHandshake and SaslAuthenticate are
//! answered here, in arrival order, by the connection's [`Session`]; every
//! other request is admitted by the session (before authentication only
//! ApiVersions is) and runs as the session's principal.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::KafkaContext;
use super::authz::Caller;
use super::dispatch::{self, Answer, Decoded, Request};
use super::frame::{self, EncodeError, FrameError, Reply};
use super::memory::Reserved;
use super::throttle::Throttle;
use crate::security::sasl::{Admission, After};
use crate::security::{ListenerSecurity, Session};

/// Requests of one connection running at the same time. The Java client
/// pipelines 5 by default, as librdkafka does with idempotence (more
/// wait in the socket); each running produce holds its records in memory
/// until acks=all completes, so this bounds a producing connection's
/// memory (about 16 MB with 1 MB requests and the frames read ahead).
pub const MAX_IN_FLIGHT: usize = 8;
/// Frames read ahead of the requests started.
const FRAME_QUEUE: usize = 8;

type Pending = Pin<Box<dyn Future<Output = Result<Answer, EncodeError>> + Send>>;

/// Counts the connection in `rill_kafka_connections` while it lives.
struct ConnectionGauge(prometheus::IntGauge);

impl ConnectionGauge {
    fn new(gauge: prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Serves one connection until the client closes it, it sends something
/// that cannot be served, or `stop` is cancelled (then in-flight requests
/// finish and their responses are written first).
pub async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<KafkaContext>,
    security: ListenerSecurity,
    stop: CancellationToken,
) {
    let _gauge = ConnectionGauge::new(ctx.metrics.kafka_connections.clone());
    if let Err(e) = stream.set_nodelay(true) {
        debug!(%peer, error = %e, "cannot set TCP_NODELAY");
    }
    match &security.tls {
        None => {
            let (read_half, write_half) = stream.into_split();
            let session = security.session(None);
            serve_requests(read_half, write_half, peer, ctx, session, stop).await;
        }
        Some(tls) => match tls.accept(stream).await {
            Ok((stream, certificate)) => {
                if let Some(principal) = &certificate {
                    debug!(%peer, %principal, "Kafka client identified by its certificate");
                }
                let (read_half, write_half) = tokio::io::split(stream);
                let session = security.session(certificate);
                serve_requests(read_half, write_half, peer, ctx, session, stop).await;
            }
            Err(refusal) => {
                ctx.metrics
                    .kafka_connection_errors
                    .with_label_values(&[refusal.metric_label()])
                    .inc();
                info!(%peer, error = %refusal, "Kafka connection refused before its first request");
            }
        },
    }
}

/// Serves the requests of an established (and, on a TLS listener,
/// encrypted) connection.
async fn serve_requests<R, W>(
    read_half: R,
    write_half: W,
    peer: SocketAddr,
    ctx: Arc<KafkaContext>,
    mut session: Session,
    stop: CancellationToken,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send,
{
    let mut write_half = BufWriter::with_capacity(WRITE_BUFFER, write_half);
    let (frames_tx, mut frames) = mpsc::channel(FRAME_QUEUE);
    let reader = tokio::spawn(read_frames(
        read_half,
        ctx.settings.max_request_bytes,
        frames_tx,
        Arc::clone(&ctx),
    ));
    let mut in_flight: FuturesOrdered<Pending> = FuturesOrdered::new();
    let mut reading = true;
    // Until when no request is read: the client exceeded a quota.
    let mut muted: Option<Instant> = None;
    loop {
        if !reading && in_flight.is_empty() {
            break;
        }
        let unmute = tokio::time::Instant::from_std(muted.unwrap_or_else(Instant::now));
        tokio::select! {
            biased;
            Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                if !write_responses(&mut write_half, done, &mut in_flight, &ctx, peer, &mut muted).await {
                    break;
                }
            }
            () = tokio::time::sleep_until(unmute), if muted.is_some() => {
                muted = None;
            }
            next = frames.recv(), if reading && muted.is_none() && in_flight.len() < MAX_IN_FLIGHT => match next {
                None => reading = false,
                Some(Err(e)) => {
                    ctx.metrics.kafka_connection_errors.with_label_values(&[frame_label(&e)]).inc();
                    info!(%peer, error = %e, "unreadable Kafka request frame; closing the connection");
                    reading = false;
                }
                Some(Ok((frame, reserved))) => match dispatch::decode(&ctx, frame) {
                    Ok(decoded) => match start(&ctx, &mut session, decoded, peer) {
                        Ok(pending) => in_flight.push_back(holding(pending, reserved)),
                        Err(pending) => {
                            in_flight.extend(pending.map(|p| holding(p, reserved)));
                            reading = false;
                        }
                    },
                    Err(e) => {
                        ctx.metrics.kafka_connection_errors.with_label_values(&[e.metric_label()]).inc();
                        info!(%peer, error = %e, "Kafka request cannot be served; closing the connection");
                        reading = false;
                    }
                },
            },
            () = stop.cancelled(), if reading => reading = false,
        }
    }
    reader.abort();
    let _ = write_half.shutdown().await;
    if let Some(shares) = &ctx.shares {
        // Like Kafka: what a closed connection's share consumers held goes
        // back to the others at once, not when its locks expire.
        shares.connection_closed(peer).await;
    }
}

/// `pending`, returning `reserved` to the request byte budget once served.
fn holding(pending: Pending, reserved: Reserved) -> Pending {
    Box::pin(pending.map(move |answer| {
        drop(reserved);
        answer
    }))
}

/// Writes `first` and every later response that is already done, then
/// flushes once: responses completed together (an acks=all high watermark
/// advance finishes several pipelined produces at once) leave in one
/// write. A response that comes with a throttle extends `muted`. Returns
/// false when the connection must close.
async fn write_responses<W: AsyncWrite + Unpin>(
    out: &mut BufWriter<W>,
    first: Result<Answer, EncodeError>,
    in_flight: &mut FuturesOrdered<Pending>,
    ctx: &KafkaContext,
    peer: SocketAddr,
    muted: &mut Option<Instant>,
) -> bool {
    let mut next = Some(first);
    while let Some(done) = next.take() {
        if let Ok(Answer {
            throttle: Throttle { until: Some(until) },
            ..
        }) = &done
        {
            *muted = Some(muted.map_or(*until, |m| m.max(*until)));
        }
        match done.map(|a| a.frame) {
            Ok(Some(response)) => {
                // Small parts gather in the write buffer; a part larger
                // than the buffer (a record set) goes to the socket as is.
                for part in response.parts() {
                    if let Err(e) = out.write_all(part).await {
                        debug!(%peer, error = %e, "client went away before its response was written");
                        return false;
                    }
                }
                ctx.metrics.kafka_bytes_out.inc_by(response.len() as u64);
            }
            Ok(None) => {}
            Err(e) => {
                warn!(%peer, error = %e, "cannot encode a response; closing the connection");
                // Shutting the writer down flushes what came before.
                return false;
            }
        }
        // Polled without waiting; the connection loop polls `in_flight`
        // again with its own waker before it sleeps.
        next = in_flight.next().now_or_never().flatten();
    }
    if let Err(e) = out.flush().await {
        debug!(%peer, error = %e, "client went away before its response was written");
        return false;
    }
    true
}

/// Starts a decoded request: the SASL requests are answered by the
/// session at once, in arrival order; any other request runs if the
/// session admits it. `Err` carries the last answer (if any) to write
/// before the connection closes.
fn start(
    ctx: &Arc<KafkaContext>,
    session: &mut Session,
    decoded: Decoded,
    peer: SocketAddr,
) -> Result<Pending, Option<Pending>> {
    let Decoded {
        header,
        api,
        request,
        size,
    } = decoded;
    let name = dispatch::api_name(api);
    let (answer, after) = match request {
        Request::SaslHandshake(r) => {
            let (response, after) = session.handshake(header.request_api_version, &r);
            (Reply::from(response).encode(name, &header), after)
        }
        Request::SaslAuthenticate(r) => {
            let mechanism = session.mechanism().unwrap_or("none");
            let (response, after) = session.authenticate(&r, Instant::now());
            let result = match after {
                After::Close(_) => Some("failure"),
                After::Continue if session.mechanism().is_none() => Some("success"),
                After::Continue => None,
            };
            if let Some(result) = result {
                ctx.metrics
                    .kafka_authentications
                    .with_label_values(&[mechanism, result])
                    .inc();
            }
            if result == Some("success") {
                debug!(%peer, principal = %session.principal(), mechanism, "Kafka client authenticated");
            }
            (Reply::from(response).encode(name, &header), after)
        }
        request => {
            return match session.admit(api, Instant::now()) {
                Admission::Admit => Ok(Box::pin(dispatch::handle(
                    Arc::clone(ctx),
                    Decoded {
                        header,
                        api,
                        request,
                        size,
                    },
                    Caller {
                        principal: Arc::clone(session.principal()),
                        host: peer.ip().to_string(),
                        peer,
                    },
                ))),
                Admission::Refuse(why) => {
                    ctx.metrics
                        .kafka_connection_errors
                        .with_label_values(&["unauthenticated"])
                        .inc();
                    info!(%peer, reason = %why, "Kafka request refused; closing the connection");
                    Err(None)
                }
            };
        }
    };
    let pending: Pending = Box::pin(std::future::ready(answer.map(|frame| Answer {
        frame,
        throttle: Throttle::default(),
    })));
    match after {
        After::Continue => Ok(pending),
        After::Close(why) => {
            ctx.metrics
                .kafka_connection_errors
                .with_label_values(&["authentication"])
                .inc();
            info!(%peer, reason = %why, "Kafka client authentication failed; closing the connection");
            Err(Some(pending))
        }
    }
}

fn frame_label(e: &FrameError) -> &'static str {
    match e {
        FrameError::TooLarge { .. } => "frame_too_large",
        FrameError::Negative(_) => "malformed",
        FrameError::Truncated { .. } | FrameError::Io(_) => "io",
    }
}

/// Responses are gathered in a buffer this large before a write (larger
/// ones go out directly).
const WRITE_BUFFER: usize = 64 << 10;

/// Bytes read from the socket at a time: size prefixes and small frames
/// come out of this buffer instead of one `recv` each.
const READ_BUFFER: usize = 64 << 10;

/// Reads frames until the peer closes, an error, or the receiver is gone;
/// each body only once its bytes are reserved from the budget.
async fn read_frames<R: AsyncRead + Unpin>(
    read_half: R,
    max: usize,
    frames: mpsc::Sender<Result<(Bytes, Reserved), FrameError>>,
    ctx: Arc<KafkaContext>,
) {
    let mut read_half = BufReader::with_capacity(READ_BUFFER, read_half);
    loop {
        let next = match frame::read_size(&mut read_half, max).await {
            Ok(Some(size)) => {
                let reserved = ctx.request_memory.reserve(size).await;
                frame::read_body(&mut read_half, size)
                    .await
                    .map(|frame| Some((frame, reserved)))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        let stop = !matches!(next, Ok(Some(_)));
        let item = match next {
            Ok(Some((frame, reserved))) => {
                ctx.metrics
                    .kafka_bytes_in
                    .inc_by((frame.len() + frame::SIZE_PREFIX) as u64);
                Ok((frame, reserved))
            }
            Ok(None) => return,
            Err(e) => Err(e),
        };
        if frames.send(item).await.is_err() || stop {
            return;
        }
    }
}
