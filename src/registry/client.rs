//! A blocking client of the distribution API (OCI distribution spec 1.0):
//! blobs (HEAD, GET as a stream, mount, monolithic and chunked uploads with
//! the registry's `Range` offset for resuming), manifests, tags. Hand-written
//! over reqwest because oci-client cannot present a client certificate, does
//! not resume an upload from the registry's offset and finalizes a streamed
//! upload as soon as its stream ends (docs/REGISTRY.md).
use super::auth::{self, Challenge, Credentials};
use super::error::RegistryError;
use crate::digest::Digest;
use crate::error::{Error, Result};
use reqwest::blocking::{Client as Http, RequestBuilder, Response};
use reqwest::header::{HeaderMap, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RANGE, WWW_AUTHENTICATE};
use reqwest::{StatusCode, Url};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// The registry options of SPEC §6.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Extra CA certificate(s) (PEM) to trust besides the system roots.
    pub ca_cert: Option<PathBuf>,
    /// Client certificate (PEM) for mTLS; its key in `key` or in the same file.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Speak plain HTTP (only when asked: never a fallback).
    pub plain_http: bool,
    /// `--registry-auth FILE` (else the default auth files).
    pub auth_file: Option<PathBuf>,
    /// Blobs moved at once.
    pub jobs: usize,
    /// Further tries of a failed request (connection lost, 5xx, 429).
    pub retries: u32,
    /// Leave attached signatures, attestations and SBOMs out.
    pub no_referrers: bool,
    pub connect_timeout: Duration,
    /// Give up on a registry that sends nothing for this long (0: never).
    pub io_timeout: Duration,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            ca_cert: None,
            cert: None,
            key: None,
            plain_http: false,
            auth_file: None,
            jobs: 4,
            retries: 3,
            no_referrers: false,
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(60),
        }
    }
}

/// Media types asked for when reading a manifest by tag or digest.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

const USER_AGENT: &str = concat!("ferry/", env!("CARGO_PKG_VERSION"));

/// The scopes a request needs, as the token endpoint spells them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope(pub(super) Vec<String>);

impl Scope {
    pub fn pull(repo: &str) -> Scope {
        Scope(vec![format!("repository:{repo}:pull")])
    }
    pub fn push(repo: &str) -> Scope {
        Scope(vec![format!("repository:{repo}:pull,push")])
    }
    /// Push to `repo`, mounting from `from`.
    pub fn mount(repo: &str, from: &str) -> Scope {
        Scope(vec![format!("repository:{repo}:pull,push"), format!("repository:{from}:pull")])
    }
}

#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    tokens: HashMap<Scope, String>,
}

/// A manifest as the registry serves it.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub media_type: Option<String>,
    /// `Docker-Content-Digest`, when the registry sent one (not trusted: callers hash the bytes).
    pub digest: Option<String>,
}

pub struct Client {
    http: Http,
    base: Url,
    /// `HOST[:PORT]` as the user wrote it (for messages).
    pub registry: String,
    credentials: Option<Credentials>,
    /// Where the credentials came from (or where none were found), for auth errors.
    auth_source: String,
    auth: Mutex<AuthState>,
    retries: u32,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("registry", &self.registry).field("auth_source", &self.auth_source).finish()
    }
}

fn read_pem(path: &std::path::Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(format!("reading the {what} {}", path.display()), e))
}

impl Client {
    /// A client of `registry` (`HOST[:PORT]`): TLS set up, credentials looked up.
    pub fn connect(registry: &str, opts: &RegistryOptions) -> Result<Client> {
        let api_host = if super::reference::is_docker_hub(registry) { "registry-1.docker.io" } else { registry };
        let scheme = if opts.plain_http { "http" } else { "https" };
        let base = Url::parse(&format!("{scheme}://{api_host}/"))
            .map_err(|e| Error::usage(format!("docker://{}: not a registry address: {e}", crate::untrusted::shown(registry))))?;
        let mut tls = native_tls::TlsConnector::builder();
        if let Some(ca) = &opts.ca_cert {
            let pem = read_pem(ca, "CA certificate")?;
            let blocks = pem_blocks(&pem, "CERTIFICATE");
            if blocks.is_empty() {
                return Err(Error::usage(format!("--ca-cert {}: no PEM certificate in it", ca.display())));
            }
            for block in blocks {
                let cert = native_tls::Certificate::from_pem(&block)
                    .map_err(|e| Error::usage(format!("--ca-cert {}: not a PEM certificate: {e}", ca.display())))?;
                tls.add_root_certificate(cert);
            }
        }
        if let Some(cert) = &opts.cert {
            let cert_pem = read_pem(cert, "client certificate")?;
            let key_pem = match &opts.key {
                Some(k) => read_pem(k, "client key")?,
                None => cert_pem.clone(),
            };
            let identity = native_tls::Identity::from_pkcs8(&cert_pem, &key_pem).map_err(|e| {
                Error::usage(format!("--cert {}: not a PEM certificate with a PKCS#8 PEM key: {e}", cert.display()))
                    .with_hint("give the certificate with --cert FILE and its key (PEM, \"BEGIN PRIVATE KEY\"; convert with `openssl pkcs8 -topk8 -nocrypt`) with --cert-key FILE")
            })?;
            tls.identity(identity);
        } else if opts.key.is_some() {
            return Err(Error::usage("--cert-key needs --cert (the client certificate it belongs to)"));
        }
        let tls = tls.build().map_err(|e| Error::usage(format!("setting up TLS: {e}")))?;
        let mut builder = Http::builder()
            .connect_timeout(opts.connect_timeout)
            .timeout(None::<Duration>)
            .tcp_keepalive(Duration::from_secs(30))
            .user_agent(USER_AGENT)
            // Blob reads may be redirected to storage; reqwest drops Authorization on another host.
            .redirect(reqwest::redirect::Policy::limited(5))
            .tls_backend_preconfigured(tls);
        if !opts.io_timeout.is_zero() {
            builder = builder.tcp_user_timeout(opts.io_timeout);
        }
        let http = builder.build().map_err(|e| Error::usage(format!("setting up the HTTP client: {}", error_chain(&e))))?;
        let found = auth::lookup(registry, opts.auth_file.as_deref())?;
        Ok(Client {
            http,
            base,
            registry: registry.to_string(),
            credentials: found.credentials,
            auth_source: found.described,
            auth: Mutex::new(AuthState::default()),
            retries: opts.retries,
        })
    }

    pub(super) fn url(&self, path: &str) -> Url {
        self.base.join(path).expect("API paths join")
    }

    /// A `Location` header resolved against the registry's address.
    fn location(&self, resp: &Response, context: &str) -> Result<Url, RegistryError> {
        let loc = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()).ok_or_else(|| self.protocol(context, "no Location header"))?;
        resp.url().join(loc).map_err(|e| self.protocol(context, format!("bad Location {loc:?}: {e}")))
    }

    /// A small JSON answer (a token, a tag list page), bounded.
    pub(super) fn read_json(&self, resp: Response, context: &str) -> Result<serde_json::Value, RegistryError> {
        use std::io::Read;
        let mut bytes = Vec::new();
        resp.take(crate::image::MAX_DOCUMENT + 1).read_to_end(&mut bytes).map_err(|e| RegistryError::Network {
            registry: self.registry.clone(),
            context: context.into(),
            detail: crate::error::plain_io(&e),
        })?;
        if bytes.len() as u64 > crate::image::MAX_DOCUMENT {
            return Err(self.protocol(context, "the answer is larger than a document may be: refused"));
        }
        serde_json::from_slice(&bytes).map_err(|e| self.protocol(context, format!("the answer is not JSON: {e}")))
    }

    pub(super) fn protocol(&self, context: &str, detail: impl Into<String>) -> RegistryError {
        RegistryError::Protocol { registry: self.registry.clone(), context: context.into(), detail: detail.into() }
    }

    fn net_error(&self, context: &str, e: &reqwest::Error) -> RegistryError {
        let detail = error_chain(e);
        let tls = [
            "certificate verify failed",
            "unable to get local issuer",
            "self signed certificate",
            "self-signed certificate",
            "certificate",
            "handshake",
            "tlsv1 alert",
            "ssl",
        ];
        let lower = detail.to_ascii_lowercase();
        if e.is_connect() && tls.iter().any(|t| lower.contains(t)) {
            return RegistryError::Tls { registry: self.registry.clone(), context: context.into(), detail };
        }
        RegistryError::Network { registry: self.registry.clone(), context: context.into(), detail }
    }

    /// An error status as a [`RegistryError`], with the registry's own message when it sent one.
    pub(super) fn status_error(&self, context: &str, resp: Response) -> RegistryError {
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return self.auth_error(context, status);
        }
        let body = resp.text().unwrap_or_default();
        let detail = registry_message(&body).map(|m| format!(": {m}")).unwrap_or_default();
        RegistryError::Status { registry: self.registry.clone(), context: context.into(), status: status.as_u16(), detail }
    }

    fn auth_error(&self, context: &str, status: StatusCode) -> RegistryError {
        RegistryError::Auth {
            registry: self.registry.clone(),
            context: context.into(),
            status: status.as_u16(),
            tried: self.auth_source.clone(),
        }
    }

    /// The Authorization the current challenge asks for.
    fn authorize(&self, rb: RequestBuilder, scope: &Scope) -> RequestBuilder {
        let state = self.auth.lock().expect("auth state");
        match (&state.challenge, &self.credentials) {
            (Some(Challenge::Basic), Some(c)) => rb.basic_auth(&c.username, Some(&c.password)),
            (Some(Challenge::Bearer { .. }), _) => match state.tokens.get(scope) {
                Some(t) => rb.bearer_auth(t),
                None => rb,
            },
            _ => rb,
        }
    }

    /// Answer a challenge: remember it, and fetch a token for `scope` if it is Bearer.
    fn answer(&self, challenge: Challenge, scope: &Scope, context: &str) -> Result<(), RegistryError> {
        if let Challenge::Bearer { realm, service } = &challenge {
            let token = self.fetch_token(realm, service.as_deref(), scope, context)?;
            self.auth.lock().expect("auth state").tokens.insert(scope.clone(), token);
        } else if self.credentials.is_none() {
            return Err(self.auth_error(context, StatusCode::UNAUTHORIZED));
        }
        self.auth.lock().expect("auth state").challenge = Some(challenge);
        Ok(())
    }

    /// The token endpoint of a Bearer challenge (docker's token auth spec).
    fn fetch_token(&self, realm: &str, service: Option<&str>, scope: &Scope, context: &str) -> Result<String, RegistryError> {
        let mut url = Url::parse(realm).map_err(|e| self.protocol(context, format!("bad token realm {realm:?}: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in &scope.0 {
                q.append_pair("scope", s);
            }
        }
        let mut rb = self.http.get(url);
        if let Some(c) = &self.credentials {
            rb = rb.basic_auth(&c.username, Some(&c.password));
        }
        let resp = rb.send().map_err(|e| self.net_error("getting a token", &e))?;
        if !resp.status().is_success() {
            return Err(match resp.status() {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => self.auth_error(context, resp.status()),
                _ => self.status_error("getting a token", resp),
            });
        }
        let v = self.read_json(resp, "getting a token")?;
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .ok_or_else(|| self.protocol("getting a token", "the token answer holds no token"))
    }

    /// One request, authenticated: sent, and sent once more after a 401 answered.
    /// `build` makes the request afresh each time (bodies are cheap to clone).
    pub fn send(&self, context: &str, scope: &Scope, build: &dyn Fn(&Http) -> RequestBuilder) -> Result<Response, RegistryError> {
        let mut answered = false;
        loop {
            let resp = self.authorize(build(&self.http), scope).send().map_err(|e| self.net_error(context, &e))?;
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && !answered {
                answered = true;
                let challenge = resp.headers().get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).and_then(Challenge::parse);
                match challenge {
                    Some(c) => {
                        self.answer(c, scope, context)?;
                        continue;
                    }
                    None => return Err(self.auth_error(context, status)),
                }
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Err(self.auth_error(context, status));
            }
            return Ok(resp);
        }
    }

    /// `op` again after a retryable failure, with backoff (0.5 s, 1 s, 2 s, ... at most 8 s).
    pub fn retrying<T>(&self, mut op: impl FnMut() -> Result<T, RegistryError>) -> Result<T, RegistryError> {
        let mut attempt = 0;
        loop {
            match op() {
                Err(e) if e.is_retryable() && attempt < self.retries => {
                    std::thread::sleep(backoff(attempt));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// `/v2/` answers (and, with credentials, accepts them): a cheap first check.
    pub fn ping(&self) -> Result<(), RegistryError> {
        let scope = Scope(vec![]);
        self.retrying(|| {
            let resp = self.send("checking the registry", &scope, &|h| h.get(self.url("v2/")))?;
            match resp.status() {
                s if s.is_success() => Ok(()),
                _ => Err(self.status_error("checking the registry", resp)),
            }
        })
    }

    pub fn blob_exists(&self, repo: &str, digest: &Digest) -> Result<bool, RegistryError> {
        let context = format!("checking blob {digest} in {repo}");
        let scope = Scope::pull(repo);
        let url = self.url(&format!("v2/{repo}/blobs/{digest}"));
        self.retrying(|| {
            let resp = self.send(&context, &scope, &|h| h.head(url.clone()))?;
            match resp.status() {
                StatusCode::OK => Ok(true),
                StatusCode::NOT_FOUND => Ok(false),
                _ => Err(self.status_error(&context, resp)),
            }
        })
    }

    /// A blob's bytes as a stream (the caller checks its digest).
    pub fn get_blob(&self, repo: &str, digest: &Digest) -> Result<Response, RegistryError> {
        let context = format!("reading blob {digest} from {repo}");
        let scope = Scope::pull(repo);
        let url = self.url(&format!("v2/{repo}/blobs/{digest}"));
        self.retrying(|| {
            let resp = self.send(&context, &scope, &|h| h.get(url.clone()))?;
            match resp.status() {
                s if s.is_success() => Ok(resp),
                StatusCode::NOT_FOUND => {
                    Err(RegistryError::NotFound { registry: self.registry.clone(), what: format!("blob {digest} in {repo}") })
                }
                _ => Err(self.status_error(&context, resp)),
            }
        })
    }

    /// `digest`'s bytes from `offset` on (`Range: bytes=OFFSET-`), to pick a
    /// download up where a dropped connection left it. A registry that ignores
    /// the range (200, the whole blob) is answered by the caller skipping
    /// `offset` bytes: the flag says which it got.
    pub fn get_blob_from(&self, repo: &str, digest: &Digest, offset: u64) -> Result<(Response, bool), RegistryError> {
        let context = format!("reading blob {digest} from {repo} from byte {offset} on");
        let scope = Scope::pull(repo);
        let url = self.url(&format!("v2/{repo}/blobs/{digest}"));
        let resp = self.send(&context, &scope, &|h| h.get(url.clone()).header(RANGE, format!("bytes={offset}-")))?;
        match resp.status() {
            StatusCode::PARTIAL_CONTENT => Ok((resp, true)),
            StatusCode::OK => Ok((resp, false)),
            StatusCode::NOT_FOUND => {
                Err(RegistryError::NotFound { registry: self.registry.clone(), what: format!("blob {digest} in {repo}") })
            }
            _ => Err(self.status_error(&context, resp)),
        }
    }

    /// Mount `digest` from repository `from` into `repo`: `true` if the registry did.
    pub fn mount_blob(&self, repo: &str, digest: &Digest, from: &str) -> Result<bool, RegistryError> {
        let context = format!("mounting blob {digest} from {from} into {repo}");
        let scope = Scope::mount(repo, from);
        let mut url = self.url(&format!("v2/{repo}/blobs/uploads/"));
        url.query_pairs_mut().append_pair("mount", digest.as_str()).append_pair("from", from);
        let resp = self.retrying(|| self.send(&context, &scope, &|h| h.post(url.clone()).header(CONTENT_LENGTH, 0)))?;
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            // The registry started an upload instead: not wanted, cancelled.
            StatusCode::ACCEPTED => {
                if let Ok(loc) = self.location(&resp, &context) {
                    let _ = self.send(&context, &Scope::push(repo), &|h| h.delete(loc.clone()));
                }
                Ok(false)
            }
            _ => Err(self.status_error(&context, resp)),
        }
    }

    /// Open an upload session in `repo`: its location.
    pub fn start_upload(&self, repo: &str) -> Result<Url, RegistryError> {
        let context = format!("starting an upload to {repo}");
        let scope = Scope::push(repo);
        let url = self.url(&format!("v2/{repo}/blobs/uploads/"));
        self.retrying(|| {
            let resp = self.send(&context, &scope, &|h| h.post(url.clone()).header(CONTENT_LENGTH, 0))?;
            match resp.status() {
                StatusCode::ACCEPTED | StatusCode::CREATED => self.location(&resp, &context),
                _ => Err(self.status_error(&context, resp)),
            }
        })
    }

    /// How many bytes an upload session holds (from its `Range: 0-LAST`);
    /// `None` when the registry no longer knows the session.
    pub fn upload_offset(&self, repo: &str, location: &Url) -> Result<Option<(u64, Url)>, RegistryError> {
        let context = format!("asking how much of an upload to {repo} arrived");
        let scope = Scope::push(repo);
        self.retrying(|| {
            let resp = self.send(&context, &scope, &|h| h.get(location.clone()))?;
            match resp.status() {
                StatusCode::NO_CONTENT | StatusCode::OK => {
                    let next = self.location(&resp, &context).unwrap_or_else(|_| location.clone());
                    Ok(Some((range_end(resp.headers()).map_err(|why| self.protocol(&context, why))?, next)))
                }
                StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST => Ok(None),
                _ => Err(self.status_error(&context, resp)),
            }
        })
    }

    /// Send `chunk` as the bytes at `offset..` of the upload: the session's next location.
    /// Not retried here: the caller asks the registry what arrived and sends the rest.
    pub fn patch_chunk(&self, repo: &str, location: &Url, offset: u64, chunk: bytes::Bytes) -> Result<Url, RegistryError> {
        let context = format!("uploading to {repo} (at byte {offset})");
        let scope = Scope::push(repo);
        let end = offset + chunk.len() as u64 - 1;
        let resp = self.send(&context, &scope, &|h| {
            h.patch(location.clone())
                .header(CONTENT_TYPE, "application/octet-stream")
                .header("Content-Range", format!("{offset}-{end}"))
                .header(CONTENT_LENGTH, chunk.len())
                .body(chunk.clone())
        })?;
        match resp.status() {
            StatusCode::ACCEPTED | StatusCode::NO_CONTENT => self.location(&resp, &context),
            _ => Err(self.status_error(&context, resp)),
        }
    }

    /// Close the upload with its last bytes (maybe none): the registry checks `digest`.
    pub fn finish_upload(&self, repo: &str, location: &Url, digest: &Digest, last: bytes::Bytes) -> Result<(), RegistryError> {
        let context = format!("finishing the upload of blob {digest} to {repo}");
        let scope = Scope::push(repo);
        let mut url = location.clone();
        url.query_pairs_mut().append_pair("digest", digest.as_str());
        let resp = self.send(&context, &scope, &|h| {
            h.put(url.clone()).header(CONTENT_TYPE, "application/octet-stream").header(CONTENT_LENGTH, last.len()).body(last.clone())
        })?;
        match resp.status() {
            StatusCode::CREATED | StatusCode::NO_CONTENT | StatusCode::ACCEPTED => Ok(()),
            _ => Err(self.status_error(&context, resp)),
        }
    }

    /// A small blob in one go: POST for a session, PUT with the bytes and digest.
    pub fn upload_blob(&self, repo: &str, digest: &Digest, bytes: bytes::Bytes) -> Result<(), RegistryError> {
        self.retrying(|| {
            let location = self.start_upload(repo)?;
            self.finish_upload(repo, &location, digest, bytes.clone())
        })
    }

    /// The digest a manifest tag or digest resolves to, if it exists (HEAD).
    pub fn manifest_digest(&self, repo: &str, reference: &str) -> Result<Option<String>, RegistryError> {
        let context = format!("checking manifest {repo}:{reference}");
        let scope = Scope::pull(repo);
        let url = self.url(&format!("v2/{repo}/manifests/{reference}"));
        self.retrying(|| {
            let resp = self.send(&context, &scope, &|h| h.head(url.clone()).header(ACCEPT, MANIFEST_ACCEPT))?;
            match resp.status() {
                StatusCode::OK => Ok(resp.headers().get("Docker-Content-Digest").and_then(|v| v.to_str().ok()).map(str::to_string)),
                StatusCode::NOT_FOUND => Ok(None),
                _ => Err(self.status_error(&context, resp)),
            }
        })
    }

    /// A manifest or index by tag or digest, at most `max` bytes.
    pub fn get_manifest(&self, repo: &str, reference: &str, max: u64) -> Result<FetchedManifest, RegistryError> {
        use std::io::Read;
        let context = format!("reading manifest {repo}:{reference}");
        let scope = Scope::pull(repo);
        let url = self.url(&format!("v2/{repo}/manifests/{reference}"));
        self.retrying(|| {
            let resp = self.send(&context, &scope, &|h| h.get(url.clone()).header(ACCEPT, MANIFEST_ACCEPT))?;
            match resp.status() {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND => {
                    return Err(RegistryError::NotFound { registry: self.registry.clone(), what: format!("manifest {repo}:{reference}") })
                }
                _ => return Err(self.status_error(&context, resp)),
            }
            let header = |n: &str| resp.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
            let (media_type, digest) = (header("Content-Type"), header("Docker-Content-Digest"));
            let mut bytes = Vec::new();
            resp.take(max + 1).read_to_end(&mut bytes).map_err(|e| RegistryError::Network {
                registry: self.registry.clone(),
                context: context.clone(),
                detail: crate::error::plain_io(&e),
            })?;
            if bytes.len() as u64 > max {
                return Err(self.protocol(&context, format!("the manifest is larger than {max} bytes: refused")));
            }
            Ok(FetchedManifest { bytes, media_type, digest })
        })
    }

    /// Store a manifest (or index) under `reference` (its digest, or a tag).
    /// Store a manifest or index under `reference`. Returns the `OCI-Subject`
    /// header of the answer: a registry with the referrers API names the
    /// subject it indexed the manifest under (distribution spec 1.1).
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: bytes::Bytes,
    ) -> Result<Option<String>, RegistryError> {
        let context = format!("storing manifest {repo}:{reference}");
        let scope = Scope::push(repo);
        let url = self.url(&format!("v2/{repo}/manifests/{reference}"));
        self.retrying(|| {
            let resp = self.send(&context, &scope, &|h| h.put(url.clone()).header(CONTENT_TYPE, media_type).body(bytes.clone()))?;
            match resp.status() {
                StatusCode::CREATED | StatusCode::OK | StatusCode::ACCEPTED => {
                    Ok(resp.headers().get("OCI-Subject").and_then(|v| v.to_str().ok()).map(str::to_string))
                }
                _ => Err(self.status_error(&context, resp)),
            }
        })
    }

    /// Whether the registry serves the OCI 1.1 referrers API (`GET /v2/<repo>/referrers/<digest>`).
    pub fn has_referrers_api(&self, repo: &str, subject: &Digest) -> Result<bool, RegistryError> {
        Ok(self.referrers(repo, subject)?.is_some())
    }

    /// Every tag of `repo` (following `Link` pagination).
    pub fn list_tags(&self, repo: &str) -> Result<Vec<String>, RegistryError> {
        let context = format!("listing the tags of {repo}");
        let scope = Scope::pull(repo);
        let mut url = self.url(&format!("v2/{repo}/tags/list"));
        let mut tags = Vec::new();
        for _ in 0..1000 {
            let resp = self.retrying(|| self.send(&context, &scope, &|h| h.get(url.clone())))?;
            match resp.status() {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND => return Ok(tags),
                _ => return Err(self.status_error(&context, resp)),
            }
            let next = resp.headers().get("Link").and_then(|v| v.to_str().ok()).and_then(link_next).and_then(|n| resp.url().join(&n).ok());
            let v = self.read_json(resp, &context)?;
            tags.extend(v.get("tags").and_then(|t| t.as_array()).into_iter().flatten().filter_map(|t| t.as_str().map(str::to_string)));
            match next {
                Some(n) => url = n,
                None => return Ok(tags),
            }
        }
        Err(self.protocol(&context, "more than 1000 pages of tags: refused"))
    }
}

pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.min(4)))
}

/// The byte count a `Range: 0-LAST` header reports (`0-0` with nothing yet is 0:
/// distribution writes `0-0` for an empty upload).
fn range_end(headers: &HeaderMap) -> std::result::Result<u64, String> {
    let Some(range) = headers.get("Range").and_then(|v| v.to_str().ok()) else { return Ok(0) };
    let range = range.trim().trim_start_matches("bytes=");
    let (start, end) = range.split_once('-').ok_or_else(|| format!("bad Range header {range:?}"))?;
    let end: u64 = end.trim().parse().map_err(|_| format!("bad Range header {range:?}"))?;
    if start.trim() != "0" {
        return Err(format!("bad Range header {range:?}"));
    }
    Ok(if end == 0 { 0 } else { end + 1 })
}

/// `<url>; rel="next"`
pub(super) fn link_next(link: &str) -> Option<String> {
    link.split(',').find(|l| l.contains("rel=\"next\"")).and_then(|l| Some(l.split_once('<')?.1.split_once('>')?.0.to_string()))
}

/// The first `{"errors":[{"code","message"}]}` entry, as `CODE: message`.
fn registry_message(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let e = v.get("errors")?.get(0)?;
    let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
    let msg = e.get("message").and_then(|m| m.as_str()).unwrap_or("");
    Some(crate::untrusted::shown(&format!("{code}: {msg}")).into_owned())
}

/// The PEM blocks of one label in a file.
fn pem_blocks(pem: &[u8], label: &str) -> Vec<Vec<u8>> {
    let text = String::from_utf8_lossy(pem);
    let (begin, end) = (format!("-----BEGIN {label}-----"), format!("-----END {label}-----"));
    let mut out = Vec::new();
    let mut rest = text.as_ref();
    while let Some(i) = rest.find(&begin) {
        let Some(j) = rest[i..].find(&end) else { break };
        out.push(rest.as_bytes()[i..i + j + end.len()].to_vec());
        rest = &rest[i + j + end.len()..];
    }
    out
}

/// An error with its causes, without the URL (it may carry a session token).
fn error_chain(e: &reqwest::Error) -> String {
    let mut parts = vec![e.without_url_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    crate::error::plain_io(&std::io::Error::other(parts.join(": ")))
}

trait WithoutUrl {
    fn without_url_string(&self) -> String;
}
impl WithoutUrl for reqwest::Error {
    fn without_url_string(&self) -> String {
        let text = self.to_string();
        match self.url() {
            Some(url) => text.replace(&format!(" for url ({url})"), ""),
            None => text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert("Range", v.parse().unwrap());
            m
        };
        assert_eq!(range_end(&h("0-0")), Ok(0));
        assert_eq!(range_end(&h("0-99")), Ok(100));
        assert_eq!(range_end(&h("bytes=0-9")), Ok(10));
        assert_eq!(range_end(&HeaderMap::new()), Ok(0));
        assert!(range_end(&h("5-9")).is_err());
        assert_eq!(link_next("</v2/a/tags/list?n=2&last=b>; rel=\"next\""), Some("/v2/a/tags/list?n=2&last=b".into()));
        assert_eq!(
            registry_message(r#"{"errors":[{"code":"BLOB_UPLOAD_INVALID","message":"blob upload invalid"}]}"#).as_deref(),
            Some("BLOB_UPLOAD_INVALID: blob upload invalid")
        );
    }
}
