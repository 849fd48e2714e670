//! Keeping damaged files as they were found.
//!
//! sled 0.34 repairs whatever it opens: it reads the log up to the first
//! bad message and overwrites the rest, so a truncated or overwritten data
//! file becomes a smaller (or empty) database before sessiond can look at
//! it. Damage must therefore be found before sled touches the real files:
//!
//! - A clean close leaves a seal, `<data_dir>/db.sealed`: the size,
//!   modification time and SHA-256 of every file under `db/`.
//! - At open, files whose size and time match the seal open at once.
//!   Files with other times but the same contents (a plain copy) open too.
//!   Files whose contents differ changed while sessiond was stopped: they
//!   are refused, untouched, and the seal stays, so the refusal holds.
//! - Without a seal (after a crash), a database that held records is first
//!   opened as a scratch copy, and refused if the copy lost its schema
//!   record; the real files are opened only when the copy is fine.
//! - The seal is removed before sled opens the real files, so it never
//!   describes files sled has since changed.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};

use super::StoreError;

/// An exclusive lock on `<data_dir>/db.lock`, held while the store is
/// open, so the check on a copy never reads files another process writes.
pub(super) struct DirLock {
    _file: File,
}

impl DirLock {
    pub(super) fn acquire(db_path: &Path) -> Result<Self, StoreError> {
        let path = db_path.with_extension("lock");
        if let Some(dir) = db_path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        // SAFETY: flock on a descriptor this function owns.
        let locked = unsafe {
            libc::flock(
                std::os::fd::AsRawFd::as_raw_fd(&file),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        };
        if locked != 0 {
            return Err(StoreError::Locked(db_path.to_owned()));
        }
        Ok(Self { _file: file })
    }
}

/// Checks the files before sled opens them; see the module comment.
/// `held_records` says whether the database had records before (its
/// initialized marker exists).
pub(super) fn check_before_open(db_path: &Path, held_records: bool) -> Result<(), StoreError> {
    let seal_path = seal_path(db_path);
    let sealed = std::fs::read_to_string(&seal_path).ok();
    if held_records && db_path.exists() {
        match &sealed {
            Some(sealed) => compare(db_path, &seal_path, sealed)?,
            None => {
                check_a_copy(db_path)?;
                tracing::info!(path = %db_path.display(), "database was not closed cleanly; a copy of it opened fine");
            }
        }
    }
    if sealed.is_some() {
        std::fs::remove_file(&seal_path).map_err(|e| io_error(&seal_path, e))?;
    }
    Ok(())
}

/// Writes the seal after a clean close; failing to only makes the next
/// start check a copy, so errors are logged, not returned.
pub(super) fn write(db_path: &Path) {
    let path = seal_path(db_path);
    let written = files(db_path).and_then(|files| {
        let text: String = files.iter().map(Sealed::line).collect();
        let tmp = path.with_extension("sealed.tmp");
        let mut file = File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    });
    if let Err(e) = written {
        tracing::warn!(error = %e, path = %path.display(), "cannot seal the closed database");
    }
}

/// What a seal records of one file.
struct Sealed {
    name: String,
    size: u64,
    mtime_ns: u128,
    sha256: String,
}

impl Sealed {
    fn line(&self) -> String {
        format!(
            "{} {} {} {}\n",
            self.sha256, self.size, self.mtime_ns, self.name
        )
    }

    fn parse(line: &str) -> Option<Self> {
        let mut parts = line.splitn(4, ' ');
        Some(Self {
            sha256: parts.next()?.to_owned(),
            size: parts.next()?.parse().ok()?,
            mtime_ns: parts.next()?.parse().ok()?,
            name: parts.next()?.to_owned(),
        })
    }

    fn same_contents(&self, other: &Sealed) -> bool {
        self.name == other.name && self.size == other.size && self.sha256 == other.sha256
    }
}

/// Refuses files whose contents differ from their seal.
fn compare(db_path: &Path, seal_path: &Path, sealed: &str) -> Result<(), StoreError> {
    let sealed: Vec<Sealed> = sealed.lines().filter_map(Sealed::parse).collect();
    let stats = stat(db_path).map_err(|e| io_error(db_path, e))?;
    let same_stats = stats.len() == sealed.len()
        && stats.iter().zip(&sealed).all(|((name, size, mtime), s)| {
            *name == s.name && *size == s.size && *mtime == s.mtime_ns
        });
    if same_stats {
        return Ok(());
    }
    let now = files(db_path).map_err(|e| io_error(db_path, e))?;
    let changed = sealed
        .iter()
        .find(|s| !now.iter().any(|n| n.same_contents(s)))
        .map(|s| s.name.clone())
        .or_else(|| {
            now.iter()
                .find(|n| !sealed.iter().any(|s| s.same_contents(n)))
                .map(|n| n.name.clone())
        });
    match changed {
        None => Ok(()),
        Some(name) => Err(StoreError::Damaged {
            path: db_path.to_owned(),
            reason: format!(
                "its file {name} changed while sessiond was stopped (it differs from when sessiond \
                 last closed it; if you replaced the files on purpose, delete {} to open them anyway)",
                seal_path.display()
            ),
        }),
    }
}

/// Name, size and mtime of every file under `dir`, sorted by name.
fn stat(dir: &Path) -> std::io::Result<Vec<(String, u64, u128)>> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(at) = pending.pop() {
        for entry in std::fs::read_dir(&at)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                pending.push(entry.path());
                continue;
            }
            let mtime = meta
                .modified()?
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let path = entry.path();
            let name = path
                .strip_prefix(dir)
                .unwrap_or(&path)
                .display()
                .to_string();
            found.push((name, meta.len(), mtime));
        }
    }
    found.sort();
    Ok(found)
}

/// `stat` plus each file's SHA-256.
fn files(dir: &Path) -> std::io::Result<Vec<Sealed>> {
    stat(dir)?
        .into_iter()
        .map(|(name, size, mtime_ns)| {
            let mut hasher = Sha256::new();
            std::io::copy(&mut File::open(dir.join(&name))?, &mut hasher)?;
            Ok(Sealed {
                sha256: crate::domain::hex(&hasher.finalize()),
                name,
                size,
                mtime_ns,
            })
        })
        .collect()
}

fn seal_path(db_path: &Path) -> PathBuf {
    db_path.with_extension("sealed")
}

/// Opens a scratch copy of the database and refuses it on what the real
/// files would be refused for (a lost schema record, a newer schema); the
/// copy is removed either way.
fn check_a_copy(db_path: &Path) -> Result<(), StoreError> {
    let parent = db_path.parent().unwrap_or(Path::new("."));
    let scratch = tempfile::Builder::new()
        .prefix(".db-check-")
        .tempdir_in(parent)
        .map_err(|e| io_error(parent, e))?;
    let copy = scratch.path().join("db");
    match copy_dir(db_path, &copy) {
        Ok(()) => {}
        // A full disk must not keep the server down after a crash: open
        // the real files unchecked, as sled always would.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ) =>
        {
            tracing::warn!(path = %db_path.display(), error = %e, "no room to check a copy of the database; opening it unchecked");
            return Ok(());
        }
        Err(e) => return Err(io_error(db_path, e)),
    }
    let db = sled::Config::new()
        .path(&copy)
        .cache_capacity(8 * 1024 * 1024)
        .open()
        .map_err(|e| super::open_error(db_path, e))?;
    let meta = db
        .open_tree("meta")
        .map_err(|e| super::open_error(db_path, e))?;
    // The same decision as for the real files; with the marker present
    // (the caller checked) it only reads.
    super::check_schema(db_path, &db, &meta)
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

fn io_error(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Open {
        path: path.to_owned(),
        message: e.to_string(),
    }
}
