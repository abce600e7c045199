//! Registries (SPEC §6, issue 16): `docker://` references, a client of the
//! distribution API, and the registry as a load target (push).
pub mod auth;
pub mod client;
mod credential_helper;
mod error;
pub mod held;
mod listing;
pub mod pool;
pub mod prefetch;
pub mod pull;
pub mod push;
pub mod reference;
pub mod referrers;
pub mod upload;

pub use client::{Client, FetchedManifest, RegistryOptions, Scope};
pub use error::RegistryError;
pub use reference::RegistryRef;
