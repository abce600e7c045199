//! `ferry watch`: the unattended consumer. Each poll lists the complete bundles
//! at a location, pulls each new one into `STATE/incoming/` (resumable), checks
//! and loads it through the one load dispatch, and journals the outcome
//! (`journal.rs`) before anything else happens. See docs/WATCH.md.
pub mod journal;
pub mod lock;
pub mod stop;

use crate::bundle::locate::read_sidecars;
use crate::bundle::{names, BundleSource, Progress};
use crate::digest::Hasher;
use crate::error::{Error, ErrorKind, Result};
use crate::reference::ImageRef;
use crate::trust::{Policy, TrustOptions};
use ferry_transports::{DirTransport, Transport};
use journal::{Entry, Journal, Outcome};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stop::{Stop, StoppableDir};

/// What happens to a bundle at the location once it is loaded (`--after`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum After {
    Keep,
    Delete,
    /// Into this folder, relative to the location.
    Move(String),
}

impl After {
    pub fn parse(s: &str) -> Result<After> {
        match s {
            "keep" => Ok(After::Keep),
            "delete" => Ok(After::Delete),
            _ => match s.strip_prefix("move:") {
                Some(dir) if ferry_transports::subdir_parts(dir).is_ok() => Ok(After::Move(dir.trim_end_matches('/').to_string())),
                Some(dir) => Err(Error::usage(format!(
                    "--after move:{dir}: the folder must be a relative path inside the location (no leading /, no ..)"
                ))),
                None => Err(Error::usage(format!("--after {s}: expected keep, delete or move:DIR"))),
            },
        }
    }
}

pub struct Watch {
    pub transport: Arc<dyn Transport>,
    pub into: ImageRef,
    /// The target as given (for messages).
    pub target: String,
    pub trust: TrustOptions,
    pub state: PathBuf,
    pub interval: Duration,
    pub once: bool,
    pub after: After,
}

/// One line of `watch` output (`--json`: one object per line).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    Started {
        location: String,
        target: String,
        state: String,
        pid: u32,
        once: bool,
        /// Journal lines that did not parse (skipped); 0 normally.
        damaged_journal_lines: usize,
    },
    /// A new bundle (or a retry), its signature checked, is being pulled.
    Pulling {
        stem: String,
        digest: String,
        size: Option<u64>,
    },
    /// Pulled and its checksums verified: now loading (a stop waits until this is done).
    Loading {
        stem: String,
    },
    /// An outcome, exactly as journaled.
    Bundle(Entry),
    /// `--after` applied to a loaded bundle at the location.
    After {
        stem: String,
        action: String,
    },
    AfterFailed {
        stem: String,
        reason: String,
    },
    /// Listing the location (or reading a bundle's sidecars) failed; the next poll retries.
    PollFailed {
        reason: String,
        exit: i32,
    },
    /// A failed bundle waits before its next attempt.
    Backoff {
        stem: String,
        seconds: u64,
    },
    Stopped {
        reason: String,
    },
    /// The last line: what this run did.
    Done(WatchSummary),
}

/// How a watch ended (`--once`, or a clean stop).
#[derive(Debug, Clone, Default, Serialize)]
pub struct WatchSummary {
    pub polls: u64,
    pub loaded: usize,
    pub refused: usize,
    pub failed: usize,
    /// A poll (or a bundle) failed on the transport.
    pub transport_failures: usize,
    pub stopped: bool,
}

impl WatchSummary {
    /// `--once` exit code (SPEC §6): 3 when one was refused, else 4 on a transport
    /// failure, else 1 when another failure left a bundle unloaded, else 0.
    pub fn exit_code(&self) -> i32 {
        if self.refused > 0 {
            3
        } else if self.transport_failures > 0 {
            4
        } else if self.failed > 0 {
            1
        } else {
            0
        }
    }
}

impl WatchSummary {
    /// `--once`: the outcome as the error whose exit code [`WatchSummary::exit_code`] names.
    pub fn into_result(self, journal: &Path) -> Result<WatchSummary> {
        let see = format!("see {} for each bundle's reason", journal.display());
        let failed = |what: String| format!("{what} this run; {see}");
        match self.exit_code() {
            0 => Ok(self),
            3 => Err(Error::integrity(failed(format!("{} bundle(s) refused", self.refused)))
                .with_hint("a refused bundle is not retried until its STEM.sha256 changes: ask the sender for a good copy")),
            4 => Err(Error::Transport(ferry_transports::TransportError::protocol(
                "watch",
                "polling",
                failed(format!("{} transport failure(s)", self.transport_failures)),
            ))
            .with_hint("check that the location is reachable; the next run resumes what was pulled")),
            _ => Err(Error::format(failed(format!("{} bundle(s) failed", self.failed)))
                .with_hint("a failed bundle (target down, missing delta base) is tried again by the next run")),
        }
    }
}

/// A failed bundle's next attempt: interval × 2^(failures−1), at most an hour.
struct Retry {
    failures: u32,
    digest: String,
    not_before: Instant,
}

const MAX_BACKOFF: Duration = Duration::from_secs(3600);

pub fn run(w: &Watch, progress: &dyn Progress, on_event: &mut dyn FnMut(&Event)) -> Result<WatchSummary> {
    // Unreadable keys or identities are a mistake to report now, not per bundle.
    let trust = trust_id(&w.trust)?;
    let incoming = w.state.join("incoming");
    std::fs::create_dir_all(&incoming).map_err(|e| Error::io(format!("creating {}", incoming.display()), e))?;
    let _lock = lock::StateLock::acquire(&w.state)?;
    let mut journal = Journal::open(&w.state)?;
    let stop = Stop::on_signals()?;
    on_event(&Event::Started {
        location: w.transport.describe(),
        target: w.target.clone(),
        state: w.state.display().to_string(),
        pid: std::process::id(),
        once: w.once,
        damaged_journal_lines: journal.damaged_lines,
    });
    let mut watcher =
        Watcher { w, journal: &mut journal, incoming, stop, progress, trust, retries: HashMap::new(), summary: WatchSummary::default() };
    loop {
        watcher.poll(on_event)?;
        if w.once || watcher.stop.requested() || watcher.stop.sleep(w.interval) {
            break;
        }
    }
    if watcher.stop.requested() {
        watcher.summary.stopped = true;
        on_event(&Event::Stopped { reason: "signal".into() });
    }
    on_event(&Event::Done(watcher.summary.clone()));
    Ok(watcher.summary)
}

struct Watcher<'a> {
    w: &'a Watch,
    journal: &'a mut Journal,
    incoming: PathBuf,
    stop: Stop,
    progress: &'a dyn Progress,
    /// [`trust_id`] of this run's keys and identities.
    trust: String,
    retries: HashMap<String, Retry>,
    summary: WatchSummary,
}

/// Why a bundle was not finished this time.
enum Unfinished {
    Stopped,
    Outcome(Error),
}

impl Watcher<'_> {
    fn poll(&mut self, on_event: &mut dyn FnMut(&Event)) -> Result<()> {
        self.summary.polls += 1;
        let listing = match crate::transfer::list_bundles(&*self.w.transport) {
            Ok(l) => l,
            Err(e) => return self.poll_failed(e, on_event),
        };
        let listed: Vec<&str> = listing.bundles.iter().map(|b| b.stem.as_str()).collect();
        forget_vanished(&self.incoming, &listed);
        self.journal.set_present(&listed);
        for b in &listing.bundles {
            if self.stop.requested() {
                return Ok(());
            }
            let source = match read_sidecars(self.w.transport.clone(), b.stem.clone()) {
                Ok(s) => s,
                // Gone between the listing and now (moved away, or being replaced): next poll.
                Err(Error::Usage(_)) => continue,
                Err(e) if e.kind() == ErrorKind::Integrity => {
                    // A STEM.sha256 that names files of another bundle: refused like any forgery.
                    let digest = sha256_of(&self.read_checksum_file(&b.stem));
                    self.settle(&b.stem, &digest, Err(e), on_event)?;
                    continue;
                }
                Err(e) => {
                    self.poll_failed(e, on_event)?;
                    continue;
                }
            };
            let digest = sha256_of(&source.checksum_bytes);
            if let Some(done) = self.journal.settled(&b.stem, &digest, &self.trust) {
                if done.outcome == Outcome::Loaded {
                    self.after(&source, on_event);
                }
                continue;
            }
            if !self.due(&b.stem, &digest) {
                continue;
            }
            match self.process(&source, &digest, b.size, on_event) {
                Err(Unfinished::Stopped) => return Ok(()),
                Ok(images) => {
                    self.settle(&b.stem, &digest, Ok(images), on_event)?;
                    self.after(&source, on_event);
                }
                Err(Unfinished::Outcome(e)) => self.settle(&b.stem, &digest, Err(e), on_event)?,
            }
        }
        Ok(())
    }

    /// Best effort, for the digest of a refused STEM.sha256 the bundle reader would not take.
    fn read_checksum_file(&self, stem: &str) -> Vec<u8> {
        use std::io::Read;
        let mut bytes = Vec::new();
        if let Ok(r) = self.w.transport.get(&names::checksum_name(stem), 0) {
            let _ = r.take(1 << 20).read_to_end(&mut bytes);
        }
        bytes
    }

    fn poll_failed(&mut self, e: Error, on_event: &mut dyn FnMut(&Event)) -> Result<()> {
        let exit = e.kind().exit_code();
        if e.kind() == ErrorKind::Transport {
            self.summary.transport_failures += 1;
        } else {
            self.summary.failed += 1;
        }
        on_event(&Event::PollFailed { reason: e.to_string(), exit });
        Ok(())
    }

    /// Whether a bundle that failed before may be tried again now (`--once` always may).
    fn due(&self, stem: &str, digest: &str) -> bool {
        !self.retries.get(stem).is_some_and(|r| !self.w.once && r.digest == digest && Instant::now() < r.not_before)
    }

    /// Pull, check, load. Returns the images loaded.
    fn process(
        &mut self,
        source: &BundleSource,
        digest: &str,
        size: u64,
        on_event: &mut dyn FnMut(&Event),
    ) -> std::result::Result<Vec<String>, Unfinished> {
        let trust = &self.w.trust;
        // The signature first, before a byte of the artifact is pulled.
        trust.check(source, Policy::RequireSignature).map_err(Unfinished::Outcome)?;
        // A directory drop is local already: loading from it directly spares a copy
        // of the whole bundle (and a load that stops starts over, as a copy would).
        let pulled;
        let local = if self.w.transport.local_dir().is_some() {
            source
        } else {
            on_event(&Event::Pulling { stem: source.stem.clone(), digest: digest.into(), size: Some(size) });
            pulled = self.pull(source)?;
            &pulled
        };
        let trusted = trust.check(local, Policy::RequireSignature).map_err(Unfinished::Outcome)?;
        let decryptor = Some(trust.decryptor().map_err(Unfinished::Outcome)?);
        // From here on no stop is honoured until the load committed or failed.
        on_event(&Event::Loading { stem: source.stem.clone() });
        let report = crate::targets::load_with(&trusted, &self.w.into, decryptor, &Default::default(), self.progress)
            .map_err(Unfinished::Outcome)?;
        Ok(report.images)
    }

    /// Copy `source` into `incoming/` (resuming what an earlier attempt left) and
    /// open the copy.
    fn pull(&self, source: &BundleSource) -> std::result::Result<BundleSource, Unfinished> {
        let dest = StoppableDir::new(&self.incoming, self.stop.clone());
        if let Err(e) = crate::transfer::copy_bundle(source, &dest, self.progress) {
            return Err(if self.stop.requested() { Unfinished::Stopped } else { Unfinished::Outcome(e) });
        }
        if self.stop.requested() {
            return Err(Unfinished::Stopped);
        }
        let local: Arc<dyn Transport> = Arc::new(DirTransport::new(&self.incoming));
        let local = read_sidecars(local, source.stem.clone()).map_err(Unfinished::Outcome)?;
        if local.checksum_bytes != source.checksum_bytes {
            // Another writer in incoming/ (there should be none: the lock): try again.
            let changed = std::io::Error::other("it is not the STEM.sha256 that was pulled");
            return Err(Unfinished::Outcome(Error::io(format!("reading {}/{}.sha256", self.incoming.display(), source.stem), changed)));
        }
        Ok(local)
    }

    /// Journal the outcome (durably), then tell, then tidy up.
    fn settle(
        &mut self,
        stem: &str,
        digest: &str,
        result: std::result::Result<Vec<String>, Error>,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<()> {
        let time = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let entry = match result {
            Ok(images) => Entry {
                time,
                stem: stem.into(),
                digest: digest.into(),
                outcome: Outcome::Loaded,
                reason: None,
                images,
                exit: None,
                trust: Some(self.trust.clone()),
            },
            Err(e) => {
                let kind = e.kind();
                let outcome = if kind == ErrorKind::Integrity { Outcome::Refused } else { Outcome::Failed };
                let reason = match e.hint() {
                    Some(h) => format!("{e} (hint: {h})"),
                    None => e.to_string(),
                };
                Entry {
                    time,
                    stem: stem.into(),
                    digest: digest.into(),
                    outcome,
                    reason: Some(reason),
                    images: vec![],
                    exit: Some(kind.exit_code()),
                    trust: Some(self.trust.clone()),
                }
            }
        };
        self.journal.append(entry.clone())?;
        match entry.outcome {
            Outcome::Loaded => self.summary.loaded += 1,
            Outcome::Refused => self.summary.refused += 1,
            Outcome::Failed if entry.exit == Some(ErrorKind::Transport.exit_code()) => {
                self.summary.failed += 1;
                self.summary.transport_failures += 1;
            }
            Outcome::Failed => self.summary.failed += 1,
        }
        on_event(&Event::Bundle(entry.clone()));
        if entry.outcome == Outcome::Failed {
            // What was pulled stays: the retry resumes from it.
            let failures = self.retries.get(stem).filter(|r| r.digest == digest).map(|r| r.failures + 1).unwrap_or(1);
            let wait = self.w.interval.saturating_mul(1 << (failures - 1).min(16)).min(MAX_BACKOFF).max(self.w.interval);
            self.retries.insert(stem.into(), Retry { failures, digest: digest.into(), not_before: Instant::now() + wait });
            if !self.w.once && failures > 1 {
                on_event(&Event::Backoff { stem: stem.into(), seconds: wait.as_secs() });
            }
        } else {
            self.retries.remove(stem);
            remove_local(&self.incoming, stem);
        }
        Ok(())
    }

    /// `--after` on a loaded bundle still at the location: artifact files and the
    /// signature first, `STEM.sha256` last (the order a bundle is published in).
    fn after(&mut self, source: &BundleSource, on_event: &mut dyn FnMut(&Event)) {
        if self.w.after == After::Keep {
            return;
        }
        let mut files: Vec<String> = source.artifact_names().iter().map(|s| s.to_string()).collect();
        if source.signature.is_some() {
            files.push(names::signature_name(&source.stem));
        }
        files.push(names::checksum_name(&source.stem));
        let t = &*self.w.transport;
        for name in &files {
            let done = match &self.w.after {
                After::Delete => t.delete(name),
                After::Move(dir) => t.move_to(name, dir),
                After::Keep => Ok(()),
            };
            match done {
                // Already gone: an earlier run got this far before it stopped.
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    on_event(&Event::AfterFailed { stem: source.stem.clone(), reason: Error::from(e).to_string() });
                    return;
                }
                Ok(()) => {}
            }
        }
        let action = match &self.w.after {
            After::Move(dir) => format!("moved to {dir}"),
            _ => "deleted".into(),
        };
        on_event(&Event::After { stem: source.stem.clone(), action });
    }
}

/// A short fingerprint of what decides a refusal: the trusted key ids and the
/// identity files. A refusal journaled under another fingerprint is tried again,
/// so adding the key or identity that was missing takes effect without republishing.
fn trust_id(trust: &TrustOptions) -> Result<String> {
    let mut parts: Vec<String> = trust.public_keys()?.iter().map(|k| format!("key {}", k.key_id())).collect();
    trust.load_identities()?;
    parts.extend(trust.identities.iter().map(|p| format!("identity {}", std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()).display())));
    parts.sort();
    parts.dedup();
    Ok(sha256_of(parts.join("\n").as_bytes())["sha256:".len()..][..16].to_string())
}

fn sha256_of(bytes: &[u8]) -> String {
    let mut h = Hasher::new();
    h.update(bytes);
    format!("sha256:{}", h.finish().hex())
}

/// Remove what was pulled of `stem` (done with: loaded or refused).
fn remove_local(incoming: &Path, stem: &str) {
    remove_pulled(incoming, |s| s == stem);
}

/// Remove what was pulled of bundles no longer at the location (a failed one the
/// sender took back): `incoming/` holds only what a later poll may resume.
fn forget_vanished(incoming: &Path, listed: &[&str]) {
    remove_pulled(incoming, |s| !listed.contains(&s));
}

fn remove_pulled(incoming: &Path, of: impl Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(incoming) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let base = name.strip_suffix(ferry_transports::PARTIAL_SUFFIX).unwrap_or(name);
        if of(names::stem_of(base).unwrap_or(base)) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// The default state directory for a location and target: under
/// `/var/lib/ferry/watch` for root, `$XDG_STATE_HOME/ferry/watch` (or
/// `~/.local/state/ferry/watch`) otherwise, named by a hash of both.
pub fn default_state_dir(location: &str, target: &str) -> PathBuf {
    let base = if rustix::process::geteuid().is_root() {
        PathBuf::from("/var/lib/ferry/watch")
    } else if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        PathBuf::from(x).join("ferry/watch")
    } else {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into())).join(".local/state/ferry/watch")
    };
    // The password (if any) is left out: changing it keeps the journal.
    let key = format!("{}\n{target}", ferry_transports::redact_location(location));
    base.join(&sha256_of(key.as_bytes())["sha256:".len()..][..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_parses_keep_delete_and_folders_inside_the_location() {
        assert_eq!(After::parse("keep").unwrap(), After::Keep);
        assert_eq!(After::parse("delete").unwrap(), After::Delete);
        assert_eq!(After::parse("move:done/2026/").unwrap(), After::Move("done/2026".into()));
        for bad in ["move:", "move:/abs", "move:../up", "move:a/../b", "moved", ""] {
            assert_eq!(After::parse(bad).unwrap_err().kind(), ErrorKind::Usage, "{bad}");
        }
    }

    #[test]
    fn the_default_state_is_one_per_location_and_target_and_ignores_passwords() {
        let a = default_state_dir("ftp://u:one@h/in/", "oci:/x");
        assert_eq!(a, default_state_dir("ftp://u:two@h/in/", "oci:/x"));
        assert_ne!(a, default_state_dir("ftp://u:one@h/in/", "oci:/y"));
        assert_ne!(a, default_state_dir("ftp://u:one@h/other/", "oci:/x"));
        assert_eq!(a.file_name().unwrap().len(), 16);
    }

    #[test]
    fn once_exit_codes_put_refusals_first() {
        let s = |refused, transport_failures, failed| WatchSummary { refused, transport_failures, failed, ..Default::default() };
        assert_eq!(s(0, 0, 0).exit_code(), 0);
        assert_eq!(s(1, 1, 2).exit_code(), 3);
        assert_eq!(s(0, 1, 1).exit_code(), 4);
        assert_eq!(s(0, 0, 1).exit_code(), 1);
    }
}
