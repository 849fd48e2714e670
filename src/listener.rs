//! The accept loop: hyper's HTTP/1.1 connection driver around the warp
//! routes, owned here rather than by `warp::serve` for three reasons:
//! a header read timeout (a client that trickles its headers cannot hold
//! a connection), the client address as a plain request extension, and
//! the WebSocket upgrade handed to the chat as a cloneable slot, so the
//! chat can size tungstenite's buffers for idle sockets (warp's `Ws` does
//! not expose them; its defaults cost 128 KiB per socket).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use warp::filters::BoxedFilter;
use warp::reply::Response;

/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The peer address of the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// The connection's pending upgrade, taken once by the WebSocket route.
#[derive(Clone, Default)]
pub struct UpgradeSlot(Arc<Mutex<Option<OnUpgrade>>>);

impl UpgradeSlot {
    /// The upgrade, if nobody took it yet.
    pub fn take(&self) -> Option<OnUpgrade> {
        self.0.lock().ok()?.take()
    }
}

/// Serves `routes` on `listener` until `stop` completes, then lets open
/// connections finish for at most `drain`.
///
/// At most `max_connections` HTTP connections are served at once: the loop
/// stops accepting until one closes, and the kernel's backlog holds the
/// rest. A connection upgraded to a WebSocket leaves hyper and frees its
/// place; sockets are bounded per user by the chat instead.
pub async fn serve(
    listener: TcpListener,
    routes: BoxedFilter<(Response,)>,
    max_connections: usize,
    stop: impl Future<Output = ()>,
    drain: Duration,
) {
    let graceful = GracefulShutdown::new();
    let service = warp::service(routes);
    let places = Arc::new(Semaphore::new(max_connections));
    let mut full = false;
    tokio::pin!(stop);
    loop {
        if places.available_permits() == 0 && !full {
            tracing::warn!(
                max_connections,
                "connection limit reached; new connections wait"
            );
        }
        full = places.available_permits() == 0;
        let place = tokio::select! {
            place = places.clone().acquire_owned() => match place {
                Ok(place) => place,
                Err(_) => break,
            },
            _ = &mut stop => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors, say: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(Prepare {
            inner: service.clone(),
            peer,
        });
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(place);
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {drain:?}; closing them");
    }
}

/// Adds the client address and the upgrade slot to every request.
#[derive(Clone)]
struct Prepare<S> {
    inner: S,
    peer: SocketAddr,
}

impl<S, B> tower_service::Service<hyper::Request<B>> for Prepare<S>
where
    S: tower_service::Service<hyper::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: hyper::Request<B>) -> Self::Future {
        let ext = req.extensions_mut();
        ext.insert(ClientAddr(self.peer));
        if let Some(upgrade) = ext.remove::<OnUpgrade>() {
            ext.insert(UpgradeSlot(Arc::new(Mutex::new(Some(upgrade)))));
        }
        self.inner.call(req)
    }
}
