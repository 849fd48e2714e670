//! Every change that touches more than one key is one Lua script, run with
//! EVALSHA (redis-rs reloads a script the server has forgotten): Redis runs
//! a script whole, so no instance ever sees half a change, and a script
//! that finds its session gone writes nothing.

use redis::Script;

/// The scripts, loaded once per store.
pub(super) struct Scripts {
    pub create_user: Script,
    pub replace_user: Script,
    pub remove_user: Script,
    pub find_user: Script,
    pub list_users: Script,
    pub put_session: Script,
    pub session_with_user: Script,
    pub end_session: Script,
    pub end_sessions_of: Script,
    pub sessions_of: Script,
    pub prune: Script,
    pub link_identity: Script,
    pub unlink_identity: Script,
    pub post_message: Script,
    pub release_lease: Script,
    pub count_failure: Script,
    pub failures: Script,
}

impl Scripts {
    pub fn new() -> Self {
        Self {
            create_user: Script::new(include_str!("lua/create_user.lua")),
            replace_user: Script::new(include_str!("lua/replace_user.lua")),
            remove_user: Script::new(include_str!("lua/remove_user.lua")),
            find_user: Script::new(include_str!("lua/find_user.lua")),
            list_users: Script::new(include_str!("lua/list_users.lua")),
            put_session: Script::new(include_str!("lua/put_session.lua")),
            session_with_user: Script::new(include_str!("lua/session_with_user.lua")),
            end_session: Script::new(include_str!("lua/end_session.lua")),
            end_sessions_of: Script::new(include_str!("lua/end_sessions_of.lua")),
            sessions_of: Script::new(include_str!("lua/sessions_of.lua")),
            prune: Script::new(include_str!("lua/prune.lua")),
            link_identity: Script::new(include_str!("lua/link_identity.lua")),
            unlink_identity: Script::new(include_str!("lua/unlink_identity.lua")),
            post_message: Script::new(include_str!("lua/post_message.lua")),
            release_lease: Script::new(include_str!("lua/release_lease.lua")),
            count_failure: Script::new(include_str!("lua/count_failure.lua")),
            failures: Script::new(include_str!("lua/failures.lua")),
        }
    }
}
