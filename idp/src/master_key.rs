//! The key-encryption key that seals the signing keys at rest:
//! `IDP_KEY_ENCRYPTION_KEY`, or else a development key kept on disk.

use secrecy::ExposeSecret;
use std::path::Path;

use crate::Config;
use crate::crypto::MasterKey;

/// Why there is no key-encryption key.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("{0}")]
    Invalid(String),
    #[error("the development key's file: {0}")]
    Io(#[from] std::io::Error),
}

/// The key-encryption key: `IDP_KEY_ENCRYPTION_KEY`, or else a development key.
///
/// The development key is random per installation and kept in
/// `IDP_DATA_DIR/dev-key-encryption-key` (mode 0600), so a dev install keeps
/// its signing keys across restarts while no two installs share a key (a key
/// derived from a constant would be public the moment this code is). If that
/// file is lost while the database survives, the old keys stay published but
/// cannot sign, and a new key is created on start-up.
pub fn master_key(config: &Config) -> Result<MasterKey, MasterKeyError> {
    if let Some(text) = &config.key_encryption_key {
        return MasterKey::parse(text.expose_secret()).ok_or_else(|| {
            MasterKeyError::Invalid("IDP_KEY_ENCRYPTION_KEY must be 32 bytes in base64".into())
        });
    }
    let path = config.data_dir.join("dev-key-encryption-key");
    tracing::warn!(
        path = %path.display(),
        "IDP_KEY_ENCRYPTION_KEY IS NOT SET: signing keys are encrypted with a DEVELOPMENT key stored in a \
         file next to the data. Never run like this in production: set IDP_KEY_ENCRYPTION_KEY to 32 random \
         bytes in base64 (e.g. `openssl rand -base64 32`)."
    );
    load_or_create_dev_key(&path)
}

fn load_or_create_dev_key(path: &Path) -> Result<MasterKey, MasterKeyError> {
    match std::fs::read_to_string(path) {
        Ok(text) => MasterKey::parse(&text).ok_or_else(|| {
            MasterKeyError::Invalid(format!(
                "{} does not hold 32 bytes in base64",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let key = MasterKey::generate();
            // Written whole under a private name, then linked into place: a
            // process starting at the same time sees no file or a whole one.
            let staging = path.with_extension(format!("{}.tmp", uuid::Uuid::new_v4()));
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&staging)?;
            std::io::Write::write_all(&mut file, format!("{}\n", key.to_base64()).as_bytes())?;
            file.sync_all()?;
            let linked = std::fs::hard_link(&staging, path);
            let _ = std::fs::remove_file(&staging);
            match linked {
                Ok(()) => Ok(key),
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    load_or_create_dev_key(path)
                }
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dev_key_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("idp-devkey-{}", uuid::Uuid::new_v4()));
        let path = dir.join("dev-key-encryption-key");
        let a = load_or_create_dev_key(&path).unwrap();
        let b = load_or_create_dev_key(&path).unwrap();
        assert_eq!(a.to_base64(), b.to_base64());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        std::fs::write(&path, "garbage").unwrap();
        assert!(load_or_create_dev_key(&path).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
