//! `docker://HOST[:PORT]/REPO[:TAG|@sha256:HEX]` (a source, or a one-image
//! target) and `docker://HOST[:PORT][/PREFIX]` (a target that keeps the
//! bundle's repository paths under PREFIX). The host is always explicit: a
//! `docker://` reference names the registry it talks to.
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::reference::Reference;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryRef {
    /// `HOST[:PORT]` as written, e.g. `127.0.0.1:5000`, `registry.example.com`.
    pub registry: String,
    /// The repository (`team/app`) or, for a prefix target, the prefix (may be empty).
    pub repository: String,
    /// The tag as written (`None` when none was given).
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl RegistryRef {
    /// Parse what follows `docker://`.
    pub fn parse(rest: &str) -> Result<RegistryRef> {
        let shown = crate::untrusted::shown(rest);
        let invalid = |why: &str| Error::usage(format!("docker://{shown}: {why} (e.g. docker://registry.example.com:5000/team/app:1.0)"));
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        if !valid_host(host) {
            return Err(invalid("HOST[:PORT] is missing or is not a host name"));
        }
        let path = path.trim_end_matches('/');
        if path.is_empty() {
            return Ok(RegistryRef { registry: host.to_string(), repository: String::new(), tag: None, digest: None });
        }
        // The grammar of the path, tag and digest is Docker's; the host is ours (a
        // name without a dot is a host here, not a Docker Hub user).
        let parsed = Reference::parse(&format!("registry.invalid/{path}")).map_err(|e| {
            let why = e.to_string().replace("registry.invalid/", "");
            invalid(&why)
        })?;
        let name_part = path.split('@').next().unwrap_or(path);
        let tagged = name_part.rsplit('/').next().is_some_and(|last| last.contains(':'));
        let mut repository = parsed.path;
        // Docker Hub's official images live under library/.
        if is_docker_hub(host) && !repository.contains('/') {
            repository = format!("library/{repository}");
        }
        Ok(RegistryRef { registry: host.to_string(), repository, tag: parsed.tag.filter(|_| tagged), digest: parsed.digest })
    }

    /// A source: a repository is required; no tag and no digest means `latest`.
    pub fn parse_source(rest: &str) -> Result<RegistryRef> {
        let mut r = RegistryRef::parse(rest)?;
        if r.repository.is_empty() {
            return Err(Error::usage(format!(
                "docker://{}: name the repository to read, e.g. docker://{}/team/app:1.0",
                crate::untrusted::shown(rest),
                crate::untrusted::shown(&r.registry)
            )));
        }
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some("latest".into());
        }
        Ok(r)
    }

    /// A target: `HOST/REPO:TAG` (one image) or `HOST[/PREFIX]`; never a digest.
    pub fn parse_target(rest: &str) -> Result<RegistryRef> {
        let r = RegistryRef::parse(rest)?;
        if let Some(d) = &r.digest {
            return Err(Error::usage(format!(
                "target docker://{}: a target cannot pin a digest ({d}): use docker://HOST/REPO:TAG or docker://HOST[/PREFIX]",
                crate::untrusted::shown(rest)
            )));
        }
        Ok(r)
    }

    /// Whether this target names one repository and tag (else it is a prefix).
    pub fn is_single_image(&self) -> bool {
        self.tag.is_some()
    }

    /// The tag or digest to ask the registry for.
    pub fn reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        }
    }

    /// `docker://HOST/REPO:TAG@DIGEST`
    pub fn display(&self) -> String {
        let mut s = format!("docker://{}", self.registry);
        if !self.repository.is_empty() {
            s.push('/');
            s.push_str(&self.repository);
        }
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d.as_str());
        }
        s
    }

    /// `HOST/REPO` as skopeo and docker name it.
    pub fn repository_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

pub(crate) fn is_docker_hub(host: &str) -> bool {
    matches!(host, "docker.io" | "index.docker.io" | "registry-1.docker.io")
}

/// `name[.name...][:port]`, `[v6]:port` or an IPv4 address.
fn valid_host(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) if !n.ends_with(':') && (n.starts_with('[') == n.ends_with(']')) => (n, Some(p)),
        _ => (host, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err() {
            return false;
        }
    }
    if let Some(v6) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "9be0d52d4e23497618b6afb36b61030337f3d548de05cb40ab3cdd4891357a0d";

    #[test]
    fn sources_and_targets() {
        let r = RegistryRef::parse_source("127.0.0.1:5000/team/app:1.0").unwrap();
        assert_eq!((r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()), ("127.0.0.1:5000", "team/app", Some("1.0")));
        assert_eq!(r.display(), "docker://127.0.0.1:5000/team/app:1.0");
        let r = RegistryRef::parse_source("registry/app").unwrap();
        assert_eq!((r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()), ("registry", "app", Some("latest")));
        let r = RegistryRef::parse_source(&format!("localhost:5000/a@sha256:{HEX}")).unwrap();
        assert_eq!((r.tag.as_deref(), r.digest.as_ref().map(Digest::hex)), (None, Some(HEX)));
        assert_eq!(r.reference(), format!("sha256:{HEX}"));
        let r = RegistryRef::parse_source("docker.io/busybox:1.36").unwrap();
        assert_eq!(r.repository, "library/busybox");

        let t = RegistryRef::parse_target("127.0.0.1:5000").unwrap();
        assert_eq!((t.repository.as_str(), t.is_single_image()), ("", false));
        let t = RegistryRef::parse_target("127.0.0.1:5000/mirror/").unwrap();
        assert_eq!((t.repository.as_str(), t.is_single_image()), ("mirror", false));
        let t = RegistryRef::parse_target("127.0.0.1:5000/mirror/app:v2").unwrap();
        assert_eq!((t.repository.as_str(), t.tag.as_deref(), t.is_single_image()), ("mirror/app", Some("v2"), true));
        let t = RegistryRef::parse_target("[::1]:5000/a:b").unwrap();
        assert_eq!(t.registry, "[::1]:5000");
    }

    #[test]
    fn refuses_bad_references() {
        for bad in ["", "/app", ":5000/app", "host:99999/app", "host:x/app", "ho st/app", "host/App", "host/app:", "host/app@sha256:12"] {
            assert!(RegistryRef::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(RegistryRef::parse_source("127.0.0.1:5000").unwrap_err().to_string().contains("name the repository"));
        let e = RegistryRef::parse_target(&format!("h:1/a@sha256:{HEX}")).unwrap_err().to_string();
        assert!(e.contains("cannot pin a digest"), "{e}");
    }
}
