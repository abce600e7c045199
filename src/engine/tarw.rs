//! Tar headers for the stream sent to `/images/load` (regular files only).
use crate::bundle::tarstream::BLOCK;

/// A ustar header for a regular file (sizes past 8 GiB use the base-256
/// extension, which Go's archive/tar reads).
pub fn file_header(path: &str, size: u64) -> [u8; 512] {
    let h = crate::bundle::tarstream::entry_header(path, size, 0o644, 0, tar::EntryType::Regular).expect("blob paths are short and plain");
    *h.as_bytes()
}

/// Zero bytes that pad an entry of `size` bytes to a whole block.
pub fn padding(size: u64) -> &'static [u8] {
    const ZEROS: [u8; 512] = [0; 512];
    &ZEROS[..((BLOCK - size % BLOCK) % BLOCK) as usize]
}

/// The end-of-archive marker.
pub const END: [u8; 1024] = [0; 1024];
