//! The HTTP contract, told as a user's stories against the real server.

mod helpers;

mod admin;
mod chat;
mod connections;
mod expiry;
mod login;
mod logout;
mod newcomer;
mod ops;
mod register;
mod requests;
mod sessions;
mod throttle;
