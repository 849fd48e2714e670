//! The binary as an operator meets it: restarts, crashes, bad settings,
//! the offline CLI, and what ends up in its logs.

mod helpers;
// Found on PATH or skipped (a failure in CI), killed by PID on drop.
#[allow(dead_code)]
#[path = "../api/tools.rs"]
mod tools;

mod backup;
mod chat;
mod cli;
mod config;
mod crash_loop;
mod damaged;
mod durability;
mod hostile;
mod logs;
mod mail;
// The SMTP server the API tests use (some of its helpers unused here).
#[allow(dead_code)]
#[path = "../api/mailbox.rs"]
mod mailbox;
mod newcomer;
mod oidc;
mod redis;
