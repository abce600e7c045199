//! Progress reporting hooks; the binary draws bars, the library only counts.
pub trait Progress: Sync {
    /// A new phase, e.g. "writing busybox.tar.zst", with its size if known.
    fn start(&self, _label: &str, _total: Option<u64>) {}
    /// `n` more bytes done in the current phase.
    fn advance(&self, _n: u64) {}
    fn finish(&self) {}
    /// A one-line note (e.g. a converted layer).
    fn note(&self, _message: &str) {}
}

pub struct NoProgress;
impl Progress for NoProgress {}
