//! User data in messages. Ids and fields from data files reach error messages, warnings and
//! `inspect`'s output; their control characters (an escape sequence, a carriage return, a
//! newline) are printed escaped, as Rust writes them in a literal (`\u{1b}`, `\r`, `\n`), so a
//! broken or hostile file can neither drive the terminal nor forge lines of output. Everything
//! else, non-ASCII text included, is printed as it is.

use std::borrow::Cow;

/// `text` with each control character escaped.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

/// A raw field for a message: lossy UTF-8, control characters escaped, cut after 60 characters.
pub fn shown_field(field: &[u8]) -> String {
    const LIMIT: usize = 60;
    let text = String::from_utf8_lossy(field);
    let text = escape_controls(&text);
    match text.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(
            escape_controls("\u{1b}[31mred\u{7}\r\n\tend"),
            "\\u{1b}[31mred\\u{7}\\r\\n\\tend"
        );
        assert_eq!(escape_controls("Zoë → 7"), "Zoë → 7");
        assert!(matches!(escape_controls("plain"), Cow::Borrowed(_)));
        assert_eq!(escape_controls("\u{9b}x"), "\\u{9b}x", "C1 controls too");
    }

    #[test]
    fn fields_are_lossy_escaped_and_cut() {
        assert_eq!(shown_field(b"a\xffb\n"), "a\u{fffd}b\\n");
        let long = "x".repeat(70);
        assert_eq!(shown_field(long.as_bytes()), format!("{}…", "x".repeat(60)));
    }
}
