//! The HTTP contract, told as a user's stories against the real server.

mod helpers;

mod activity;
mod admin;
mod browser;
mod chat;
mod connections;
mod expiry;
mod forward_auth;
mod idtoken;
mod login;
mod logout;
mod mailbox;
mod mfa;
mod newcomer;
mod oidc;
mod openapi;
mod ops;
mod provider;
mod proxies;
mod recovery;
mod register;
mod relying_parties;
mod requests;
mod sessions;
mod throttle;
mod tools;
mod verification;
