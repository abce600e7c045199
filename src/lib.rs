//! ferry: carry container images across air gaps.
//!
//! Layout: `image` reads image sources, `bundle` writes/reads/verifies bundles,
//! `seal` signs and encrypts, `flatten` squashes layers, `load` writes verified
//! images to their targets; the binary (`main.rs`) only parses and prints.

pub mod bounded_tar;
pub mod compress;
pub mod decompress;
pub mod delta;
pub mod digest;
pub mod error;
pub mod flatten;
pub mod have;
pub mod image;
pub mod reference;
pub mod registry;
pub mod seal;
pub mod size;

pub use error::{Error, ErrorKind, Result};
pub mod bundle;
pub mod commands;
pub mod containerd;
pub mod disk;
pub mod engine;
pub mod inspect;
pub mod load;
pub mod parity;
pub mod save;
pub mod sources;
pub mod targets;
pub mod transfer;
pub mod trust;
pub mod untrusted;
pub mod verified;
pub mod watch;
