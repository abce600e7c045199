//! What an age header may cost ferry to read and to unlock. Every input comes
//! from whoever wrote the bundle, so each of these is a bound on an attacker;
//! all are far above what ferry, `age` and `rage` write.

/// Bytes of age header ferry reads, from the version line to the MAC line
/// included. A recipient takes about 100 bytes (an ssh-rsa one about 400).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Stanzas in an age header (recipients and grease).
pub const MAX_STANZAS: usize = 256;

/// Highest scrypt work factor (log2 of N) a passphrase-encrypted bundle may ask
/// for: the age CLI's own limit. scrypt then needs 4 GiB of memory and 16 times
/// the time of the 2^18 or so (1 s) that `ferry save --passphrase` and `age -p` pick.
pub const DEFAULT_MAX_SCRYPT_WORK_FACTOR: u8 = 22;

/// Environment variable that moves [`DEFAULT_MAX_SCRYPT_WORK_FACTOR`].
pub const MAX_SCRYPT_WORK_FACTOR_ENV: &str = "FERRY_MAX_SCRYPT_WORK_FACTOR";

/// The scrypt work factor limit: `FERRY_MAX_SCRYPT_WORK_FACTOR` if set (a log2
/// from 1 to 63, what scrypt can take), else the default. The error says what
/// is wrong with the setting.
pub fn max_scrypt_work_factor() -> Result<u8, String> {
    match std::env::var_os(MAX_SCRYPT_WORK_FACTOR_ENV) {
        None => Ok(DEFAULT_MAX_SCRYPT_WORK_FACTOR),
        Some(v) => parse_work_factor_limit(&v.to_string_lossy()),
    }
}

fn parse_work_factor_limit(v: &str) -> Result<u8, String> {
    match v.trim().parse::<u8>() {
        Ok(n @ 1..=63) => Ok(n),
        _ => Err(format!(
            "{MAX_SCRYPT_WORK_FACTOR_ENV}={v:?} is not a scrypt work factor: give its log2, a whole number from 1 to 63 (default {DEFAULT_MAX_SCRYPT_WORK_FACTOR})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_factor_limit_settings() {
        assert_eq!(parse_work_factor_limit("23"), Ok(23));
        assert_eq!(parse_work_factor_limit(" 18 "), Ok(18));
        for bad in ["", "0", "64", "300", "-1", "2^22", "lots"] {
            let e = parse_work_factor_limit(bad).unwrap_err();
            assert!(e.contains(MAX_SCRYPT_WORK_FACTOR_ENV), "{e}");
        }
    }
}
