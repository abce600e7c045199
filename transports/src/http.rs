//! HTTP(S) backend: downloads with `Range` resume, uploads by WebDAV `PUT` + `MOVE`.
//!
//! - `get` from an offset sends `Range: bytes=N-` (and `If-Range` with the ETag seen
//!   earlier); 206 is checked against the offset. A 200 means the server sent the whole
//!   file: if the ETag or size changed since we last saw the file, that is an error
//!   (the caller must start over); otherwise the first N bytes are skipped locally.
//! - `put` streams the body (chunked, unknown length) from a bounded channel: memory
//!   stays flat. It goes to `NAME.partial`, then `MOVE` with `Destination` and
//!   `Overwrite: T`. WebDAV cannot append, so interrupted uploads restart from 0
//!   (`resume_upload: false`). The PUT runs on reqwest's async client, on a runtime of
//!   its own thread, fed whole `CHUNK`s (recycled, not reallocated): reqwest's blocking
//!   body reads its `Read` 8 KiB at a time and hands each piece to another thread, which
//!   made uploads 2-3x slower than curl (perf: most time in task switches).
//! - One native-tls connector per transport, shared by its clients: building one parses
//!   the system CA bundle (perf: ~0.1 s of CPU each time, more than a 128 MiB upload).
//! - `list` reads an nginx/Apache autoindex page; without one it says so.
//! - Auth: HTTP basic (user/password from the URL, options, `$FERRY_HTTP_PASSWORD`,
//!   netrc) or a bearer token (`$FERRY_HTTP_TOKEN`).
use crate::options::{Secret, TransportOptions};
use crate::remote::{decode, Remote};
use crate::{
    check_name, partial_name, Capabilities, Entry, PutMode, Result, Transport, TransportError, Upload, MAX_LISTING_BYTES,
    MAX_LISTING_ENTRIES,
};
use bytes::Bytes;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{HeaderMap, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_RANGE, RANGE};
use reqwest::{Method, StatusCode};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;
use url::Url;

/// Size of the chunks handed to the request body; at most `CHANNEL_DEPTH` are queued.
const CHUNK: usize = 256 * 1024;
const CHANNEL_DEPTH: usize = 4;

/// (ETag, size) of a file as last seen.
type Seen = (Option<String>, Option<u64>);

#[derive(Clone)]
enum Auth {
    None,
    Basic(String, Option<Secret>),
    Bearer(Secret),
}

pub struct HttpTransport {
    remote: Remote,
    /// The directory URL, ending in '/', without credentials.
    base: Url,
    client: Client,
    auth: Auth,
    io_timeout: Duration,
    /// What an upload needs to build its own (async) client.
    client_config: ClientConfig,
    /// What we last saw of each file: (ETag, size), to validate resumed downloads.
    seen: Mutex<HashMap<String, Seen>>,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport").field("location", &self.remote.display).finish()
    }
}

impl HttpTransport {
    pub fn open(location: &str, opts: &TransportOptions) -> Result<HttpTransport> {
        let remote = Remote::parse(location, opts, "FERRY_HTTP_PASSWORD")?;
        let mut base = remote.url.clone();
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        base.set_query(None);
        base.set_fragment(None);
        let mut tls = native_tls::TlsConnector::builder();
        if let Some(ca) = &opts.ca_cert {
            for cert in crate::ftp::read_ca_certs(&remote, ca)? {
                tls.add_root_certificate(cert);
            }
        }
        let tls = tls.build().map_err(|e| remote.protocol_error("setting up TLS", e))?;
        let mut builder = Client::builder()
            .connect_timeout(opts.connect_timeout)
            .timeout(None::<Duration>)
            .tcp_keepalive(Duration::from_secs(30))
            .user_agent(USER_AGENT)
            .tls_backend_preconfigured(tls.clone());
        if !opts.io_timeout.is_zero() {
            builder = builder.tcp_user_timeout(opts.io_timeout);
        }
        let client = builder.build().map_err(|e| remote.protocol_error("setting up the HTTP client", error_chain(&e)))?;
        let token = opts.http_token.clone().or_else(|| {
            if opts.use_env {
                std::env::var("FERRY_HTTP_TOKEN").ok().filter(|t| !t.is_empty())
            } else {
                None
            }
        });
        let auth = match (&remote.user, &remote.password, token) {
            (Some(u), p, _) => Auth::Basic(u.clone(), p.clone()),
            (None, _, Some(t)) => Auth::Bearer(Secret(t)),
            (None, _, None) => Auth::None,
        };
        Ok(HttpTransport {
            remote,
            base,
            client,
            auth,
            io_timeout: opts.io_timeout,
            client_config: ClientConfig { connect_timeout: opts.connect_timeout, io_timeout: opts.io_timeout, tls },
            seen: Mutex::new(HashMap::new()),
        })
    }

    fn url_for(&self, name: &str) -> Url {
        let mut u = self.base.clone();
        u.path_segments_mut().expect("http URLs have paths").pop_if_empty().push(name);
        u
    }

    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let rb = self.client.request(method, url);
        match &self.auth {
            Auth::None => rb,
            Auth::Basic(u, p) => rb.basic_auth(u, p.as_ref().map(|p| p.expose())),
            Auth::Bearer(t) => rb.bearer_auth(t.expose()),
        }
    }

    /// A small request: bounded by the I/O timeout.
    fn small(&self, method: Method, url: Url) -> RequestBuilder {
        let rb = self.request(method, url);
        if self.io_timeout.is_zero() {
            rb
        } else {
            rb.timeout(self.io_timeout)
        }
    }

    fn send(&self, rb: RequestBuilder, context: &str) -> Result<Response> {
        rb.send().map_err(|e| send_error(&self.remote, context, &e))
    }

    fn status_error(&self, context: &str, name: Option<&str>, status: StatusCode) -> TransportError {
        status_error(&self.remote, &self.auth, context, name, status)
    }

    fn remember(&self, name: &str, headers: &HeaderMap, size: Option<u64>) {
        let etag = headers.get(ETAG).and_then(|v| v.to_str().ok()).map(str::to_string);
        self.seen.lock().unwrap().insert(name.to_string(), (etag, size));
    }

    /// A body whose reads fail once the server stays silent for the I/O timeout.
    fn silence_limited(&self, resp: Response, context: &str) -> Result<Box<dyn Read + Send>> {
        crate::silence::SilenceLimited::wrap(resp, self.io_timeout, context.to_string())
            .map_err(|e| TransportError::io(&self.remote.display, "starting a download thread", e))
    }

    fn head_size(&self, name: &str) -> Result<Option<u64>> {
        let resp = self.send(self.small(Method::HEAD, self.url_for(name)), &format!("HEAD {name}"))?;
        match resp.status() {
            s if s.is_success() => {
                let size = header_u64(resp.headers(), CONTENT_LENGTH);
                self.remember(name, resp.headers(), size);
                Ok(size.or(Some(0)))
            }
            StatusCode::NOT_FOUND | StatusCode::GONE => Ok(None),
            s => Err(self.status_error(&format!("HEAD {name}"), Some(name), s)),
        }
    }
}

const USER_AGENT: &str = concat!("ferry/", env!("CARGO_PKG_VERSION"));

/// Settings of the async client an upload builds (the same as the blocking client's).
#[derive(Clone)]
struct ClientConfig {
    connect_timeout: Duration,
    io_timeout: Duration,
    tls: native_tls::TlsConnector,
}

impl ClientConfig {
    fn async_client(&self) -> reqwest::Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .tcp_keepalive(Duration::from_secs(30))
            .user_agent(USER_AGENT)
            .tls_backend_preconfigured(self.tls.clone());
        if !self.io_timeout.is_zero() {
            builder = builder.tcp_user_timeout(self.io_timeout);
        }
        builder.build()
    }
}

fn header_u64(h: &HeaderMap, name: reqwest::header::HeaderName) -> Option<u64> {
    h.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok())
}

/// reqwest's message plus its causes (reqwest's own text is terse), without the URL.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

fn send_error(remote: &Remote, context: &str, e: &reqwest::Error) -> TransportError {
    let text = remote.scrub(reqwest_without_url(e).to_string());
    let kind = if e.is_timeout() {
        io::ErrorKind::TimedOut
    } else if e.is_connect() {
        if text.contains("refused") {
            io::ErrorKind::ConnectionRefused
        } else {
            io::ErrorKind::NotConnected
        }
    } else {
        io::ErrorKind::Other
    };
    let context = if e.is_connect() { format!("{context}: connecting to {}", remote.host_port()) } else { context.to_string() };
    TransportError::io(&remote.display, context, io::Error::new(kind, text))
}

fn reqwest_without_url(e: &reqwest::Error) -> Box<dyn std::error::Error + 'static> {
    // reqwest::Error is not Clone; rebuild its text without the URL.
    struct Plain(String, Option<String>);
    impl std::fmt::Debug for Plain {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }
    impl std::fmt::Display for Plain {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match &self.1 {
                Some(s) => write!(f, "{}: {}", self.0, s),
                None => f.write_str(&self.0),
            }
        }
    }
    impl std::error::Error for Plain {}
    let mut head = e.to_string();
    if let Some(url) = e.url() {
        head = head.replace(&format!(" for url ({url})"), "").replace(url.as_str(), "");
    }
    let mut causes: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        // Drop causes already contained in an earlier, more detailed one.
        if !causes.iter().any(|c| c.contains(text.trim_end_matches(':'))) && !head.contains(&text) {
            causes.push(text);
        }
        source = s.source();
    }
    if causes.iter().any(|c| c.contains("certificate verify failed")) {
        causes.push("is the server certificate signed by a trusted CA? see --ca-cert".into());
    }
    Box::new(Plain(head, if causes.is_empty() { None } else { Some(causes.join(": ")) }))
}

fn status_error(remote: &Remote, auth: &Auth, context: &str, name: Option<&str>, status: StatusCode) -> TransportError {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN if status == StatusCode::UNAUTHORIZED || !matches!(auth, Auth::None) => {
            let how = match auth {
                Auth::None => "no credentials were sent (user:password in the URL, ~/.netrc, or $FERRY_HTTP_TOKEN)".to_string(),
                Auth::Basic(u, _) => format!(
                    "basic auth as {u}{}",
                    remote.password_source.as_ref().map(|s| format!(" with the password from {s}")).unwrap_or_default()
                ),
                Auth::Bearer(_) => "bearer token".to_string(),
            };
            remote.auth_error(format!(": {context}: server answered {status} ({how})"))
        }
        StatusCode::NOT_FOUND | StatusCode::GONE if name.is_some() => {
            TransportError::NotFound { location: remote.display.clone(), name: name.unwrap().to_string() }
        }
        StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED => remote.protocol_error(
            context,
            format!("server answered {status}: it does not accept this method (is WebDAV enabled for this path?)"),
        ),
        s => remote.protocol_error(context, format!("server answered {s}")),
    }
}

impl Transport for HttpTransport {
    fn describe(&self) -> String {
        self.remote.display.clone()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { overwrite: true, delete: true, list: true, resume_upload: false, resume_download: true }
    }

    fn put(&self, name: &str, _mode: PutMode) -> Result<Box<dyn Upload>> {
        check_name(name)?;
        // Fail early and typed on bad credentials, before streaming a body.
        let probe = self.send(self.small(Method::HEAD, self.base.clone()), "checking access")?;
        if probe.status() == StatusCode::UNAUTHORIZED {
            return Err(self.status_error("checking access", None, probe.status()));
        }
        let temp = partial_name(name);
        let temp_url = self.url_for(&temp);
        let (tx, rx) = sync_channel::<Chunk>(CHANNEL_DEPTH);
        let remote = self.remote.clone();
        let context = format!("uploading {temp} (PUT)");
        let config = self.client_config.clone();
        let auth = self.auth.clone();
        let url = temp_url.clone();
        let handle = std::thread::Builder::new()
            .name("ferry-http-put".into())
            .spawn(move || -> std::result::Result<StatusCode, TransportError> {
                let body = reqwest::Body::wrap(ChannelBody { rx: Mutex::new(rx), done: false });
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| TransportError::io(&remote.display, "starting the upload runtime", e))?;
                rt.block_on(async {
                    let client = config.async_client().map_err(|e| remote.protocol_error("setting up the HTTP client", error_chain(&e)))?;
                    let rb = match &auth {
                        Auth::None => client.put(url),
                        Auth::Basic(u, p) => client.put(url).basic_auth(u, p.as_ref().map(|p| p.expose())),
                        Auth::Bearer(t) => client.put(url).bearer_auth(t.expose()),
                    };
                    let resp = rb.body(body).send().await.map_err(|e| send_error(&remote, &context, &e))?;
                    Ok(resp.status())
                })
            })
            .map_err(|e| TransportError::io(&self.remote.display, "starting the upload thread", e))?;
        Ok(Box::new(HttpUpload {
            tx: Some(tx),
            buf: Vec::with_capacity(CHUNK),
            pool: sync_channel(CHANNEL_DEPTH + 2),
            handle: Some(handle),
            transport: HttpShared {
                remote: self.remote.clone(),
                client: self.client.clone(),
                auth: self.auth.clone(),
                io_timeout: self.io_timeout,
            },
            temp,
            temp_url,
            name: name.to_string(),
            final_url: self.url_for(name),
            written: 0,
        }))
    }

    fn get(&self, name: &str, offset: u64) -> Result<Box<dyn Read + Send>> {
        check_name(name)?;
        let context = format!("downloading {name}");
        let seen = self.seen.lock().unwrap().get(name).cloned();
        let mut rb = self.request(Method::GET, self.url_for(name));
        if offset > 0 {
            rb = rb.header(RANGE, format!("bytes={offset}-"));
            if let Some(etag) = seen.as_ref().and_then(|(e, _)| e.as_ref()).filter(|e| !e.starts_with("W/")) {
                rb = rb.header(IF_RANGE, etag.as_str());
            }
        }
        let resp = self.send(rb, &context)?;
        let status = resp.status();
        let etag = resp.headers().get(ETAG).and_then(|v| v.to_str().ok()).map(str::to_string);
        match status {
            StatusCode::PARTIAL_CONTENT if offset > 0 => {
                // Content-Range: bytes START-END/TOTAL
                let range = resp.headers().get(CONTENT_RANGE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                let parsed = range
                    .strip_prefix("bytes ")
                    .and_then(|r| r.split_once('-'))
                    .and_then(|(start, rest)| Some((start.parse::<u64>().ok()?, rest.split_once('/')?.1.parse::<u64>().ok())));
                match parsed {
                    Some((start, total)) if start == offset => {
                        if let (Some((_, Some(old))), Some(new)) = (&seen, total) {
                            if *old != new {
                                return Err(self.remote.protocol_error(
                                    &context,
                                    format!("{name} changed size on the server ({old} -> {new} bytes); start the download over"),
                                ));
                            }
                        }
                        self.remember(name, resp.headers(), total);
                        self.silence_limited(resp, &context)
                    }
                    _ => Err(self
                        .remote
                        .protocol_error(&context, format!("asked for bytes from {offset}, the server sent Content-Range {range:?}"))),
                }
            }
            s if s.is_success() => {
                let size = header_u64(resp.headers(), CONTENT_LENGTH);
                if offset > 0 {
                    // The whole file came back: the server ignores Range, or (If-Range) the file changed.
                    if let Some((old_etag, old_size)) = &seen {
                        let etag_changed = old_etag.is_some() && etag.is_some() && *old_etag != etag;
                        let size_changed = old_size.is_some() && size.is_some() && *old_size != size;
                        if etag_changed || size_changed {
                            return Err(self.remote.protocol_error(
                                &context,
                                format!("{name} changed on the server since the download began; start the download over"),
                            ));
                        }
                    }
                }
                self.remember(name, resp.headers(), size);
                let mut body = self.silence_limited(resp, &context)?;
                if offset > 0 {
                    // Same file, no range support: skip what the caller already has.
                    let skipped = io::copy(&mut (&mut body).take(offset), &mut io::sink())
                        .map_err(|e| TransportError::io(&self.remote.display, &context, e))?;
                    if skipped < offset {
                        return Err(self
                            .remote
                            .protocol_error(&context, format!("{name} is shorter ({skipped} bytes) than the resume offset {offset}")));
                    }
                }
                Ok(body)
            }
            StatusCode::RANGE_NOT_SATISFIABLE => {
                // Offset at (or past) the end: nothing more to read if the size is exactly the offset.
                match self.head_size(name)? {
                    Some(size) if size == offset => Ok(Box::new(io::empty())),
                    _ => Err(self.remote.protocol_error(&context, format!("range from byte {offset} not satisfiable"))),
                }
            }
            s => Err(self.status_error(&context, Some(name), s)),
        }
    }

    fn stat(&self, name: &str) -> Result<Option<u64>> {
        check_name(name)?;
        self.head_size(name)
    }

    fn list(&self) -> Result<Vec<Entry>> {
        let context = "listing (reading the directory index)";
        let resp = self.send(self.small(Method::GET, self.base.clone()), context)?;
        let status = resp.status();
        match status {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => {
                return Err(TransportError::NotFound { location: self.remote.display.clone(), name: self.base.path().to_string() })
            }
            StatusCode::FORBIDDEN | StatusCode::METHOD_NOT_ALLOWED => {
                return Err(TransportError::Unsupported {
                    location: self.remote.display.clone(),
                    operation: "listing (no directory index here: enable autoindex on the server)",
                })
            }
            s => return Err(self.status_error(context, None, s)),
        }
        let is_html =
            resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.to_ascii_lowercase().contains("html"));
        // A directory index is read within a bound: a hostile server cannot make `ls`
        // (or an unattended watcher) take unbounded memory.
        let mut body = String::new();
        let mut limited = self.silence_limited(resp, context)?.take(MAX_LISTING_BYTES + 1);
        limited.read_to_string(&mut body).map_err(|e| TransportError::io(&self.remote.display, context, e))?;
        if body.len() as u64 > MAX_LISTING_BYTES {
            return Err(crate::listing_too_large(&self.remote, context));
        }
        if !is_html {
            return Err(TransportError::Unsupported {
                location: self.remote.display.clone(),
                operation: "listing (the server sent no HTML directory index)",
            });
        }
        let mut entries = Vec::new();
        let mut asked = 0usize;
        let links = parse_index(&body);
        if links.len() > MAX_LISTING_ENTRIES {
            return Err(crate::too_many_entries(&self.remote, context));
        }
        for (name, size) in links {
            let size = match size {
                Some(s) => s,
                // Each unsized link costs a request: bounded too.
                None if asked >= MAX_INDEX_HEADS => {
                    return Err(self.remote.protocol_error(
                        context,
                        format!("the directory index lists more than {MAX_INDEX_HEADS} files without their sizes"),
                    ))
                }
                None => {
                    asked += 1;
                    match self.head_size(&name)? {
                        Some(s) => s,
                        None => continue,
                    }
                }
            };
            entries.push(Entry { name, size });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        entries.dedup_by(|a, b| a.name == b.name);
        Ok(entries)
    }

    fn delete(&self, name: &str) -> Result<()> {
        check_name(name)?;
        let context = format!("deleting {name} (DELETE)");
        let resp = self.send(self.small(Method::DELETE, self.url_for(name)), &context)?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            s => Err(self.status_error(&context, Some(name), s)),
        }
    }

    /// WebDAV: `MKCOL` each folder component (405 when it exists), then `MOVE` with a
    /// `Destination:` header.
    fn move_to(&self, name: &str, dir: &str) -> Result<()> {
        check_name(name)?;
        let mut folder = self.base.clone();
        for part in crate::subdir_parts(dir)? {
            folder.path_segments_mut().expect("http URLs have paths").pop_if_empty().push(part).push("");
            let context = format!("creating folder {part} (MKCOL)");
            let resp = self.send(self.small(Method::from_bytes(b"MKCOL").expect("a valid method"), folder.clone()), &context)?;
            match resp.status() {
                s if s.is_success() || s == StatusCode::METHOD_NOT_ALLOWED => {}
                s => return Err(self.status_error(&context, None, s)),
            }
        }
        let mut to = folder;
        to.path_segments_mut().expect("http URLs have paths").pop_if_empty().push(name);
        let context = format!("moving {name} into {dir} (MOVE)");
        let rb = self
            .small(Method::from_bytes(b"MOVE").expect("a valid method"), self.url_for(name))
            .header("Destination", to.as_str())
            .header("Overwrite", "T");
        let resp = self.send(rb, &context)?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            s => Err(self.status_error(&context, Some(name), s)),
        }
    }
}

/// Most files without a size on the page that `list` asks about with HEAD.
const MAX_INDEX_HEADS: usize = 4096;

/// File links of an autoindex page (nginx, Apache) with their sizes where the page
/// gives exact byte counts (nginx's default); `None` means "ask with HEAD".
pub(crate) fn parse_index(html: &str) -> Vec<(String, Option<u64>)> {
    let mut out = Vec::new();
    let lower = html.to_ascii_lowercase();
    let mut at = 0;
    while let Some(i) = lower[at..].find("href=") {
        let start = at + i + 5;
        let rest = &html[start..];
        let (quote, rest) = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => (Some(q), &rest[1..]),
            _ => (None, rest),
        };
        let end = match quote {
            Some(q) => rest.find(q),
            None => rest.find(|c: char| c.is_whitespace() || c == '>'),
        };
        let Some(end) = end else { break };
        let href = unescape_html(&rest[..end]);
        at = start + end + 1;
        if href.is_empty()
            || href.starts_with('?')
            || href.starts_with('#')
            || href.starts_with('/')
            || href.starts_with("..")
            || href.contains("://")
            || href.ends_with('/')
            || href.contains('?')
        {
            continue;
        }
        let name = decode(&href);
        if name.contains('/') || name == "." || name.is_empty() {
            continue;
        }
        // nginx: <a href="x">x</a>   23-Nov-2025 18:00   12345
        let line_end = lower[at..].find('\n').map(|n| at + n).unwrap_or(lower.len());
        let after = &html[at..line_end];
        let size = after
            .find("</a>")
            .map(|p| &after[p + 4..])
            .and_then(|tail| tail.split_whitespace().last())
            .filter(|t| t.chars().all(|c| c.is_ascii_digit()))
            .and_then(|t| t.parse().ok());
        out.push((name, size));
        // One past the bound is enough for the caller to refuse the page.
        if out.len() > crate::MAX_LISTING_ENTRIES {
            break;
        }
    }
    out
}

fn unescape_html(s: &str) -> String {
    s.replace("&quot;", "\"").replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

enum Chunk {
    Data(Bytes),
    Abort,
}

/// A chunk's buffer goes back to its upload when hyper is done with it (no allocation and
/// page faults per chunk).
struct PooledChunk {
    buf: Vec<u8>,
    back: SyncSender<Vec<u8>>,
}

impl AsRef<[u8]> for PooledChunk {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for PooledChunk {
    fn drop(&mut self) {
        let _ = self.back.try_send(std::mem::take(&mut self.buf));
    }
}

/// The request body: the upload's chunks, each handed to hyper whole (no copy), until
/// the channel closes. It waits for the next chunk in `poll_frame`: it runs on the
/// upload's own single-threaded runtime, which has nothing else to do meanwhile.
struct ChannelBody {
    rx: Mutex<Receiver<Chunk>>,
    done: bool,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<http_body::Frame<Bytes>, io::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let next = self.rx.lock().unwrap().recv();
        match next {
            Ok(Chunk::Data(d)) => Poll::Ready(Some(Ok(http_body::Frame::data(d)))),
            Ok(Chunk::Abort) => {
                self.done = true;
                Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::Interrupted, "upload abandoned"))))
            }
            Err(_) => {
                // Sender closed: end of body.
                self.done = true;
                Poll::Ready(None)
            }
        }
    }
}

/// What an upload needs of its transport after `put` returned.
struct HttpShared {
    remote: Remote,
    client: Client,
    auth: Auth,
    io_timeout: Duration,
}

struct HttpUpload {
    tx: Option<SyncSender<Chunk>>,
    buf: Vec<u8>,
    /// Buffers of sent chunks, back for reuse.
    pool: (SyncSender<Vec<u8>>, Receiver<Vec<u8>>),
    handle: Option<JoinHandle<std::result::Result<StatusCode, TransportError>>>,
    transport: HttpShared,
    temp: String,
    temp_url: Url,
    name: String,
    final_url: Url,
    written: u64,
}

impl HttpUpload {
    /// The request thread's outcome (after the body ended or the request failed).
    fn join(&mut self) -> std::result::Result<StatusCode, TransportError> {
        match self.handle.take() {
            Some(h) => h.join().unwrap_or_else(|_| {
                Err(self.transport.remote.protocol_error(format!("uploading {}", self.temp), "upload thread panicked"))
            }),
            None => Err(self.transport.remote.protocol_error(format!("uploading {}", self.temp), "upload already finished")),
        }
    }

    fn send_chunk(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let next = match self.pool.1.try_recv() {
            Ok(mut v) => {
                v.clear();
                v
            }
            Err(_) => Vec::with_capacity(CHUNK),
        };
        let chunk = std::mem::replace(&mut self.buf, next);
        let chunk = Bytes::from_owner(PooledChunk { buf: chunk, back: self.pool.0.clone() });
        let tx = self.tx.as_ref().ok_or_else(|| io::Error::other("upload already finished"))?;
        if tx.send(Chunk::Data(chunk)).is_err() {
            // The request ended early: report why.
            self.tx = None;
            let why = match self.join() {
                Ok(status) => {
                    let e = status_error(&self.transport.remote, &self.transport.auth, &format!("uploading {}", self.temp), None, status);
                    e.to_string()
                }
                Err(e) => e.to_string(),
            };
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, why));
        }
        Ok(())
    }

    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let rb = self.transport.client.request(method, url).timeout(self.transport.io_timeout.max(Duration::from_secs(1)));
        match &self.transport.auth {
            Auth::None => rb,
            Auth::Basic(u, p) => rb.basic_auth(u, p.as_ref().map(|p| p.expose())),
            Auth::Bearer(t) => rb.bearer_auth(t.expose()),
        }
    }
}

impl Write for HttpUpload {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.tx.is_none() {
            return Err(io::Error::other("upload already finished"));
        }
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= CHUNK {
            self.send_chunk()?;
        }
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.send_chunk()
    }
}

impl Upload for HttpUpload {
    fn resumed_from(&self) -> u64 {
        0
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        let remote = self.transport.remote.clone();
        let temp = self.temp.clone();
        self.send_chunk().map_err(|e| TransportError::io(&remote.display, format!("uploading {temp}"), e))?;
        self.tx = None; // end of body
        let status = self.join()?;
        if !status.is_success() {
            return Err(status_error(&remote, &self.transport.auth, &format!("uploading {temp} (PUT)"), None, status));
        }
        let context = format!("renaming {temp} to {} (MOVE)", self.name);
        let rb = self
            .request(Method::from_bytes(b"MOVE").expect("valid method"), self.temp_url.clone())
            .header("Destination", self.final_url.as_str())
            .header("Overwrite", "T");
        let resp = rb.send().map_err(|e| send_error(&remote, &context, &e))?;
        match resp.status() {
            s if s.is_success() => {}
            StatusCode::PRECONDITION_FAILED => {
                return Err(TransportError::Unsupported { location: remote.display.clone(), operation: "overwriting files" })
            }
            s => return Err(status_error(&remote, &self.transport.auth, &context, None, s)),
        }
        // The server must hold exactly what was sent.
        let head = self.request(Method::HEAD, self.final_url.clone()).send().map_err(|e| send_error(&remote, &context, &e))?;
        if head.status().is_success() {
            if let Some(size) = header_u64(head.headers(), CONTENT_LENGTH) {
                if size != self.written {
                    return Err(remote.protocol_error(
                        format!("checking {}", self.name),
                        format!("the server holds {size} bytes, {} were sent", self.written),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Drop for HttpUpload {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            // Not committed: abort the request so the server discards the body.
            let _ = tx.try_send(Chunk::Abort);
            drop(tx);
            let _ = self.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_index() {
        let html = "<html><head><title>Index of /d/</title></head><body>\n<h1>Index of /d/</h1><hr><pre><a href=\"../\">../</a>\n\
<a href=\"sub/\">sub/</a>                                               23-Nov-2025 18:00                   -\n\
<a href=\"a%20b%C3%A9.txt\">a bé.txt</a>                                 23-Nov-2025 18:00                  12\n\
<a href=\"x&amp;y.partial\">x&amp;y.partial</a>                                 23-Nov-2025 18:00              123456\n\
</pre><hr></body></html>";
        let e = parse_index(html);
        assert_eq!(e, vec![("a bé.txt".to_string(), Some(12)), ("x&y.partial".to_string(), Some(123456))]);
    }

    #[test]
    fn apache_index() {
        let html = "<tr><td><a href=\"?C=N;O=D\">Name</a></td></tr>\n<tr><td><a href=\"/\">Parent Directory</a></td></tr>\n\
<tr><td valign=\"top\"><img src=\"/icons/unknown.gif\"></td><td><a href=\"f.tar.zst\">f.tar.zst</a></td><td align=\"right\">2025-11-23 18:00  </td><td align=\"right\">1.2M</td></tr>\n";
        let e = parse_index(html);
        assert_eq!(e, vec![("f.tar.zst".to_string(), None)]);
    }
}
