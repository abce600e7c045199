use crate::{DirTransport, MemoryTransport, Result, Transport, TransportError};

/// Where bundles go or come from, parsed from what the user typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local directory, e.g. a mounted USB key.
    Dir(std::path::PathBuf),
    /// `memory:NAME` — process-local store for tests.
    Memory(String),
    /// `ftp://`, `ftps://`, `sftp://`, `http://`, `https://`.
    Url(String),
}

impl Location {
    pub fn parse(s: &str) -> Location {
        if let Some(name) = s.strip_prefix("memory:") {
            return Location::Memory(name.to_string());
        }
        let lower = s.to_ascii_lowercase();
        for scheme in ["ftp://", "ftps://", "sftp://", "http://", "https://"] {
            if lower.starts_with(scheme) {
                return Location::Url(s.to_string());
            }
        }
        Location::Dir(std::path::PathBuf::from(s))
    }

    pub fn is_remote(&self) -> bool {
        matches!(self, Location::Url(_))
    }
}

/// Open the backend a location string names.
pub fn open(location: &str) -> Result<Box<dyn Transport>> {
    match Location::parse(location) {
        Location::Dir(path) => Ok(Box::new(DirTransport::new(path))),
        Location::Memory(name) => Ok(Box::new(MemoryTransport::named(&name))),
        Location::Url(url) => Err(TransportError::InvalidLocation {
            location: url,
            reason: "network transports are not built yet".into(),
        }),
    }
}
