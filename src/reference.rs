//! Image references (SPEC §1), skopeo-style: `docker-daemon:NAME[:TAG]`,
//! `docker-archive:PATH[:REF]`, `oci-archive:PATH[:REF]`, `oci:DIR[:REF]`;
//! a bare `NAME[:TAG]` means `docker-daemon:`.
use crate::digest::Digest;
use crate::error::{Error, Result};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    DockerDaemon(String),
    DockerArchive {
        path: PathBuf,
        reference: Option<String>,
    },
    OciArchive {
        path: PathBuf,
        reference: Option<String>,
    },
    OciDir {
        path: PathBuf,
        reference: Option<String>,
    },
    /// `containerd:NAME` (a source, in `$CONTAINERD_NAMESPACE`, default `k8s.io`)
    /// or `containerd:[NAMESPACE]` (a target: images keep their recorded names).
    Containerd {
        namespace: String,
        name: Option<String>,
    },
    /// `docker://HOST[:PORT]/REPO[:TAG|@DIGEST]` (or, as a target, `docker://HOST[:PORT][/PREFIX]`).
    Registry(crate::registry::RegistryRef),
}

impl ImageRef {
    pub fn parse(s: &str) -> Result<ImageRef> {
        if let Some(rest) = s.strip_prefix("docker-daemon:") {
            if rest.is_empty() {
                return Err(Error::usage("docker-daemon: needs an image name, e.g. docker-daemon:busybox:latest"));
            }
            return Ok(ImageRef::DockerDaemon(rest.to_string()));
        }
        for (prefix, make) in [("docker-archive:", 0), ("oci-archive:", 1), ("oci:", 2)] {
            if let Some(rest) = s.strip_prefix(prefix) {
                let (path, reference) = split_path_ref(rest);
                if path.is_empty() {
                    return Err(Error::usage(format!("{prefix} needs a path, e.g. {prefix}image.tar")));
                }
                if let Some(r) = &reference {
                    // A malformed digest is a usage error before anything is read.
                    Selector::parse(r)?;
                }
                let path = PathBuf::from(path);
                return Ok(match make {
                    0 => ImageRef::DockerArchive { path, reference },
                    1 => ImageRef::OciArchive { path, reference },
                    _ => ImageRef::OciDir { path, reference },
                });
            }
        }
        if let Some(name) = s.strip_prefix("containerd:") {
            if name.is_empty() {
                return Err(Error::usage("containerd: as a source needs an image name, e.g. containerd:docker.io/library/busybox:latest"));
            }
            return Ok(ImageRef::Containerd { namespace: containerd_namespace(None)?, name: Some(name.to_string()) });
        }
        if let Some(rest) = s.strip_prefix("docker://") {
            return Ok(ImageRef::Registry(crate::registry::RegistryRef::parse_source(rest)?));
        }
        if s.is_empty() {
            return Err(Error::usage("empty image reference"));
        }
        Ok(ImageRef::DockerDaemon(s.to_string()))
    }

    /// A target of `load --into` or `flatten`: the daemon, or a path-based one.
    /// A target names what it writes; it cannot pin a digest, which is what
    /// the written image turns out to be.
    pub fn parse_target(s: &str) -> Result<ImageRef> {
        if s == "docker-daemon:" || s == "docker-daemon" {
            return Ok(ImageRef::DockerDaemon(String::new()));
        }
        if let Some(namespace) = s.strip_prefix("containerd:") {
            return Ok(ImageRef::Containerd { namespace: containerd_namespace(Some(namespace))?, name: None });
        }
        if let Some(rest) = s.strip_prefix("docker://") {
            return Ok(ImageRef::Registry(crate::registry::RegistryRef::parse_target(rest)?));
        }
        let target = ImageRef::parse(s)?;
        let named = match &target {
            ImageRef::Containerd { name, .. } => name.as_deref(),
            ImageRef::DockerDaemon(name) => Some(name.as_str()),
            ImageRef::DockerArchive { reference, .. } | ImageRef::OciArchive { reference, .. } | ImageRef::OciDir { reference, .. } => {
                reference.as_deref()
            }
            ImageRef::Registry(_) => None,
        };
        if let Some(digest) = named.map(Selector::parse).transpose()?.and_then(|sel| sel.digest) {
            return Err(Error::usage(format!(
                "target {}: a target cannot pin a digest ({digest}): name the image it writes with NAME[:TAG], or leave the name out",
                crate::untrusted::shown(s)
            )));
        }
        Ok(target)
    }
}

/// A containerd namespace: the one given, else `$CONTAINERD_NAMESPACE`, else
/// `k8s.io`; containerd's grammar (labels joined by `.`, `_` or `-`).
pub fn containerd_namespace(given: Option<&str>) -> Result<String> {
    let env = std::env::var("CONTAINERD_NAMESPACE").ok();
    let ns = given.filter(|n| !n.is_empty()).or(env.as_deref().filter(|n| !n.is_empty())).unwrap_or("k8s.io");
    let valid = ns.len() <= 76 && ns.split(['.', '_', '-']).all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric()));
    if !valid {
        return Err(Error::usage(format!(
            "containerd:{}: not a containerd namespace (letters and digits joined by . _ -, e.g. containerd:k8s.io); images keep the names the bundle records",
            crate::untrusted::shown(ns)
        )));
    }
    Ok(ns.to_string())
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

/// A Docker image reference, `[domain/]path[:tag][@digest]`, parsed by
/// oci-spec (the grammar of distribution/reference, Docker's own) and
/// normalised as Docker does: `busybox` is `docker.io/library/busybox:latest`,
/// `index.docker.io` is `docker.io`. Wrapped because oci-spec lets through two
/// things Docker refuses: an uppercase first component without a dot
/// (`Foo/bar` becomes `docker.io/Foo/bar`; repository names are lowercase), and
/// sha384/sha512 or uppercase-hex digests (ferry's [`Digest`], like Docker's
/// digest package, is lowercase sha256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// e.g. `docker.io`, `localhost:5000`
    pub domain: String,
    /// e.g. `library/busybox`
    pub path: String,
    /// `latest` when neither a tag nor a digest was given (Docker's default).
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl Reference {
    pub fn parse(s: &str) -> Result<Reference> {
        let invalid =
            |why: &dyn std::fmt::Display| Error::usage(format!("\"{}\" is not a valid image reference: {why}", crate::untrusted::shown(s)));
        if let Some((_, digest)) = s.rsplit_once('@') {
            // Checked first: oci-spec says only "invalid reference format" for a short digest.
            parse_digest(digest).map_err(|why| invalid(&why))?;
        }
        let parsed = oci_spec::distribution::Reference::try_from(s).map_err(|e| invalid(&e))?;
        if parsed.repository().chars().any(|c| c.is_ascii_uppercase()) {
            return Err(invalid(&"repository names must be lowercase"));
        }
        let digest = match parsed.digest() {
            Some(d) => Some(parse_digest(d).map_err(|why| invalid(&why))?),
            None => None,
        };
        Ok(Reference {
            domain: parsed.registry().to_string(),
            path: parsed.repository().to_string(),
            tag: parsed.tag().map(str::to_string),
            digest,
        })
    }

    /// `docker.io/library/busybox`
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// `busybox`, `ferry/x`, `localhost:5000/a/b`: the repository as `docker images` shows it.
    pub fn familiar_repository(&self) -> String {
        match self.domain.as_str() {
            "docker.io" => self.path.strip_prefix("library/").unwrap_or(&self.path).to_string(),
            _ => self.repository(),
        }
    }

    /// `busybox:1.36@sha256:…`, as Docker's `FamiliarString` writes it.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_repository();
        if let Some(tag) = &self.tag {
            s.push(':');
            s.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            s.push('@');
            s.push_str(digest.as_str());
        }
        s
    }

    /// The tagged name this reference gives its image (`None` for `NAME@DIGEST`:
    /// a digest names content, not a tag to record).
    pub fn name(&self) -> Option<ImageName> {
        let tag = self.tag.clone()?;
        Some(ImageName { domain: self.domain.clone(), path: self.path.clone(), tag })
    }
}

/// A `sha256:<lowercase hex>` digest as ferry's [`Digest`], or why not.
fn parse_digest(s: &str) -> std::result::Result<Digest, String> {
    let shown = crate::untrusted::shown(s);
    match s.split_once(':') {
        Some(("sha256", _)) => Digest::parse(s).map_err(|_| format!("the digest \"{shown}\" is not sha256:<64 lowercase hex digits>")),
        Some((alg, _)) => Err(format!("the digest \"{shown}\" uses {}; ferry supports sha256 digests only", crate::untrusted::shown(alg))),
        None => Err(format!("\"{shown}\" is not a digest (sha256:<64 hex digits>)")),
    }
}

/// An image's recorded name: a repository and a tag (docker-archive `RepoTags`,
/// `io.containerd.image.name`), normalised as Docker does.
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
    /// Parse `[domain/]path[:tag]`; `None` if it is not a valid tagged name
    /// (a reference that pins a digest is not a name to record).
    pub fn parse(s: &str) -> Option<ImageName> {
        Reference::parse(s).ok().filter(|r| r.digest.is_none())?.name()
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

/// What the `REF` of `oci:DIR:REF` (and of the archives) asks for: a name, a
/// digest, or both (`NAME@sha256:…`, `@sha256:…`). In OCI layouts the name is
/// an `org.opencontainers.image.ref.name`, which need not be a Docker
/// reference (`v1`, `app`) and may hold `@`, so only a trailing `@ALG:HEX` is
/// taken as a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub name: Option<String>,
    pub digest: Option<Digest>,
}

impl Selector {
    pub fn parse(r: &str) -> Result<Selector> {
        let (name, digest) = match r.rsplit_once('@') {
            Some((name, d)) if d.contains(':') => {
                let digest = parse_digest(d).map_err(|why| Error::usage(format!("\"{}\": {why}", crate::untrusted::shown(r))))?;
                (name, Some(digest))
            }
            _ => (r, None),
        };
        Ok(Selector { name: Some(name.to_string()).filter(|n| !n.is_empty()), digest })
    }

    /// Whether `have` (a name the source records) is the name asked for: the
    /// same string, or the same image name once both are normalised. No name
    /// asked for matches any.
    pub fn name_matches(&self, have: &str) -> bool {
        let Some(wanted) = &self.name else { return true };
        have == wanted || matches!((ImageName::parse(wanted), ImageName::parse(have)), (Some(w), Some(h)) if w == h)
    }
}

#[cfg(test)]
mod reference_tests {
    use super::*;

    const HEX: &str = "9be0d52d4e23497618b6afb36b61030337f3d548de05cb40ab3cdd4891357a0d";

    /// input → (repository, tag, familiar form)
    #[test]
    fn parses_and_normalises_as_docker_does() {
        let table: &[(&str, &str, Option<&str>, &str)] = &[
            ("busybox", "docker.io/library/busybox", Some("latest"), "busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox", Some("1.36"), "busybox:1.36"),
            ("library/busybox", "docker.io/library/busybox", Some("latest"), "busybox:latest"),
            ("docker.io/library/busybox:latest", "docker.io/library/busybox", Some("latest"), "busybox:latest"),
            ("index.docker.io/library/busybox", "docker.io/library/busybox", Some("latest"), "busybox:latest"),
            ("ferry/x:t", "docker.io/ferry/x", Some("t"), "ferry/x:t"),
            ("localhost/a/b", "localhost/a/b", Some("latest"), "localhost/a/b:latest"),
            ("localhost:5000/a/b:1.0", "localhost:5000/a/b", Some("1.0"), "localhost:5000/a/b:1.0"),
            (
                "registry.example.com:443/team/app:v2",
                "registry.example.com:443/team/app",
                Some("v2"),
                "registry.example.com:443/team/app:v2",
            ),
            // Host names are not case-sensitive; Docker keeps them as written.
            ("Example.COM/app", "Example.COM/app", Some("latest"), "Example.COM/app:latest"),
            ("quay.io/podman/stable:v5.0", "quay.io/podman/stable", Some("v5.0"), "quay.io/podman/stable:v5.0"),
            // `:5000` after a name without a slash is a tag, not a port (as in Docker).
            ("test.com:5000", "docker.io/library/test.com", Some("5000"), "test.com:5000"),
            ("a_b/c__d/e-f.g:T_1.x-y", "docker.io/a_b/c__d/e-f.g", Some("T_1.x-y"), "a_b/c__d/e-f.g:T_1.x-y"),
        ];
        for (input, repository, tag, familiar) in table {
            let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.repository(), *repository, "{input}");
            assert_eq!(r.tag.as_deref(), *tag, "{input}");
            assert_eq!(r.digest, None, "{input}");
            assert_eq!(r.familiar(), *familiar, "{input}");
        }
    }

    #[test]
    fn keeps_digests() {
        let r = Reference::parse(&format!("busybox@sha256:{HEX}")).unwrap();
        assert_eq!((r.repository().as_str(), r.tag.as_deref()), ("docker.io/library/busybox", None), "no tag is made up");
        assert_eq!(r.digest.as_ref().map(Digest::hex), Some(HEX));
        assert_eq!(r.name(), None, "a digest is not a name to record");
        assert_eq!(r.familiar(), format!("busybox@sha256:{HEX}"));

        let r = Reference::parse(&format!("localhost:5000/a/b:1.0@sha256:{HEX}")).unwrap();
        assert_eq!(r.repository(), "localhost:5000/a/b");
        assert_eq!(r.tag.as_deref(), Some("1.0"));
        assert_eq!(r.digest.as_ref().map(Digest::hex), Some(HEX));
        assert_eq!(r.name().map(|n| n.full()).as_deref(), Some("localhost:5000/a/b:1.0"));
        assert_eq!(r.familiar(), format!("localhost:5000/a/b:1.0@sha256:{HEX}"));
        assert_eq!(ImageName::parse(&format!("busybox:1@sha256:{HEX}")), None, "a recorded name has no digest");
    }

    #[test]
    fn refuses_what_docker_refuses() {
        for bad in [
            "",
            "Busybox",
            "Upper/lower:tag",
            "localhost:5000/Upper/lower",
            "busybox:",
            ":tag",
            "a b",
            "busybox:tag with space",
            "busybox@sha256:1234",
            &format!("busybox@sha256:{}", HEX.to_uppercase()),
            &format!("busybox@sha512:{HEX}{HEX}"),
            "docker://busybox",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} was accepted");
            assert!(ImageName::parse(bad).is_none(), "{bad:?} was accepted as a name");
        }
        let e = Reference::parse("Upper/lower:tag").unwrap_err().to_string();
        assert!(e.contains("lowercase"), "{e}");
        let e = Reference::parse(&format!("busybox@sha512:{HEX}{HEX}")).unwrap_err().to_string();
        assert!(e.contains("sha256 digests only"), "{e}");
    }

    #[test]
    fn selectors_split_a_trailing_digest() {
        let d = Digest::parse(&format!("sha256:{HEX}")).unwrap();
        let sel = |r: &str| Selector::parse(r).unwrap();
        assert_eq!(sel(&format!("app@sha256:{HEX}")), Selector { name: Some("app".into()), digest: Some(d.clone()) });
        assert_eq!(sel(&format!("@sha256:{HEX}")), Selector { name: None, digest: Some(d.clone()) });
        assert_eq!(sel(&format!("ferry/x:v1@sha256:{HEX}")), Selector { name: Some("ferry/x:v1".into()), digest: Some(d) });
        // `@` may be part of an OCI ref.name; without `ALG:` after it, it stays in the name.
        assert_eq!(sel("v1@build"), Selector { name: Some("v1@build".into()), digest: None });
        for bad in ["app@sha256:1234", "app@md5:00", &format!("app@sha256:{}", HEX.to_uppercase())] {
            let e = Selector::parse(bad).unwrap_err();
            assert!(e.to_string().contains("digest"), "{bad}: {e}");
        }
        let s = sel("busybox:latest");
        assert!(s.name_matches("docker.io/library/busybox:latest") && s.name_matches("busybox:latest") && !s.name_matches("busybox:1"));
        assert!(sel("v1").name_matches("v1") && !sel("v1").name_matches("v2"));
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
    std::fs::File::open(path).and_then(|f| f.take(MAX_LIST + 1).read_to_string(&mut text)).map_err(|e| Error::io(ctx(), e))?;
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
