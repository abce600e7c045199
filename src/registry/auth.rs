//! Registry credentials: where they come from (`--registry-auth FILE`, else
//! `$REGISTRY_AUTH_FILE`, `~/.docker/config.json`,
//! `${XDG_RUNTIME_DIR}/containers/auth.json`, the first with credentials for
//! the registry, inline or from a Docker credential helper) and the
//! `WWW-Authenticate` challenges they answer (Basic, and Bearer through the
//! realm's token endpoint). A password is never printed: `Debug` of
//! [`Credentials`] shows `***`, errors name only the user and the file or helper.
use super::credential_helper::{self, Answer};
use crate::error::{Error, Result};
use base64::Engine;
use std::path::{Path, PathBuf};

#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub(crate) password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).field("password", &"***").finish()
    }
}

/// What the lookup found, and where it looked (for error messages).
#[derive(Debug, Clone)]
pub struct Found {
    pub credentials: Option<Credentials>,
    /// `alice from /root/.docker/config.json`, or `no credentials for HOST in FILE, FILE`.
    pub described: String,
}

/// The auth files to read, in order: the one given, else the defaults that exist.
pub fn auth_files(explicit: Option<&Path>) -> Vec<PathBuf> {
    if let Some(p) = explicit {
        return vec![p.to_path_buf()];
    }
    let mut files = Vec::new();
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|p| !p.is_empty()) {
        files.push(PathBuf::from(p));
    }
    if let Some(home) = std::env::var_os("HOME").filter(|p| !p.is_empty()) {
        files.push(Path::new(&home).join(".docker/config.json"));
    }
    if let Some(run) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        files.push(Path::new(&run).join("containers/auth.json"));
    }
    files
}

/// The credentials for `registry` (`HOST[:PORT]`) from the first auth file
/// that has them: an `auths` entry, or a credential helper that knows the
/// registry. A file given explicitly must exist. A helper that fails or says
/// "not found" gives none (the lookup goes on): the registry may not ask for
/// any, and if it does, the 401 names what was tried.
pub fn lookup(registry: &str, explicit: Option<&Path>) -> Result<Found> {
    let files = auth_files(explicit);
    let mut looked = Vec::new();
    for file in &files {
        let bytes = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => continue,
            Err(e) => return Err(Error::io(format!("reading the registry auth file {}", file.display()), e)),
        };
        let entry = entry_for(&bytes, registry).map_err(|why| {
            Error::usage(format!("the registry auth file {} is not valid: {why}", file.display()))
                .with_hint("fix or remove the file (its format is Docker's config.json: {\"auths\": {\"HOST\": {\"auth\": \"base64(user:password)\"}}})")
        })?;
        match entry {
            None => looked.push(file.display().to_string()),
            Some(Entry::Inline(c)) => {
                return Ok(Found { described: format!("user {} from {}", c.username, file.display()), credentials: Some(c) })
            }
            Some(Entry::Helper { name, field }) => {
                let helper = format!("{} ({field} in {})", credential_helper::program(&name), file.display());
                match credential_helper::get(&name, &helper_server(registry), credential_helper::TIMEOUT) {
                    Ok(Answer::Found(c)) => {
                        return Ok(Found { described: format!("user {} from {helper}", c.username), credentials: Some(c) })
                    }
                    Ok(Answer::NotFound) => looked.push(format!("{helper}: credentials not found")),
                    Ok(Answer::IdentityToken) => looked.push(format!("{helper}: an identity token, which ferry does not use")),
                    Err(why) => looked.push(format!("{helper}: {why}")),
                }
            }
        }
    }
    let described = if looked.is_empty() {
        format!("no credentials (no auth file found: {})", files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", "))
    } else {
        format!("no credentials for {registry} in {}", looked.join(", "))
    };
    Ok(Found { credentials: None, described })
}

/// What an auth file holds for a registry.
#[derive(Debug)]
enum Entry {
    /// `auths` → `auth` (or `username`/`password`).
    Inline(Credentials),
    /// Ask `docker-credential-NAME`: `credHelpers` names it for the host, or `credsStore` for every host.
    Helper { name: String, field: &'static str },
}

/// The server a credential helper is asked about: what `docker login` stored it under.
fn helper_server(registry: &str) -> String {
    if super::reference::is_docker_hub(registry) {
        "https://index.docker.io/v1/".into()
    } else {
        registry.to_string()
    }
}

/// The entry of a Docker config.json / containers auth.json for `registry`:
/// a `credHelpers` helper for the host first (as docker does), then an
/// `auths` entry with credentials, then the `credsStore` helper.
fn entry_for(bytes: &[u8], registry: &str) -> std::result::Result<Option<Entry>, String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let wanted = host_key(registry);
    let helper = v
        .get("credHelpers")
        .and_then(|h| h.as_object())
        .and_then(|h| h.iter().find(|(key, _)| host_key(key) == wanted))
        .and_then(|(_, name)| name.as_str())
        .filter(|name| !name.is_empty());
    if let Some(name) = helper {
        return Ok(Some(Entry::Helper { name: name.to_string(), field: "credHelpers" }));
    }
    if let Some(c) = auths_entry(&v, &wanted)? {
        return Ok(Some(Entry::Inline(c)));
    }
    match v.get("credsStore").and_then(|s| s.as_str()).filter(|s| !s.is_empty()) {
        Some(store) => Ok(Some(Entry::Helper { name: store.to_string(), field: "credsStore" })),
        None => Ok(None),
    }
}

/// The credentials of the `auths` entry for host `wanted` (an entry without them, as `docker login` with a helper leaves, is none).
fn auths_entry(v: &serde_json::Value, wanted: &str) -> std::result::Result<Option<Credentials>, String> {
    let Some(auths) = v.get("auths").and_then(|a| a.as_object()) else { return Ok(None) };
    for (key, entry) in auths {
        if host_key(key) != wanted {
            continue;
        }
        if let Some(auth) = entry.get("auth").and_then(|a| a.as_str()).filter(|a| !a.is_empty()) {
            let decoded =
                base64::engine::general_purpose::STANDARD.decode(auth.trim()).map_err(|_| format!("the auth of {key} is not base64"))?;
            let decoded = String::from_utf8(decoded).map_err(|_| format!("the auth of {key} is not UTF-8"))?;
            let (u, p) = decoded.split_once(':').ok_or_else(|| format!("the auth of {key} is not base64 of user:password"))?;
            return Ok(Some(Credentials { username: u.to_string(), password: p.to_string() }));
        }
        if let (Some(u), Some(p)) = (entry.get("username").and_then(|u| u.as_str()), entry.get("password").and_then(|p| p.as_str())) {
            return Ok(Some(Credentials { username: u.to_string(), password: p.to_string() }));
        }
    }
    Ok(None)
}

/// The host an auths key names: `https://index.docker.io/v1/` and `docker.io` alike.
fn host_key(key: &str) -> String {
    let key = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    let host = key.split('/').next().unwrap_or(key).to_ascii_lowercase();
    if super::reference::is_docker_hub(&host) {
        "docker.io".into()
    } else {
        host
    }
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer { realm: String, service: Option<String> },
}

impl Challenge {
    /// Parse `Basic realm="x"` or `Bearer realm="https://auth/token",service="reg",scope="..."`.
    pub fn parse(header: &str) -> Option<Challenge> {
        let (scheme, params) = header.trim().split_once(char::is_whitespace).unwrap_or((header.trim(), ""));
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => Some(Challenge::Basic),
            "bearer" => {
                let params = parse_params(params);
                let get = |k: &str| params.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
                Some(Challenge::Bearer { realm: get("realm")?, service: get("service") })
            }
            _ => None,
        }
    }
}

/// `k="v",k2=v2` (quoted values may hold commas and `\"`).
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let name: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if name.is_empty() || chars.next() != Some('=') {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect::<String>().trim().to_string();
        }
        out.push((name.trim().to_string(), value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(Challenge::parse("Basic realm=\"test\""), Some(Challenge::Basic));
        assert_eq!(
            Challenge::parse(
                "Bearer realm=\"https://auth.example.com/token\",service=\"registry.example.com\",scope=\"repository:a:pull,push\""
            ),
            Some(Challenge::Bearer { realm: "https://auth.example.com/token".into(), service: Some("registry.example.com".into()) })
        );
        assert_eq!(
            Challenge::parse("bearer realm=https://h/t, service=s"),
            Some(Challenge::Bearer { realm: "https://h/t".into(), service: Some("s".into()) })
        );
        assert_eq!(Challenge::parse("Bearer service=\"x\""), None, "a bearer challenge needs a realm");
        assert_eq!(Challenge::parse("Negotiate"), None);
    }

    #[test]
    fn auth_file_entries() {
        let b64 = base64::engine::general_purpose::STANDARD.encode("alice:s3:cret");
        let file = format!(
            r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{b64}"}}, "127.0.0.1:5000": {{"username": "bob", "password": "pw"}}}}}}"#
        );
        let inline = |registry: &str| match entry_for(file.as_bytes(), registry).unwrap() {
            Some(Entry::Inline(c)) => Some(c),
            None => None,
            other => panic!("{other:?}"),
        };
        let hub = inline("docker.io").unwrap();
        assert_eq!((hub.username.as_str(), hub.password.as_str()), ("alice", "s3:cret"));
        assert_eq!(inline("127.0.0.1:5000").unwrap().username, "bob");
        assert!(inline("127.0.0.1:5001").is_none());
        assert!(!format!("{hub:?}").contains("s3:cret"), "Debug shows no password");
        assert!(entry_for(br#"{"auths": {"h": {"auth": "!!"}}}"#, "h").is_err());
    }

    #[test]
    fn credential_helpers_of_the_config() {
        let b64 = base64::engine::general_purpose::STANDARD.encode("alice:pw");
        let file = format!(
            r#"{{"auths": {{"a.example": {{"auth": "{b64}"}}, "b.example": {{"auth": "{b64}"}}, "c.example": {{}}}}, "credHelpers": {{"https://b.example": "pass", "d.example": "ecr-login"}}, "credsStore": "desktop"}}"#
        );
        let helper = |registry: &str| match entry_for(file.as_bytes(), registry).unwrap() {
            Some(Entry::Helper { name, field }) => format!("{field}:{name}"),
            other => format!("{other:?}"),
        };
        assert!(matches!(entry_for(file.as_bytes(), "a.example").unwrap(), Some(Entry::Inline(_))), "an inline entry before credsStore");
        assert_eq!(helper("b.example"), "credHelpers:pass", "credHelpers first, as docker does");
        assert_eq!(helper("c.example"), "credsStore:desktop", "an entry docker login left empty is the store's");
        assert_eq!(helper("d.example"), "credHelpers:ecr-login");
        assert_eq!(helper("elsewhere.example"), "credsStore:desktop");
        assert!(entry_for(br#"{"auths": {}}"#, "x").unwrap().is_none());
        assert_eq!(helper_server("docker.io"), "https://index.docker.io/v1/");
        assert_eq!(helper_server("127.0.0.1:5000"), "127.0.0.1:5000");
    }
}
