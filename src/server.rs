//! Assembles the routes, starts the background tasks and stops gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::{Auth, AuthError};
use crate::backups::Backups;
use crate::config::Config;
use crate::http::{self, Shared, State};
use crate::listener;
use crate::store::{Store, StoreError};
use crate::ws::{self, Hub};

/// How long sockets, then open requests, get to finish after a stop signal.
const DRAIN: Duration = Duration::from_secs(4);

/// Why the server could not start or stop cleanly; printed as one line.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Secrets or password settings are unusable.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The OIDC provider's keys cannot be read or made.
    #[error("the OpenID Connect provider cannot start: {0}")]
    Oidc(String),
    /// The address is taken or not ours.
    #[error("cannot listen on {addr}: {source}; set server.listen in the config file, or SESSIOND_LISTEN, to a free address")]
    Listen {
        /// The configured address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A server that has opened its database and bound its port, not yet serving.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    state: State,
    hub: Hub,
}

impl Application {
    /// Checks the secrets, binds (port 0 picks a port), opens the store
    /// and derives the keys, in that order: what can be refused is refused
    /// before the database is opened, and a failure after it closes the
    /// database again, so a refusal never leaves it to be recovered.
    pub async fn build(config: Config) -> Result<Self, ServerError> {
        Auth::check_config(&config)?;
        let listen = config.server.listen;
        let bind_error = |source| ServerError::Listen {
            addr: listen,
            source,
        };
        let listener = TcpListener::bind(listen).await.map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        // What was bound, port 0 settled: WebAuthn's default origin has it.
        let mut config = config;
        config.server.listen = addr;
        let store = Store::open(&config.storage).await?;
        let auth = match Auth::new(&config, store.clone()).await {
            Ok(auth) => auth,
            Err(e) => {
                if let Err(close) = store.close().await {
                    tracing::warn!(error = %close, "closing the database failed");
                }
                return Err(e.into());
            }
        };
        let provider = async {
            let oidc = crate::oidc::Provider::new(&config, auth.clone()).await?;
            if let Some(p) = &oidc {
                p.check_keys().await?;
            }
            Ok::<_, crate::oidc::OidcError>(oidc)
        };
        let oidc = match provider.await {
            Ok(oidc) => oidc,
            Err(e) => {
                if let Err(close) = store.close().await {
                    tracing::warn!(error = %close, "closing the database failed");
                }
                return Err(ServerError::Oidc(e.to_string()));
            }
        };
        let ws_connections = Arc::new(AtomicU64::new(0));
        let hub = Hub::new(config.chat.max_sockets_per_user, ws_connections.clone());
        let backups = Arc::new(Backups::new(&config, store));
        Ok(Self {
            listener,
            addr,
            state: State::new(Shared {
                auth,
                config,
                ws_connections,
                backups,
                oidc,
            }),
            hub,
        })
    }

    /// The session service, for embedding and for tests that need a user
    /// no public route can make (an admin).
    pub fn auth(&self) -> &Auth {
        &self.state.auth
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` completes, then closes every WebSocket with
    /// 1001, stops accepting, gives open requests a moment, stops the
    /// pruner and flushes the database.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let store = self.state.auth.store().clone();
        let pruner = store.spawn_pruner(
            self.state.config.session.prune_interval,
            self.state.config.audit.retention(),
            stopped(stop_rx.clone()),
        );
        let sender = match crate::mail::SmtpMailer::new(&self.state.config.mail) {
            Ok(Some(mailer)) => Some(tokio::spawn(crate::mail::run_sender(
                self.state.auth.outbox().clone(),
                mailer,
                stopped(stop_rx.clone()),
            ))),
            Ok(None) => None,
            Err(e) => {
                // Checked with the config at start; a transport that still
                // cannot be built leaves mail queued, not the server down.
                tracing::error!(error = %e, "mail cannot be sent");
                None
            }
        };
        let backups = self.state.backups.clone();
        if let Err(e) = backups.publish_access(self.addr) {
            // `sessiond backup` cannot reach this server; nothing else is lost.
            tracing::warn!(error = %e, "cannot write the backup access file");
        }
        let scheduled = self.state.config.backup.clone();
        let scheduler = scheduled.scheduled().then(|| {
            let (backups, stop) = (backups.clone(), stopped(stop_rx.clone()));
            tokio::spawn(async move { backups.run_scheduled(scheduled, stop).await })
        });
        let endings = self.hub.follow_store(store.clone());
        let grants = self.state.oidc.as_ref().map(|p| p.follow_store(&store));
        let chat = ws::routes(self.state.clone(), self.hub.clone());
        let max_connections = self.state.config.server.max_connections;
        let server = tokio::spawn(listener::serve(
            self.listener,
            http::routes(self.state, chat),
            max_connections,
            stopped(stop_rx),
            DRAIN,
        ));
        tracing::info!(storage = %store.backend_name(), addr = %self.addr, "sessiond listening");
        shutdown.await;
        tracing::info!("shutting down");
        // Sockets are detached from hyper's connections: tell them first.
        self.hub.shut_down(DRAIN).await;
        let _ = stop_tx.send(true);
        let _ = server.await;
        let _ = pruner.await;
        if let Some(sender) = sender {
            let _ = sender.await;
        }
        if let Some(scheduler) = scheduler {
            let _ = scheduler.await;
        }
        backups.withdraw_access();
        // It holds a store handle too; the last one closed seals sled.
        drop(backups);
        endings.abort();
        if let Some(grants) = grants {
            grants.abort();
            let _ = grants.await;
        }
        // It holds a store handle: wait until it is dropped.
        let _ = endings.await;
        store.close().await?;
        tracing::info!("stopped");
        Ok(())
    }
}
