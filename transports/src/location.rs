use crate::remote::redact;
use crate::{
    DirTransport, FtpTransport, HttpTransport, MemoryTransport, Result, SftpTransport, Transport, TransportError, TransportOptions,
};

/// Where bundles go or come from, parsed from what the user typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local directory, e.g. a mounted USB key.
    Dir(std::path::PathBuf),
    /// `memory:NAME` — process-local store for tests.
    Memory(String),
    /// `ftp://`, `ftps://`, `sftp://`, `http://`, `https://` (any other `scheme://` is
    /// parsed as a URL too, and refused by `open`).
    Url(String),
}

impl Location {
    pub fn parse(s: &str) -> Location {
        if let Some(name) = s.strip_prefix("memory:") {
            return Location::Memory(name.to_string());
        }
        // Any "scheme://" is a URL (unknown schemes are refused by `open`, not taken for
        // a directory called "gopher:").
        if let Some((scheme, _)) = s.split_once("://") {
            let mut chars = scheme.chars();
            if chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            {
                return Location::Url(s.to_string());
            }
        }
        Location::Dir(std::path::PathBuf::from(s))
    }

    pub fn is_remote(&self) -> bool {
        matches!(self, Location::Url(_))
    }
}

/// Open the backend a location string names, with default options.
pub fn open(location: &str) -> Result<Box<dyn Transport>> {
    open_with(location, &TransportOptions::default())
}

/// Open the backend a location string names.
///
/// `ftp://[user[:password]@]host[:port]/path/`, `ftps://...` (explicit AUTH TLS),
/// `sftp://[user[:password]@]host[:port]/abs/path` (or `/~/rel/path`),
/// `http[s]://[user[:password]@]host[:port]/path/`, `memory:NAME`, or a directory path.
pub fn open_with(location: &str, options: &TransportOptions) -> Result<Box<dyn Transport>> {
    match Location::parse(location) {
        Location::Dir(path) => Ok(Box::new(DirTransport::new(path))),
        Location::Memory(name) => Ok(Box::new(MemoryTransport::named(&name))),
        Location::Url(url) => {
            let scheme = url.split("://").next().unwrap_or("").to_ascii_lowercase();
            match scheme.as_str() {
                "ftp" | "ftps" => Ok(Box::new(FtpTransport::open(&url, options)?)),
                "sftp" => Ok(Box::new(SftpTransport::open(&url, options)?)),
                "http" | "https" => Ok(Box::new(HttpTransport::open(&url, options)?)),
                _ => Err(TransportError::InvalidLocation { location: redact(&url), reason: "unknown scheme".into() }),
            }
        }
    }
}
