//! Deterministic pseudo-random test data, addressable at any offset, streamed (never
//! held whole in memory), and SHA-256 helpers.
use sha2::{Digest, Sha256};
use std::io::{Read, Write};

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fill `buf` with the bytes of stream `seed` starting at byte `offset`.
pub fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    let mut pos = offset;
    let mut i = 0;
    // Unaligned head.
    while i < buf.len() && !pos.is_multiple_of(8) {
        buf[i] = (splitmix(seed ^ (pos / 8)) >> ((pos % 8) * 8)) as u8;
        i += 1;
        pos += 1;
    }
    // Whole words.
    while i + 8 <= buf.len() {
        buf[i..i + 8].copy_from_slice(&splitmix(seed ^ (pos / 8)).to_le_bytes());
        i += 8;
        pos += 8;
    }
    while i < buf.len() {
        buf[i] = (splitmix(seed ^ (pos / 8)) >> ((pos % 8) * 8)) as u8;
        i += 1;
        pos += 1;
    }
}

pub fn bytes(seed: u64, offset: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    fill(seed, offset, &mut v);
    v
}

pub const BLOCK: usize = 1024 * 1024;

/// Write `len` bytes of stream `seed` from `offset` to `w`; returns their SHA-256.
pub fn write_stream(w: &mut dyn Write, seed: u64, offset: u64, len: u64) -> std::io::Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BLOCK];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(BLOCK as u64) as usize;
        fill(seed, offset + done, &mut buf[..n]);
        hasher.update(&buf[..n]);
        w.write_all(&buf[..n])?;
        done += n as u64;
    }
    Ok(hasher.finalize().into())
}

/// SHA-256 of `len` bytes of stream `seed` from `offset`.
pub fn stream_sha(seed: u64, offset: u64, len: u64) -> [u8; 32] {
    write_stream(&mut std::io::sink(), seed, offset, len).unwrap()
}

/// Read `r` to its end: (byte count, SHA-256).
pub fn read_sha(r: &mut dyn Read) -> std::io::Result<(u64, [u8; 32])> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BLOCK];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, hasher.finalize().into()))
}

pub fn sha(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

pub fn hex(h: &[u8; 32]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}
