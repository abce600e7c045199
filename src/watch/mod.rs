//! `ferry watch`: the unattended consumer. Each poll lists the complete bundles
//! at a location, pulls each new one into `STATE/incoming/` (resumable; a
//! directory drop is read in place), checks and loads it through the one load
//! dispatch, and journals the outcome (`journal.rs`) before anything else
//! happens. See docs/WATCH.md.
pub mod after;
pub mod event;
mod incoming;
pub mod journal;
pub mod lock;
pub mod stop;

pub use after::After;
pub use event::{Event, WatchSummary};
use incoming::{forget_vanished, remove_local};

use crate::bundle::locate::read_sidecars;
use crate::bundle::{names, BundleSource, Progress};
use crate::digest::Hasher;
use crate::error::{Error, ErrorKind, Result};
use crate::reference::ImageRef;
use crate::trust::{Policy, TrustOptions};
use ferry_transports::{DirTransport, Transport};
use journal::{Entry, Journal, Outcome};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stop::{Stop, StoppableDir};

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
                    // `load`'s hint for an unsigned bundle offers --allow-unsigned, which watch has not.
                    Some(h) if !matches!(e, Error::Authenticity(_)) => format!("{e} (hint: {h})"),
                    _ => e.to_string(),
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

    /// `--after` on a loaded bundle still at the location.
    fn after(&self, source: &BundleSource, on_event: &mut dyn FnMut(&Event)) {
        match after::apply(&self.w.after, &*self.w.transport, source) {
            Ok(Some(action)) => on_event(&Event::After { stem: source.stem.clone(), action }),
            Ok(None) => {}
            Err(e) => on_event(&Event::AfterFailed { stem: source.stem.clone(), reason: e.to_string() }),
        }
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
    fn the_default_state_is_one_per_location_and_target_and_ignores_passwords() {
        let a = default_state_dir("ftp://u:one@h/in/", "oci:/x");
        assert_eq!(a, default_state_dir("ftp://u:two@h/in/", "oci:/x"));
        assert_ne!(a, default_state_dir("ftp://u:one@h/in/", "oci:/y"));
        assert_ne!(a, default_state_dir("ftp://u:one@h/other/", "oci:/x"));
        assert_eq!(a.file_name().unwrap().len(), 16);
    }
}
