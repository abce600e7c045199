use std::io;

pub type Result<T, E = TransportError> = std::result::Result<T, E>;

/// Transport failures. Messages name the location/file, never a password.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{location}: {name} not found")]
    NotFound { location: String, name: String },
    #[error("{location}: the server does not allow {operation}")]
    Unsupported { location: String, operation: &'static str },
    #[error("invalid file name {0:?}")]
    InvalidName(String),
    #[error("invalid location {location:?}: {reason}")]
    InvalidLocation { location: String, reason: String },
    #[error("{location}: authentication failed{detail}")]
    Auth { location: String, detail: String },
    #[error("{location}: host key verification failed: {detail}")]
    HostKey { location: String, detail: String },
    #[error("{location}: {context}: {}", crate::remote::without_errno(&source.to_string()))]
    Io {
        location: String,
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("{location}: {context}: {detail}")]
    Protocol { location: String, context: String, detail: String },
    /// A FIFO, device, socket or directory where a file to read should be: refused
    /// before it is read (a FIFO would block for ever, a device never end).
    #[error("{location}: {name} is not a regular file (it is {kind}): refused")]
    NotRegular { location: String, name: String, kind: crate::local_file::NotRegular },
}

impl TransportError {
    pub fn io(location: impl Into<String>, context: impl Into<String>, source: io::Error) -> Self {
        TransportError::Io { location: location.into(), context: context.into(), source }
    }
    pub fn protocol(location: impl Into<String>, context: impl Into<String>, detail: impl ToString) -> Self {
        TransportError::Protocol { location: location.into(), context: context.into(), detail: detail.to_string() }
    }
    pub fn is_not_regular(&self) -> bool {
        matches!(self, TransportError::NotRegular { .. })
    }
    pub fn is_not_found(&self) -> bool {
        matches!(self, TransportError::NotFound { .. })
            || matches!(self, TransportError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}
