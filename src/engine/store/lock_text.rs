//! A fast reader for lock files in the exact shape `warez-pipe run` writes them.
//!
//! serde_yaml reads a lock file at ~30 MB/s: at 10,000 stages (5 MB) that is a third of a
//! no-op `run`. What `run` writes is a small, fixed subset of YAML — one mapping per stage,
//! fields in a fixed order, two spaces per level, every string a plain (unquoted) scalar or
//! the file would quote it — so it is read line by line here. Anything outside that subset
//! (a quoted or multi-line string, a comment or blank line after the header, a nested param,
//! a string YAML could take for a number, boolean or null, non-ASCII text, a repeated key)
//! makes [`parse`] give up, and the caller reads the file with serde_yaml as before: hand
//! edits, old lock files and merge results keep loading exactly as they did. Hand-written
//! because no YAML crate reads at a fraction of this cost; `tests` check it agrees with
//! serde_yaml on what the writer produces, tricky strings included.

use std::borrow::Cow;

use indexmap::IndexMap;

use super::lock_file::{LockFile, LockedStage};
use crate::engine::fingerprint::{ContentHash, KeyInputs, PathHashes, StageKey};

/// The lock file in `text`, or `None` when it strays from the writer's subset (see the module
/// doc): then serde_yaml decides.
pub(super) fn parse(text: &str) -> Option<LockFile> {
    let mut lines = Lines {
        lines: text.lines().peekable(),
    };
    while lines.lines.next_if(|line| line.starts_with('#')).is_some() {}
    let pipeline = string(lines.field(0, "pipeline")?)?.into_owned();
    // Sized for about as many stages as the text holds (an estimate: the writer's entries take
    // ~400 bytes, rarely under 256; the map still grows past it). Grown from empty, the map of
    // a 100,000-stage lock file moved its entries and re-hashed its index at every doubling.
    let mut stages = IndexMap::with_capacity(text.len() / 256);
    match lines.field(0, "stages")? {
        "{}" => {}
        // `stages:` with no stage after it is a hand edit: serde_yaml decides (see `LockFile`).
        "" if lines.lines.peek().is_none() => return None,
        "" => {
            while lines.lines.peek().is_some() {
                let (name, rest) = lines.entry(2)?;
                if !rest.is_empty() {
                    return None;
                }
                match stages.entry(name.into_owned()) {
                    indexmap::map::Entry::Occupied(_) => return None,
                    indexmap::map::Entry::Vacant(slot) => {
                        slot.insert(stage(&mut lines)?);
                    }
                }
            }
        }
        _ => return None,
    }
    if lines.lines.next().is_some() {
        return None;
    }
    Some(LockFile { pipeline, stages })
}

/// One stage's fields, at four spaces.
fn stage(lines: &mut Lines) -> Option<LockedStage> {
    let key = StageKey::parse(&string(lines.field(4, "key")?)?)?;
    let action = string(lines.field(4, "action")?)?.into_owned();
    let params = lines
        .map(4, "params")?
        .into_iter()
        .map(|(name, value)| Some((name, param(value)?)))
        .collect::<Option<_>>()?;
    let ports = lines.list(4, "ports")?;
    let inputs = hashes(lines.map(4, "inputs")?)?;
    let outputs = hashes(lines.map(4, "outputs")?)?;
    Some(LockedStage {
        key,
        key_inputs: KeyInputs {
            action,
            params,
            ports,
            inputs,
        },
        outputs,
    })
}

fn hashes(map: Vec<(String, &str)>) -> Option<PathHashes> {
    let mut hashes = Vec::with_capacity(map.len());
    for (path, hash) in map {
        hashes.push((path, ContentHash::parse(&string(hash)?)?));
    }
    Some(PathHashes::from(hashes))
}

/// A param value: a string as it stands; a number, boolean or null as serde_yaml reads it.
fn param(value: &str) -> Option<serde_json::Value> {
    if value.starts_with('\'') {
        return Some(serde_json::Value::String(string(value)?.into_owned()));
    }
    match scalar(value)? {
        Scalar::String => Some(serde_json::Value::String(value.to_string())),
        Scalar::Other => serde_yaml::from_str(value)
            .ok()
            .filter(|value: &serde_json::Value| !value.is_string()),
    }
}

struct Lines<'t> {
    lines: std::iter::Peekable<std::str::Lines<'t>>,
}

impl<'t> Lines<'t> {
    /// The next line as `key: value` (or `key:`) at exactly `indent` spaces.
    fn entry(&mut self, indent: usize) -> Option<(Cow<'t, str>, &'t str)> {
        let line = self.lines.next()?;
        let body = at_indent(line, indent)?;
        let (key, value) = match body.split_once(": ") {
            Some((key, value)) => (key, value),
            None => (body.strip_suffix(':')?, ""),
        };
        Some((string(key)?, value))
    }

    /// The value of the next line, which must be `name: value` at `indent` spaces.
    fn field(&mut self, indent: usize, name: &str) -> Option<&'t str> {
        let (key, value) = self.entry(indent)?;
        (key == name).then_some(value)
    }

    /// `name: {}`, or `name:` followed by `key: value` lines two spaces deeper: the entries
    /// sorted by key (`None` if a key repeats).
    fn map(&mut self, indent: usize, name: &str) -> Option<Vec<(String, &'t str)>> {
        let mut map = Vec::new();
        match self.field(indent, name)? {
            "{}" => return Some(map),
            "" => {}
            _ => return None,
        }
        while self.next_is_at(indent + 2) {
            let (key, value) = self.entry(indent + 2)?;
            map.push((key.into_owned(), value));
        }
        // The writer's maps are sorted already: this sort only checks that.
        map.sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
        let repeated = map.windows(2).any(|pair| pair[0].0 == pair[1].0);
        (!map.is_empty() && !repeated).then_some(map)
    }

    /// `name: []`, or `name:` followed by `- item` lines at the same indent.
    fn list(&mut self, indent: usize, name: &str) -> Option<Vec<String>> {
        let mut list = Vec::new();
        match self.field(indent, name)? {
            "[]" => return Some(list),
            "" => {}
            _ => return None,
        }
        while self
            .lines
            .peek()
            .and_then(|line| at_indent(line, indent))
            .is_some_and(|body| body.starts_with("- "))
        {
            let item = at_indent(self.lines.next()?, indent)?.strip_prefix("- ")?;
            list.push(string(item)?.into_owned());
        }
        (!list.is_empty()).then_some(list)
    }

    fn next_is_at(&mut self, indent: usize) -> bool {
        self.lines
            .peek()
            .is_some_and(|line| at_indent(line, indent).is_some())
    }
}

/// What follows exactly `indent` spaces at the start of `line`.
fn at_indent(line: &str, indent: usize) -> Option<&str> {
    let body = line.get(indent..)?;
    (line.as_bytes()[..indent].iter().all(|&b| b == b' ') && !body.starts_with(' ')).then_some(body)
}

/// A plain (unquoted) scalar the fast path reads.
enum Scalar {
    /// YAML reads it as exactly this string.
    String,
    /// It may read as a number, a boolean or null.
    Other,
}

/// What kind of plain scalar `text` is; `None` when the fast path leaves it to serde_yaml.
/// Conservative: some strings YAML would read as such are refused too.
fn scalar(text: &str) -> Option<Scalar> {
    let printable = text.bytes().all(|b| (b' '..=b'~').contains(&b));
    let ends_early = text.contains(": ") || text.contains(" #") || text.ends_with(':');
    if text.is_empty() || !printable || text.trim() != text || ends_early {
        return None;
    }
    // serde_yaml's nulls and booleans (YAML 1.2: `yes`, `on` and the like are strings).
    let reserved = ["~", "null", "true", "false"]
        .iter()
        .any(|word| text.eq_ignore_ascii_case(word));
    let first = text.as_bytes()[0];
    let starts_like_a_number = first.is_ascii_digit() || b"+-.".contains(&first);
    let unsigned = text.trim_start_matches(['+', '-']);
    let in_base = |prefix: &str, digits: &str| {
        unsigned.len() >= 2
            && unsigned[..2].eq_ignore_ascii_case(prefix)
            && unsigned[2..]
                .bytes()
                .all(|b| digits.as_bytes().contains(&b))
    };
    let numeric = starts_like_a_number
        && (text.bytes().all(|b| b"0123456789eE+-._".contains(&b))
            || [".inf", ".nan"]
                .iter()
                .any(|word| unsigned.eq_ignore_ascii_case(word))
            || in_base("0x", "0123456789abcdefABCDEF_")
            || in_base("0o", "01234567_")
            || in_base("0b", "01_"));
    if reserved || numeric {
        Some(Scalar::Other)
    } else if b"-?:,[]{}#&*!|>'\"%@`".contains(&first) {
        None
    } else {
        Some(Scalar::String)
    }
}

/// The string YAML reads from `text`: a plain scalar of [`Scalar::String`] kind, or a
/// single-quoted one (where `''` stands for a quote, the only escape).
fn string(text: &str) -> Option<Cow<'_, str>> {
    let Some(quoted) = text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) else {
        return matches!(scalar(text)?, Scalar::String).then_some(Cow::Borrowed(text));
    };
    let printable = quoted.bytes().all(|b| (b' '..=b'~').contains(&b));
    // A lone quote would have ended the string.
    (printable && !quoted.replace("''", "").contains('\''))
        .then(|| Cow::Owned(quoted.replace("''", "'")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(action: &str, names: &[&str], params: &[(&str, serde_json::Value)]) -> LockedStage {
        let hash = |text: &str| ContentHash::of_bytes(text.as_bytes());
        let inputs: PathHashes = names.iter().map(|n| (n.to_string(), hash(n))).collect();
        let key_inputs = KeyInputs {
            action: action.to_string(),
            params: params
                .iter()
                .map(|(name, value)| (name.to_string(), value.clone()))
                .collect(),
            ports: names.iter().map(|n| format!("dep - {n}")).collect(),
            inputs: inputs.clone(),
        };
        LockedStage {
            key: key_inputs.key(),
            key_inputs,
            outputs: inputs,
        }
    }

    /// What the writer produces, read both ways: `Some` from the fast path only when it agrees.
    fn read_back(lock: &LockFile) -> (Option<LockFile>, LockFile) {
        let text = serde_yaml::to_string(lock).unwrap();
        let slow: LockFile = serde_yaml::from_str(&text).unwrap();
        assert_eq!(&slow, lock, "{text}");
        let fast = parse(&text);
        if let Some(fast) = &fast {
            assert_eq!(fast, lock, "{text}");
        }
        (fast, slow)
    }

    #[test]
    fn reads_what_the_writer_writes_as_serde_yaml_does() {
        use serde_json::json;
        let mut lock = LockFile {
            pipeline: "p".into(),
            stages: IndexMap::new(),
        };
        assert!(read_back(&lock).0.is_some(), "no stages");
        lock.stages.insert(
            "a".into(),
            stage("cmd echo 1 > out/a.txt", &["out/a.txt"], &[]),
        );
        lock.stages.insert("b".into(), stage("kind k@1", &[], &[]));
        let params = [
            ("rate", json!(0.001)),
            ("n", json!(50)),
            ("flag", json!(true)),
            ("codec", json!("null")),
            ("text", json!("it's: #1")),
            ("mode", json!("fast")),
            ("none", json!(null)),
        ];
        lock.stages.insert(
            "c-1.x".into(),
            stage("cmd a | b && c", &["data/x.csv", "out/y"], &params),
        );
        assert!(read_back(&lock).0.is_some(), "the writer's plain form");

        // Strings YAML would take for something else, or cannot hold unquoted: each either read
        // right by the fast path or left to serde_yaml.
        let tricky = [
            "123",
            "1e5",
            "0x1f",
            "true",
            "no",
            "~",
            "null",
            "-x",
            "a: b",
            "a #b",
            "#a",
            "a:",
            "'q'",
            "\"q\"",
            " lead",
            "trail ",
            "ünï",
            "a\tb",
            "[x]",
            "{y}",
            "*ref",
            "&anchor",
            "!tag",
            "|",
            ">",
            "%",
            "@",
            "`",
            ".inf",
            "..",
            "",
            "multi\nline",
            "12e4",
            "0b101",
            "0bad",
            "-0o17",
            "0x1F",
            "+.INF",
            "on",
            "yes",
            "Null",
            "TRUE",
            "n",
        ];
        for text in tricky {
            let mut odd = lock.clone();
            odd.pipeline = text.to_string();
            odd.stages.insert(
                text.to_string(),
                stage(text, &[text], &[(text, json!(text))]),
            );
            read_back(&odd);
        }
    }

    #[test]
    fn takes_the_fast_path_whatever_the_hashes_look_like() {
        // Hex digits can spell `0b…`, `1e5…` prefixes and the like: thousands of stages hit them.
        let stages = (0..3000)
            .map(|i| (format!("s{i}"), stage("cmd x", &[&format!("out/{i}")], &[])))
            .collect();
        let lock = LockFile {
            pipeline: "p".into(),
            stages,
        };
        assert!(read_back(&lock).0.is_some());
    }

    #[test]
    fn gives_up_on_what_the_writer_does_not_write() {
        let lock = LockFile {
            pipeline: "p".into(),
            stages: IndexMap::from([("a".to_string(), stage("cmd x", &["f"], &[]))]),
        };
        let text = serde_yaml::to_string(&lock).unwrap();
        assert!(parse(&text).is_some());
        let edits = [
            text.replace("pipeline: p", "pipeline: p # a comment"),
            text.replace("pipeline: p", "pipeline: \"p\""),
            text.replace("  a:\n", "  a:\n\n"),
            text.replace("    key:", "     key:"),
            text.replace("action: cmd x", "action: cmd x\n      more"),
            text.replace("params: {}", "params:\n      nested:\n        deep: 1"),
            format!("{text}  a:\n"),
            format!("{text}extra: 1\n"),
            "pipeline: p\nstages:\n".to_string(),
        ];
        for edit in edits {
            assert_eq!(parse(&edit), None, "{edit}");
        }
    }

    #[test]
    fn reads_the_committed_lock_file_as_serde_yaml_does() {
        let text = include_str!("../../../pipelines/recommender.lock");
        let slow: LockFile = serde_yaml::from_str(text).unwrap();
        assert_eq!(parse(text), Some(slow), "the fast path");
    }
}
