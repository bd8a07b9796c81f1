//! The apps' endpoints as listening sockets of this process: one per endpoint of the table,
//! bound with `SO_REUSEPORT` so that replicas on one host all serve it. Each endpoint's
//! connections live in its own task set: closing the endpoint drops them all at once.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use hyper::{server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    net::{TcpListener, TcpSocket},
    sync::{Semaphore, watch},
    task::{JoinHandle, JoinSet},
};

use crate::{proxy::Proxy, store::Endpoint};

/// Connections a listener's backlog holds while all its slots are busy.
const BACKLOG: u32 = 256;

/// This process's endpoints.
pub struct Listeners {
    proxy: Arc<Proxy>,
    listen: IpAddr,
    max_connections: usize,
    idle_timeout: Duration,
    open: Mutex<HashMap<u16, Open>>,
}

struct Open {
    endpoint: Endpoint,
    opened: Instant,
    task: JoinHandle<()>,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Listeners {
    /// No endpoints yet; they will listen on `listen`.
    pub fn new(
        proxy: Arc<Proxy>,
        listen: IpAddr,
        max_connections: usize,
        idle_timeout: Duration,
    ) -> Self {
        Self {
            proxy,
            listen,
            max_connections,
            idle_timeout,
            open: Mutex::default(),
        }
    }

    fn open(&self) -> MutexGuard<'_, HashMap<u16, Open>> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A listening socket on `port`, unless another program holds it.
    pub fn bind(&self, port: u16) -> Option<TcpListener> {
        let address = SocketAddr::new(self.listen, port);
        let socket = match address {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .ok()?;
        socket.set_reuseaddr(true).ok()?;
        socket.set_reuseport(true).ok()?;
        socket.bind(address).ok()?;
        socket.listen(BACKLOG).ok()
    }

    /// Serves `endpoint` on `listener` (an endpoint already open on that port is replaced).
    pub fn start(&self, endpoint: Endpoint, listener: TcpListener) {
        let task = tokio::spawn(accept(
            Arc::clone(&self.proxy),
            endpoint.clone(),
            listener,
            Arc::new(Semaphore::new(self.max_connections)),
            self.idle_timeout,
        ));
        tracing::info!(app = %endpoint.app, port = endpoint.port, "endpoint open");
        self.open().insert(
            endpoint.port,
            Open {
                endpoint,
                opened: Instant::now(),
                task,
            },
        );
    }

    /// Makes this process serve exactly `endpoints`, the table as read at `read`: opens those
    /// it lacks, closes the others (and their connections) unless they were opened after
    /// `read`, by a Provision the read did not see.
    pub fn sync(&self, endpoints: &[Endpoint], read: Instant) {
        let stale: Vec<Open> = {
            let mut open = self.open();
            let ports: Vec<u16> = open
                .iter()
                .filter(|(_, o)| o.opened < read && !endpoints.contains(&o.endpoint))
                .map(|(port, _)| *port)
                .collect();
            ports.iter().filter_map(|p| open.remove(p)).collect()
        };
        for closed in stale {
            tracing::info!(app = %closed.endpoint.app, port = closed.endpoint.port, "endpoint closed");
        }
        for endpoint in endpoints {
            self.ensure(endpoint);
        }
    }

    /// Opens `endpoint` unless it is open.
    pub fn ensure(&self, endpoint: &Endpoint) {
        if self.is_open(endpoint) {
            return;
        }
        match self.bind(endpoint.port) {
            Some(listener) => self.start(endpoint.clone(), listener),
            None => tracing::warn!(
                app = %endpoint.app,
                port = endpoint.port,
                "cannot listen on an app's endpoint port; another program holds it"
            ),
        }
    }

    /// Closes every endpoint of `app` but the one on `keep`, with their connections.
    pub fn close_app(&self, app: &str, keep: Option<u16>) {
        let closed: Vec<Open> = {
            let mut open = self.open();
            let ports: Vec<u16> = open
                .iter()
                .filter(|(port, o)| o.endpoint.app == app && Some(**port) != keep)
                .map(|(port, _)| *port)
                .collect();
            ports.iter().filter_map(|p| open.remove(p)).collect()
        };
        for endpoint in closed {
            tracing::info!(app, port = endpoint.endpoint.port, "endpoint closed");
        }
    }

    /// Whether `endpoint` is open here.
    pub fn is_open(&self, endpoint: &Endpoint) -> bool {
        self.open()
            .get(&endpoint.port)
            .is_some_and(|o| o.endpoint == *endpoint)
    }

    /// Closes every endpoint.
    pub fn close_all(&self) {
        self.open().clear();
    }
}

/// Accepts connections on one endpoint while slots are free; they are served in a task set
/// that is dropped, with every connection, when the endpoint closes.
async fn accept(
    proxy: Arc<Proxy>,
    endpoint: Endpoint,
    listener: TcpListener,
    slots: Arc<Semaphore>,
    idle_timeout: Duration,
) {
    let mut connections = JoinSet::new();
    // Dropped with this task: streams that outlive their connection (attach, exec) end then.
    let (_open, closed) = watch::channel(());
    let endpoint = Arc::new(endpoint);
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, port = endpoint.port, "accept failed");
                    continue;
                }
            },
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        // Responses are written in pieces (headers, then body frames): without this, a
        // kept-alive client waits for its delayed ACK between them.
        let _ = stream.set_nodelay(true);
        if !proxy.admits(peer.ip()) {
            tracing::warn!(app = %endpoint.app, peer = %peer.ip(), "connection refused: not an allowed source");
            continue;
        }
        let proxy = Arc::clone(&proxy);
        let endpoint = Arc::clone(&endpoint);
        let closed = closed.clone();
        connections.spawn(async move {
            let _slot = slot;
            let service = service_fn(|request| {
                let proxy = Arc::clone(&proxy);
                let endpoint = Arc::clone(&endpoint);
                let closed = closed.clone();
                async move {
                    let response = proxy.handle(&endpoint, request, closed).await;
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            let served = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(idle_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
            if let Err(error) = served {
                tracing::debug!(%error, "endpoint connection ended");
            }
        });
    }
}
