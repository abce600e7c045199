//! One module per subcommand: typed options in, a `Serialize` report out. The
//! binary (src/main.rs) only turns flags into these options and prints what
//! comes back, as text or as `--json`.
pub mod flatten;
pub mod have;
pub mod inspect;
pub mod keygen;
pub mod load;
pub mod ls;
pub mod pull;
pub mod push;
pub mod repair;
pub mod save;
pub mod verify;
pub mod watch;

use crate::bundle::{self, BundleSource, Progress};
use crate::error::Result;
use ferry_transports::{Transport, TransportOptions};

/// What every command may need besides its own options.
pub struct Context<'a> {
    /// Options of network locations (timeouts, keys, CA certificates).
    pub net: TransportOptions,
    pub progress: &'a dyn Progress,
    /// Whether secrets may be asked for on the terminal.
    pub prompt_allowed: bool,
    /// containerd's socket and snapshotter (`containerd:` sources and targets).
    pub containerd: crate::containerd::Endpoint,
    /// Options of `docker://` registries (SPEC §6).
    pub registry: crate::registry::RegistryOptions,
}

impl Context<'_> {
    /// The transport a location string names.
    pub fn open(&self, location: &str) -> Result<Box<dyn Transport>> {
        Ok(ferry_transports::open_with(location, &self.net)?)
    }

    /// The bundle a SOURCE argument names (SPEC §3).
    pub fn locate(&self, source: &str) -> Result<BundleSource> {
        bundle::locate(source, &|location| self.open(location))
    }
}
