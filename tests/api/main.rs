//! The HTTP contract, told as a user's stories against the real server.

mod helpers;

mod expiry;
mod login;
mod logout;
mod ops;
mod register;
mod requests;
mod throttle;
