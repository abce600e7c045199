//! A token issuer for distribution's `auth: token:` mode (Docker's token
//! authentication spec), so that the Bearer flow runs against the real
//! registry: `GET /token?service=..&scope=..` with Basic credentials answers
//! `{"token": JWT}`, the JWT signed (RS256) by `openssl dgst` with a key whose
//! self-signed certificate the registry trusts (`rootcertbundle`), carried
//! in the JWT header's `x5c`. It grants what is asked to alice / s3cret only.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub const ISSUER: &str = "ferry-test-issuer";
pub const SERVICE: &str = "ferry-test-registry";

pub struct TokenServer {
    pub port: u16,
    /// Tokens handed out so far.
    pub issued: Arc<AtomicUsize>,
    dir: PathBuf,
}

fn b64url(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..=c.len() {
            out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Standard base64 with padding.
pub fn b64std(data: &[u8]) -> String {
    b64url(data).replace('-', "+").replace('_', "/") + ["", "==", "="][data.len() % 3]
}

fn query_param(query: &str, name: &str) -> Vec<String> {
    query.split('&').filter_map(|kv| kv.split_once('=')).filter(|(k, _)| *k == name).map(|(_, v)| percent_decode(v)).collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl TokenServer {
    /// Key and certificate in `dir` (`token.key`, `token.crt`), then serve on a free port.
    pub fn start(dir: &Path) -> TokenServer {
        super::registry::self_signed(dir, "token.key", "token.crt", "/CN=ferry-token");
        let der = Command::new("openssl").args(["x509", "-in", "token.crt", "-outform", "DER"]).current_dir(dir).output().unwrap().stdout;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let issued = Arc::new(AtomicUsize::new(0));
        let (count, key) = (issued.clone(), dir.join("token.key"));
        let want = format!("Basic {}", b64std(format!("{}:{}", super::registry::USER, super::registry::PASSWORD).as_bytes()));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                let _ = reader.read_line(&mut request);
                let mut authorized = false;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        if k.eq_ignore_ascii_case("authorization") && v.trim() == want {
                            authorized = true;
                        }
                    }
                }
                let target = request.split_whitespace().nth(1).unwrap_or("");
                let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
                let answer = if !authorized {
                    "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
                } else {
                    let access: Vec<String> = query_param(query, "scope")
                        .iter()
                        .flat_map(|s| s.split(' ').map(str::to_string).collect::<Vec<_>>())
                        .filter_map(|s| {
                            let mut p = s.splitn(3, ':');
                            let (kind, name, actions) = (p.next()?, p.next()?, p.next()?);
                            let actions: Vec<String> = actions.split(',').map(|a| format!("\"{a}\"")).collect();
                            Some(format!(r#"{{"type":"{kind}","name":"{name}","actions":[{}]}}"#, actions.join(",")))
                        })
                        .collect();
                    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
                    let header = format!(r#"{{"alg":"RS256","typ":"JWT","x5c":["{}"]}}"#, b64std(&der));
                    let claims = format!(
                        r#"{{"iss":"{ISSUER}","sub":"alice","aud":"{SERVICE}","exp":{},"nbf":{},"iat":{now},"jti":"{}","access":[{}]}}"#,
                        now + 300,
                        now - 10,
                        count.load(Ordering::SeqCst),
                        access.join(",")
                    );
                    let signing = format!("{}.{}", b64url(header.as_bytes()), b64url(claims.as_bytes()));
                    let mut sign = Command::new("openssl")
                        .args(["dgst", "-sha256", "-sign"])
                        .arg(&key)
                        .stdin(std::process::Stdio::piped())
                        .stdout(std::process::Stdio::piped())
                        .spawn()
                        .unwrap();
                    sign.stdin.take().unwrap().write_all(signing.as_bytes()).unwrap();
                    let signature = sign.wait_with_output().unwrap().stdout;
                    count.fetch_add(1, Ordering::SeqCst);
                    let body = format!(r#"{{"token":"{signing}.{}","expires_in":300}}"#, b64url(&signature));
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        TokenServer { port, issued, dir: dir.to_path_buf() }
    }

    /// distribution's `auth:` section for this issuer.
    pub fn registry_auth_config(&self) -> String {
        format!(
            "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            self.port,
            self.dir.join("token.crt").display()
        )
    }
}
