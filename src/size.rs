//! SIZE arguments: a byte count with an optional K, M, G or T suffix (powers of
//! 1024, as `split -b`), or `fat32` (4 GiB − 1 byte, FAT32's largest file).
use crate::error::{Error, Result};

pub const FAT32_MAX_FILE: u64 = 4 * 1024 * 1024 * 1024 - 1;

pub fn parse_size(s: &str) -> Result<u64> {
    let bad = || Error::usage(format!("invalid size {s:?}: use a byte count with an optional K, M, G or T suffix, or fat32"));
    if s.eq_ignore_ascii_case("fat32") {
        return Ok(FAT32_MAX_FILE);
    }
    let (digits, shift) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 30),
        Some('T' | 't') => (&s[..s.len() - 1], 40),
        _ => (s, 0),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let size = n.checked_mul(1u64 << shift).ok_or_else(bad)?;
    if size == 0 {
        return Err(bad());
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("100").unwrap(), 100);
        assert_eq!(parse_size("1K").unwrap(), 1024);
        assert_eq!(parse_size("2M").unwrap(), 2 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("fat32").unwrap(), 4294967295);
        assert!(parse_size("0").is_err());
        assert!(parse_size("1X").is_err());
        assert!(parse_size("").is_err());
    }
}
