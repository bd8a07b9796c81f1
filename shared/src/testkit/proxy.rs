//! A TCP proxy on loopback in front of a backend, that a test can cut and restore: a backend
//! "going down and coming back" for a service, without stopping the real server (whose data
//! and other clients stay as they are).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinHandle,
};

use super::TestkitError;

/// Forwards 127.0.0.1:[`CuttableProxy::port`] to a backend until dropped.
pub struct CuttableProxy {
    port: u16,
    cut: Arc<AtomicBool>,
    /// Tells every forwarding task to drop its connections.
    generation: watch::Sender<u64>,
    task: JoinHandle<()>,
}

impl CuttableProxy {
    /// A proxy to `backend` on a free port.
    pub async fn start(backend: SocketAddr) -> Result<Self, TestkitError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| TestkitError(format!("cannot bind the proxy: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| TestkitError(format!("proxy address: {e}")))?
            .port();
        let cut = Arc::new(AtomicBool::new(false));
        let (generation, _) = watch::channel(0_u64);
        let task = {
            let cut = Arc::clone(&cut);
            let generation = generation.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    // While cut, a connection is closed as soon as it is accepted.
                    if cut.load(Ordering::SeqCst) {
                        continue;
                    }
                    let mut cut_off = generation.subscribe();
                    tokio::spawn(async move {
                        let Ok(mut server) = TcpStream::connect(backend).await else {
                            return;
                        };
                        let mut client = client;
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = cut_off.changed() => {}
                        }
                    });
                }
            })
        };
        Ok(Self {
            port,
            cut,
            generation,
            task,
        })
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The backend is gone for clients: open connections are dropped and new ones closed.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// The backend is back.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}
