//! Docker credential helpers (`credsStore` / `credHelpers` of a Docker
//! config.json), spoken as docker/docker-credential-helpers defines them:
//! `docker-credential-NAME get` with the server on stdin, and on stdout
//! `{"ServerURL": ..., "Username": ..., "Secret": ...}`, or exit 1 with
//! `credentials not found in native keychain`. The helper's answer is never
//! shown: only its name, and its error output when it fails.
use super::auth::Credentials;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a helper may take (a desktop keychain may ask its user first).
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// What a helper's answer is read up to: an answer is a few hundred bytes.
const MAX_ANSWER: u64 = 64 * 1024;

/// What a helper said about a server.
#[derive(Debug)]
pub enum Answer {
    Found(Credentials),
    NotFound,
    /// `Username: "<token>"`: an OAuth identity token (Docker Hub's `docker login`), which ferry does not use.
    IdentityToken,
}

/// The program a helper name stands for.
pub fn program(name: &str) -> String {
    format!("docker-credential-{name}")
}

/// A name that is a program name, not a path or an option.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('-') && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Ask helper `name` for the credentials of `server`. `Err` says why it gave
/// no answer (not on PATH, failed, timed out), never what it printed on success.
pub fn get(name: &str, server: &str, timeout: Duration) -> Result<Answer, String> {
    if !valid_name(name) {
        return Err(format!("{:?} is not a credential helper name", crate::untrusted::shown(name)));
    }
    run(&program(name), server, timeout)
}

/// [`get`] of a program (found on PATH, or a path).
fn run(program: &str, server: &str, timeout: Duration) -> Result<Answer, String> {
    let mut child = Command::new(program).arg("get").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(
        |e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("{program} is not on PATH"),
            _ => format!("{program} could not be run: {}", crate::error::plain_io(&e)),
        },
    )?;
    // A helper that exits without reading its input only breaks the pipe: its exit status tells.
    let _ = child.stdin.take().expect("piped").write_all(server.as_bytes());
    let stdout = read_in_background(child.stdout.take().expect("piped"));
    let stderr = read_in_background(child.stderr.take().expect("piped"));
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program} did not answer within {}", humantime::format_duration(timeout)));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("waiting for {program}: {}", crate::error::plain_io(&e))),
        }
    };
    // A grandchild may hold the pipes open: what came by now is the answer.
    let out = stdout.recv_timeout(Duration::from_secs(1)).unwrap_or_default();
    if !status.success() {
        let err = stderr.recv_timeout(Duration::from_secs(1)).unwrap_or_default();
        // The protocol's not-found answer is on stdout; a failing helper's message is there or on stderr.
        if String::from_utf8_lossy(&out).contains("credentials not found") {
            return Ok(Answer::NotFound);
        }
        let said = [&out, &err].into_iter().map(|b| String::from_utf8_lossy(b).trim().to_string()).find(|s| !s.is_empty());
        let said = said.map(|s| format!(": {}", crate::untrusted::shown(first_line(&s)))).unwrap_or_default();
        return Err(format!("{program} get failed ({status}){said}"));
    }
    parse_answer(&out).ok_or_else(|| format!("{program} get answered something that is not {{ServerURL, Username, Secret}} JSON"))
}

/// Read all of `from` (up to [`MAX_ANSWER`]) on a thread; the bytes come through the channel.
fn read_in_background(from: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = from.take(MAX_ANSWER).read_to_end(&mut bytes);
        let _ = tx.send(bytes);
    });
    rx
}

fn first_line(s: &str) -> &str {
    let line = s.lines().next().unwrap_or_default();
    match line.char_indices().nth(200) {
        Some((at, _)) => &line[..at],
        None => line,
    }
}

fn parse_answer(out: &[u8]) -> Option<Answer> {
    let v: serde_json::Value = serde_json::from_slice(out).ok()?;
    let username = v.get("Username")?.as_str()?;
    let secret = v.get("Secret")?.as_str()?;
    Some(match (username, secret) {
        (_, "") => Answer::NotFound,
        ("<token>", _) => Answer::IdentityToken,
        (u, s) => Answer::Found(Credentials { username: u.to_string(), password: s.to_string() }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn answers() {
        match parse_answer(br#"{"ServerURL":"h","Username":"alice","Secret":"s3cret"}"#) {
            Some(Answer::Found(c)) => assert_eq!((c.username.as_str(), c.password.as_str()), ("alice", "s3cret")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_answer(br#"{"ServerURL":"h","Username":"<token>","Secret":"t"}"#), Some(Answer::IdentityToken)));
        assert!(matches!(parse_answer(br#"{"ServerURL":"h","Username":"","Secret":""}"#), Some(Answer::NotFound)));
        assert!(parse_answer(b"alice:s3cret").is_none());
        for bad in ["", "-x", "../bin/sh", "a/b", "a b"] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(valid_name("desktop") && valid_name("ecr-login") && valid_name("pass"));
    }

    #[test]
    fn a_helper_that_hangs_fails_or_is_missing_gives_no_answer() {
        let dir = tempfile::tempdir().unwrap();
        let script = |name: &str, body: &str| {
            let path = dir.path().join(program(name));
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path.display().to_string()
        };
        let hang = script("hang", "exec sleep 30");
        let broken = script("broken", "echo 'the keychain is locked' >&2; exit 3");
        let none = script("none", "cat >/dev/null; echo 'credentials not found in native keychain'; exit 1");
        let echo = script("echo", r#"read server; printf '{"ServerURL":"%s","Username":"u-%s","Secret":"p"}' "$server" "$server""#);

        let started = Instant::now();
        let e = run(&hang, "h", Duration::from_millis(300)).unwrap_err();
        assert!(e.contains("did not answer within"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5), "the helper was killed at the timeout");
        let e = run(&broken, "h", TIMEOUT).unwrap_err();
        assert!(e.contains("failed") && e.contains("the keychain is locked"), "{e}");
        assert!(matches!(run(&none, "h", TIMEOUT), Ok(Answer::NotFound)));
        let e = get("ferry-unit-missing", "h", TIMEOUT).unwrap_err();
        assert!(e.contains("docker-credential-ferry-unit-missing is not on PATH"), "{e}");
        assert!(get("../x", "h", TIMEOUT).unwrap_err().contains("not a credential helper name"));
        match run(&echo, "127.0.0.1:5000", TIMEOUT) {
            Ok(Answer::Found(c)) => assert_eq!(c.username, "u-127.0.0.1:5000", "the server went in on stdin"),
            other => panic!("{other:?}"),
        }
    }
}
