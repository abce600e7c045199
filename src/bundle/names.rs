//! File names of a bundle.
use crate::compress::Compression;
use crate::error::{Error, Result};

pub const CHECKSUM_SUFFIX: &str = ".sha256";
pub const SIGNATURE_SUFFIX: &str = ".sha256.minisig";
pub const AGE_SUFFIX: &str = ".age";

/// `STEM.tar[.zst|.gz][.age]`
pub fn artifact_name(stem: &str, compression: Compression, encrypted: bool) -> String {
    format!("{stem}.tar{}{}", compression.extension(), if encrypted { AGE_SUFFIX } else { "" })
}

/// `ARTIFACT.000`, `ARTIFACT.001`, ...
pub fn part_name(artifact: &str, index: usize) -> String {
    format!("{artifact}.{index:03}")
}

pub fn checksum_name(stem: &str) -> String {
    format!("{stem}{CHECKSUM_SUFFIX}")
}

pub fn signature_name(stem: &str) -> String {
    format!("{stem}{SIGNATURE_SUFFIX}")
}

/// Whether `name` is a plain file name of the kind bundles use (stems and every
/// file of a bundle): letters, digits and `. _ - + @`, not starting with `.` or `-`.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.starts_with('-')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-+@".contains(c))
}

/// A stem must be a plain file name: it is used on USB keys, FTP and HTTP servers.
pub fn check_stem(stem: &str) -> Result<()> {
    let ok = stem.len() <= 200 && is_plain_name(stem);
    if !ok {
        return Err(Error::usage(format!(
            "invalid bundle name \"{}\": use letters, digits and . _ - + @ (no slashes, not starting with . or -)",
            crate::untrusted::shown(stem)
        )));
    }
    Ok(())
}

/// A stem derived from image names: `busybox_latest`, or `images-N` for many.
pub fn default_stem(image_names: &[String]) -> String {
    let clean = |s: &str| -> String {
        s.rsplit('/')
            .next()
            .unwrap_or(s)
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
            .collect::<String>()
            .trim_start_matches(['.', '-'])
            .to_string()
    };
    match image_names {
        [one] if !clean(one).is_empty() => clean(one),
        many => format!("images-{}", many.len()),
    }
}

/// The stem of a bundle file name, if it is one.
pub fn stem_of(file_name: &str) -> Option<&str> {
    if let Some(stem) = file_name.strip_suffix(SIGNATURE_SUFFIX) {
        return Some(stem);
    }
    if let Some(stem) = file_name.strip_suffix(CHECKSUM_SUFFIX) {
        return Some(stem);
    }
    file_name.find(".tar").map(|i| &file_name[..i])
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn names() {
        assert_eq!(artifact_name("x", Compression::Zstd, true), "x.tar.zst.age");
        assert_eq!(part_name("x.tar.zst", 2), "x.tar.zst.002");
        assert_eq!(default_stem(&["localhost/a/busybox:1.0".into()]), "busybox_1.0");
        assert_eq!(stem_of("x.sha256.minisig"), Some("x"));
        assert_eq!(stem_of("x.tar.gz.000"), Some("x"));
        assert!(check_stem("../x").is_err());
        assert!(check_stem("ok_1.2-3").is_ok());
    }
}
