//! The accepting side of every server: a cap on open connections, deadlines for connections
//! that say nothing, and an accept loop that backs off when the process runs out of file
//! descriptors instead of spinning on the error.
//!
//! The per-request and per-connection HTTP/2 limits (request timeout, concurrent streams,
//! keepalive pings) are set on the tonic server in [`crate::server`], from the same
//! [`ServerLimits`].

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use futures::Stream;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
    time::Sleep,
};
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::config::EnvReader;

/// How much one server takes on. Read from the environment with the other common settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// `FLEET_MAX_CONNECTIONS`: open connections at once; more are closed as soon as they are
    /// accepted (default 512).
    pub max_connections: usize,
    /// `FLEET_HANDSHAKE_TIMEOUT_SECS`: a new connection that sends nothing for this long is
    /// closed (default 10).
    pub handshake_timeout: Duration,
    /// `FLEET_IDLE_TIMEOUT_SECS`: a connection from which nothing arrives for this long is
    /// closed (default 120). The server pings every quarter of it, so a live client, which
    /// answers pings, is never idle.
    pub idle_timeout: Duration,
    /// `FLEET_REQUEST_TIMEOUT_SECS`: the longest one call may take, its request body included
    /// (default 300; a caller's shorter `grpc-timeout` wins).
    pub request_timeout: Duration,
    /// `FLEET_MAX_CONCURRENT_STREAMS`: calls in flight on one connection (default 100).
    pub max_concurrent_streams: u32,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(300),
            max_concurrent_streams: 100,
        }
    }
}

impl ServerLimits {
    /// Reads the limits; a zero anywhere is a problem recorded in `env` (and the default is
    /// kept, the start fails anyway).
    pub fn read(env: &mut EnvReader) -> Self {
        let default = Self::default();
        let mut positive = |name: &str, default: u64| {
            let value = env.parsed(name, default);
            if value == 0 {
                env.problem(format!("{name} must be at least 1"));
                default
            } else {
                value
            }
        };
        let max_connections = positive("FLEET_MAX_CONNECTIONS", default.max_connections as u64);
        let handshake = positive(
            "FLEET_HANDSHAKE_TIMEOUT_SECS",
            default.handshake_timeout.as_secs(),
        );
        let idle = positive("FLEET_IDLE_TIMEOUT_SECS", default.idle_timeout.as_secs());
        let request = positive(
            "FLEET_REQUEST_TIMEOUT_SECS",
            default.request_timeout.as_secs(),
        );
        let streams = positive(
            "FLEET_MAX_CONCURRENT_STREAMS",
            u64::from(default.max_concurrent_streams),
        );
        Self {
            max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
            handshake_timeout: Duration::from_secs(handshake),
            idle_timeout: Duration::from_secs(idle),
            request_timeout: Duration::from_secs(request),
            max_concurrent_streams: u32::try_from(streams).unwrap_or(u32::MAX),
        }
    }

    /// How often the server pings each connection (a quarter of the idle timeout).
    pub fn keepalive_interval(&self) -> Duration {
        (self.idle_timeout / 4).max(Duration::from_millis(250))
    }
}

/// The connections `listener` accepts, within `limits`, as a stream for tonic. Never yields an
/// error: accept errors are handled here (see [`Backoff`]).
pub fn incoming(
    listener: TcpListener,
    limits: ServerLimits,
) -> impl Stream<Item = io::Result<GuardedStream>> + Send + 'static {
    let state = Acceptor {
        listener,
        permits: Arc::new(Semaphore::new(limits.max_connections)),
        limits,
        backoff: Backoff::default(),
        refused: 0,
        last_warning: None,
    };
    futures::stream::unfold(state, |mut state| async move {
        let stream = state.next().await;
        Some((Ok(stream), state))
    })
}

struct Acceptor {
    listener: TcpListener,
    permits: Arc<Semaphore>,
    limits: ServerLimits,
    backoff: Backoff,
    /// Connections closed at the cap since the last warning.
    refused: u64,
    last_warning: Option<Instant>,
}

impl Acceptor {
    /// Waits for the next connection this server takes.
    async fn next(&mut self) -> GuardedStream {
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(accepted) => {
                    self.backoff.reset();
                    accepted
                }
                Err(error) => {
                    if let Some(pause) = self.backoff.after(&error) {
                        if self.warn_now() {
                            tracing::warn!(%error, pause_ms = pause.as_millis() as u64, "cannot accept connections; backing off");
                        }
                        tokio::time::sleep(pause).await;
                    }
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
                // At the cap: closing at once tells the client, where leaving it in the
                // backlog would make it wait for nothing.
                drop(stream);
                self.refused += 1;
                if self.warn_now() {
                    tracing::warn!(
                        refused = self.refused,
                        max_connections = self.limits.max_connections,
                        "connection limit reached; closing new connections"
                    );
                    self.refused = 0;
                }
                continue;
            };
            // Without TCP_NODELAY, a reply's headers, data and trailers wait on delayed ACKs:
            // ~40 ms added to every call.
            let _ = stream.set_nodelay(true);
            tracing::trace!(%peer, "connection accepted");
            return GuardedStream::new(stream, permit, &self.limits);
        }
    }

    /// Whether to log a warning now: at most one every ten seconds, so a flood does not
    /// become a flood of logs.
    fn warn_now(&mut self) -> bool {
        let now = Instant::now();
        let due = self
            .last_warning
            .is_none_or(|last| now.duration_since(last) >= Duration::from_secs(10));
        if due {
            self.last_warning = Some(now);
        }
        due
    }
}

/// How long to pause accepting after an error. Running out of file descriptors or memory
/// (EMFILE, ENFILE, ENOBUFS, ENOMEM) lasts until connections close: accepting again at once
/// fails again at once, so the loop pauses, 10 ms at first, doubling up to a second. Other
/// errors concern one connection (it was reset before it was accepted) and need no pause.
#[derive(Debug, Default)]
pub struct Backoff {
    next: Option<Duration>,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);

    /// The pause after `error`, if it calls for one.
    pub fn after(&mut self, error: &io::Error) -> Option<Duration> {
        const ENOMEM: i32 = 12;
        const ENFILE: i32 = 23;
        const EMFILE: i32 = 24;
        const ENOBUFS: i32 = 105;
        if !matches!(
            error.raw_os_error(),
            Some(ENOMEM | ENFILE | EMFILE | ENOBUFS)
        ) {
            return None;
        }
        let pause = self.next.unwrap_or(Self::FIRST);
        self.next = Some((pause * 2).min(Self::MAX));
        Some(pause)
    }

    /// After a successful accept.
    pub fn reset(&mut self) {
        self.next = None;
    }
}

/// An accepted connection holding its place under the cap until it is dropped, and closed
/// (its reads fail) when the peer sends nothing for too long: [`ServerLimits::handshake_timeout`]
/// before its first byte, [`ServerLimits::idle_timeout`] after.
pub struct GuardedStream {
    inner: TcpStream,
    _permit: OwnedSemaphorePermit,
    silence: Pin<Box<Sleep>>,
    idle_timeout: Duration,
}

impl GuardedStream {
    fn new(inner: TcpStream, permit: OwnedSemaphorePermit, limits: &ServerLimits) -> Self {
        Self {
            inner,
            _permit: permit,
            silence: Box::pin(tokio::time::sleep(limits.handshake_timeout)),
            idle_timeout: limits.idle_timeout,
        }
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let deadline = tokio::time::Instant::now() + self.idle_timeout;
                    self.silence.as_mut().reset(deadline);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            // Polling the timer registers this task to be woken when the silence is too long.
            Poll::Pending => match self.silence.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the peer sent nothing for too long",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl Connected for GuardedStream {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os_error(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    #[test]
    fn running_out_of_descriptors_pauses_longer_each_time_up_to_a_second() {
        let mut backoff = Backoff::default();
        let pauses: Vec<_> = (0..10)
            .filter_map(|_| backoff.after(&os_error(24)))
            .collect();
        assert_eq!(pauses.len(), 10);
        assert_eq!(pauses[0], Duration::from_millis(10));
        assert_eq!(pauses[1], Duration::from_millis(20));
        assert!(pauses.windows(2).all(|w| w[1] >= w[0]), "{pauses:?}");
        assert_eq!(pauses[9], Duration::from_secs(1));
        backoff.reset();
        assert_eq!(
            backoff.after(&os_error(23)),
            Some(Duration::from_millis(10))
        );
    }

    #[test]
    fn an_error_of_one_connection_needs_no_pause() {
        let mut backoff = Backoff::default();
        for code in [
            103, /* ECONNABORTED */
            104, /* ECONNRESET */
            71,  /* EPROTO */
        ] {
            assert_eq!(backoff.after(&os_error(code)), None, "{code}");
        }
        assert_eq!(backoff.after(&io::Error::other("not an OS error")), None);
    }
}
