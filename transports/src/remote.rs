//! What network backends share: URL parsing, credentials (URL, options, env, netrc),
//! password-free display, TCP connect with a timeout.
use crate::options::{Secret, TransportOptions};
use crate::{Result, TransportError};
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

/// A parsed remote location with its credentials resolved.
#[derive(Debug, Clone)]
pub(crate) struct Remote {
    /// Lower-case scheme: ftp, ftps, sftp, http, https.
    pub scheme: String,
    /// Host name or address, without IPv6 brackets.
    pub host: String,
    pub port: u16,
    /// Login name (percent-decoded), from the URL or netrc.
    pub user: Option<String>,
    pub password: Option<Secret>,
    /// Where the password came from, for error messages ("the URL", "$FERRY_FTP_PASSWORD", ...).
    pub password_source: Option<String>,
    /// Path part, percent-decoded, as typed (leading '/' kept).
    pub path: String,
    /// The URL without its password: what `describe()` and errors show.
    pub display: String,
    /// The URL without userinfo (for HTTP requests).
    pub url: Url,
}

impl Remote {
    /// Parse `location` and resolve credentials. `password_env` names the env variable
    /// holding a password for this scheme (e.g. `FERRY_FTP_PASSWORD`).
    pub fn parse(location: &str, opts: &TransportOptions, password_env: &str) -> Result<Remote> {
        let invalid = |reason: String| TransportError::InvalidLocation { location: redact(location), reason };
        let url = Url::parse(location).map_err(|e| invalid(e.to_string()))?;
        let scheme = url.scheme().to_ascii_lowercase();
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_string(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            None => return Err(invalid("no host name".into())),
        };
        let port = url
            .port_or_known_default()
            .or(match scheme.as_str() {
                "sftp" => Some(22),
                "ftp" | "ftps" => Some(21),
                _ => None,
            })
            .ok_or_else(|| invalid("no port".into()))?;
        let mut user = if url.username().is_empty() { None } else { Some(decode(url.username())) };
        let mut password = None;
        let mut password_source = None;
        if let Some(p) = url.password() {
            password = Some(Secret(decode(p)));
            password_source = Some("the URL".to_string());
        } else if let Some(p) = &opts.password {
            password = Some(Secret(p.clone()));
            password_source = Some("the supplied password".to_string());
        } else if let Some(p) = opts.use_env.then(|| std::env::var(password_env).ok()).flatten() {
            password = Some(Secret(p));
            password_source = Some(format!("${password_env}"));
        }
        if password.is_none() && opts.use_netrc {
            if let Some((path, entry)) = netrc_lookup(opts, &host, user.as_deref()) {
                if user.is_none() {
                    user = entry.login.clone();
                }
                if user.is_none() || entry.login.is_none() || entry.login == user {
                    if let Some(p) = entry.password {
                        password = Some(Secret(p));
                        password_source = Some(path.display().to_string());
                    }
                }
            }
        }
        let path = decode(url.path());
        let mut display_url = url.clone();
        let _ = display_url.set_password(None);
        let display = display_url.to_string();
        let mut bare = url.clone();
        let _ = bare.set_password(None);
        let _ = bare.set_username("");
        Ok(Remote { scheme, host, port, user, password, password_source, path, display, url: bare })
    }

    /// `host:port`, with brackets around IPv6 addresses.
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Connect a TCP stream, trying every resolved address, each within `timeout`.
    pub fn connect(&self, opts: &TransportOptions) -> Result<TcpStream> {
        let addrs: Vec<SocketAddr> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| TransportError::io(&self.display, format!("resolving {}", self.host), e))?
            .collect();
        let mut last = None;
        for addr in &addrs {
            match TcpStream::connect_timeout(addr, opts.connect_timeout) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Err(e) => last = Some(e),
            }
        }
        let e = last.unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"));
        let context = if e.kind() == std::io::ErrorKind::TimedOut || e.kind() == std::io::ErrorKind::WouldBlock {
            format!("connecting to {} (no answer within {:?})", self.host_port(), opts.connect_timeout)
        } else {
            format!("connecting to {}", self.host_port())
        };
        Err(TransportError::io(&self.display, context, e))
    }

    /// Remove the password from any text that may echo it (server replies, library errors).
    /// A server's or a library's text fit for a message: no password, no raw errno.
    pub fn scrub(&self, text: impl AsRef<str>) -> String {
        without_errno(&scrub_secret(text.as_ref(), self.password.as_ref().map(|p| p.expose())))
    }

    pub fn auth_error(&self, detail: impl AsRef<str>) -> TransportError {
        TransportError::Auth { location: self.display.clone(), detail: self.scrub(detail) }
    }

    pub fn protocol_error(&self, context: impl Into<String>, detail: impl ToString) -> TransportError {
        TransportError::protocol(&self.display, context, self.scrub(detail.to_string()))
    }
}

/// `Connection refused (os error 111)` → `Connection refused`: the errno number
/// tells a user nothing the words do not.
pub fn without_errno(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(" (os error ") {
        let tail = &rest[i + " (os error ".len()..];
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && tail[digits..].starts_with(')') {
            out.push_str(&rest[..i]);
            rest = &tail[digits + 1..];
        } else {
            out.push_str(&rest[..i + 1]);
            rest = &rest[i + 1..];
        }
    }
    out.push_str(rest);
    out
}

pub(crate) fn scrub_secret(text: &str, secret: Option<&str>) -> String {
    match secret {
        Some(s) if !s.is_empty() => text.replace(s, "***"),
        _ => text.to_string(),
    }
}

/// Percent-decode a URL component (lossy for invalid UTF-8).
pub(crate) fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// A location string with any `user:password@` password replaced by `***`.
pub fn redact(location: &str) -> String {
    match Url::parse(location) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => {
            // Unparsable: cut out anything between "://" and the last '@' before the path.
            if let Some(start) = location.find("://") {
                let rest = &location[start + 3..];
                let end = rest.find('/').unwrap_or(rest.len());
                if let Some(at) = rest[..end].rfind('@') {
                    let userinfo = &rest[..at];
                    let user = userinfo.split(':').next().unwrap_or("");
                    return format!("{}://{}:***@{}", &location[..start], user, &rest[at + 1..]);
                }
            }
            location.to_string()
        }
    }
}

/// One `machine` (or `default`) entry of a netrc file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NetrcEntry {
    pub machine: Option<String>,
    pub login: Option<String>,
    pub password: Option<String>,
}

/// Parse netrc text: `machine`, `default`, `login`, `password`, `account`, `macdef`.
pub(crate) fn parse_netrc(text: &str) -> Vec<NetrcEntry> {
    let mut entries: Vec<NetrcEntry> = Vec::new();
    let mut lines = text.lines();
    let mut tokens: Vec<String> = Vec::new();
    // Tokenise, skipping comments and macdef bodies (which end at a blank line).
    while let Some(line) = lines.next() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace().peekable();
        while let Some(w) = words.next() {
            if w == "macdef" {
                words.next();
                // Skip the macro body.
                for body in lines.by_ref() {
                    if body.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            tokens.push(unquote(w));
        }
    }
    let mut it = tokens.into_iter();
    while let Some(t) = it.next() {
        match t.as_str() {
            "machine" => entries.push(NetrcEntry { machine: it.next(), ..Default::default() }),
            "default" => entries.push(NetrcEntry::default()),
            "login" | "password" | "account" => {
                let v = it.next();
                if let Some(e) = entries.last_mut() {
                    match t.as_str() {
                        "login" => e.login = v,
                        "password" => e.password = v,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    entries
}

fn unquote(w: &str) -> String {
    if w.len() >= 2 && w.starts_with('"') && w.ends_with('"') {
        w[1..w.len() - 1].to_string()
    } else {
        w.to_string()
    }
}

/// The netrc file to read: the option, else `$NETRC`, else `~/.netrc`.
fn netrc_path(opts: &TransportOptions) -> Option<PathBuf> {
    if let Some(p) = &opts.netrc {
        return Some(p.clone());
    }
    if opts.use_env {
        if let Some(p) = std::env::var_os("NETRC") {
            return Some(PathBuf::from(p));
        }
    }
    home_dir().map(|h| h.join(".netrc"))
}

/// The best netrc entry for `host` (and `user`, if known): an exact machine+login match,
/// else the machine's first entry, else `default`.
pub(crate) fn netrc_lookup(opts: &TransportOptions, host: &str, user: Option<&str>) -> Option<(PathBuf, NetrcEntry)> {
    let path = netrc_path(opts)?;
    let text = std::fs::read_to_string(&path).ok()?;
    let entries = parse_netrc(&text);
    let for_host: Vec<&NetrcEntry> =
        entries.iter().filter(|e| e.machine.as_deref().is_some_and(|m| m.eq_ignore_ascii_case(host))).collect();
    let pick = match user {
        Some(u) => for_host.iter().find(|e| e.login.as_deref() == Some(u)).copied().or(for_host.first().copied()),
        None => for_host.first().copied(),
    }
    .or_else(|| entries.iter().find(|e| e.machine.is_none()));
    pick.map(|e| (path, e.clone()))
}

pub(crate) fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from)
}

/// The user name of this process (for SFTP when the URL names none).
pub(crate) fn local_user() -> String {
    for var in ["USER", "LOGNAME"] {
        if let Ok(u) = std::env::var(var) {
            if !u.is_empty() {
                return u;
            }
        }
    }
    // Fall back to the passwd entry of our uid.
    let uid = unsafe { libc::getuid() };
    if let Ok(passwd) = std::fs::read_to_string("/etc/passwd") {
        for line in passwd.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() > 2 && f[2].parse::<u32>().ok() == Some(uid) {
                return f[0].to_string();
            }
        }
    }
    "root".to_string()
}

/// A socket read that waited out the I/O timeout (`WouldBlock` from a socket read
/// timeout, `TimedOut` from ssh2) says so in words; other errors pass unchanged.
pub(crate) fn silence_error(e: io::Error, context: &str, timeout: Duration) -> io::Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{context}: the server sent nothing for {} (--timeout)", crate::silence::humanize(timeout)),
        ),
        _ => e,
    }
}

/// Set read and write timeouts on a socket.
pub(crate) fn set_io_timeout(s: &TcpStream, timeout: Duration) {
    let t = if timeout.is_zero() { None } else { Some(timeout) };
    let _ = s.set_read_timeout(t);
    let _ = s.set_write_timeout(t);
}

/// The byte stream of an FTP or SFTP upload: counts what was written (checked
/// against the server's size at commit), names the upload in its errors, and
/// is taken out whole at commit.
pub(crate) struct UploadStream<W: Write> {
    writer: Option<W>,
    written: u64,
    /// "URL: uploading NAME", the start of every error message.
    label: String,
}

impl<W: Write> UploadStream<W> {
    pub fn new(writer: W, label: String) -> Self {
        UploadStream { writer: Some(writer), written: 0, label }
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    /// The writer, for finishing the upload (once).
    pub fn take(&mut self) -> W {
        self.writer.take().expect("writer present until commit")
    }
}

impl<W: Write> Write for UploadStream<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let w = self.writer.as_mut().ok_or_else(|| io::Error::other("upload already finished"))?;
        let n = w.write(buf).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.label)))?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        match self.writer.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netrc_parsing() {
        let text = "# comment\nmachine a.example login alice password \"s3cret\"\n\
                    macdef init\ncd /pub\n\nmachine b.example\n  login bob\n  password pw2\ndefault login anon password x\n";
        let e = parse_netrc(text);
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].machine.as_deref(), Some("a.example"));
        assert_eq!(e[0].password.as_deref(), Some("s3cret"));
        assert_eq!(e[1].login.as_deref(), Some("bob"));
        assert_eq!(e[2].machine, None);
        assert_eq!(e[2].login.as_deref(), Some("anon"));
    }

    #[test]
    fn credentials_from_url_and_netrc() {
        let dir = std::env::temp_dir().join(format!("ferry-netrc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let netrc = dir.join("netrc");
        std::fs::write(&netrc, "machine 127.0.0.1 login carol password fromnetrc\n").unwrap();
        let opts = TransportOptions { netrc: Some(netrc), use_env: false, ..Default::default() };
        let r = Remote::parse("ftp://127.0.0.1:2121/a%20b/", &opts, "X").unwrap();
        assert_eq!(r.user.as_deref(), Some("carol"));
        assert_eq!(r.password.as_ref().unwrap().expose(), "fromnetrc");
        assert_eq!(r.path, "/a b/");
        let r = Remote::parse("ftp://dave:p%40ss@127.0.0.1/x", &opts, "X").unwrap();
        assert_eq!(r.user.as_deref(), Some("dave"));
        assert_eq!(r.password.as_ref().unwrap().expose(), "p@ss");
        assert!(!r.display.contains("p%40ss") && !r.display.contains("p@ss"), "{}", r.display);
        assert!(!format!("{r:?}").contains("p@ss"));
        // A netrc entry for another login is not used for this user's password.
        let r = Remote::parse("ftp://erin@127.0.0.1/x", &opts, "X").unwrap();
        assert!(r.password.is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn errno_numbers_are_dropped() {
        assert_eq!(without_errno("tcp connect error: Connection refused (os error 111)"), "tcp connect error: Connection refused");
        assert_eq!(without_errno("a (os error 5): b (os error 28) (note)"), "a: b (note)");
        assert_eq!(without_errno("plain (os error x)"), "plain (os error x)");
    }

    #[test]
    fn redaction() {
        assert_eq!(redact("ftp://u:pw@h/x"), "ftp://u:***@h/x");
        assert!(!redact("sftp://u:pw@h:22/x").contains("pw"));
        assert!(!redact("ftp://u:p w@h/x").contains("p w"));
    }
}
