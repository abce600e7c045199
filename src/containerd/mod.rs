//! `containerd:` — containerd's own stores, through its gRPC API (no `ctr`):
//! a `load` target ([`load_into_containerd`]: content, leases, images,
//! snapshots, diff), a `save` source ([`ContainerdFiles`]: image records and
//! blobs streamed from the content service) and a have-list target
//! ([`held`]). See docs/CONTAINERD.md.
mod client;
pub mod held;
mod load;
mod source;

pub use client::{Containerd, Endpoint, DEFAULT_ADDRESS, DEFAULT_NAMESPACE, DEFAULT_SNAPSHOTTER};
pub use load::load_into_containerd;
pub use source::ContainerdFiles;
