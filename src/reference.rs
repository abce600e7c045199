//! Image references (SPEC §1), skopeo-style: `docker-daemon:NAME[:TAG]`,
//! `docker-archive:PATH[:REF]`, `oci-archive:PATH[:REF]`, `oci:DIR[:REF]`;
//! a bare `NAME[:TAG]` means `docker-daemon:`.
use crate::error::{Error, Result};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    DockerDaemon(String),
    DockerArchive { path: PathBuf, reference: Option<String> },
    OciArchive { path: PathBuf, reference: Option<String> },
    OciDir { path: PathBuf, reference: Option<String> },
}

impl ImageRef {
    pub fn parse(s: &str) -> Result<ImageRef> {
        if let Some(rest) = s.strip_prefix("docker-daemon:") {
            if rest.is_empty() {
                return Err(Error::usage("docker-daemon: needs an image name, e.g. docker-daemon:busybox:latest"));
            }
            return Ok(ImageRef::DockerDaemon(rest.to_string()));
        }
        for (prefix, make) in [
            ("docker-archive:", 0),
            ("oci-archive:", 1),
            ("oci:", 2),
        ] {
            if let Some(rest) = s.strip_prefix(prefix) {
                let (path, reference) = split_path_ref(rest);
                if path.is_empty() {
                    return Err(Error::usage(format!("{prefix} needs a path, e.g. {prefix}image.tar")));
                }
                let path = PathBuf::from(path);
                return Ok(match make {
                    0 => ImageRef::DockerArchive { path, reference },
                    1 => ImageRef::OciArchive { path, reference },
                    _ => ImageRef::OciDir { path, reference },
                });
            }
        }
        if s.starts_with("docker://") {
            return Err(Error::usage("docker:// (registries) is not supported yet; save from docker-daemon: or an archive"));
        }
        if s.is_empty() {
            return Err(Error::usage("empty image reference"));
        }
        Ok(ImageRef::DockerDaemon(s.to_string()))
    }

    /// A target of `load --into`: the daemon, or a path-based one.
    pub fn parse_target(s: &str) -> Result<ImageRef> {
        if s == "docker-daemon:" || s == "docker-daemon" {
            return Ok(ImageRef::DockerDaemon(String::new()));
        }
        ImageRef::parse(s)
    }
}

/// `PATH[:REF]`: the reference is what follows the last `:` — unless that would
/// cut a path (the part after `:` contains `/` and is a path that exists). An
/// existing file path wins, so `a:b.tar` that exists is a path.
fn split_path_ref(s: &str) -> (String, Option<String>) {
    if std::path::Path::new(s).exists() {
        return (s.to_string(), None);
    }
    // REF may itself contain ':' (repo:tag), so split at the first ':' whose
    // left side is an existing path, else at the first ':'.
    for (i, _) in s.match_indices(':') {
        if std::path::Path::new(&s[..i]).exists() {
            return (s[..i].to_string(), Some(s[i + 1..].to_string()).filter(|r| !r.is_empty()));
        }
    }
    match s.split_once(':') {
        Some((p, r)) => (p.to_string(), Some(r.to_string()).filter(|r| !r.is_empty())),
        None => (s.to_string(), None),
    }
}

/// A Docker image name split into parts, normalised as Docker does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageName {
    /// e.g. `docker.io`
    pub domain: String,
    /// e.g. `library/busybox`
    pub path: String,
    /// e.g. `latest`
    pub tag: String,
}

impl ImageName {
    /// Parse `[domain/]path[:tag]`; `None` if it is not a valid name.
    pub fn parse(s: &str) -> Option<ImageName> {
        let s = s.split('@').next()?;
        if s.is_empty() || s.contains(char::is_whitespace) {
            return None;
        }
        let (name, tag) = match s.rfind(':') {
            Some(i) if !s[i + 1..].contains('/') => (&s[..i], s[i + 1..].to_string()),
            _ => (s, "latest".to_string()),
        };
        if name.is_empty() || tag.is_empty() {
            return None;
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => {
                (first.to_string(), rest.to_string())
            }
            _ => ("docker.io".to_string(), name.to_string()),
        };
        let path = if domain == "docker.io" && !path.contains('/') { format!("library/{path}") } else { path };
        Some(ImageName { domain, path, tag })
    }

    /// `docker.io/library/busybox:latest`
    pub fn full(&self) -> String {
        format!("{}/{}:{}", self.domain, self.path, self.tag)
    }

    /// `busybox:latest`, as `docker images` shows it.
    pub fn familiar(&self) -> String {
        if self.domain == "docker.io" {
            let path = self.path.strip_prefix("library/").unwrap_or(&self.path);
            format!("{path}:{}", self.tag)
        } else {
            self.full()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_transports() {
        assert_eq!(ImageRef::parse("busybox").unwrap(), ImageRef::DockerDaemon("busybox".into()));
        assert_eq!(
            ImageRef::parse("oci:/nonexistent/dir:v1").unwrap(),
            ImageRef::OciDir { path: "/nonexistent/dir".into(), reference: Some("v1".into()) }
        );
        assert_eq!(
            ImageRef::parse("docker-archive:/x/a.tar:foo/bar:2").unwrap(),
            ImageRef::DockerArchive { path: "/x/a.tar".into(), reference: Some("foo/bar:2".into()) }
        );
        assert!(ImageRef::parse("oci:").is_err());
    }

    #[test]
    fn normalises_names() {
        let n = ImageName::parse("busybox").unwrap();
        assert_eq!(n.full(), "docker.io/library/busybox:latest");
        assert_eq!(n.familiar(), "busybox:latest");
        let n = ImageName::parse("localhost:5000/a/b:1.0").unwrap();
        assert_eq!(n.full(), "localhost:5000/a/b:1.0");
        assert_eq!(n.familiar(), "localhost:5000/a/b:1.0");
        assert_eq!(ImageName::parse("ferry/x:t").unwrap().full(), "docker.io/ferry/x:t");
    }
}

/// The image references of an `--images-from` file: one per line; blank lines
/// and `#` comments (whole lines, or after whitespace) are skipped.
pub fn read_image_list(path: &std::path::Path) -> Result<Vec<String>> {
    use std::io::Read;
    // A list of references is small; a bound keeps a wrong path (a disk image) cheap.
    const MAX_LIST: u64 = 4 << 20;
    let ctx = || format!("reading the image list {}", path.display());
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_LIST + 1).read_to_string(&mut text))
        .map_err(|e| Error::io(ctx(), e))?;
    if text.len() as u64 > MAX_LIST {
        return Err(Error::usage(format!("{}: longer than {} MiB; is it an image list?", path.display(), MAX_LIST >> 20)));
    }
    Ok(parse_image_list(&text))
}

fn parse_image_list(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| {
            let line = line.trim();
            match line.find(" #").or_else(|| line.find("\t#")) {
                Some(i) => line[..i].trim_end(),
                None => line,
            }
        })
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod image_list_tests {
    #[test]
    fn one_reference_per_line_with_comments() {
        let text = "# release 42\n\ndocker-archive:a.tar\n  oci:dir:app  # the app\nbusybox:1.36\t# base\n#oci:skipped\n";
        assert_eq!(super::parse_image_list(text), ["docker-archive:a.tar", "oci:dir:app", "busybox:1.36"]);
    }
}
