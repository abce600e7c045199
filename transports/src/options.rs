//! Settings for network backends that do not belong in a URL.
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Where SSH-agent identities come from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SshAgent {
    /// The agent named by `$SSH_AUTH_SOCK`, if any.
    #[default]
    FromEnv,
    /// The agent listening on this socket.
    Socket(PathBuf),
    /// Do not use an agent.
    Off,
}

/// FTP data-connection mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FtpPassive {
    /// EPSV when the server lists it in `FEAT`, else PASV.
    #[default]
    Auto,
    /// Always PASV (IPv4 only).
    Pasv,
    /// Always EPSV (RFC 2428).
    Epsv,
}

/// Options for `open_with`. `Default` gives what a user expects from ssh/curl:
/// system trust roots, `~/.ssh/known_hosts` with unknown keys refused, the SSH agent
/// from `$SSH_AUTH_SOCK`, default key files, `~/.netrc` (or `$NETRC`), a 10 s connect
/// timeout and 60 s of silence before a transfer is given up.
#[derive(Clone)]
pub struct TransportOptions {
    /// Extra trusted CA certificate (PEM) for FTPS and HTTPS, on top of the system roots.
    pub ca_cert: Option<PathBuf>,
    /// known_hosts file for SFTP (default `~/.ssh/known_hosts`).
    pub known_hosts: Option<PathBuf>,
    /// Accept (and append to known_hosts) the key of a host not yet listed there,
    /// like OpenSSH's `StrictHostKeyChecking=accept-new`. A *changed* key is always refused.
    pub accept_new_host_key: bool,
    /// SSH private key files to try. Empty: `~/.ssh/id_ed25519`, `id_ecdsa`, `id_rsa`.
    pub identity_files: Vec<PathBuf>,
    /// SSH agent to take identities from (every identity is tried, in order).
    pub ssh_agent: SshAgent,
    /// netrc file (default `$NETRC`, else `~/.netrc`). Missing file: ignored.
    pub netrc: Option<PathBuf>,
    /// Use `~/.netrc`/`$NETRC` at all.
    pub use_netrc: bool,
    /// Password to use when the URL has none (e.g. prompted by the caller).
    /// Never printed: `Debug` shows `***`.
    pub password: Option<String>,
    /// Bearer token for HTTP(S) when no user/password applies (default: `$FERRY_HTTP_TOKEN`).
    pub http_token: Option<String>,
    /// Read the environment for secrets (`FERRY_*_PASSWORD`, `FERRY_HTTP_TOKEN`,
    /// `FERRY_SSH_KEY_PASSPHRASE`).
    pub use_env: bool,
    /// FTP passive mode selection.
    pub ftp_passive: FtpPassive,
    /// TCP connect timeout (a server that is down fails within it).
    pub connect_timeout: Duration,
    /// How long the server may stay silent: every FTP control reply and data read or
    /// write, every SSH operation, every small HTTP request and every read of an HTTP
    /// body must make progress within it (a stalled server fails instead of hanging).
    /// Zero: no limit.
    pub io_timeout: Duration,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            ca_cert: None,
            known_hosts: None,
            accept_new_host_key: false,
            identity_files: Vec::new(),
            ssh_agent: SshAgent::FromEnv,
            netrc: None,
            use_netrc: true,
            password: None,
            http_token: None,
            use_env: true,
            ftp_passive: FtpPassive::Auto,
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(60),
        }
    }
}

impl fmt::Debug for TransportOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportOptions")
            .field("ca_cert", &self.ca_cert)
            .field("known_hosts", &self.known_hosts)
            .field("accept_new_host_key", &self.accept_new_host_key)
            .field("identity_files", &self.identity_files)
            .field("ssh_agent", &self.ssh_agent)
            .field("netrc", &self.netrc)
            .field("use_netrc", &self.use_netrc)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("http_token", &self.http_token.as_ref().map(|_| "***"))
            .field("use_env", &self.use_env)
            .field("ftp_passive", &self.ftp_passive)
            .field("connect_timeout", &self.connect_timeout)
            .field("io_timeout", &self.io_timeout)
            .finish()
    }
}

/// A secret string that never shows itself in `Debug` output.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}
