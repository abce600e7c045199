//! Parity parts (`save --split SIZE --parity N`): N Reed-Solomon parity parts
//! next to the data parts of a split artifact, so that up to N lost or damaged
//! parts can be rebuilt (docs/FORMAT.md, "Parity parts").
//!
//! - [`code`]: the erasure code.
//! - [`encode`]: parity accumulated as the data parts are written (one pass).
//! - [`survey`]: which parts are missing or damaged.
//! - [`rebuild`]: a lost part rebuilt as a stream, on the fly or into a directory.
pub mod code;
pub mod encode;
pub mod rebuild;
pub mod survey;

use crate::error::{Error, Result};
use serde::Serialize;

/// How a split artifact's parts are protected, as recorded in `STEM.sha256`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Geometry {
    /// Data parts (the artifact's bytes, in order).
    pub data: usize,
    /// Parity parts: how many parts may be lost.
    pub parity: usize,
    /// Size of every data part but the last, and of every parity part.
    pub part_size: u64,
    /// Size of the last data part (the others are zero-padded past it).
    pub last_size: u64,
}

/// The comment line of `STEM.sha256` that records a [`Geometry`].
const LINE_PREFIX: &str = "# ferry-parity v1 code=cauchy-gf256";

impl Geometry {
    pub fn new(data: usize, parity: usize, part_size: u64, last_size: u64) -> Result<Geometry> {
        let g = Geometry { data, parity, part_size, last_size };
        g.check().map_err(|why| Error::integrity(format!("parity geometry {why}")))?;
        Ok(g)
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self.data == 0 || self.parity == 0 || self.data + self.parity > code::MAX_PARTS {
            return Err(format!(
                "data={} parity={} is out of range (1 or more each, {} parts at most)",
                self.data,
                self.parity,
                code::MAX_PARTS
            ));
        }
        if self.last_size == 0 || self.last_size > self.part_size || self.data == 1 && self.last_size != self.part_size {
            return Err(format!("part-size={} last-size={} do not fit together", self.part_size, self.last_size));
        }
        Ok(())
    }

    /// All parts: data then parity.
    pub fn parts(&self) -> usize {
        self.data + self.parity
    }

    /// Size of part `index` (data parts first, then parity parts).
    pub fn size_of(&self, index: usize) -> u64 {
        if index + 1 == self.data {
            self.last_size
        } else {
            self.part_size
        }
    }

    pub fn render(&self) -> String {
        format!("{LINE_PREFIX} data={} parity={} part-size={} last-size={}", self.data, self.parity, self.part_size, self.last_size)
    }

    /// The geometry among `STEM.sha256`'s comment lines, if one is there. A
    /// line that starts like one but is not exactly one is refused.
    pub fn from_comments(comments: &[String], file: &str) -> Result<Option<Geometry>> {
        let mut found = None;
        for line in comments.iter().filter(|l| l.starts_with("# ferry-parity")) {
            let bad = || Error::integrity(format!("{file}: the parity line {:?} is not one ferry reads", crate::untrusted::shown(line)));
            if found.is_some() {
                return Err(Error::integrity(format!("{file}: more than one parity line")));
            }
            let rest = line.strip_prefix(LINE_PREFIX).and_then(|r| r.strip_prefix(' ')).ok_or_else(bad)?;
            let fields: Vec<&str> = rest.split(' ').collect();
            let value = |k: usize, key: &str| -> Result<u64> {
                let v = fields.get(k).and_then(|f| f.strip_prefix(key)).and_then(|f| f.strip_prefix('=')).ok_or_else(bad)?;
                // Plain decimal only: no signs, no leading zeros.
                if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) || v.len() > 1 && v.starts_with('0') {
                    return Err(bad());
                }
                v.parse().map_err(|_| bad())
            };
            if fields.len() != 4 {
                return Err(bad());
            }
            let (data, parity) = (value(0, "data")?, value(1, "parity")?);
            let g = Geometry {
                data: usize::try_from(data).map_err(|_| bad())?,
                parity: usize::try_from(parity).map_err(|_| bad())?,
                part_size: value(2, "part-size")?,
                last_size: value(3, "last-size")?,
            };
            g.check().map_err(|why| Error::integrity(format!("{file}: parity line: {why}")))?;
            found = Some(g);
        }
        Ok(found)
    }
}

/// A part that is missing or does not match `STEM.sha256`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadPart {
    pub name: String,
    /// `missing`, `damaged` (checksum mismatch) or `wrong size`.
    pub problem: String,
    /// A parity part (not needed to read the artifact).
    pub parity: bool,
}

/// Refuse when more parts are bad than parity can rebuild, naming them.
pub fn check_repairable(at: &str, geometry: &Geometry, bad: &[BadPart]) -> Result<()> {
    if bad.len() <= geometry.parity {
        return Ok(());
    }
    let list: Vec<String> = bad.iter().map(|b| format!("{} ({})", b.name, b.problem)).collect();
    Err(Error::integrity(format!(
        "{at}: {} parts are missing or damaged ({}); its {} parity part(s) can rebuild at most {}",
        bad.len(),
        list.join(", "),
        geometry.parity,
        geometry.parity
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn geometry_line_round_trips_and_is_strict() {
        let g = Geometry::new(8, 2, 1 << 20, 12345).unwrap();
        assert_eq!(Geometry::from_comments(&[g.render()], "x").unwrap(), Some(g.clone()));
        assert_eq!(Geometry::from_comments(&["# other".into()], "x").unwrap(), None);
        for bad in [
            "# ferry-parity v1 code=cauchy-gf256 data=8 parity=2 part-size=1048576",
            "# ferry-parity v1 code=cauchy-gf256 data=08 parity=2 part-size=1048576 last-size=1",
            "# ferry-parity v1 code=cauchy-gf256 data=8 parity=0 part-size=1048576 last-size=1",
            "# ferry-parity v1 code=cauchy-gf256 data=250 parity=7 part-size=10 last-size=1",
            "# ferry-parity v1 code=cauchy-gf256 data=8 parity=2 part-size=10 last-size=11",
            "# ferry-parity v2 code=cauchy-gf256 data=8 parity=2 part-size=10 last-size=1",
        ] {
            assert!(Geometry::from_comments(&[bad.into()], "x").is_err(), "{bad}");
        }
        assert!(Geometry::from_comments(&[g.render(), g.render()], "x").is_err());
    }
}
