//! What `ferry watch` tells while it runs, and how a run ended.
use super::journal::Entry;
use crate::error::{Error, Result};
use serde::Serialize;
use std::path::Path;

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
                .with_hint("a refused bundle is tried again only when its STEM.sha256 (or this watcher's -k/-i) changes: ask the sender for a good, signed copy")),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_exit_codes_put_refusals_first() {
        let s = |refused, transport_failures, failed| WatchSummary { refused, transport_failures, failed, ..Default::default() };
        assert_eq!(s(0, 0, 0).exit_code(), 0);
        assert_eq!(s(1, 1, 2).exit_code(), 3);
        assert_eq!(s(0, 1, 1).exit_code(), 4);
        assert_eq!(s(0, 0, 1).exit_code(), 1);
    }
}
