//! Strict standard base64 (RFC 4648) by the `base64` crate, configured as the
//! callers need it: padded for minisign key files, canonical unpadded for age
//! stanza bodies (c2sp.org/age). Both engines refuse stray bits in the last
//! character and misplaced or missing padding.
use ::base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use ::base64::Engine as _;

/// Decodes standard padded base64; `None` if `s` is not exactly that.
pub(crate) fn decode(s: &str) -> Option<Vec<u8>> {
    STANDARD.decode(s).ok()
}

/// True if `s` is canonical standard base64 without padding (c2sp.org/age:
/// stanza bodies): only alphabet characters, no impossible length, and no
/// stray bits in the last character.
pub(crate) fn is_canonical_unpadded(s: &[u8]) -> bool {
    STANDARD_NO_PAD.decode(s).is_ok()
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
        for (enc, dec) in
            [("", ""), ("Zg==", "f"), ("Zm8=", "fo"), ("Zm9v", "foo"), ("Zm9vYg==", "foob"), ("Zm9vYmE=", "fooba"), ("Zm9vYmFy", "foobar")]
        {
            assert_eq!(decode(enc).unwrap(), dec.as_bytes(), "{enc}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["Zg=", "Zg=a", "Z===", "Zm9v!A==", "Zg==Zg=="] {
            assert!(decode(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn padded_refuses_stray_bits() {
        // "Zg==" is "f"; "Zh==" has bits set that no encoder writes.
        assert_eq!(decode("Zg==").unwrap(), b"f");
        assert!(decode("Zh==").is_none());
        assert!(decode("Zm9=").is_none());
    }
}
