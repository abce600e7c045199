//! What can go wrong talking to a registry, each with its exit code and hint
//! (issue 16: TLS and auth failures and a lost registry are transport
//! failures, exit 4; a registry that refuses what ferry sends is exit 1).
use crate::error::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The TLS handshake failed (unknown CA, wrong host name, client certificate refused).
    #[error("{registry}: {context}: TLS failed: {detail}")]
    Tls { registry: String, context: String, detail: String },
    /// 401/403 after the challenge was answered (or with nothing to answer it with).
    #[error("{registry}: {context}: access denied (HTTP {status}); credentials tried: {tried}")]
    Auth { registry: String, context: String, status: u16, tried: String },
    /// No connection, a dropped one, a timeout.
    #[error("{registry}: {context}: {detail}")]
    Network { registry: String, context: String, detail: String },
    /// The registry answered with an error status.
    #[error("{registry}: {context}: the registry answered HTTP {status}{detail}")]
    Status { registry: String, context: String, status: u16, detail: String },
    /// An answer that does not follow the distribution API (no Location, bad Range).
    #[error("{registry}: {context}: {detail}")]
    Protocol { registry: String, context: String, detail: String },
    /// Something the registry does not have.
    #[error("{registry}: {what} not found")]
    NotFound { registry: String, what: String },
}

impl RegistryError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            RegistryError::Status { status, .. } if *status < 500 && *status != 429 => ErrorKind::Other,
            RegistryError::NotFound { .. } => ErrorKind::Other,
            _ => ErrorKind::Transport,
        }
    }

    /// Worth another try: the connection, the server's own trouble, or rate limiting.
    pub fn is_retryable(&self) -> bool {
        match self {
            RegistryError::Network { .. } => true,
            RegistryError::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            _ => false,
        }
    }

    pub fn hint(&self) -> String {
        match self {
            RegistryError::Tls { .. } => "is the registry's certificate signed by a CA this machine trusts? give it with --ca-cert FILE (PEM); for a client certificate, --cert FILE [--cert-key FILE]; --plain-http only for a registry without TLS".into(),
            RegistryError::Auth { .. } => "check the credentials for this registry: --registry-auth FILE, $REGISTRY_AUTH_FILE, ~/.docker/config.json or ${XDG_RUNTIME_DIR}/containers/auth.json (docker login / skopeo login write them; a credsStore or credHelpers helper must be on PATH), and that the user may push/pull this repository".into(),
            RegistryError::Network { .. } => "check that the registry runs and is reachable (host, port, --plain-http); run the command again: uploads resume where the registry stopped".into(),
            RegistryError::Status { status, .. } if *status >= 500 => "the registry failed; its log may say more; run the command again: uploads resume where the registry stopped".into(),
            RegistryError::Status { .. } => "the registry refused the request; its log may say more".into(),
            RegistryError::Protocol { .. } => "the server does not speak the registry API as expected: check the host and port".into(),
            RegistryError::NotFound { .. } => "check the repository, tag or digest against what the registry holds".into(),
        }
    }
}
