//! The command line: `serve` (the default) and the offline commands, which
//! open the database themselves and so refuse while a server holds it.

use std::io::BufRead;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::auth::{create_account, Passwords};
use crate::config::Config;
use crate::domain::{Email, Password, Role, Username};
use crate::store::Store;

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
}

/// An offline command's failure, printed as one line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CliError(String);

impl CliError {
    fn from(e: impl std::fmt::Display) -> Self {
        CliError(e.to_string())
    }
}

/// Runs `sessiond user ...` against the configured data directory.
pub async fn run_user_command(config: &Config, command: UserCommand) -> Result<(), CliError> {
    match command {
        UserCommand::Add {
            name,
            email,
            role,
            password_stdin: _,
        } => {
            let username = Username::parse(&name).map_err(CliError::from)?;
            let email = Email::parse(&email).map_err(CliError::from)?;
            let role = Role::parse(&role).map_err(CliError::from)?;
            let password = read_password(config)?;
            let store = Store::open(&config.storage).map_err(CliError::from)?;
            let passwords = Passwords::new(&config.auth).map_err(CliError::from)?;
            let user = create_account(&store, &passwords, username, email, password, role)
                .await
                .map_err(CliError::from)?;
            println!(
                "added user {} (id {}, role {})",
                user.username,
                user.user_id(),
                user.role
            );
            Ok(())
        }
    }
}

fn read_password(config: &Config) -> Result<Password, CliError> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError(format!("cannot read the password from standard input: {e}")))?;
    let raw = line.trim_end_matches(['\n', '\r']).to_owned();
    Password::parse(
        raw,
        "password",
        config.auth.min_password_length,
        config.auth.max_password_length,
    )
    .map_err(CliError::from)
}
