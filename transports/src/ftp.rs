//! FTP and FTPS (explicit `AUTH TLS`) backend, on suppaftp.
//!
//! - Binary transfers (`TYPE I`) always: suppaftp starts in ASCII mode.
//! - Passive data connections: EPSV when the server offers it, else PASV (with the
//!   control connection's address, for servers behind NAT).
//! - Uploads go to `NAME.partial` (`STOR`), then `RNFR`/`RNTO`; resume with `SIZE` +
//!   `APPE`; downloads resume with `REST`.
//! - Anonymous logins (`anonymous`/`ftp`, or no user) are taken to be an *incoming*
//!   folder: overwrite and delete are declared unsupported and refused.
use crate::options::{FtpPassive, TransportOptions};
use crate::remote::{set_io_timeout, silence_error, Remote, UploadStream};
use crate::{check_name, partial_name, Capabilities, Entry, PutMode, Result, Transport, TransportError, Upload};
use std::io::{self, BufWriter, Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use suppaftp::list::ListParser;
use suppaftp::types::FileType;
use suppaftp::{FtpError, Mode, NativeTlsConnector, NativeTlsFtpStream, Status, TransferStream};

type Ftp = NativeTlsFtpStream;
/// suppaftp does not export the name of its native-tls stream type; reach it through the client type.
trait FtpTypes {
    type Tls: suppaftp::TlsStream;
}
impl<T: suppaftp::TlsStream> FtpTypes for suppaftp::ImplFtpStream<T> {
    type Tls = T;
}
type Transfer = TransferStream<<Ftp as FtpTypes>::Tls>;

/// Buffer between callers' (often small) writes and the data socket.
const WRITE_BUFFER: usize = 256 * 1024;

pub struct FtpTransport {
    remote: Remote,
    opts: TransportOptions,
    anonymous: bool,
    /// Directory to change into after login ("" = the login directory).
    dir: String,
    tls: Option<native_tls::TlsConnector>,
    /// One logged-in connection kept for stat/list/delete.
    idle: Mutex<Option<Ftp>>,
}

impl std::fmt::Debug for FtpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FtpTransport").field("location", &self.remote.display).field("anonymous", &self.anonymous).finish()
    }
}

impl FtpTransport {
    pub fn open(location: &str, opts: &TransportOptions) -> Result<FtpTransport> {
        let remote = Remote::parse(location, opts, "FERRY_FTP_PASSWORD")?;
        let anonymous = match remote.user.as_deref() {
            None => true,
            Some(u) => u.eq_ignore_ascii_case("anonymous") || u.eq_ignore_ascii_case("ftp"),
        };
        let tls = if remote.scheme == "ftps" { Some(tls_connector(&remote, opts)?) } else { None };
        // Like curl: the path is relative to the login directory; "%2F" (or "//") makes it absolute.
        let dir = remote.path.strip_prefix('/').unwrap_or(&remote.path).trim_end_matches('/').to_string();
        Ok(FtpTransport { remote, opts: opts.clone(), anonymous, dir, tls, idle: Mutex::new(None) })
    }

    /// True when logging in anonymously (an incoming folder).
    pub fn is_anonymous(&self) -> bool {
        self.anonymous
    }

    fn err(&self, context: impl Into<String>, e: FtpError) -> TransportError {
        ftp_error(&self.remote, context.into(), e)
    }

    /// Open a logged-in, binary-mode connection in the location's directory.
    fn connect(&self, create_dir: bool) -> Result<Ftp> {
        let tcp = self.remote.connect(&self.opts)?;
        set_io_timeout(&tcp, self.opts.io_timeout);
        let mut ftp = Ftp::connect_with_stream(tcp).map_err(|e| self.err("waiting for the server's greeting", e))?;
        let (connect_timeout, io_timeout) = (self.opts.connect_timeout, self.opts.io_timeout);
        ftp = ftp.passive_stream_builder(move |addr| {
            let s = TcpStream::connect_timeout(&addr, connect_timeout).map_err(FtpError::ConnectionError)?;
            set_io_timeout(&s, io_timeout);
            let _ = s.set_nodelay(true);
            Ok(s)
        });
        if let Some(tls) = &self.tls {
            ftp = ftp.into_secure(NativeTlsConnector::from(tls.clone()), &self.remote.host).map_err(|e| match e {
                FtpError::SecureError(s) => self.remote.protocol_error(
                    "TLS handshake (AUTH TLS)",
                    format!("{s} (is the server certificate signed by a trusted CA? see --ca-cert)"),
                ),
                e => self.err("starting TLS (AUTH TLS)", e),
            })?;
        }
        self.login(&mut ftp)?;
        ftp.transfer_type(FileType::Binary).map_err(|e| self.err("setting binary mode (TYPE I)", e))?;
        let features = ftp.feat().unwrap_or_default();
        let has = |f: &str| features.keys().any(|k| k.trim().eq_ignore_ascii_case(f));
        let mode = match self.opts.ftp_passive {
            FtpPassive::Epsv => Mode::ExtendedPassive,
            FtpPassive::Pasv => Mode::Passive,
            FtpPassive::Auto if has("EPSV") || self.remote.host.contains(':') => Mode::ExtendedPassive,
            FtpPassive::Auto => Mode::Passive,
        };
        ftp.set_mode(mode);
        ftp.set_passive_nat_workaround(true);
        if has("UTF8") {
            let _ = ftp.custom_command("OPTS UTF8 ON", &[Status::CommandOk, Status::CommandNotImplemented]);
        }
        self.change_dir(&mut ftp, create_dir)?;
        Ok(ftp)
    }

    fn login(&self, ftp: &mut Ftp) -> Result<()> {
        let user = self.remote.user.clone().unwrap_or_else(|| "anonymous".to_string());
        let password = match &self.remote.password {
            Some(p) => p.expose().to_string(),
            None if self.anonymous => "ferry@".to_string(),
            None => String::new(),
        };
        ftp.login(user.as_str(), password.as_str()).map_err(|e| match e {
            FtpError::UnexpectedResponse(r) => {
                let hint = match (&self.remote.password, &self.remote.password_source) {
                    (None, _) if !self.anonymous => " (no password given: put it in the URL, $FERRY_FTP_PASSWORD or ~/.netrc)".to_string(),
                    (Some(_), Some(src)) => format!(" (password from {src})"),
                    _ => String::new(),
                };
                self.remote.auth_error(format!(" for user {user}: server replied {r}{hint}"))
            }
            e => self.err(format!("logging in as {user}"), e),
        })
    }

    fn change_dir(&self, ftp: &mut Ftp, create: bool) -> Result<()> {
        if self.dir.is_empty() {
            return Ok(());
        }
        if ftp.cwd(&self.dir).is_ok() {
            return Ok(());
        }
        if !create {
            return Err(TransportError::NotFound { location: self.remote.display.clone(), name: self.dir.clone() });
        }
        // mkdir -p, one component at a time.
        if self.dir.starts_with('/') {
            ftp.cwd("/").map_err(|e| self.err("changing to /", e))?;
        }
        for part in self.dir.split('/').filter(|p| !p.is_empty()) {
            if ftp.cwd(part).is_ok() {
                continue;
            }
            ftp.mkdir(part).map_err(|e| self.err(format!("creating directory {part:?} of {}", self.dir), e))?;
            ftp.cwd(part).map_err(|e| self.err(format!("changing to directory {part:?}"), e))?;
        }
        Ok(())
    }

    /// Run `f` on the kept connection (or a new one). A broken kept connection is
    /// replaced once. The outer error is a connection/login failure.
    fn with_conn<T>(&self, mut f: impl FnMut(&mut Ftp) -> Result<T, FtpError>) -> Result<Result<T, FtpError>> {
        let kept = self.idle.lock().unwrap().take();
        let reused = kept.is_some();
        let mut ftp = match kept {
            Some(c) => c,
            None => self.connect(false)?,
        };
        // A kept connection may have been closed by the server (idle timeout, "421").
        let broken = |r: &Result<T, FtpError>| {
            matches!(r, Err(FtpError::ConnectionError(_) | FtpError::BadResponse)) || matches!(r, Err(e) if is_status(e, &[421]))
        };
        let mut result = f(&mut ftp);
        if reused && broken(&result) {
            ftp = self.connect(false)?;
            result = f(&mut ftp);
        }
        if !broken(&result) {
            *self.idle.lock().unwrap() = Some(ftp);
        }
        Ok(result)
    }

    fn caps(&self) -> Capabilities {
        Capabilities { overwrite: !self.anonymous, delete: !self.anonymous, list: true, resume_upload: true, resume_download: true }
    }
}

/// `LIST`'s reply read within [`crate::MAX_LISTING_BYTES`] (suppaftp's `list`
/// collects however much the server sends): its non-empty lines. Past the bound
/// `too_large` is set and the connection given up (its data channel is mid-transfer).
fn read_listing(ftp: &mut Ftp, too_large: &mut bool) -> Result<Vec<String>, FtpError> {
    // Past the bound once is enough: `with_conn`'s retry on a fresh connection
    // would read another 16 MiB only to refuse them too.
    if *too_large {
        return Ok(Vec::new());
    }
    let (_, mut stream) = ftp.custom_data_command("LIST", &[Status::AboutToSend, Status::AlreadyOpen])?;
    let mut body = Vec::new();
    (&mut stream).take(crate::MAX_LISTING_BYTES + 1).read_to_end(&mut body).map_err(FtpError::ConnectionError)?;
    if body.len() as u64 > crate::MAX_LISTING_BYTES {
        *too_large = true;
        return Err(FtpError::ConnectionError(io::Error::other("directory listing too large")));
    }
    stream.finish()?;
    let lines = body.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l)).filter(|l| !l.is_empty());
    Ok(lines.map(|l| String::from_utf8_lossy(l).into_owned()).collect())
}

fn is_status(e: &FtpError, codes: &[u32]) -> bool {
    matches!(e, FtpError::UnexpectedResponse(r) if codes.contains(&r.status.code()))
}

/// 550 "no such file" (or 450 "file unavailable").
fn is_missing(e: &FtpError) -> bool {
    is_status(e, &[550, 450])
}

fn ftp_error(remote: &Remote, context: String, e: FtpError) -> TransportError {
    match e {
        FtpError::ConnectionError(io) => {
            let context = if io.kind() == io::ErrorKind::WouldBlock || io.kind() == io::ErrorKind::TimedOut {
                format!("{context} (server did not answer in time)")
            } else {
                context
            };
            TransportError::io(&remote.display, context, io)
        }
        FtpError::UnexpectedResponse(r) if matches!(r.status.code(), 530 | 430 | 332 | 532) => {
            remote.auth_error(format!(": {context}: server replied {r}"))
        }
        FtpError::UnexpectedResponse(r) => remote.protocol_error(context, format!("server replied {r}")),
        FtpError::SecureError(s) => remote.protocol_error(context, format!("TLS: {s}")),
        e => remote.protocol_error(context, e),
    }
}

fn tls_connector(remote: &Remote, opts: &TransportOptions) -> Result<native_tls::TlsConnector> {
    let mut builder = native_tls::TlsConnector::builder();
    if let Some(ca) = &opts.ca_cert {
        for cert in read_ca_certs(remote, ca)? {
            builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| remote.protocol_error("setting up TLS", e))
}

/// Every certificate in a PEM file (a bundle may hold several).
pub(crate) fn read_ca_certs(remote: &Remote, path: &std::path::Path) -> Result<Vec<native_tls::Certificate>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| TransportError::io(&remote.display, format!("reading CA certificate {}", path.display()), e))?;
    let mut certs = Vec::new();
    for block in text.split("-----BEGIN CERTIFICATE-----").skip(1) {
        let pem = format!("-----BEGIN CERTIFICATE-----{block}");
        let cert = native_tls::Certificate::from_pem(pem.as_bytes())
            .map_err(|e| remote.protocol_error(format!("reading CA certificate {}", path.display()), e))?;
        certs.push(cert);
    }
    if certs.is_empty() {
        return Err(remote.protocol_error(format!("reading CA certificate {}", path.display()), "no PEM certificate found"));
    }
    Ok(certs)
}

impl Transport for FtpTransport {
    fn describe(&self) -> String {
        self.remote.display.clone()
    }

    fn capabilities(&self) -> Capabilities {
        self.caps()
    }

    fn put(&self, name: &str, mode: PutMode) -> Result<Box<dyn Upload>> {
        check_name(name)?;
        let temp = partial_name(name);
        let mut ftp = self.connect(true)?;
        let mut offset = 0u64;
        if mode == PutMode::Resume {
            match ftp.size(&temp) {
                Ok(n) => offset = n as u64,
                Err(e) if is_missing(&e) => {}
                Err(e) => return Err(self.err(format!("SIZE {temp}"), e)),
            }
        }
        let stream = if offset > 0 {
            match ftp.append_with_stream(&temp) {
                Ok(s) => s,
                // The server refuses to append (e.g. an incoming folder): start over.
                Err(e) if is_status(&e, &[550, 553, 502, 504]) => {
                    offset = 0;
                    ftp.put_with_stream(&temp).map_err(|e| self.err(format!("uploading {temp} (STOR)"), e))?
                }
                Err(e) => return Err(self.err(format!("resuming {temp} (APPE)"), e)),
            }
        } else {
            ftp.put_with_stream(&temp).map_err(|e| self.err(format!("uploading {temp} (STOR)"), e))?
        };
        let label = format!("{}: uploading {temp}", self.remote.display);
        Ok(Box::new(FtpUpload {
            stream: UploadStream::new(BufWriter::with_capacity(WRITE_BUFFER, stream), label),
            ftp: Some(ftp),
            remote: self.remote.clone(),
            caps: self.caps(),
            name: name.to_string(),
            temp,
            resumed_from: offset,
        }))
    }

    fn get(&self, name: &str, offset: u64) -> Result<Box<dyn Read + Send>> {
        check_name(name)?;
        let mut ftp = self.connect(false)?;
        if offset > 0 {
            ftp.resume_transfer(offset as usize).map_err(|e| self.err("REST", e))?;
        }
        let stream = ftp.retr_as_stream(name).map_err(|e| {
            if is_missing(&e) {
                TransportError::NotFound { location: self.remote.display.clone(), name: name.to_string() }
            } else {
                self.err(format!("downloading {name} (RETR)"), e)
            }
        })?;
        Ok(Box::new(FtpReader {
            stream: Some(stream),
            _ftp: ftp,
            remote: self.remote.clone(),
            name: name.to_string(),
            timeout: self.opts.io_timeout,
        }))
    }

    fn stat(&self, name: &str) -> Result<Option<u64>> {
        check_name(name)?;
        let r = match self.with_conn(|ftp| ftp.size(name)) {
            Ok(r) => r,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        match r {
            Ok(n) => Ok(Some(n as u64)),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(self.err(format!("SIZE {name}"), e)),
        }
    }

    fn list(&self) -> Result<Vec<Entry>> {
        const CONTEXT: &str = "listing (LIST)";
        let mut too_large = false;
        let listed = self.with_conn(|ftp| read_listing(ftp, &mut too_large))?;
        if too_large {
            return Err(crate::listing_too_large(&self.remote, CONTEXT));
        }
        let lines = listed.map_err(|e| self.err(CONTEXT, e))?;
        if lines.len() > crate::MAX_LISTING_ENTRIES {
            return Err(crate::too_many_entries(&self.remote, CONTEXT));
        }
        let mut entries = Vec::new();
        for line in lines {
            let file = match ListParser::parse_posix(&line).or_else(|_| ListParser::parse_dos(&line)) {
                Ok(f) => f,
                Err(_) => continue, // "total N" and other noise
            };
            if file.is_file() && file.name() != "." && file.name() != ".." {
                entries.push(Entry { name: file.name().to_string(), size: file.size() as u64 });
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    fn delete(&self, name: &str) -> Result<()> {
        check_name(name)?;
        if !self.caps().delete {
            return Err(TransportError::Unsupported {
                location: self.remote.display.clone(),
                operation: "deleting files (anonymous FTP incoming folder)",
            });
        }
        match self.with_conn(|ftp| ftp.rm(name))? {
            Ok(()) => Ok(()),
            Err(e) if is_missing(&e) && self.stat(name)?.is_none() => {
                Err(TransportError::NotFound { location: self.remote.display.clone(), name: name.to_string() })
            }
            Err(e) => Err(self.err(format!("deleting {name} (DELE)"), e)),
        }
    }

    /// `MKD` each folder component (an existing one answers 550: fine), then `RNFR`/`RNTO`.
    /// An anonymous incoming folder may allow the rename, never onto an existing file.
    fn move_to(&self, name: &str, dir: &str) -> Result<()> {
        check_name(name)?;
        let parts = crate::subdir_parts(dir)?;
        let folder = parts.join("/");
        let to = format!("{folder}/{name}");
        let result = self.with_conn(|ftp| {
            for i in 1..=parts.len() {
                let _ = ftp.mkdir(parts[..i].join("/"));
            }
            if self.anonymous && ftp.size(&to).is_ok() {
                return Ok(false);
            }
            ftp.rename(name, &to).map(|()| true)
        })?;
        match result {
            Ok(true) => Ok(()),
            Ok(false) => Err(TransportError::Unsupported {
                location: self.remote.display.clone(),
                operation: "overwriting files (anonymous FTP incoming folder)",
            }),
            Err(e) if is_missing(&e) && self.stat(name)?.is_none() => {
                Err(TransportError::NotFound { location: self.remote.display.clone(), name: name.to_string() })
            }
            Err(e) => Err(self.err(format!("moving {name} to {to} (RNFR/RNTO)"), e)),
        }
    }
}

struct FtpUpload {
    // Field order matters: the writer (data connection) is dropped before the control connection.
    stream: UploadStream<BufWriter<Transfer>>,
    ftp: Option<Ftp>,
    remote: Remote,
    caps: Capabilities,
    name: String,
    temp: String,
    resumed_from: u64,
}

impl Write for FtpUpload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

impl Upload for FtpUpload {
    fn resumed_from(&self) -> u64 {
        self.resumed_from
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        let remote = self.remote.clone();
        let err = |context: String, e: FtpError| ftp_error(&remote, context, e);
        let writer = self.stream.take();
        let stream =
            writer.into_inner().map_err(|e| TransportError::io(&remote.display, format!("uploading {}", self.temp), e.into_error()))?;
        stream.finish().map_err(|e| err(format!("finishing upload of {}", self.temp), e))?;
        let mut ftp = self.ftp.take().expect("connection present until commit");
        if !self.caps.overwrite {
            match ftp.size(&self.name) {
                Ok(_) => {
                    return Err(TransportError::Unsupported {
                        location: remote.display.clone(),
                        operation: "overwriting files (anonymous FTP incoming folder)",
                    })
                }
                Err(e) if is_missing(&e) => {}
                Err(e) => return Err(err(format!("SIZE {}", self.name), e)),
            }
        }
        ftp.rename(&self.temp, &self.name).map_err(|e| err(format!("renaming {} to {}", self.temp, self.name), e))?;
        let expected = self.resumed_from + self.stream.written();
        match ftp.size(&self.name) {
            Ok(n) if n as u64 != expected => {
                return Err(
                    remote.protocol_error(format!("checking {}", self.name), format!("the server holds {n} bytes, {expected} were sent"))
                )
            }
            _ => {}
        }
        let _ = ftp.quit();
        Ok(())
    }
}

struct FtpReader {
    stream: Option<Transfer>,
    _ftp: Ftp,
    remote: Remote,
    name: String,
    timeout: std::time::Duration,
}

impl Read for FtpReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(stream) = self.stream.as_mut() else { return Ok(0) };
        let n = stream.read(buf).map_err(|e| silence_error(e, &format!("downloading {}", self.name), self.timeout))?;
        if n == 0 && !buf.is_empty() {
            // End of data: the server's final reply says whether the transfer was complete.
            let stream = self.stream.take().unwrap();
            stream.finish().map_err(|e| io::Error::other(ftp_error(&self.remote, format!("downloading {}", self.name), e).to_string()))?;
        }
        Ok(n)
    }
}
