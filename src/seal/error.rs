//! The one error type of the sealing layer.
//!
//! Every message says what failed and what to do about it, and never contains
//! a secret: key material, passwords and passphrases are never formatted, and
//! text that looks like a secret key is not echoed back.

use std::error::Error as StdError;
use std::io;
use std::path::PathBuf;

use super::keys::KeyId;

/// Result type of the sealing layer.
pub type Result<T, E = SealError> = std::result::Result<T, E>;

/// Everything that can go wrong while handling keys, signatures and encryption.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    // ----- files, keys and secrets -------------------------------------------------
    /// Reading or writing a key file failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Reading or writing an encrypted stream failed for a reason outside the
    /// cryptography (disk full, broken pipe...).
    #[error("{action}: {source}")]
    Stream {
        action: &'static str,
        #[source]
        source: io::Error,
    },

    /// `keygen` would overwrite an existing file.
    #[error("refusing to overwrite {}: it already exists; move it away or choose another directory", path.display())]
    KeyFileExists { path: PathBuf },

    /// A secret key or identity file can be read by other users.
    #[error(
        "{} can be read by other users (mode {mode:04o}); a secret key must be private: run `chmod 600 {}` and try again",
        path.display(),
        path.display()
    )]
    InsecurePermissions { path: PathBuf, mode: u32 },

    /// A minisign key (file or string) could not be parsed.
    #[error("{what} is not a valid minisign {kind}: {reason}")]
    InvalidKey {
        /// The file name, or "the key given on the command line".
        what: String,
        /// "public key" or "secret key".
        kind: &'static str,
        reason: String,
    },

    /// The minisign secret key is password-protected and no password was given.
    #[error(
        "the minisign secret key {} is password-protected: set FERRY_KEY_PASSWORD or run on a terminal to be asked for the password",
        path.display()
    )]
    KeyPasswordRequired { path: PathBuf },

    /// The password does not decrypt the minisign secret key.
    #[error("wrong password for the minisign secret key {}", path.display())]
    WrongKeyPassword { path: PathBuf },

    /// A secret is needed but neither the environment nor a terminal can supply it.
    #[error("no {what} available: set {env} or run on a terminal to be asked for it")]
    SecretUnavailable { what: &'static str, env: &'static str },

    /// The two entries of a confirmed prompt differ.
    #[error("the two {what}s you typed do not match; try again")]
    SecretMismatch { what: &'static str },

    /// An empty password or passphrase was given.
    #[error("an empty {what} is not allowed")]
    EmptySecret { what: &'static str },

    /// Asking on the terminal failed.
    #[error("cannot read the {what} from the terminal: {source}")]
    Prompt {
        what: &'static str,
        #[source]
        source: io::Error,
    },

    /// An age recipient string could not be parsed.
    #[error("invalid age recipient {recipient}: {reason}")]
    InvalidRecipient {
        /// The recipient as given (quoted), or a placeholder when it looked secret.
        recipient: String,
        reason: String,
    },

    /// A line of a recipients file (`-R`) could not be parsed.
    #[error("{}, line {line}: {reason}", path.display())]
    InvalidRecipientsFile { path: PathBuf, line: usize, reason: String },

    /// An identity file (`-i`) could not be used.
    #[error("{} is not a usable age identity: {reason}", path.display())]
    InvalidIdentity { path: PathBuf, reason: String },

    // ----- signatures ----------------------------------------------------------------
    /// The signature was made by a key that is not among the trusted ones.
    #[error(
        "the signature was made by minisign key {signer}, which is not trusted ({}); if you trust that key, pass its public key with -k",
        trusted_list(trusted)
    )]
    UntrustedSigner { signer: KeyId, trusted: Vec<KeyId> },

    /// The signature does not match the signed data or the trusted comment.
    #[error("bad signature by minisign key {signer}: {detail}")]
    BadSignature { signer: KeyId, detail: String },

    /// The `.minisig` file is not a minisign signature.
    #[error("malformed minisign signature: {reason}")]
    MalformedSignature { reason: String },

    /// Signing failed.
    #[error("cannot sign: {reason}")]
    Sign { reason: String },

    // ----- encryption ----------------------------------------------------------------
    /// Encryption was asked for with an empty recipient list.
    #[error("no age recipients given: pass -r RECIPIENT, -R FILE or --passphrase")]
    NoRecipients,

    /// The recipients cannot be combined.
    #[error("cannot encrypt to these recipients: {reason}")]
    Encrypt { reason: String },

    /// The input does not start with an age header.
    #[error("the data is not age-encrypted (no age-encryption.org/v1 header)")]
    NotAge,

    /// The age header is malformed or was modified.
    #[error("the age header is invalid: {reason}; the file is corrupted or was modified")]
    MalformedHeader { reason: String },

    /// The age header ends before its MAC line.
    #[error("the age header is truncated: the file ends {at}")]
    TruncatedHeader { at: &'static str },

    /// The age header has more stanzas than [`MAX_STANZAS`](super::limits::MAX_STANZAS).
    #[error("the age header has more than {limit} stanzas (ferry's limit; a real bundle has one per recipient, plus one)")]
    TooManyStanzas { limit: usize },

    /// The age header is longer than [`MAX_HEADER_BYTES`](super::limits::MAX_HEADER_BYTES).
    #[error("the age header is longer than {limit} bytes (ferry's limit; a real header takes about 100 bytes per recipient)")]
    HeaderTooLong { limit: usize },

    /// The data is an ASCII-armored age file (`age -a`), not a binary one.
    #[error("the artifact is an ASCII-armored age file (-----BEGIN AGE ENCRYPTED FILE-----), but ferry bundles are binary age files")]
    Armored,

    /// The data is encrypted to recipients but no identity was given.
    #[error("the data is encrypted to {header} but no identity was given: pass -i IDENTITY (an age-keygen file or an SSH private key)")]
    NoIdentity { header: String },

    /// None of the given identities can decrypt the data.
    #[error(
        "none of the given identities ({tried}) can decrypt this data (encrypted to {header}); pass the identity that matches one of its recipients"
    )]
    NoMatchingIdentity { tried: String, header: String },

    /// The data is passphrase-encrypted but identities (not a passphrase) were given.
    #[error("the data is encrypted with a passphrase: set FERRY_PASSPHRASE or run on a terminal to be asked for it")]
    PassphraseRequired,

    /// A passphrase was given but the data is encrypted to recipients.
    #[error("the data is encrypted to {header}, not with a passphrase: pass -i IDENTITY")]
    NotPassphraseEncrypted { header: String },

    /// The passphrase does not decrypt the data.
    #[error("wrong passphrase: it does not decrypt this data")]
    WrongPassphrase,

    /// The scrypt work factor is above the limit (see [`super::limits`]).
    #[error(
        "the passphrase-encrypted bundle asks for scrypt work factor 2^{required}; ferry accepts at most 2^{limit}: refusing to spend that much time and memory"
    )]
    ExcessiveWork { required: u32, limit: u8 },

    /// The encrypted stream ended before its final chunk.
    #[error("the encrypted data is truncated (the age stream ends before its final chunk); copy or download the file again")]
    Truncated,

    /// A chunk of the encrypted stream failed authentication.
    #[error("the encrypted data is corrupted (a chunk failed authentication); copy or download the file again")]
    Corrupt,

    /// Any other decryption failure.
    #[error("decryption failed: {reason}")]
    Decrypt { reason: String },
}

fn trusted_list(keys: &[KeyId]) -> String {
    match keys {
        [] => "no public key was given".to_string(),
        [one] => format!("trusted key: {one}"),
        many => {
            let ids: Vec<String> = many.iter().map(|k| k.to_string()).collect();
            format!("trusted keys: {}", ids.join(", "))
        }
    }
}

impl SealError {
    /// True for integrity or authenticity failures: the data, its signature or
    /// its encryption is not what was promised (the CLI exits with code 3).
    ///
    /// Missing inputs (no identity, no password) and unreadable key files are not
    /// integrity failures.
    pub fn is_integrity_failure(&self) -> bool {
        matches!(
            self,
            SealError::UntrustedSigner { .. }
                | SealError::BadSignature { .. }
                | SealError::MalformedSignature { .. }
                | SealError::NotAge
                | SealError::MalformedHeader { .. }
                | SealError::TruncatedHeader { .. }
                | SealError::TooManyStanzas { .. }
                | SealError::HeaderTooLong { .. }
                | SealError::Armored
                | SealError::ExcessiveWork { .. }
                | SealError::NoMatchingIdentity { .. }
                | SealError::WrongPassphrase
                | SealError::Truncated
                | SealError::Corrupt
                | SealError::Decrypt { .. }
        )
    }

    /// What to do about it, when this error needs more than the generic hint
    /// of its class.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self {
            SealError::MalformedHeader { .. }
            | SealError::TruncatedHeader { .. }
            | SealError::TooManyStanzas { .. }
            | SealError::HeaderTooLong { .. } => {
                "the bundle is damaged or was changed after it was made: copy it again from its origin; nothing was loaded"
            }
            SealError::Armored => {
                "it was not written by `ferry save`: re-encrypt the artifact without `age -a` (--armor), or `age -d` it and save the image again"
            }
            SealError::ExcessiveWork { .. } => {
                "`ferry save --passphrase` and `age -p` pick about 2^18; each step up doubles time and memory (2^22: 4 GiB). If you trust the bundle's maker, raise the limit with FERRY_MAX_SCRYPT_WORK_FACTOR=N (N = log2 of the work factor)"
            }
            _ => return None,
        })
    }

    /// Finds a `SealError` in an error chain, looking inside `io::Error`s too
    /// (decryption failures while streaming surface as `io::Error`s that carry a
    /// `SealError`, possibly wrapped by a decompressor or a tar reader).
    pub fn find_in<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a SealError> {
        let mut cur: Option<&'a (dyn StdError + 'static)> = Some(err);
        let mut depth = 0;
        while let Some(e) = cur {
            if let Some(s) = e.downcast_ref::<SealError>() {
                return Some(s);
            }
            if let Some(io) = e.downcast_ref::<io::Error>() {
                if let Some(inner) = io.get_ref() {
                    if let Some(s) = SealError::find_in(inner) {
                        return Some(s);
                    }
                }
            }
            depth += 1;
            if depth > 32 {
                break;
            }
            cur = e.source();
        }
        None
    }

    /// The `SealError` carried by an `io::Error` returned from a
    /// [`DecryptReader`](super::DecryptReader), if any.
    pub fn from_io(err: &io::Error) -> Option<&SealError> {
        SealError::find_in(err)
    }
}

impl From<SealError> for io::Error {
    fn from(e: SealError) -> io::Error {
        let kind = match &e {
            SealError::Truncated => io::ErrorKind::UnexpectedEof,
            SealError::Io { source, .. } | SealError::Stream { source, .. } => source.kind(),
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrity_classification() {
        assert!(SealError::Truncated.is_integrity_failure());
        assert!(SealError::WrongPassphrase.is_integrity_failure());
        assert!(SealError::UntrustedSigner { signer: KeyId(1), trusted: vec![] }.is_integrity_failure());
        assert!(!SealError::NoIdentity { header: "x".into() }.is_integrity_failure());
        assert!(!SealError::KeyPasswordRequired { path: "k".into() }.is_integrity_failure());
        assert!(!SealError::NoRecipients.is_integrity_failure());
    }

    #[test]
    fn found_through_io_and_source_chains() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] io::Error);

        let io: io::Error = SealError::Corrupt.into();
        let wrapped = io::Error::other(Outer(io));
        let found = SealError::find_in(&wrapped).expect("found");
        assert!(matches!(found, SealError::Corrupt));
        assert!(SealError::from_io(&io::Error::other("plain")).is_none());
    }

    #[test]
    fn untrusted_message_names_both_sides() {
        let e = SealError::UntrustedSigner { signer: KeyId(0xBC399CCC65F00E8C), trusted: vec![KeyId(0x1122334455667788)] };
        let m = e.to_string();
        assert!(m.contains("BC399CCC65F00E8C"), "{m}");
        assert!(m.contains("1122334455667788"), "{m}");
        assert!(m.contains("-k"), "{m}");
    }
}
