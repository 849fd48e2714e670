//! The command line: `serve` (the default) and the offline commands, which
//! open the database themselves and so refuse while a server holds it.

mod backup;
mod oidc;

pub use oidc::{ClientCommand, OidcCommand};

use std::io::BufRead;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::auth::{self, create_account, set_password, By, Passwords};
use crate::config::{Backend, Config};
use crate::domain::rfc3339;
use crate::domain::{Email, Password, Role, TokenHash, Username};
use crate::http::views::ActivityView;
use crate::store::{
    now_ms, AuditId, AuditQuery, AuditRecord, SessionRecord, Store, StoreError, UserRecord,
};

/// sessiond: a self-hosted session and login server.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// Config file (else $SESSIOND_CONFIG, else ./config.toml, else defaults).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Manage users offline (the server must be stopped).
    #[command(subcommand)]
    User(UserCommand),
    /// See and end sessions offline (the server must be stopped).
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Verify that every index agrees with its records; exit 1 naming each
    /// inconsistency.
    Check {
        /// On Redis, first put right what a crash between two steps of a
        /// change left (sled has nothing to repair), then check.
        #[arg(long)]
        repair: bool,
    },
    /// Write a backup of the whole store to FILE, while the server runs
    /// (through it, on sled) or not.
    Backup {
        /// Where to write it (mode 0600: it holds password hashes).
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
    /// Restore a backup into an empty data dir or Redis prefix, then check
    /// it (the server must be stopped).
    Restore {
        /// The backup file.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
    /// Print the security log, newest first: sign-ins, sign-outs,
    /// revocations and every change to an account (the server must be
    /// stopped on sled).
    Activity {
        /// Only this user's (a name, or the id of a removed user).
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// At most this many entries.
        #[arg(long, value_name = "N", default_value_t = 100,
              value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
        #[command(flatten)]
        output: Output,
    },
    /// The OpenID Connect provider's clients and signing keys.
    #[command(subcommand)]
    Oidc(OidcCommand),
    /// Copy users, sessions and chat history from the sled data dir into
    /// an empty Redis prefix, then check it (the server must be stopped).
    Migrate {
        /// The Redis server to copy into (redis:// or redis+unix://).
        #[arg(long, value_name = "REDIS_URL")]
        to: String,
        /// Key prefix on that server [default: storage.redis_key_prefix].
        #[arg(long, value_name = "P")]
        prefix: Option<String>,
    },
}

/// `sessiond user ...`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is read from standard input.
    Add {
        /// User name: 3-32 of [A-Za-z0-9_.-].
        name: String,
        /// E-mail address.
        #[arg(long)]
        email: String,
        /// "user" or "admin".
        #[arg(long, default_value = "user")]
        role: String,
        /// Read the password from the first line of standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List users.
    List(Output),
    /// Change a user's role ("user" or "admin").
    SetRole {
        /// User name.
        name: String,
        /// "user" or "admin".
        role: String,
    },
    /// Set a user's password (read from standard input) and end every
    /// session they have.
    Passwd {
        /// User name.
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Remove a user with their sessions.
    Remove {
        /// User name.
        name: String,
    },
    /// List a user's second factors (never a secret).
    Mfa {
        /// User name.
        name: String,
        #[command(flatten)]
        output: Output,
    },
    /// Remove every second factor of a user (who lost them all) and end
    /// their sessions: the password alone signs them in again.
    MfaReset {
        /// User name.
        name: String,
    },
    /// Print a single-use link (valid for an hour) that opens the page's
    /// "set a new password" view: recovery without mail.
    ResetLink {
        /// User name.
        name: String,
    },
}

/// `sessiond sessions ...`
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List stored sessions.
    List {
        /// Only this user's.
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        #[command(flatten)]
        output: Output,
    },
    /// End sessions.
    #[command(group = clap::ArgGroup::new("which").required(true))]
    Revoke {
        /// Every session of this user.
        #[arg(long, value_name = "NAME", group = "which")]
        user: Option<String>,
        /// Every session of every user.
        #[arg(long, group = "which")]
        all: bool,
    },
}

/// How listings print.
#[derive(Debug, Args)]
pub struct Output {
    /// JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// An offline command's failure, printed as one line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CliError(pub(crate) String);

impl CliError {
    fn from(e: impl std::fmt::Display) -> Self {
        CliError(e.to_string())
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NoSuchUser => CliError("no such user".into()),
            StoreError::LastAdmin => {
                CliError("that would leave no admin: make another user an admin first".into())
            }
            other => CliError::from(other),
        }
    }
}

/// Runs an offline command against the configured data directory.
///
/// Everything that can be refused without the database (a bad name, role
/// or password) is refused before it is opened; once opened, it is closed
/// and sealed whatever the command's outcome, so a failed command never
/// leaves the next start a crash to recover from.
pub async fn run(config: &Config, command: Command) -> Result<(), CliError> {
    match command {
        Command::Serve => unreachable!("serve is not an offline command"),
        Command::User(UserCommand::Add {
            name,
            email,
            role,
            password_stdin: _,
        }) => {
            let username = Username::parse(&name).map_err(CliError::from)?;
            let email = Email::parse(&email).map_err(CliError::from)?;
            let role = Role::parse(&role).map_err(CliError::from)?;
            let password = read_password(config)?;
            let passwords = Passwords::new(&config.auth).map_err(CliError::from)?;
            let user = with_store(config, async move |store| {
                create_account(store, &passwords, username, email, password, role)
                    .await
                    .map_err(CliError::from)
            })
            .await?;
            println!(
                "added user {} (id {}, role {})",
                user.username,
                user.user_id(),
                user.role
            );
        }
        Command::User(UserCommand::List(output)) => {
            let users = with_store(config, async move |store| {
                Ok(store.list_users(None, usize::MAX).await?)
            })
            .await?;
            print_users(&users, &output);
        }
        Command::User(UserCommand::SetRole { name, role }) => {
            let role = Role::parse(&role).map_err(CliError::from)?;
            let user = with_store(config, async move |store| {
                let id = find_user(store, &name).await?.user_id();
                auth::set_role(store, id, role, &By::operator())
                    .await
                    .map_err(CliError::from)
            })
            .await?;
            println!("{} is now {}", user.username, user.role);
        }
        Command::User(UserCommand::Passwd {
            name,
            password_stdin: _,
        }) => {
            let password = read_password(config)?;
            let passwords = Passwords::new(&config.auth).map_err(CliError::from)?;
            let (user, ended) = with_store(config, async move |store| {
                let user = find_user(store, &name).await?;
                let changed = set_password(store, &passwords, user.user_id(), &password)
                    .await
                    .map_err(CliError::from)?;
                Ok(changed)
            })
            .await?;
            println!(
                "password of {} changed; {ended} session(s) ended",
                user.username
            );
        }
        Command::User(UserCommand::Remove { name }) => {
            let removed = with_store(config, async move |store| {
                let id = find_user(store, &name).await?.user_id();
                auth::remove_user(store, id, &By::operator())
                    .await
                    .map_err(CliError::from)
            })
            .await?;
            println!(
                "removed user {} and {} session(s)",
                removed.user.username,
                removed.sessions.len()
            );
        }
        Command::User(UserCommand::Mfa { name, output }) => {
            let user = with_store(config, async move |store| find_user(store, &name).await).await?;
            print_factors(&user, &output);
        }
        Command::User(UserCommand::ResetLink { name }) => {
            let page = config.page_url();
            let link = with_store(config, async move |store| {
                let user = find_user(store, &name).await?;
                crate::auth::recovery::reset_link(store, &page, user.user_id())
                    .await
                    .map_err(CliError::from)
            })
            .await?;
            println!("{link}");
            eprintln!("single use, valid for 1 hour: hand it to the user over a channel you trust");
        }
        Command::User(UserCommand::MfaReset { name }) => {
            let (user, ended) = with_store(config, async move |store| {
                let user = find_user(store, &name).await?;
                let ended = crate::auth::mfa::reset_factors(store, user.user_id(), &By::operator())
                    .await
                    .map_err(CliError::from)?;
                Ok((user, ended))
            })
            .await?;
            println!(
                "removed every second factor of {}; {ended} session(s) ended",
                user.username
            );
        }
        Command::Sessions(SessionsCommand::List { user, output }) => {
            with_store(config, async move |store| {
                let sessions = match user {
                    Some(name) => {
                        store
                            .sessions_of(find_user(store, &name).await?.user_id())
                            .await?
                    }
                    None => store.all_sessions().await?,
                };
                print_sessions(store, sessions, &output).await
            })
            .await?;
        }
        Command::Sessions(SessionsCommand::Revoke { user, all: _ }) => {
            let ended = with_store(config, async move |store| {
                Ok(match user {
                    Some(name) => {
                        let id = find_user(store, &name).await?.user_id();
                        auth::end_sessions_of(store, id, &By::operator())
                            .await
                            .map_err(CliError::from)?
                    }
                    None => store.end_all_sessions().await?,
                })
            })
            .await?;
            println!("revoked {ended} session(s)");
        }
        Command::Activity {
            user,
            limit,
            output,
        } => {
            let entries = with_store(config, async move |store| {
                let user = match user {
                    Some(raw) => Some(
                        auth::log_owner(store, &raw)
                            .await
                            .map_err(CliError::from)?
                            .ok_or_else(|| {
                                CliError(format!("no user named {raw:?} or with that id"))
                            })?,
                    ),
                    None => None,
                };
                let query = AuditQuery {
                    user,
                    limit: limit as usize,
                    ..AuditQuery::default()
                };
                Ok(store.activity(&query).await?)
            })
            .await?;
            print_activity(&entries, &output);
        }
        Command::Oidc(command) => oidc::run(config, command).await?,
        Command::Migrate { to, prefix } => migrate(config, to, prefix).await?,
        Command::Backup { to } => backup::backup(config, &to).await?,
        Command::Restore { from } => backup::restore(config, &from).await?,
        Command::Check { repair } => {
            let mut report = if repair {
                let (repaired, report) =
                    with_store(config, async move |store| Ok(store.repair().await?)).await?;
                println!("repaired: {repaired} finding(s)");
                report
            } else {
                with_store(config, async move |store| Ok(store.check().await?)).await?
            };
            // The OIDC provider's grants, listed under their sessions.
            let grants = with_store(config, async move |store| {
                crate::oidc::check_grants(store)
                    .await
                    .map_err(CliError::from)
            })
            .await?;
            report.problems.extend(grants);
            for problem in &report.problems {
                println!("inconsistent: {problem}");
            }
            if !report.problems.is_empty() {
                return Err(CliError(format!(
                    "{} inconsistenc{} found in {}",
                    report.problems.len(),
                    if report.problems.len() == 1 {
                        "y"
                    } else {
                        "ies"
                    },
                    where_stored(config)
                )));
            }
            println!(
                "ok: {} users, {} sessions; every index agrees with its records",
                report.users, report.sessions
            );
        }
    }
    Ok(())
}

/// Copies the sled data dir into Redis, checks the copy, and says what
/// was copied.
async fn migrate(config: &Config, to: String, prefix: Option<String>) -> Result<(), CliError> {
    let mut source = config.clone();
    source.storage.backend = Backend::Sled;
    let mut target = config.storage.clone();
    target.backend = Backend::Redis;
    target.redis_url = to;
    if let Some(prefix) = prefix {
        target.redis_key_prefix = prefix;
    }
    let dev_secret = std::fs::read_to_string(config.storage.data_dir.join("dev-secret"))
        .ok()
        .map(|s| s.trim().to_owned());
    let redis = Store::open_now(&target).await?;
    let copied = with_store(&source, async |sled| {
        Ok(sled.migrate_to(&redis, dev_secret.as_deref()).await?)
    })
    .await;
    let report = match copied {
        Ok(copied) => redis.check().await.map(|checked| (copied, checked)),
        Err(e) => {
            let _ = redis.close().await;
            return Err(e);
        }
    };
    redis.close().await?;
    let (copied, checked) = report?;
    for problem in &checked.problems {
        println!("inconsistent: {problem}");
    }
    if !checked.problems.is_empty() {
        return Err(CliError(format!(
            "the copy under prefix {:?} has {} inconsistencies",
            target.redis_key_prefix,
            checked.problems.len()
        )));
    }
    println!(
        "copied {} users, {} sessions, {} identities and {} messages into prefix {:?}; check: ok",
        copied.users, copied.sessions, copied.identities, copied.messages, target.redis_key_prefix
    );
    Ok(())
}

/// Where the configured store keeps its data, for messages.
fn where_stored(config: &Config) -> String {
    match config.storage.backend {
        Backend::Sled => config.storage.data_dir.join("db").display().to_string(),
        Backend::Redis => format!(
            "the Redis prefix {:?} (storage.redis_key_prefix)",
            config.storage.redis_key_prefix
        ),
    }
}

/// Opens the database, runs `work` on it and closes it again, whether
/// `work` succeeded or not; `work`'s error wins over the close's.
async fn with_store<T>(
    config: &Config,
    work: impl AsyncFnOnce(&Store) -> Result<T, CliError>,
) -> Result<T, CliError> {
    let store = Store::open_now(&config.storage).await?;
    let outcome = work(&store).await;
    let closed = store.close().await;
    let value = outcome?;
    closed?;
    Ok(value)
}

/// A user's factors as a table, or `{"factors": [...], "recoveryCodesLeft"}`.
fn print_factors(user: &UserRecord, output: &Output) {
    let factors = crate::auth::mfa::list_factors(&user.factors);
    let when = |ms: u64| {
        if ms == 0 {
            "never".to_owned()
        } else {
            rfc3339(ms)
        }
    };
    let left = user.factors.recovery.len();
    if output.json {
        let rows: Vec<_> = factors
            .iter()
            .map(|f| {
                json!({
                    "id": f.id, "kind": f.kind, "name": f.name,
                    "createdAt": rfc3339(f.created_at_ms),
                    "lastUsedAt": (f.last_used_at_ms > 0).then(|| rfc3339(f.last_used_at_ms)),
                })
            })
            .collect();
        println!("{}", json!({ "factors": rows, "recoveryCodesLeft": left }));
        return;
    }
    if factors.is_empty() {
        println!("{} has no second factor", user.username);
        return;
    }
    let rows = factors.iter().map(|f| {
        vec![
            f.id.clone(),
            f.kind.to_owned(),
            f.name.clone(),
            rfc3339(f.created_at_ms),
            when(f.last_used_at_ms),
        ]
    });
    print_table(&["ID", "KIND", "NAME", "CREATED", "LAST USED"], rows);
    println!("{left} recovery code(s) left");
}

async fn find_user(store: &Store, name: &str) -> Result<UserRecord, CliError> {
    store
        .user_by_name(name)
        .await?
        .ok_or_else(|| CliError(format!("no user named {name:?}")))
}

fn read_password(config: &Config) -> Result<Password, CliError> {
    let mut line = String::new();
    let read = std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError(format!("cannot read the password from standard input: {e}")))?;
    if read == 0 {
        return Err(CliError(
            "there was no password on standard input; pipe one in, e.g. \
             echo 'a long password' | sessiond user add NAME --email E --password-stdin"
                .into(),
        ));
    }
    let raw = line.trim_end_matches(['\n', '\r']).to_owned();
    Password::parse(
        raw,
        "password",
        config.auth.min_password_length,
        config.auth.max_password_length,
    )
    .map_err(CliError::from)
}

fn print_activity(entries: &[(AuditId, AuditRecord)], output: &Output) {
    if output.json {
        let rows: Vec<_> = entries
            .iter()
            .map(|(id, e)| ActivityView::new(*id, e))
            .collect();
        println!("{}", json!({ "entries": rows }));
        return;
    }
    let rows = entries.iter().map(|(_, e)| {
        let actor = match e.actor.user_id() {
            Some(id) => format!("{} {id}", e.actor.kind()),
            None => e.actor.kind().to_owned(),
        };
        vec![
            rfc3339(e.time_ms),
            e.owner().to_string(),
            e.kind.to_string(),
            actor,
            e.ip.clone().unwrap_or_default(),
            e.detail.clone().unwrap_or_default(),
        ]
    });
    print_table(&["TIME", "USER", "KIND", "ACTOR", "IP", "DETAIL"], rows);
}

fn print_users(users: &[UserRecord], output: &Output) {
    if output.json {
        let rows: Vec<_> = users
            .iter()
            .map(|u| {
                json!({
                    "id": u.user_id().to_string(),
                    "username": u.username,
                    "email": u.email,
                    "role": u.role,
                    "createdAt": rfc3339(u.created_at_ms),
                })
            })
            .collect();
        println!("{}", json!({ "users": rows }));
        return;
    }
    let rows = users.iter().map(|u| {
        vec![
            u.user_id().to_string(),
            u.username.clone(),
            u.email.clone(),
            u.role.to_string(),
            rfc3339(u.created_at_ms),
        ]
    });
    print_table(&["ID", "USERNAME", "EMAIL", "ROLE", "CREATED"], rows);
}

async fn print_sessions(
    store: &Store,
    mut sessions: Vec<(TokenHash, SessionRecord)>,
    output: &Output,
) -> Result<(), CliError> {
    sessions.sort_by_key(|(_, s)| s.created_at_ms);
    let now = now_ms();
    let mut names = std::collections::HashMap::new();
    for (_, s) in &sessions {
        if let std::collections::hash_map::Entry::Vacant(slot) = names.entry(s.user_id) {
            let user = store.user(s.owner()).await?;
            slot.insert(user.map_or_else(|| "(removed)".to_owned(), |u| u.username));
        }
    }
    let name_of = |s: &SessionRecord| -> Result<String, CliError> {
        Ok(names
            .get(&s.user_id)
            .cloned()
            .unwrap_or_else(|| "(removed)".to_owned()))
    };
    if output.json {
        let mut rows = Vec::new();
        for (hash, s) in &sessions {
            rows.push(json!({
                "id": hash.public_id(),
                "userId": s.owner().to_string(),
                "username": name_of(s)?,
                "createdAt": rfc3339(s.created_at_ms),
                "lastSeenAt": rfc3339(s.last_seen_at_ms),
                "expiresAt": rfc3339(s.absolute_expires_at_ms),
                "idleExpiresAt": rfc3339(s.idle_expires_at_ms),
                "userAgent": s.user_agent,
                "ip": s.ip,
                "live": s.deadline_ms() > now,
                "remember": s.remember,
            }));
        }
        println!("{}", json!({ "sessions": rows }));
        return Ok(());
    }
    let mut rows = Vec::new();
    for (hash, s) in &sessions {
        rows.push(vec![
            hash.public_id(),
            name_of(s)?,
            rfc3339(s.created_at_ms),
            rfc3339(s.last_seen_at_ms),
            rfc3339(s.deadline_ms()),
            s.ip.clone(),
            if s.deadline_ms() > now {
                "live"
            } else {
                "ended"
            }
            .to_owned(),
        ]);
    }
    print_table(
        &["ID", "USER", "CREATED", "LAST SEEN", "ENDS", "IP", "STATE"],
        rows,
    );
    Ok(())
}

fn print_table(headers: &[&str], rows: impl IntoIterator<Item = Vec<String>>) {
    let rows: Vec<Vec<String>> = rows.into_iter().collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}
