//! What serde_yaml does not catch, or catches too late, in hostile pipeline files: checked
//! before it parses.
//!
//! - Deep flow nesting: libyaml (under serde_yaml) spends time quadratic in the depth of
//!   `[`/`{` collections (each token looks at every open level): 10,000 `[` cost 0.4 s,
//!   100,000 a minute, before serde_yaml's own limit of 128 levels says no.
//! - Tags: serde_yaml drops an unknown tag on a text (`cmd: !foo echo` is `echo`) and reads
//!   `!!binary` as its base64 text; a tag other than the core schema's is refused here.
//!
//! Both need a second parse (yaml-rust2's, which stops at 255 open flow levels in linear time
//! and reports tags), too slow for every file: a byte scan ([`needs_strict_pass`]) first bounds
//! the flow depth from above and spots anything that may be a tag; only a file where either may
//! be present is parsed by [`strict_pass`]. The scan's bound is not exact (brackets in plain
//! text count, quotes are recognized where a token may start): an over-estimate costs only the
//! second parse.

use std::path::Path;

use yaml_rust2::parser::{Event, Parser, Tag};

use super::{Location, SpecError};

/// Flow nesting this deep is parsed by serde_yaml in no noticeable time.
const CHEAP_FLOW_DEPTH: usize = 64;

/// The tags serde_yaml reads as what they say (YAML 1.2 core schema).
const CORE_TAGS: [&str; 7] = ["str", "int", "float", "bool", "null", "seq", "map"];

/// What the byte scan saw.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Suspicion {
    /// An upper bound (within the scan's rules) of the flow nesting depth exceeds
    /// [`CHEAP_FLOW_DEPTH`].
    pub deep: bool,
    /// A `!` where a tag may start.
    pub tag: bool,
}

/// Scans `text` once, byte by byte: `None` when the file can go straight to serde_yaml.
pub(super) fn needs_strict_pass(text: &str) -> Option<Suspicion> {
    let bytes = text.as_bytes();
    let mut suspicion = Suspicion {
        deep: false,
        tag: false,
    };
    let mut depth = 0usize;
    let mut previous = b'\n';
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        let token_start = matches!(previous, b' ' | b'\t' | b'\n' | b'\r' | b'[' | b'{' | b',');
        match byte {
            b'#' if matches!(previous, b' ' | b'\t' | b'\n' | b'\r') => {
                index = memchr(b'\n', bytes, index);
                previous = b'\n';
                continue;
            }
            b'"' | b'\'' if token_start || previous == b':' => {
                index = quote_end(bytes, index);
                previous = byte;
                continue;
            }
            b'[' | b'{' if depth > 0 || token_start => {
                depth += 1;
                if depth > CHEAP_FLOW_DEPTH {
                    suspicion.deep = true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'!' if token_start => {
                let next = bytes.get(index + 1).copied().unwrap_or(b' ');
                if !matches!(next, b' ' | b'\t' | b'\n' | b'\r') {
                    suspicion.tag = true;
                }
            }
            _ => {}
        }
        previous = byte;
        index += 1;
    }
    (suspicion.deep || suspicion.tag).then_some(suspicion)
}

/// The index of the first `needle` at or after `from` (the end when there is none).
fn memchr(needle: u8, bytes: &[u8], from: usize) -> usize {
    (bytes[from..].iter().position(|&byte| byte == needle)).map_or(bytes.len(), |at| from + at)
}

/// The index just past the quoted scalar that starts at `start` (`"` with `\` escapes, `'` with
/// `''`), or the end of the text.
fn quote_end(bytes: &[u8], start: usize) -> usize {
    let quote = bytes[start];
    let mut index = start + 1;
    while index < bytes.len() {
        match bytes[index] {
            b'\\' if quote == b'"' => index += 1,
            byte if byte == quote => {
                if quote == b'\'' && bytes.get(index + 1) == Some(&b'\'') {
                    index += 1;
                } else {
                    return index + 1;
                }
            }
            _ => {}
        }
        index += 1;
    }
    bytes.len()
}

/// Parses `text` with yaml-rust2 for what [`needs_strict_pass`] suspected: flow nesting beyond
/// its limit and tags other than the core schema's are errors at their place. Another syntax
/// error is left to serde_yaml to word, unless the nesting was suspected (serde_yaml would then
/// spend its quadratic time before finding it).
pub(super) fn strict_pass(file: &Path, text: &str, suspicion: &Suspicion) -> Result<(), SpecError> {
    let at = |line: usize, column: usize| Location {
        file: file.to_path_buf(),
        line,
        column,
    };
    // yaml-rust2 (not libyaml, which the position index shares with serde_yaml) because it
    // stops at a nesting limit where libyaml spends quadratic time. Events are read in a loop.
    let mut parser = Parser::new_from_str(text);
    let parsed = loop {
        let (event, mark) = match parser.next_token() {
            Ok((Event::StreamEnd, _)) => break Ok(()),
            Ok(next) => next,
            Err(error) => break Err(error),
        };
        let tag = match &event {
            Event::Scalar(_, _, _, tag) => tag.as_ref(),
            Event::SequenceStart(_, tag) | Event::MappingStart(_, tag) => tag.as_ref(),
            _ => None,
        };
        if let Some(tag) = tag.filter(|tag| !is_core(tag)) {
            return Err(SpecError::Syntax {
                at: at(mark.line(), mark.col() + 1),
                message: format!(
                    "YAML tag `{}` is not supported (a pipeline's values are plain text, numbers, booleans, lists and maps; the core tags !!str, !!int, !!float, !!bool, !!null, !!seq and !!map may force one)",
                    shown(tag)
                ),
            });
        }
    };
    match parsed {
        Err(error) if suspicion.deep || error.info() == "recursion limit exceeded" => {
            let marker = error.marker();
            let message = if error.info() == "recursion limit exceeded" {
                "lists and maps (`[`, `{`) nested too deeply".to_string()
            } else {
                error.info().to_string()
            };
            Err(SpecError::Syntax {
                at: at(marker.line(), marker.col() + 1),
                message,
            })
        }
        _ => Ok(()),
    }
}

fn is_core(tag: &Tag) -> bool {
    tag.handle == "tag:yaml.org,2002:" && CORE_TAGS.contains(&tag.suffix.as_str())
}

/// A tag as written: `!!binary`, `!foo`.
fn shown(tag: &Tag) -> String {
    match tag.handle.as_str() {
        "tag:yaml.org,2002:" => format!("!!{}", tag.suffix),
        handle => format!("{handle}{}", tag.suffix),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scan_passes_plain_pipelines_and_flags_depth_and_tags() {
        let plain = "name: x\nstages:\n  a:\n    cmd: echo [it's] \"]]]\" ! -f x # [[[[ !x\n    deps: [a, b]\n";
        assert_eq!(needs_strict_pass(plain), None);
        let deep = format!("a: {}", "[".repeat(100_000));
        assert!(needs_strict_pass(&deep).unwrap().deep);
        // Closing brackets inside quotes do not hide the depth.
        let hidden = format!("a: {}", "[ \"]\", ".repeat(100));
        assert!(needs_strict_pass(&hidden).unwrap().deep);
        assert!(needs_strict_pass("a: !foo x\n").unwrap().tag);
        assert!(needs_strict_pass("a: [!!binary aGk=]\n").unwrap().tag);
    }

    #[test]
    fn the_strict_pass_places_depth_and_unknown_tags() {
        let file = Path::new("p.yaml");
        let deep = format!("a: {}", "[".repeat(100_000));
        let suspicion = needs_strict_pass(&deep).unwrap();
        let error = strict_pass(file, &deep, &suspicion)
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("p.yaml:1:"), "{error}");
        assert!(error.contains("nested too deeply"), "{error}");
        let tagged = "a:\n  b: !!binary aGk=\n";
        let suspicion = needs_strict_pass(tagged).unwrap();
        let error = strict_pass(file, tagged, &suspicion)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("p.yaml:2:15: YAML tag `!!binary`"),
            "{error}"
        );
        let core = "a: !!str 1\n";
        assert!(strict_pass(file, core, &needs_strict_pass(core).unwrap()).is_ok());
    }
}
