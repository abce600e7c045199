//! Text that came from a server or a bundle (file names, image names, comments)
//! is shown escaped: a name cannot move the cursor, rewrite the terminal's
//! title, forge a line of ferry's output or reorder what follows it.
use std::borrow::Cow;
use std::fmt::Write;

/// `s` with control characters (newlines, ESC, DEL, C1) and Unicode
/// direction overrides written as escapes (`\n`, `\u{1b}`, `\u{202e}`).
pub fn shown(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn control_characters_and_direction_overrides_are_escaped() {
        assert_eq!(shown("plain-name_1.2+x@y"), "plain-name_1.2+x@y");
        assert_eq!(shown("a\nferry: ok\r"), "a\\nferry: ok\\r");
        assert_eq!(shown("\u{1b}]0;owned\u{7}"), "\\u{1b}]0;owned\\u{7}");
        assert_eq!(shown("evil\u{202e}gpj.exe"), "evil\\u{202e}gpj.exe");
        assert_eq!(shown("tab\there"), "tab\\there");
        assert_eq!(shown("café"), "café");
    }
}
