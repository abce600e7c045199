//! ferry's error type. Each variant knows its exit code (SPEC §3) and a hint
//! telling the user what to do next.
use ferry_transports::TransportError;
use std::io;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line asks for something that cannot work.
    #[error("{0}")]
    Usage(String),
    /// Checksum, signature, digest or decryption failure: the data is not what was promised.
    #[error("{0}")]
    Integrity(String),
    /// No trusted signature where one is required (unsigned, or no key given).
    #[error("{0}")]
    Authenticity(String),
    /// An image source or bundle that is not in a format ferry understands.
    #[error("{0}")]
    Format(String),
    /// Moving bytes to or from a location failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Seal(#[from] crate::seal::SealError),
    /// A sealing failure on one file of a bundle (its age header, its decryption).
    #[error("{file}: {source}")]
    SealIn {
        file: String,
        #[source]
        source: crate::seal::SealError,
    },
    #[error("{context}: {}", plain_io(source))]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// The target's file system cannot hold what the bundle declares.
    #[error("{what} needs {needed} bytes but only {free} bytes are free at {}", path.display())]
    NoSpace { what: String, needed: u64, free: u64, path: std::path::PathBuf },
    /// An error whose maker knew better what to tell the user than its kind does.
    #[error("{error}")]
    Hinted { error: Box<Error>, hint: String },
    /// The Docker Engine could not be reached (or the connection was lost).
    #[error("{0}")]
    Engine(String),
    /// The Docker Engine answered with an error (refused a load, failed an export).
    #[error("{0}")]
    EngineFailed(String),
    /// The Docker Engine does not have the image asked for.
    #[error("{0}")]
    ImageNotFound(String),
    /// An image whose content is unsafe to apply (a layer entry escaping the
    /// root, a hostile hard link): refused, like a failed integrity check.
    #[error("{0}")]
    UnsafeImage(String),
    /// containerd could not be reached, or refused what ferry asked.
    #[error("{0}")]
    Containerd(String),
    /// A delta bundle whose left-out layers the target does not hold (or cannot be checked for).
    #[error("{0}")]
    MissingBase(String),
    /// Talking to a registry failed (TLS, auth, connection, a refused request).
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
}

/// What kind of failure, for exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Usage,
    Integrity,
    Transport,
    Other,
}

impl ErrorKind {
    /// Exit codes of SPEC §3.
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Other => 1,
            ErrorKind::Usage => 2,
            ErrorKind::Integrity => 3,
            ErrorKind::Transport => 4,
        }
    }
}

impl Error {
    pub fn usage(msg: impl Into<String>) -> Self {
        Error::Usage(msg.into())
    }
    pub fn integrity(msg: impl Into<String>) -> Self {
        Error::Integrity(msg.into())
    }
    /// A blob of the image being saved hashed to `actual`, not to its `digest`.
    pub fn damaged_source(digest: &dyn std::fmt::Display, actual: &dyn std::fmt::Display) -> Self {
        Error::integrity(format!(
            "the source's blob {digest} does not match its digest (it hashes to {actual}): the source image is damaged"
        ))
        .with_hint("the image being saved is damaged, not a bundle: export or copy it again (docker save, skopeo copy) and save it again")
    }

    /// A bundle made by a newer ferry, in a format this one does not read.
    pub fn newer_format(found: &str) -> Self {
        Error::format(format!("bundle format {found} is newer than this ferry understands (1)"))
            .with_hint(format!("this bundle was made by a newer ferry (format {found}): upgrade ferry on this machine"))
    }

    /// Replace the hint this error's kind would give: the place that makes an
    /// error knows best what the user should do about it.
    pub fn with_hint(self, hint: impl Into<String>) -> Self {
        match self {
            Error::Hinted { error, .. } => Error::Hinted { error, hint: hint.into() },
            error => Error::Hinted { error: Box::new(error), hint: hint.into() },
        }
    }
    pub fn format(msg: impl Into<String>) -> Self {
        Error::Format(msg.into())
    }

    /// Wrap an I/O error with what was being done. An error that ferry itself
    /// smuggled through an `io::Error` (from inside a `Read`/`Write` adapter) is
    /// unwrapped back to its own variant.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        match unwrap_io(source) {
            Ok(err) => err,
            Err(source) => match crate::seal::SealError::from_io(&source) {
                // A decryption failure found while streaming (wrong key, truncated or edited stream).
                Some(seal) if seal.is_integrity_failure() => Error::Integrity(format!("decryption failed: {seal}")),
                _ => Error::Io { context: context.into(), source },
            },
        }
    }

    /// Carry this error through an `io::Error` (for `Read`/`Write` adapters).
    pub fn into_io(self) -> io::Error {
        io::Error::other(self)
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Hinted { error, .. } => error.kind(),
            Error::Usage(_) => ErrorKind::Usage,
            Error::Integrity(_) | Error::Authenticity(_) | Error::UnsafeImage(_) => ErrorKind::Integrity,
            // A FIFO or device as a bundle file is wrong with what travels, not with the transport.
            Error::Transport(TransportError::NotRegular { .. }) => ErrorKind::Integrity,
            Error::Transport(_) => ErrorKind::Transport,
            Error::Seal(e) | Error::SealIn { source: e, .. } if e.is_integrity_failure() => ErrorKind::Integrity,
            Error::Registry(e) => e.kind(),
            _ => ErrorKind::Other,
        }
    }

    /// One line telling the user what to do about it.
    pub fn hint(&self) -> Option<String> {
        let hint = match self {
            Error::Hinted { hint, .. } => hint,
            Error::NoSpace { .. } => "free space at the target (or load into another one) and run the command again; nothing was written",
            Error::Usage(_) => "see `ferry --help` and `ferry COMMAND --help`",
            Error::Integrity(_) => {
                "the bundle is damaged or was changed after it was made: copy it again from its origin; nothing was loaded"
            }
            Error::Authenticity(_) => {
                "give the publisher's public key with -k ferry.pub; --allow-unsigned skips the check (not recommended)"
            }
            Error::Format(_) => "check that the source is a docker-archive, oci-archive or oci directory (see docs/FORMAT.md)",
            Error::Transport(TransportError::Auth { .. }) => {
                "check the user name and password (URL, ~/.netrc or FERRY_*_PASSWORD) or the SSH key/agent"
            }
            Error::Transport(TransportError::HostKey { .. }) => {
                "check the server's host key; add it to known_hosts (or pass --accept-new-host-key for a first contact)"
            }
            Error::Transport(TransportError::NotRegular { .. }) => {
                "a bundle's files must be regular files (or links to them): put the real file there and run the command again; nothing was loaded"
            }
            Error::Transport(_) => "check the location and that the server is reachable; `ferry push`/`pull` resume where they stopped",
            Error::Seal(e) | Error::SealIn { source: e, .. } if e.hint().is_some() => e.hint().unwrap_or_default(),
            Error::Seal(e) | Error::SealIn { source: e, .. } if e.is_integrity_failure() => {
                "the bundle's signature or encryption does not check out with the keys given: nothing was loaded"
            }
            Error::Seal(_) | Error::SealIn { .. } => "check the key files and the password/passphrase (FERRY_KEY_PASSWORD, FERRY_PASSPHRASE)",
            Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => "check the path",
            Error::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC) => "free some disk space and run the command again",
            Error::Io { source, .. } if source.kind() == io::ErrorKind::PermissionDenied => {
                "check the permissions of the file or directory named (or run as a user who may write there)"
            }
            Error::Io { .. } => return None,
            Error::Engine(_) => {
                "check that the Docker Engine (or `podman system service`) runs and that DOCKER_HOST points at its socket, e.g. unix:///var/run/docker.sock"
            }
            Error::EngineFailed(_) => "the Docker Engine's log (e.g. `journalctl -u docker`) may say more",
            Error::ImageNotFound(_) => {
                "check the name and digest against what the source holds (`docker images --digests` for the daemon); a name without a tag means NAME:latest"
            }
            Error::Containerd(_) => "check that containerd runs and that --containerd-address (or CONTAINERD_ADDRESS) names its socket",
            Error::UnsafeImage(_) => "nothing was written; do not use this image: get it again from a source you trust",
            Error::Registry(e) => return Some(e.hint()),
            Error::MissingBase(_) => {
                "nothing was written: load the bundle the delta was made against first, or ask the sender for a full bundle (save without --have)"
            }
        };
        Some(hint.to_string())
    }
}

/// An I/O error's text without the raw errno ("No space left on device", not
/// "No space left on device (os error 28)").
pub fn plain_io(e: &io::Error) -> String {
    ferry_transports::without_errno(&e.to_string())
}

/// If `e` carries a ferry `Error`, return it; otherwise give `e` back.
pub fn unwrap_io(e: io::Error) -> std::result::Result<Error, io::Error> {
    let is_ours = e.get_ref().map(|inner| inner.is::<Error>()).unwrap_or(false);
    if !is_ours {
        return Err(e);
    }
    let inner = e.into_inner().expect("checked above");
    Ok(*inner.downcast::<Error>().expect("checked above"))
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::io("I/O error", e)
    }
}
