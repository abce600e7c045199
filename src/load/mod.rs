//! File-based load targets (`oci:`, `oci-archive:`, `docker-archive:`): sinks
//! that stage verified content and commit it only when every check passed.
//! Which target a load goes to is decided in `crate::targets`.
mod archive_file;
mod dir_handle;
mod oci_dir;

pub use archive_file::ArchiveFileSink;
pub use oci_dir::OciDirSink;
