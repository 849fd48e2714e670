//! `sessiond backup` and `sessiond restore`.
//!
//! A backup is taken from a serving store: on sled, through the running
//! server (the database is its alone), found and admitted with the access
//! file it keeps beside the database; with the server stopped, from the
//! data dir itself; on Redis, from Redis, as `migrate` reads. A restore is
//! offline, into an empty data dir or Redis prefix, and reads the whole
//! file before it writes anything.

use std::path::Path;

use super::{where_stored, with_store, CliError};
use crate::backups::{write_whole, Access, ACCESS_FILE};
use crate::config::{Backend, Config};
use crate::store::{Snapshot, Store, StoreError};

/// `sessiond backup --to FILE`.
pub async fn backup(config: &Config, to: &Path) -> Result<(), CliError> {
    let file = match Store::open_now(&config.storage).await {
        Ok(store) => {
            let dev_secret = dev_secret_of(config);
            let taken = store.snapshot(dev_secret).await;
            store.close().await?;
            taken?.to_file()
        }
        Err(StoreError::Locked(_)) => from_server(config).await?,
        Err(e) => return Err(e.into()),
    };
    // Read back before it is kept: a backup that does not restore is none.
    let snapshot = Snapshot::from_file(&file).map_err(CliError::from)?;
    write_whole(to, &file).map_err(|e| CliError(format!("cannot write {}: {e}", to.display())))?;
    println!(
        "backup written to {}: {} users, {} sessions, {} messages, {} bytes",
        to.display(),
        snapshot.users.len(),
        snapshot.sessions.len(),
        snapshot.messages.len(),
        file.len()
    );
    Ok(())
}

/// `sessiond restore --from FILE`.
pub async fn restore(config: &Config, from: &Path) -> Result<(), CliError> {
    let file = std::fs::read(from)
        .map_err(|e| CliError(format!("cannot read {}: {e}", from.display())))?;
    let snapshot = Snapshot::from_file(&file)
        .map_err(|e| CliError(format!("{} cannot be restored: {e}", from.display())))?;
    let secret = snapshot.dev_secret.clone();
    let report = with_store(config, async move |store| {
        let report = store.restore(snapshot).await.map_err(|e| match e {
            StoreError::NotEmpty => CliError(format!(
                "{} already holds data; restore only into an empty one",
                where_stored(config)
            )),
            other => other.into(),
        })?;
        Ok((report, store.check().await?))
    })
    .await;
    let (report, checked) = report?;
    if let (Backend::Sled, Some(secret)) = (config.storage.backend, secret) {
        let path = config.storage.data_dir.join("dev-secret");
        if !path.exists() {
            write_whole(&path, format!("{secret}\n").as_bytes())
                .map_err(|e| CliError(format!("cannot write {}: {e}", path.display())))?;
        }
    }
    for problem in &checked.problems {
        println!("inconsistent: {problem}");
    }
    if !checked.problems.is_empty() {
        return Err(CliError(format!(
            "the restore into {} has {} inconsistencies",
            where_stored(config),
            checked.problems.len()
        )));
    }
    println!(
        "restored {} users, {} sessions, {} identities, {} messages, {} mails and {} security-log entries into {}; check: ok",
        report.users,
        report.sessions,
        report.identities,
        report.messages,
        report.mails,
        report.activity,
        where_stored(config)
    );
    if report.orphans > 0 {
        println!(
            "left out {} session(s) of users removed while the backup ran",
            report.orphans
        );
    }
    Ok(())
}

/// A sled data dir's development secret, if the server signs with one.
fn dev_secret_of(config: &Config) -> Option<String> {
    if config.storage.backend != Backend::Sled || config.secrets.current.is_some() {
        return None;
    }
    let path = config.storage.data_dir.join("dev-secret");
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Asks the running server for a backup, as its access file says.
async fn from_server(config: &Config) -> Result<Vec<u8>, CliError> {
    let path = config.storage.data_dir.join(ACCESS_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        CliError(format!(
            "a server holds the database, but its access file {} cannot be read ({e}); run this as the server's user",
            path.display()
        ))
    })?;
    let access: Access = serde_json::from_str(&text)
        .map_err(|e| CliError(format!("{} is not an access file ({e})", path.display())))?;
    let url = format!("{}/api/admin/backup", access.url);
    let res = reqwest::Client::new()
        .post(&url)
        .bearer_auth(&access.token)
        .send()
        .await
        .map_err(|e| CliError(format!("cannot reach the server at {}: {e}", access.url)))?;
    if !res.status().is_success() {
        return Err(CliError(format!(
            "the server at {} refused the backup: {}",
            access.url,
            res.status()
        )));
    }
    let body = res
        .bytes()
        .await
        .map_err(|e| CliError(format!("the backup from {} broke off: {e}", access.url)))?;
    Ok(body.to_vec())
}
