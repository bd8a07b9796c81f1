//! The provider's HTTP server: axum over the server kit's guarded listener, so the HTTP face
//! has the same connection cap and handshake and idle timeouts as the gRPC one.

use std::{io, net::SocketAddr, pin::Pin};

use fleet_shared::listener::{GuardedStream, ServerLimits, incoming};
use futures::{Stream, StreamExt};
use tokio::net::TcpListener;
use tonic::transport::server::Connected;

/// Connections accepted within the kit's limits, as axum takes them.
pub struct GuardedListener {
    local: SocketAddr,
    incoming: Pin<Box<dyn Stream<Item = io::Result<GuardedStream>> + Send>>,
}

impl GuardedListener {
    /// Accepts on `listener` within `limits`.
    pub fn new(listener: TcpListener, limits: ServerLimits) -> io::Result<Self> {
        Ok(Self {
            local: listener.local_addr()?,
            incoming: Box::pin(incoming(listener, limits)),
        })
    }
}

/// The address of the client at the other end of a connection (axum's `ConnectInfo`).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, GuardedListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, GuardedListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

impl axum::serve::Listener for GuardedListener {
    type Io = GuardedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            // The kit's stream handles accept errors itself and never ends.
            if let Some(Ok(stream)) = self.incoming.next().await {
                let peer = stream
                    .connect_info()
                    .remote_addr()
                    .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
                return (stream, peer);
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
