//! Normalised layer paths.
//!
//! A path is stored as a *key*: its components joined with a NUL byte instead
//! of `/`. Components can contain neither `/` nor NUL, so ordering keys
//! bytewise orders paths component by component ("a" < "a/b" < "a-b"): a
//! directory sorts right before its own subtree, and the subtree of `d` is the
//! contiguous key range `[d\0, d\x01)`.

/// A normalised path (see the module docs). The empty key is the root.
pub(crate) type Key = Vec<u8>;

pub(crate) const SEP: u8 = 0;

/// Normalise a raw tar path (or hard link target): leading `/`, empty and `.`
/// components are dropped (tar conventions); `..` anywhere and NUL bytes are
/// refused, with the reason.
pub(crate) fn normalize(raw: &[u8]) -> Result<Key, &'static str> {
    if raw.contains(&0) {
        return Err("the path contains a NUL byte");
    }
    let mut key = Vec::with_capacity(raw.len());
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => continue,
            b".." => return Err("a `..` component would escape the image root"),
            c => {
                if !key.is_empty() {
                    key.push(SEP);
                }
                key.extend_from_slice(c);
            }
        }
    }
    Ok(key)
}

/// The components of a non-root key.
pub(crate) fn components(key: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    key.split(|&b| b == SEP)
}

/// The parent key and the last component of a non-root key.
pub(crate) fn split_last(key: &[u8]) -> (&[u8], &[u8]) {
    match key.iter().rposition(|&b| b == SEP) {
        Some(i) => (&key[..i], &key[i + 1..]),
        None => (&key[..0], key),
    }
}

/// `parent/name` as a key.
pub(crate) fn join(parent: &[u8], name: &[u8]) -> Key {
    let mut k = Vec::with_capacity(parent.len() + 1 + name.len());
    k.extend_from_slice(parent);
    if !parent.is_empty() {
        k.push(SEP);
    }
    k.extend_from_slice(name);
    k
}

/// The tar path (`a/b/c`) of a key.
pub(crate) fn to_tar(key: &[u8]) -> Vec<u8> {
    key.iter().map(|&b| if b == SEP { b'/' } else { b }).collect()
}

/// A key for messages.
pub(crate) fn display(key: &[u8]) -> String {
    String::from_utf8_lossy(&to_tar(key)).into_owned()
}

/// The bounds of the subtree below `dir` (excluding `dir` itself).
pub(crate) fn children_range(dir: &[u8]) -> (Key, Key) {
    let mut lo = dir.to_vec();
    lo.push(SEP);
    let mut hi = dir.to_vec();
    hi.push(SEP + 1);
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_strips_tar_conventions() {
        assert_eq!(normalize(b"./a/b/").unwrap(), b"a\0b".to_vec());
        assert_eq!(normalize(b"/a//./b").unwrap(), b"a\0b".to_vec());
        assert_eq!(normalize(b"./").unwrap(), b"".to_vec());
        assert_eq!(normalize(b"").unwrap(), b"".to_vec());
    }

    #[test]
    fn normalize_refuses_dotdot_and_nul() {
        assert!(normalize(b"../a").is_err());
        assert!(normalize(b"a/../b").is_err());
        assert!(normalize(b"a/..").is_err());
        assert!(normalize(b"/../etc/passwd").is_err());
        assert!(normalize(b"a\0b").is_err());
        // `...` is a legitimate name
        assert_eq!(normalize(b"a/...").unwrap(), b"a\0...".to_vec());
    }

    #[test]
    fn key_order_is_component_wise() {
        let mut v = [normalize(b"a-b").unwrap(), normalize(b"a/b").unwrap(), normalize(b"a").unwrap()];
        v.sort();
        assert_eq!(v.iter().map(|k| display(k)).collect::<Vec<_>>(), ["a", "a/b", "a-b"]);
    }

    #[test]
    fn split_and_join() {
        assert_eq!(split_last(b"a\0b\0c"), (&b"a\0b"[..], &b"c"[..]));
        assert_eq!(split_last(b"c"), (&b""[..], &b"c"[..]));
        assert_eq!(join(b"", b"x"), b"x".to_vec());
        assert_eq!(join(b"a", b"x"), b"a\0x".to_vec());
    }
}
