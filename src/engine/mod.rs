//! `docker-daemon:` — the Docker Engine API (and Podman's Docker-compatible
//! API) as a `save` source and a `load` target.
//!
//! bollard (async) does the HTTP; each [`Engine`] owns a small current-thread
//! tokio runtime, so the rest of ferry stays synchronous. Bodies move through
//! bounded channels between the runtime and ferry's threads: no image is ever
//! held whole in memory.
//!
//! - [`export_images`]: one `/images/get` call for all names (shared layers
//!   once); small JSON entries kept in memory, layer tars spooled to one file
//!   next to the output (the legacy order puts `manifest.json` last), then
//!   read as a docker-archive.
//! - [`load_into_daemon`]: the bundle is verified while it is re-serialized
//!   into the tar stream `/images/load` reads; the last bytes are held back
//!   until everything checked out, so a corrupt blob leaves Docker with a
//!   truncated upload and nothing loaded. Tags are applied once the load
//!   succeeded, so a failure leaves nothing half-tagged.
mod client;
mod export;
pub mod held;
mod load;
mod tarw;

pub use client::{chain, Engine, EngineHost};
pub use export::export_images;
pub use load::load_into_daemon;
