//! Strict standard base64 decoding (RFC 4648, with padding), enough to look
//! inside minisign key files; and the check that age stanza bodies are
//! canonical unpadded base64.

/// Decodes standard padded base64; `None` if `s` is not exactly that.
pub(crate) fn decode(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for (i, q) in s.chunks(4).enumerate() {
        let last = i == s.len() / 4 - 1;
        let pad = q.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n: u32 = 0;
        for &c in &q[..4 - pad] {
            n = (n << 6) | val(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

/// True if `s` is canonical standard base64 without padding (c2sp.org/age:
/// stanza bodies): only alphabet characters, no impossible length, and no
/// stray bits in the last character.
pub(crate) fn is_canonical_unpadded(s: &[u8]) -> bool {
    let unused_bits = match s.len() % 4 {
        0 => 0,
        1 => return false,
        2 => 0b1111,
        _ => 0b11,
    };
    let mut last = 0;
    for &c in s {
        match val(c) {
            Some(v) => last = v,
            None => return false,
        }
    }
    last & unused_bits == 0
}

fn val(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    } as u32)
}

#[cfg(test)]
mod tests {
    use super::{decode, is_canonical_unpadded};

    #[test]
    fn canonical_unpadded() {
        for good in ["", "Zg", "Zm8", "Zm9v", "Zm9vYmFy"] {
            assert!(is_canonical_unpadded(good.as_bytes()), "{good}");
        }
        // Padding, a character outside the alphabet, an impossible length, stray bits.
        for bad in ["Zg==", "Zm9v.A", "Zm9vY", "Zh", "Zm9"] {
            assert!(!is_canonical_unpadded(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn rfc4648_vectors() {
        for (enc, dec) in [
            ("", ""),
            ("Zg==", "f"),
            ("Zm8=", "fo"),
            ("Zm9v", "foo"),
            ("Zm9vYg==", "foob"),
            ("Zm9vYmE=", "fooba"),
            ("Zm9vYmFy", "foobar"),
        ] {
            assert_eq!(decode(enc).unwrap(), dec.as_bytes(), "{enc}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["Zg=", "Zg=a", "Z===", "Zm9v!A==", "Zg==Zg=="] {
            assert!(decode(bad).is_none(), "{bad}");
        }
    }
}
