//! `STATE/journal.jsonl`: one JSON line per bundle outcome, appended and fsynced
//! before the next step. It is the watcher's memory: a bundle journaled as loaded
//! or refused with the same `STEM.sha256` digest is not processed again.
//!
//! A crash mid-append leaves a torn last line (no newline): it is cut off when the
//! journal is opened. Past [`ROTATE_BYTES`] the journal is rotated: the old file
//! becomes `journal.jsonl.1` (replacing an older one) and the new file starts with
//! the last loaded/refused entry of every (stem, digest) pair whose stem is still
//! at the location, so no decision that can still matter is lost.
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Size past which the journal is rotated (docs/WATCH.md).
pub const ROTATE_BYTES: u64 = 4 << 20;
pub const FILE_NAME: &str = "journal.jsonl";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Verified and loaded into the target.
    Loaded,
    /// An integrity or authenticity failure (exit-3 class): not retried until
    /// `STEM.sha256` (or the watcher's trust, see [`Entry::trust`]) changes.
    Refused,
    /// Anything else (transport, target down): retried at the next poll, with backoff.
    Failed,
}

/// One journal line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// RFC 3339, UTC, seconds.
    pub time: String,
    pub stem: String,
    /// `sha256:<hex>` of the exact bytes of `STEM.sha256` the outcome is about.
    pub digest: String,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// The exit code this outcome would give `ferry load` (SPEC §3); absent when loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<i32>,
    /// Which keys and identities decided (see `watch::trust_id`): a refusal holds only
    /// for the trust it was made with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<String>,
}

pub struct Journal {
    path: PathBuf,
    file: File,
    size: u64,
    /// The last entry of every (stem, digest) pair.
    last: HashMap<(String, String), Entry>,
    /// Lines that did not parse (a torn last line is not counted: it is cut off).
    pub damaged_lines: usize,
    /// [`ROTATE_BYTES`]; tests make it small.
    rotate_at: u64,
    /// Stems at the location in the last listing (`None`: not listed yet): what a
    /// rotation keeps decisions for.
    present: Option<Vec<String>>,
}

impl Journal {
    /// Open (or create) the journal in `dir`, reading what it holds.
    pub fn open(dir: &Path) -> Result<Journal> {
        let path = dir.join(FILE_NAME);
        let io = |what: &str, e| Error::io(format!("{what} {}", path.display()), e);
        let created = !path.exists();
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(&path).map_err(|e| io("opening", e))?;
        if created {
            sync_dir(dir)?;
        }
        let mut text = Vec::new();
        file.read_to_end(&mut text).map_err(|e| io("reading", e))?;
        let mut journal = Journal {
            path: path.clone(),
            file,
            size: text.len() as u64,
            last: HashMap::new(),
            damaged_lines: 0,
            rotate_at: ROTATE_BYTES,
            present: None,
        };
        let complete = text.iter().rposition(|&b| b == b'\n').map(|i| i + 1).unwrap_or(0);
        if complete < text.len() {
            // A crash mid-append: the torn tail never was an outcome. Cut it off so the
            // next line starts on its own.
            journal.file.set_len(complete as u64).map_err(|e| io("repairing", e))?;
            journal.file.sync_data().map_err(|e| io("syncing", e))?;
            journal.size = complete as u64;
        }
        for line in text[..complete].split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice::<Entry>(line) {
                Ok(e) => journal.remember(e),
                Err(_) => journal.damaged_lines += 1,
            }
        }
        Ok(journal)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn remember(&mut self, e: Entry) {
        self.last.insert((e.stem.clone(), e.digest.clone()), e);
    }

    /// The stems the location holds now (from the poll's listing).
    pub fn set_present(&mut self, stems: &[&str]) {
        self.present = Some(stems.iter().map(|s| s.to_string()).collect());
    }

    /// The outcome that settles `stem` at `digest`, if any: loaded, or refused under
    /// the same `trust` (a key or identity added since may change the verdict).
    pub fn settled(&self, stem: &str, digest: &str, trust: &str) -> Option<&Entry> {
        self.last.get(&(stem.to_string(), digest.to_string())).filter(|e| match e.outcome {
            Outcome::Loaded => true,
            Outcome::Refused => e.trust.as_deref().is_none_or(|t| t == trust),
            Outcome::Failed => false,
        })
    }

    /// Append `entry` as one line and make it durable before returning.
    pub fn append(&mut self, entry: Entry) -> Result<()> {
        if self.size >= self.rotate_at {
            self.rotate()?;
        }
        let mut line = serde_json::to_vec(&entry).expect("entries serialize");
        line.push(b'\n');
        self.write_line(&line)?;
        self.remember(entry);
        Ok(())
    }

    fn write_line(&mut self, line: &[u8]) -> Result<()> {
        let io = |e| Error::io(format!("appending to {}", self.path.display()), e);
        self.file.write_all(line).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.size += line.len() as u64;
        Ok(())
    }

    /// Keep the old journal as `journal.jsonl.1`; start the new one with every
    /// settled (stem, digest) pair, written and synced before it replaces the old.
    fn rotate(&mut self) -> Result<()> {
        let dir = self.path.parent().expect("the journal is in the state dir").to_path_buf();
        let fresh = dir.join(format!("{FILE_NAME}.new"));
        let old = dir.join(format!("{FILE_NAME}.1"));
        let io = |what: String, e| Error::io(what, e);
        let present = |stem: &str| self.present.as_ref().is_none_or(|p| p.iter().any(|s| s == stem));
        let mut kept: Vec<&Entry> = self.last.values().filter(|e| e.outcome != Outcome::Failed && present(&e.stem)).collect();
        kept.sort_by(|a, b| (&a.time, &a.stem).cmp(&(&b.time, &b.stem)));
        let mut out = File::create(&fresh).map_err(|e| io(format!("creating {}", fresh.display()), e))?;
        let mut size = 0u64;
        for e in kept {
            let mut line = serde_json::to_vec(e).expect("entries serialize");
            line.push(b'\n');
            out.write_all(&line).map_err(|e| io(format!("writing {}", fresh.display()), e))?;
            size += line.len() as u64;
        }
        out.sync_all().map_err(|e| io(format!("syncing {}", fresh.display()), e))?;
        fs::rename(&self.path, &old).map_err(|e| io(format!("rotating {}", self.path.display()), e))?;
        fs::rename(&fresh, &self.path).map_err(|e| io(format!("rotating {}", self.path.display()), e))?;
        sync_dir(&dir)?;
        self.file = OpenOptions::new().append(true).open(&self.path).map_err(|e| io(format!("opening {}", self.path.display()), e))?;
        self.size = size;
        let forgotten: Vec<(String, String)> =
            self.last.iter().filter(|(_, e)| e.outcome == Outcome::Failed || !present(&e.stem)).map(|(k, _)| k.clone()).collect();
        for k in forgotten {
            self.last.remove(&k);
        }
        Ok(())
    }
}

/// Make a directory entry change (a created or renamed file) durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(format!("syncing directory {}", dir.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(stem: &str, digest: &str, outcome: Outcome) -> Entry {
        Entry {
            time: "2026-01-01T00:00:00Z".into(),
            stem: stem.into(),
            digest: digest.into(),
            outcome,
            reason: None,
            images: vec![],
            exit: None,
            trust: Some("t1".into()),
        }
    }

    #[test]
    fn torn_last_line_is_cut_off_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        j.append(entry("a", "sha256:1", Outcome::Loaded)).unwrap();
        drop(j);
        let path = dir.path().join(FILE_NAME);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"time":"2026-01-01T00:00:01Z","stem":"b","dig"#).unwrap();
        drop(f);
        let mut j = Journal::open(dir.path()).unwrap();
        assert!(j.settled("a", "sha256:1", "t1").is_some());
        assert!(j.settled("b", "sha256:2", "t1").is_none());
        assert_eq!(j.damaged_lines, 0);
        j.append(entry("b", "sha256:2", Outcome::Refused)).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        for line in text.lines() {
            serde_json::from_str::<Entry>(line).unwrap();
        }
    }

    #[test]
    fn failed_does_not_settle_and_a_new_digest_is_new() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        j.append(entry("a", "sha256:1", Outcome::Failed)).unwrap();
        assert!(j.settled("a", "sha256:1", "t1").is_none());
        j.append(entry("a", "sha256:1", Outcome::Refused)).unwrap();
        assert!(j.settled("a", "sha256:1", "t1").is_some());
        assert!(j.settled("a", "sha256:2", "t1").is_none());
        assert!(j.settled("a", "sha256:1", "t2").is_none(), "a refusal under other keys does not hold");
    }

    #[test]
    fn rotation_keeps_every_decision() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        j.rotate_at = 16 << 10;
        let mut i = 0;
        while j.size < j.rotate_at {
            j.append(entry(&format!("s{}", i % 50), &format!("sha256:{i}"), if i % 3 == 0 { Outcome::Failed } else { Outcome::Loaded }))
                .unwrap();
            i += 1;
        }
        j.append(entry("last", "sha256:x", Outcome::Loaded)).unwrap();
        assert!(dir.path().join(format!("{FILE_NAME}.1")).exists());
        let rotated = fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(rotated.lines().all(|l| serde_json::from_str::<Entry>(l).is_ok()));
        assert!(j.size < j.rotate_at);
        let j = Journal::open(dir.path()).unwrap();
        for n in 0..i {
            let settled = j.settled(&format!("s{}", n % 50), &format!("sha256:{n}"), "t1").is_some();
            assert_eq!(settled, n % 3 != 0, "entry {n}");
        }
        assert!(j.settled("last", "sha256:x", "t1").is_some());
    }

    #[test]
    fn rotation_forgets_bundles_that_left_the_location() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        j.rotate_at = 4 << 10;
        j.append(entry("kept", "sha256:k", Outcome::Refused)).unwrap();
        j.append(entry("gone", "sha256:g", Outcome::Loaded)).unwrap();
        j.set_present(&["kept", "new"]);
        let mut i = 0;
        while j.size < j.rotate_at {
            j.append(entry("new", &format!("sha256:{i}"), Outcome::Failed)).unwrap();
            i += 1;
        }
        j.append(entry("new", "sha256:n", Outcome::Loaded)).unwrap();
        let j = Journal::open(dir.path()).unwrap();
        assert!(j.settled("kept", "sha256:k", "t1").is_some());
        assert!(j.settled("new", "sha256:n", "t1").is_some());
        assert!(j.settled("gone", "sha256:g", "t1").is_none());
        assert!(j.size < 1024);
    }
}
