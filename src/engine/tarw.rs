//! Tar headers for the stream sent to `/images/load` (regular files only).
use crate::bundle::tarstream::BLOCK;

/// A ustar header for a regular file (sizes past 8 GiB use the base-256
/// extension, which Go's archive/tar reads).
pub fn file_header(path: &str, size: u64) -> [u8; 512] {
    let mut h = tar::Header::new_ustar();
    h.set_path(path).expect("blob paths are short and plain");
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    *h.as_bytes()
}

/// Zero bytes that pad an entry of `size` bytes to a whole block.
pub fn padding(size: u64) -> &'static [u8] {
    const ZEROS: [u8; 512] = [0; 512];
    &ZEROS[..((BLOCK - size % BLOCK) % BLOCK) as usize]
}

/// The end-of-archive marker.
pub const END: [u8; 1024] = [0; 1024];
