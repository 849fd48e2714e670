//! The chat: a hub of sockets by room and by session, the per-socket task,
//! the frames, and the routes (the upgrade and the history).
//!
//! The upgrade composes the same `with_session` filter as every HTTP
//! route. Sockets close when their session ends because the hub listens to
//! the store's removal events: no route has to remember to tell it.

mod hub;
mod protocol;
mod routes;
mod socket;

pub use hub::Hub;
pub(crate) use protocol::ClientFrame;
pub use routes::routes;
pub use routes::socket_config;
