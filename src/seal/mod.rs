//! Sealing: minisign signatures and age encryption (filled in by the sealing work).
