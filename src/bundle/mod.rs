//! Bundles (SPEC §2): the artifact (one tar that is an OCI layout and a
//! docker-archive, compressed, maybe encrypted, maybe split) and its sidecars.
pub mod checksums;
pub mod in_place;
pub mod layout;
pub mod locate;
pub mod names;
pub mod parts;
pub mod pipeline;
pub mod progress;
pub mod read;
pub mod tarstream;
pub mod verify;
pub mod write;

pub use locate::{locate, BundleSource};
pub use progress::{NoProgress, Progress};
pub use write::{write_bundle, SaveOptions, SaveReport};
