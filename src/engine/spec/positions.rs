//! Line and column of every key and value of a YAML document.
//!
//! serde_yaml reports positions for syntax and type errors but hands deserialized values over
//! without them; the checks after deserializing (unknown kind, missing dependency, …) look the
//! place up here. The index is built from yaml-rust2's marked event stream, which also reveals
//! duplicate keys (serde would silently keep the last one).

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A node path: keys and sequence indexes joined by `/`, e.g. `stages/train/deps/0`.
pub type NodePath = String;

#[derive(Debug, Default)]
pub struct Positions {
    keys: HashMap<NodePath, (usize, usize)>,
    values: HashMap<NodePath, (usize, usize)>,
    /// `(path of the repeated key, line and column of the repeat, line of the first)`.
    pub duplicates: Vec<(NodePath, (usize, usize), usize)>,
}

impl Positions {
    /// Indexes `text`; `None` when it is not valid YAML (serde_yaml then says why).
    pub fn index(text: &str) -> Option<Positions> {
        let mut builder = Builder::default();
        Parser::new_from_str(text).load(&mut builder, false).ok()?;
        Some(builder.positions)
    }

    /// Where the key of the node at `path` starts (falls back to its value).
    pub fn key(&self, path: &str) -> (usize, usize) {
        self.keys
            .get(path)
            .or_else(|| self.values.get(path))
            .copied()
            .unwrap_or((1, 1))
    }

    /// Indexes every node under `from` (and `from` itself) also under `to`: a matrix stage's
    /// variants point into the stage as written.
    pub fn alias(&mut self, from: &str, to: &str) {
        for map in [&mut self.keys, &mut self.values] {
            let copies: Vec<(NodePath, (usize, usize))> = map
                .iter()
                .filter_map(|(path, at)| {
                    let rest = path.strip_prefix(from)?;
                    (rest.is_empty() || rest.starts_with('/')).then(|| (format!("{to}{rest}"), *at))
                })
                .collect();
            map.extend(copies);
        }
    }

    /// Places the node at `path` (key and value) at `at`, replacing what was indexed there.
    pub fn place(&mut self, path: &str, at: (usize, usize)) {
        self.keys.insert(path.to_string(), at);
        self.values.insert(path.to_string(), at);
    }

    /// Where the value of the node at `path` starts (falls back to its key, then its parent).
    pub fn value(&self, path: &str) -> (usize, usize) {
        if let Some(position) = self.values.get(path).or_else(|| self.keys.get(path)) {
            return *position;
        }
        match path.rsplit_once('/') {
            Some((parent, _)) => self.value(parent),
            None => (1, 1),
        }
    }
}

enum Frame {
    Map {
        path: NodePath,
        key: Option<String>,
        seen: HashMap<String, usize>,
    },
    Seq {
        path: NodePath,
        index: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    positions: Positions,
}

impl Builder {
    /// Path of the node that starts now (the value of the current key or the next item).
    fn child_path(&self) -> NodePath {
        match self.stack.last() {
            Some(Frame::Map { path, key, .. }) => join(path, key.as_deref().unwrap_or_default()),
            Some(Frame::Seq { path, index }) => join(path, &index.to_string()),
            None => String::new(),
        }
    }

    /// A value node finished: the enclosing map waits for its next key, a sequence moves on.
    fn value_done(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { key, .. }) => *key = None,
            Some(Frame::Seq { index, .. }) => *index += 1,
            None => {}
        }
    }

    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }
}

fn join(parent: &str, child: &str) -> NodePath {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}/{child}")
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let at = (mark.line(), mark.col() + 1);
        match event {
            Event::Scalar(text, ..) if self.expecting_key() => {
                let Some(Frame::Map { path, key, seen }) = self.stack.last_mut() else {
                    return;
                };
                let child = join(path, &text);
                if let Some(first_line) = seen.get(&text) {
                    self.positions
                        .duplicates
                        .push((child.clone(), at, *first_line));
                } else {
                    seen.insert(text.clone(), at.0);
                }
                self.positions.keys.entry(child).or_insert(at);
                *key = Some(text);
            }
            Event::Scalar(..) | Event::Alias(_) => {
                let path = self.child_path();
                self.positions.values.entry(path).or_insert(at);
                self.value_done();
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                if self.expecting_key() {
                    // A complex (non-scalar) key: index it under a placeholder name.
                    if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
                        *key = Some("?".to_string());
                    }
                }
                let path = self.child_path();
                self.positions.values.entry(path.clone()).or_insert(at);
                self.stack
                    .push(if matches!(event, Event::MappingStart(..)) {
                        Frame::Map {
                            path,
                            key: None,
                            seen: HashMap::new(),
                        }
                    } else {
                        Frame::Seq { path, index: 0 }
                    });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.value_done();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_keys_values_and_duplicates() {
        let text =
            "name: x\nstages:\n  a:\n    cmd: echo\n    deps: [one, two]\n  a:\n    cmd: b\n";
        let positions = Positions::index(text).unwrap();
        assert_eq!(positions.key("stages/a"), (3, 3));
        assert_eq!(positions.value("stages/a/cmd"), (4, 10));
        assert_eq!(positions.value("stages/a/deps/1"), (5, 17));
        assert_eq!(positions.duplicates.len(), 1);
        assert_eq!(positions.duplicates[0].0, "stages/a");
        assert_eq!(positions.duplicates[0].1, (6, 3));
        assert_eq!(positions.duplicates[0].2, 3);
    }
}
