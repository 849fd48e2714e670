//! sessiond: a self-hosted session and login server whose users and
//! sessions live in an embedded database (sled) on local disk, or on a
//! Redis server shared by any number of instances.
//!
//! The layers, each knowing only those before it:
//!
//! - [`config`]: typed settings from defaults, `config.toml` and environment.
//! - [`domain`]: parsed values every layer shares (`Username`, `Role`, ...).
//! - [`store`]: one interface, two backends (sled, Redis): records,
//!   indexes, pruning, the events every instance follows.
//! - [`mail`]: the outbox and the task that sends it over SMTP.
//! - [`auth`]: passwords, signed cookies, throttling, ID tokens, the
//!   session service.
//! - [`oidc`]: "sign in with sessiond", the OpenID Connect provider:
//!   keys, the code flow, grants hanging off sessions, logout.
//! - [`http`]: warp routes (the API, forward auth, the page, the OpenAPI
//!   document), the route table and the one JSON error mapping.
//! - [`ws`]: the WebSocket chat: hub, socket tasks, upgrade and history.
//! - [`listener`]: the accept loop (hyper around the warp routes).
//! - [`server`]: assembly, background tasks, graceful shutdown.
//! - [`cli`]: the offline commands.
//!
//! Beside the layers: [`log_writer`] batches log lines to stderr on a
//! thread of its own, [`fuzzing`] exposes the untrusted-input paths to
//! the fuzz targets, and [`local_redis`] starts a throwaway redis-server
//! for the tests and the bench.

pub mod auth;
pub mod backups;
pub mod cli;
pub mod config;
pub mod domain;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod listener;
pub mod local_redis;
pub mod log_line;
pub mod log_writer;
pub mod mail;
pub mod oidc;
pub mod server;
pub mod store;
pub mod ws;
