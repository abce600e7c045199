//! Where secrets come from: the environment (for unattended runs) or a prompt on
//! the terminal. Never from a command-line argument (SPEC §3).
//!
//! Also the check that secret key files are private to their owner, and the
//! bounded reader for key files.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use age::secrecy::{ExposeSecret, SecretString};

use super::error::{Result, SealError};

/// Environment variable holding the minisign secret key password.
pub const KEY_PASSWORD_ENV: &str = "FERRY_KEY_PASSWORD";
/// Environment variable holding the age passphrase.
pub const PASSPHRASE_ENV: &str = "FERRY_PASSPHRASE";

const KEY_PASSWORD: &str = "minisign key password";
const PASSPHRASE: &str = "passphrase";

/// Largest key / identity / recipients file we read (they are a few hundred bytes).
pub(crate) const MAX_KEY_FILE: u64 = 1 << 20;

/// Reads a secret from `env`, treating an unset or empty variable as absent.
fn from_env(env: &'static str, what: &'static str) -> Result<Option<SecretString>> {
    match std::env::var_os(env) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => match v.into_string() {
            Ok(s) => Ok(Some(SecretString::from(s))),
            Err(_) => Err(SealError::Prompt {
                what,
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{env} is not valid UTF-8")),
            }),
        },
    }
}

fn prompt(what: &'static str, env: &'static str, text: &str) -> Result<SecretString> {
    match rpassword::prompt_password(text) {
        Ok(s) => Ok(SecretString::from(s)),
        // No controlling terminal: say how to supply the secret instead.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::Unsupported
            ) || e.raw_os_error() == Some(6) /* ENXIO */ =>
        {
            Err(SealError::SecretUnavailable { what, env })
        }
        Err(e) => Err(SealError::Prompt { what, source: e }),
    }
}

/// The password of a minisign secret key: `FERRY_KEY_PASSWORD` if set, else a
/// prompt on the terminal when `prompt_allowed`.
pub fn key_password(prompt_allowed: bool) -> Result<SecretString> {
    key_password_prompt("Password for the minisign secret key: ", prompt_allowed)
}

/// Like [`key_password`], naming the key file in the prompt.
pub fn key_password_for(path: &Path, prompt_allowed: bool) -> Result<SecretString> {
    key_password_prompt(&format!("Password for minisign secret key {}: ", path.display()), prompt_allowed)
}

fn key_password_prompt(text: &str, prompt_allowed: bool) -> Result<SecretString> {
    if let Some(s) = from_env(KEY_PASSWORD_ENV, KEY_PASSWORD)? {
        return Ok(s);
    }
    if !prompt_allowed {
        return Err(SealError::SecretUnavailable { what: KEY_PASSWORD, env: KEY_PASSWORD_ENV });
    }
    let s = prompt(KEY_PASSWORD, KEY_PASSWORD_ENV, text)?;
    if s.expose_secret().is_empty() {
        return Err(SealError::EmptySecret { what: KEY_PASSWORD });
    }
    Ok(s)
}

/// A new password for `keygen`: `FERRY_KEY_PASSWORD` if set, else asked twice on
/// the terminal when `prompt_allowed`. `Ok(None)` when the user typed an empty
/// password on the terminal (meaning: leave the key unprotected).
pub fn new_key_password(prompt_allowed: bool) -> Result<Option<SecretString>> {
    if let Some(s) = from_env(KEY_PASSWORD_ENV, KEY_PASSWORD)? {
        return Ok(Some(s));
    }
    if !prompt_allowed {
        return Err(SealError::SecretUnavailable { what: KEY_PASSWORD, env: KEY_PASSWORD_ENV });
    }
    let a = prompt(KEY_PASSWORD, KEY_PASSWORD_ENV, "Password to protect the minisign secret key (empty for none): ")?;
    if a.expose_secret().is_empty() {
        return Ok(None);
    }
    let b = prompt(KEY_PASSWORD, KEY_PASSWORD_ENV, "Password (again): ")?;
    if a.expose_secret() != b.expose_secret() {
        return Err(SealError::SecretMismatch { what: "password" });
    }
    Ok(Some(a))
}

/// The age passphrase: `FERRY_PASSPHRASE` if set, else a prompt on the terminal
/// when `prompt_allowed`, asked twice when `confirm` (encryption).
pub fn passphrase(confirm: bool, prompt_allowed: bool) -> Result<SecretString> {
    if let Some(s) = from_env(PASSPHRASE_ENV, PASSPHRASE)? {
        return Ok(s);
    }
    if !prompt_allowed {
        return Err(SealError::SecretUnavailable { what: PASSPHRASE, env: PASSPHRASE_ENV });
    }
    let a = prompt(PASSPHRASE, PASSPHRASE_ENV, "Passphrase: ")?;
    if a.expose_secret().is_empty() {
        return Err(SealError::EmptySecret { what: PASSPHRASE });
    }
    if confirm {
        let b = prompt(PASSPHRASE, PASSPHRASE_ENV, "Passphrase (again): ")?;
        if a.expose_secret() != b.expose_secret() {
            return Err(SealError::SecretMismatch { what: PASSPHRASE });
        }
    }
    Ok(a)
}

/// Refuses a file that other users can read (any group/other permission bit,
/// as OpenSSH does for private keys).
#[cfg(unix)]
pub fn check_private(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SealError::InsecurePermissions { path: path.to_path_buf(), mode });
    }
    Ok(())
}

/// Refuses a file that other users can read (no-op where Unix modes do not exist).
#[cfg(not(unix))]
pub fn check_private(_path: &Path, _meta: &std::fs::Metadata) -> Result<()> {
    Ok(())
}

/// Reads a small text file; with `private`, refuses it when others can read it.
pub(crate) fn read_key_file(path: &Path, what: &'static str, private: bool) -> Result<String> {
    let io = |action: &'static str| move |source| SealError::Io { action, path: path.to_path_buf(), source };
    let file = File::open(path).map_err(io(what))?;
    let meta = file.metadata().map_err(io(what))?;
    if private {
        check_private(path, &meta)?;
    }
    if meta.len() > MAX_KEY_FILE {
        return Err(SealError::Io {
            action: what,
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "file is too large for a key file"),
        });
    }
    let mut buf = Vec::new();
    file.take(MAX_KEY_FILE + 1).read_to_end(&mut buf).map_err(io(what))?;
    String::from_utf8(buf).map_err(|_| SealError::Io {
        action: what,
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not a text file"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn world_readable_secret_is_refused_with_chmod_hint() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        std::fs::write(&p, "x").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_key_file(&p, "read", true).unwrap_err();
        let m = e.to_string();
        assert!(matches!(e, SealError::InsecurePermissions { mode: 0o644, .. }), "{m}");
        assert!(m.contains("chmod 600") && m.contains(&p.display().to_string()), "{m}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(read_key_file(&p, "read", true).is_err());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_key_file(&p, "read", true).unwrap(), "x");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(read_key_file(&p, "read", false).unwrap(), "x");
    }

    #[test]
    fn missing_file_names_path() {
        let e = read_key_file(Path::new("/nonexistent/ferry.key"), "read minisign secret key", true).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ferry.key"));
    }

    #[test]
    fn no_prompt_no_env_says_which_variable() {
        // Only meaningful when the variables are unset in the test environment.
        if std::env::var_os(PASSPHRASE_ENV).is_none() {
            let e = passphrase(false, false).unwrap_err();
            assert!(e.to_string().contains("FERRY_PASSPHRASE"), "{e}");
        }
        if std::env::var_os(KEY_PASSWORD_ENV).is_none() {
            let e = key_password(false).unwrap_err();
            assert!(e.to_string().contains("FERRY_KEY_PASSWORD"), "{e}");
        }
    }
}
