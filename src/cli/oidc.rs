//! `sessiond oidc ...`: the provider's clients and signing keys.
//!
//! Clients live in the config file, so what `client add` makes is a
//! block to paste there: the secret is printed once and only its argon2id
//! hash goes in the file. A client removed from the file is refused at
//! once, its refresh tokens with it; `client remove` also ends its grants
//! and consents in the store.

use clap::Subcommand;
use rand_core::RngCore;

use super::{with_store, CliError};
use crate::auth::{Auth, Passwords};
use crate::config::Config;
use crate::domain::Password;

/// `sessiond oidc ...`
#[derive(Debug, Subcommand)]
pub enum OidcCommand {
    /// Relying parties.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Make a new signing key pair current; the old one stays published
    /// until every token it signed has expired (the server must be stopped
    /// on sled).
    RotateKey,
}

/// `sessiond oidc client ...`
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Make a client: prints its secret once and the block for the config
    /// file.
    Add {
        /// `client_id`: printable ASCII.
        id: String,
        /// Where codes may be sent (exact match); give it once per URI.
        #[arg(long = "redirect", value_name = "URI", required = true)]
        redirects: Vec<String>,
        /// A client that keeps no secret (a single-page or native app):
        /// no secret, PKCE required.
        #[arg(long)]
        public: bool,
    },
    /// List the clients in the config file.
    List,
    /// End every grant of a client and forget every consent to it (the
    /// server stopped, on sled); then delete its block from the config.
    Remove {
        /// `client_id`.
        id: String,
    },
}

/// Runs one `oidc` command.
pub async fn run(config: &Config, command: OidcCommand) -> Result<(), CliError> {
    match command {
        OidcCommand::Client(ClientCommand::Add {
            id,
            redirects,
            public,
        }) => {
            if config.oidc_provider.client(&id).is_some() {
                return Err(CliError(format!(
                    "the config file lists a client {id:?} already"
                )));
            }
            let mut block = format!("[[oidc_provider.clients]]\nid = {}\n", toml_string(&id));
            if !public {
                let mut bytes = [0u8; 32];
                rand_core::OsRng.fill_bytes(&mut bytes);
                use base64::Engine;
                let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
                let passwords = Passwords::new(&config.auth).map_err(CliError::from)?;
                let hash = passwords
                    .hash(&Password::unchecked(secret.clone()))
                    .await
                    .map_err(CliError::from)?;
                println!("client secret (shown once, give it to the app): {secret}");
                block.push_str(&format!("secret_hash = {}\n", toml_string(&hash)));
            }
            let uris: Vec<String> = redirects.iter().map(|u| toml_string(u)).collect();
            block.push_str(&format!(
                "redirect_uris = [{}]\npost_logout_redirect_uris = []\nscopes = [\"openid\", \"profile\", \"email\", \"groups\"]\nconsent = \"once\"\nbackchannel_logout_uri = \"\"\n",
                uris.join(", ")
            ));
            // The block must read back as a valid client.
            let provider = toml::from_str(&format!(
                "enabled = true\n{}",
                block.replace("[[oidc_provider.clients]]", "[[clients]]")
            ))
            .map_err(|e| CliError(format!("the client does not make a valid block: {e}")))?;
            let check = Config {
                oidc_provider: provider,
                ..Config::default()
            };
            check.validate().map_err(CliError::from)?;
            println!("add this to the config file and restart:\n");
            print!("{block}");
        }
        OidcCommand::Client(ClientCommand::List) => {
            if config.oidc_provider.clients.is_empty() {
                println!("no clients (add one with `sessiond oidc client add`)");
            }
            for c in &config.oidc_provider.clients {
                println!(
                    "{}\t{}\t{}",
                    c.id,
                    if c.is_public() {
                        "public"
                    } else {
                        "confidential"
                    },
                    c.redirect_uris.join(" ")
                );
            }
        }
        OidcCommand::Client(ClientCommand::Remove { id }) => {
            let wanted = id.clone();
            let (grants, consents) = with_store(config, async move |store| {
                crate::oidc::remove_client(store, &wanted)
                    .await
                    .map_err(CliError::from)
            })
            .await?;
            println!("client {id}: {grants} grant(s) ended, {consents} consent(s) forgotten");
            if config.oidc_provider.client(&id).is_some() {
                println!("now delete its [[oidc_provider.clients]] block from the config file and restart");
            }
        }
        OidcCommand::RotateKey => {
            if !config.oidc_provider.enabled {
                return Err(CliError(
                    "the OIDC provider is off: set [oidc_provider] enabled = true first".into(),
                ));
            }
            let kids = with_store(config, async move |store| {
                let auth = Auth::new(config, store.clone())
                    .await
                    .map_err(CliError::from)?;
                let provider = crate::oidc::Provider::new(config, auth)
                    .await
                    .map_err(CliError::from)?
                    .ok_or_else(|| CliError("the OIDC provider is off".into()))?;
                provider.rotate_keys().await.map_err(CliError::from)
            })
            .await?;
            println!(
                "new signing keys {}; the old ones stay published until what they signed has expired",
                kids.join(", ")
            );
        }
    }
    Ok(())
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}
