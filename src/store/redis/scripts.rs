//! Every change that touches more than one key is one Lua script, run with
//! EVALSHA (redis-rs reloads a script the server has forgotten, on every
//! primary of a Cluster): Redis runs a script whole, so no instance ever
//! sees half a change, and a script that finds its session gone writes
//! nothing. Each script names the keys of one hash slot (`keys.rs`). A
//! script that records a change starts with `audit.lua`, so its log
//! entries are written by the same script.

use redis::Script;

/// The scripts, loaded once per store.
pub(super) struct Scripts {
    pub admin_count: Script,
    pub audit_append: Script,
    pub claim: Script,
    pub failure_count: Script,
    pub failures_read: Script,
    pub identity_link: Script,
    pub identity_unlink: Script,
    pub mail_claim: Script,
    pub mail_done: Script,
    pub mail_put: Script,
    pub message_post: Script,
    pub release_lease: Script,
    pub session_end: Script,
    pub session_lookup: Script,
    pub session_put: Script,
    pub session_read: Script,
    pub sessions_end: Script,
    pub sessions_list: Script,
    pub sessions_prune: Script,
    pub ticket_swap: Script,
    pub user_create: Script,
    pub user_listed: Script,
    pub user_remove: Script,
    pub user_replace: Script,
}

impl Scripts {
    pub fn new() -> Self {
        Self {
            admin_count: Script::new(include_str!("lua/admin_count.lua")),
            audit_append: Script::new(concat!(
                include_str!("lua/audit.lua"),
                include_str!("lua/audit_append.lua")
            )),
            claim: Script::new(include_str!("lua/claim.lua")),
            failure_count: Script::new(include_str!("lua/failure_count.lua")),
            failures_read: Script::new(include_str!("lua/failures_read.lua")),
            identity_link: Script::new(concat!(
                include_str!("lua/audit.lua"),
                include_str!("lua/identity_link.lua")
            )),
            identity_unlink: Script::new(concat!(
                include_str!("lua/audit.lua"),
                include_str!("lua/identity_unlink.lua")
            )),
            mail_claim: Script::new(include_str!("lua/mail_claim.lua")),
            mail_done: Script::new(include_str!("lua/mail_done.lua")),
            mail_put: Script::new(include_str!("lua/mail_put.lua")),
            message_post: Script::new(include_str!("lua/message_post.lua")),
            release_lease: Script::new(include_str!("lua/release_lease.lua")),
            session_end: Script::new(concat!(
                include_str!("lua/audit.lua"),
                include_str!("lua/session_end.lua")
            )),
            session_lookup: Script::new(include_str!("lua/session_lookup.lua")),
            session_put: Script::new(concat!(
                include_str!("lua/audit.lua"),
                include_str!("lua/session_put.lua")
            )),
            session_read: Script::new(include_str!("lua/session_read.lua")),
            sessions_end: Script::new(concat!(
                include_str!("lua/audit.lua"),
                include_str!("lua/sessions_end.lua")
            )),
            sessions_list: Script::new(include_str!("lua/sessions_list.lua")),
            sessions_prune: Script::new(concat!(
                include_str!("lua/audit.lua"),
                include_str!("lua/sessions_prune.lua")
            )),
            ticket_swap: Script::new(include_str!("lua/ticket_swap.lua")),
            user_create: Script::new(concat!(
                include_str!("lua/audit.lua"),
                include_str!("lua/user_create.lua")
            )),
            user_listed: Script::new(include_str!("lua/user_listed.lua")),
            user_remove: Script::new(concat!(
                include_str!("lua/audit.lua"),
                include_str!("lua/user_remove.lua")
            )),
            user_replace: Script::new(concat!(
                include_str!("lua/audit.lua"),
                include_str!("lua/user_replace.lua")
            )),
        }
    }
}
