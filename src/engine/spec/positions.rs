//! Line and column of every key and value of a YAML document.
//!
//! serde_yaml reports positions for syntax and type errors but hands deserialized values over
//! without them; the checks after deserializing (unknown kind, missing dependency, a cycle, …)
//! look the place up here. The index ([`Positions`]) is built from the marked event stream of
//! libyaml-safer, a safe Rust port of the libyaml that serde_yaml parses with (through
//! unsafe-libyaml): the index reads exactly the documents serde_yaml reads. (It was built from
//! yaml-rust2's events before, which refuses some YAML libyaml reads — a block scalar at its
//! key's own indentation — and every place in such a file fell back to line 1, column 1.) The
//! events also reveal duplicate keys (serde would silently keep the last one).
//!
//! Indexing is a second parse of the whole file and a map entry per node — at 100,000 stages
//! more than a quarter of loading — and a valid pipeline never needs it. So the loader keeps
//! the text in [`Places`] and indexes it on the first lookup only: when a message must name a
//! place. A matrix stage's variants are not copied into the index either: a lookup under a
//! variant's name is redirected to the stage as written (see [`Places::alias`]).
//!
//! Hostile input: the events are read in a loop (a recursive loader overflows the stack on
//! 100,000 nested `- `), and nodes deeper than
//! [`MAX_INDEXED_DEPTH`] are not indexed (their paths would cost memory quadratic in the depth;
//! serde_yaml refuses anything deeper than 128 levels anyway, at its own place). Deep *flow*
//! nesting (`[[[[…`), on which libyaml spends quadratic time, never gets here: the guard
//! (`guard.rs`) refuses it first.

use std::collections::HashMap;
use std::sync::OnceLock;

use libyaml_safer::{EventData, Mark, Parser, ScalarStyle};

/// Nodes nested deeper than this are not indexed (a lookup finds their nearest indexed parent).
const MAX_INDEXED_DEPTH: usize = 256;

/// A node path: keys and sequence indexes joined by `/`, e.g. `stages/train/deps/0`.
pub type NodePath = String;

#[derive(Debug, Default)]
pub struct Positions {
    keys: HashMap<NodePath, (usize, usize)>,
    values: HashMap<NodePath, (usize, usize)>,
    /// `(path of the repeated key, line and column of the repeat, line of the first)`: keys
    /// spelled alike (`1` and `"1"`: what a map of names sees).
    pub duplicates: Vec<(NodePath, (usize, usize), usize)>,
    /// The same for keys that are one YAML value however spelled (`true` and `True`, `~` and
    /// `null`, `1` and `0x1`, but not `1` and `"1"`): what a map of YAML values sees.
    pub equal_values: Vec<(NodePath, (usize, usize), usize)>,
    /// Where a second document starts (`---` after a first one), if any.
    pub second_document: Option<(usize, usize)>,
    /// Where the first alias (`*name`) is, if any.
    pub first_alias: Option<(usize, usize)>,
}

impl Positions {
    /// Indexes `text`; `None` when it is not valid YAML (serde_yaml then says why).
    pub fn index(text: &str) -> Option<Positions> {
        let mut builder = Builder::default();
        let mut documents = 0;
        let finished = for_each_event(text, |event, mark| {
            if let EventData::DocumentStart { .. } = event {
                documents += 1;
                if documents == 2 {
                    builder.positions.second_document = Some(line_column(mark));
                    return false;
                }
            }
            builder.on_event(event, mark);
            true
        });
        // A second document's own errors do not matter: the first one is indexed.
        finished.is_ok().then_some(builder.positions)
    }

    /// Where the key of the node at `path` starts (falls back to its value), if indexed.
    fn key(&self, path: &str) -> Option<(usize, usize)> {
        self.keys
            .get(path)
            .or_else(|| self.values.get(path))
            .copied()
    }

    /// Where the value of the node at `path` starts (falls back to its key), if indexed.
    fn value(&self, path: &str) -> Option<(usize, usize)> {
        self.values
            .get(path)
            .or_else(|| self.keys.get(path))
            .copied()
    }
}

/// The places of a pipeline file's nodes, indexed when first asked for (see the module doc).
#[derive(Debug, Default)]
pub struct Places {
    /// The text as parsed.
    text: String,
    /// Built on the first lookup; `None` when the text is not valid YAML (every place is then
    /// line 1, column 1).
    index: OnceLock<Option<Positions>>,
    /// A variant's node prefix (`stages/train@a=1`) → its matrix stage's (`stages/train`).
    aliases: HashMap<NodePath, NodePath>,
    /// A node placed at another node's value (a variant's param → its matrix value).
    placed: HashMap<NodePath, NodePath>,
}

impl Places {
    pub fn new(text: String) -> Places {
        Places {
            text,
            ..Places::default()
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The index of the text, built now if it was not yet.
    pub fn index(&self) -> Option<&Positions> {
        self.index
            .get_or_init(|| Positions::index(&self.text))
            .as_ref()
    }

    /// Lookups of `to` and of any node under it go to the same node under `from`: a matrix
    /// stage's variants point into the stage as written.
    pub fn alias(&mut self, from: &str, to: &str) {
        self.aliases.insert(to.to_string(), from.to_string());
    }

    /// The node at `path` (key and value) is where the value of the node `at` is.
    pub fn place(&mut self, path: &str, at: &str) {
        self.placed.insert(path.to_string(), at.to_string());
    }

    /// Where the key of the node at `path` starts (falls back to its value, then its parent's).
    pub fn key(&self, path: &str) -> (usize, usize) {
        if let Some(at) = self.placed.get(path) {
            return self.value(at);
        }
        let Some(index) = self.index() else {
            return (1, 1);
        };
        if let Some(at) = index.key(&self.unaliased(path)) {
            return at;
        }
        match path.rsplit_once('/') {
            Some((parent, _)) => self.value(parent),
            None => (1, 1),
        }
    }

    /// Where the second of two keys spelled alike (see [`Positions::duplicates`]) at `path` is,
    /// else where its key is.
    pub fn repeat(&self, path: &str) -> (usize, usize) {
        let repeat = self.index().and_then(|index| {
            (index.duplicates.iter())
                .find(|(repeated, ..)| repeated == path)
                .map(|(_, at, _)| *at)
        });
        repeat.unwrap_or_else(|| self.key(path))
    }

    /// Where the value of the node at `path` starts (falls back to its key, then its parent).
    pub fn value(&self, path: &str) -> (usize, usize) {
        if let Some(at) = self.placed.get(path) {
            return self.value(at);
        }
        let Some(index) = self.index() else {
            return (1, 1);
        };
        if let Some(at) = index.value(&self.unaliased(path)) {
            return at;
        }
        match path.rsplit_once('/') {
            Some((parent, _)) => self.value(parent),
            None => (1, 1),
        }
    }

    /// `path` with a variant's prefix replaced by its matrix stage's.
    fn unaliased(&self, path: &str) -> NodePath {
        if self.aliases.is_empty() {
            return path.to_string();
        }
        let prefixes = path
            .match_indices('/')
            .map(|(end, _)| end)
            .chain([path.len()]);
        for end in prefixes {
            if let Some(from) = self.aliases.get(&path[..end]) {
                return format!("{from}{}", &path[end..]);
            }
        }
        path.to_string()
    }
}

/// Calls `visit` with each event of `text` and where it starts, in a loop (no recursion), until
/// `visit` returns `false` or the stream ends.
fn for_each_event(
    text: &str,
    mut visit: impl FnMut(EventData, Mark) -> bool,
) -> Result<(), libyaml_safer::Error> {
    let mut input = text.as_bytes();
    let mut parser = Parser::new();
    parser.set_input_string(&mut input);
    loop {
        let event = parser.parse()?;
        if event.data == EventData::StreamEnd || !visit(event.data, event.start_mark) {
            return Ok(());
        }
    }
}

/// A mark as a 1-based line and column (libyaml counts both from 0, columns in characters).
fn line_column(mark: Mark) -> (usize, usize) {
    let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX - 1);
    (to_usize(mark.line) + 1, to_usize(mark.column) + 1)
}

enum Frame {
    Map {
        path: NodePath,
        key: Option<String>,
        /// Each key's text → the line of its first occurrence.
        seen: HashMap<String, usize>,
        /// Each key's YAML value (see [`resolved`]) → the line of its first occurrence.
        seen_values: HashMap<String, usize>,
    },
    Seq {
        path: NodePath,
        index: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    /// Collections open below [`MAX_INDEXED_DEPTH`], not indexed.
    too_deep: usize,
    /// Anchored scalars' texts and values (see [`resolved`]) by anchor name: an alias used as a
    /// key stands for its scalar (a later anchor of the same name replaces an earlier one).
    anchors: HashMap<String, (String, String)>,
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

impl Builder {
    fn on_event(&mut self, event: EventData, mark: Mark) {
        let at = line_column(mark);
        if let EventData::Alias { .. } = event {
            self.positions.first_alias.get_or_insert(at);
        }
        if self.too_deep > 0 {
            match event {
                EventData::MappingStart { .. } | EventData::SequenceStart { .. } => {
                    self.too_deep += 1
                }
                EventData::MappingEnd | EventData::SequenceEnd => self.too_deep -= 1,
                _ => {}
            }
            return;
        }
        match event {
            EventData::Scalar {
                value: text,
                style,
                anchor,
                ..
            } if self.expecting_key() => {
                let value = resolved(&text, style);
                if let Some(anchor) = anchor {
                    self.anchors.insert(anchor, (text.clone(), value.clone()));
                }
                self.key(text, Some(value), at);
            }
            EventData::Alias { anchor } if self.expecting_key() => {
                // serde_yaml reads the anchored node in its place; a collection has no name.
                match self.anchors.get(&anchor).cloned() {
                    Some((text, value)) => self.key(text, Some(value), at),
                    None => self.key("?".to_string(), None, at),
                }
            }
            EventData::Scalar {
                value: text,
                style,
                anchor,
                ..
            } => {
                if let Some(anchor) = anchor {
                    let value = resolved(&text, style);
                    self.anchors.insert(anchor, (text, value));
                }
                let path = self.child_path();
                self.positions.values.entry(path).or_insert(at);
                self.value_done();
            }
            EventData::Alias { .. } => {
                let path = self.child_path();
                self.positions.values.entry(path).or_insert(at);
                self.value_done();
            }
            EventData::MappingStart { .. } | EventData::SequenceStart { .. } => {
                if self.stack.len() >= MAX_INDEXED_DEPTH {
                    self.too_deep = 1;
                    return;
                }
                if self.expecting_key() {
                    // A complex (non-scalar) key: indexed under a placeholder name, never a
                    // repeat of another.
                    if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
                        *key = Some("?".to_string());
                    }
                }
                let path = self.child_path();
                self.positions.values.entry(path.clone()).or_insert(at);
                self.stack
                    .push(if matches!(event, EventData::MappingStart { .. }) {
                        Frame::Map {
                            path,
                            key: None,
                            seen: HashMap::new(),
                            seen_values: HashMap::new(),
                        }
                    } else {
                        Frame::Seq { path, index: 0 }
                    });
            }
            EventData::MappingEnd | EventData::SequenceEnd => {
                self.stack.pop();
                self.value_done();
            }
            _ => {}
        }
    }

    /// A key `text` (its YAML value `value`; none: a collection) of the current map at `at`.
    fn key(&mut self, text: String, value: Option<String>, at: (usize, usize)) {
        let Some(Frame::Map {
            path,
            key,
            seen,
            seen_values,
        }) = self.stack.last_mut()
        else {
            return;
        };
        let child = join(path, &text);
        if let Some(value) = value {
            match seen.get(&text) {
                Some(first_line) => {
                    (self.positions.duplicates).push((child.clone(), at, *first_line))
                }
                None => {
                    seen.insert(text.clone(), at.0);
                }
            }
            match seen_values.get(&value) {
                Some(first_line) => {
                    (self.positions.equal_values).push((child.clone(), at, *first_line))
                }
                None => {
                    seen_values.insert(value, at.0);
                }
            }
        }
        self.positions.keys.entry(child).or_insert(at);
        *key = Some(text);
    }
}

/// A scalar's YAML value as serde_yaml resolves it (YAML 1.2 core schema), as a text that is
/// equal for equal values: `~`, `null` and an empty plain scalar are one null, `true` and
/// `True` one boolean, `1`, `+1` and `0x1` one number; a quoted scalar is always a string.
fn resolved(text: &str, style: ScalarStyle) -> String {
    if style != ScalarStyle::Plain {
        return format!("string {text}");
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return "null".to_string(),
        "true" | "True" | "TRUE" => return "bool true".to_string(),
        "false" | "False" | "FALSE" => return "bool false".to_string(),
        _ => {}
    }
    let digits = text.strip_prefix('+').unwrap_or(text);
    let integer = if let Some(hex) = digits.strip_prefix("0x") {
        i128::from_str_radix(hex, 16).ok()
    } else if let Some(octal) = digits.strip_prefix("0o") {
        i128::from_str_radix(octal, 8).ok()
    } else {
        text.parse::<i128>().ok()
    };
    if let Some(integer) = integer {
        return format!("int {integer}");
    }
    match text.parse::<f64>() {
        Ok(float) if !text.contains(['i', 'I', 'n', 'N']) => format!("float {float:?}"),
        _ => format!("string {text}"),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn hostile_nesting_is_indexed_without_recursion_down_to_a_bound() {
        // A recursive loader (yaml-rust2's `load`) overflowed the stack on this.
        let text = format!("a:\n  {}x\n", "- ".repeat(100_000));
        let places = Places::new(text);
        assert!(places.index().is_some());
        assert_eq!(places.value("a/0/0/0"), (2, 9));
        let deep = format!("a/{}", ["0"; 1000].join("/"));
        let (line, _) = places.value(&deep);
        assert_eq!(
            line, 2,
            "an unindexed node falls back to its nearest indexed parent"
        );
    }

    #[test]
    fn repeats_by_text_and_by_value() {
        let places =
            Places::new("k: &x y\nm: {1: a, \"1\": b, true: c, True: d, y: e, *x : f}\n".into());
        let index = places.index().unwrap();
        let texts: Vec<&str> = index.duplicates.iter().map(|d| d.0.as_str()).collect();
        assert_eq!(
            texts,
            ["m/1", "m/y"],
            "`1` and `\"1\"` are one name; an alias is its text"
        );
        let values: Vec<&str> = index.equal_values.iter().map(|d| d.0.as_str()).collect();
        assert_eq!(
            values,
            ["m/True", "m/y"],
            "`true` and `True` are one value, `1` and `\"1\"` are not"
        );
    }

    #[test]
    fn indexes_keys_values_and_duplicates() {
        let text =
            "name: x\nstages:\n  a:\n    cmd: echo\n    deps: [one, two]\n  a:\n    cmd: b\n";
        let places = Places::new(text.to_string());
        assert_eq!(places.key("stages/a"), (3, 3));
        assert_eq!(places.value("stages/a/cmd"), (4, 10));
        assert_eq!(places.value("stages/a/deps/1"), (5, 17));
        assert_eq!(places.value("stages/a/deps/1/nothing/here"), (5, 17));
        let positions = places.index().unwrap();
        assert_eq!(positions.duplicates.len(), 1);
        assert_eq!(positions.duplicates[0].0, "stages/a");
        assert_eq!(positions.duplicates[0].1, (6, 3));
        assert_eq!(positions.duplicates[0].2, 3);
    }

    /// The index as it was built before places were looked up lazily: every variant's nodes
    /// copied under its name, a matrix value's place written over its param's. Kept here only
    /// to check that [`Places`] answers every lookup the same.
    struct Eager(Positions);

    impl Eager {
        fn alias(&mut self, from: &str, to: &str) {
            for map in [&mut self.0.keys, &mut self.0.values] {
                let copies: Vec<(NodePath, (usize, usize))> = map
                    .iter()
                    .filter_map(|(path, at)| {
                        let rest = path.strip_prefix(from)?;
                        (rest.is_empty() || rest.starts_with('/'))
                            .then(|| (format!("{to}{rest}"), *at))
                    })
                    .collect();
                map.extend(copies);
            }
        }

        fn place(&mut self, path: &str, at: (usize, usize)) {
            self.0.keys.insert(path.to_string(), at);
            self.0.values.insert(path.to_string(), at);
        }

        /// Falls back to the parent's value, as [`Places::key`] does since hostile input
        /// showed keys that are not indexed (an alias, a node too deep).
        fn key(&self, path: &str) -> (usize, usize) {
            if let Some(at) = self.0.key(path) {
                return at;
            }
            match path.rsplit_once('/') {
                Some((parent, _)) => self.value(parent),
                None => (1, 1),
            }
        }

        fn value(&self, path: &str) -> (usize, usize) {
            if let Some(at) = self.0.value(path) {
                return at;
            }
            match path.rsplit_once('/') {
                Some((parent, _)) => self.value(parent),
                None => (1, 1),
            }
        }
    }

    /// A generated stage: its name's number, its deps (block style when `true`), its params and
    /// its matrix (key → number of values).
    type GeneratedStage = (u8, Vec<String>, bool, Vec<(String, u8)>, Vec<(String, u8)>);

    fn pipeline_text(stages: &[GeneratedStage]) -> String {
        let mut text = String::from("name: p\nparams: { seed: 1 }\nstages:\n");
        for (name, deps, block, params, matrix) in stages {
            text += &format!("  s{name}:\n    cmd: echo {name}\n");
            if *block {
                text += "    deps:\n";
                deps.iter()
                    .for_each(|dep| text += &format!("      - {dep}\n"));
            } else {
                text += &format!("    deps: [{}]\n", deps.join(", "));
            }
            if !params.is_empty() {
                text += "    params:\n";
                for (key, value) in params {
                    text += &format!("      {key}: {{ nested: [{value}, {value}] }}\n");
                }
            }
            if !matrix.is_empty() {
                let axes: Vec<String> = (matrix.iter())
                    .map(|(key, count)| {
                        let values: Vec<String> = (0..*count).map(|v| v.to_string()).collect();
                        format!("{key}: [{}]", values.join(", "))
                    })
                    .collect();
                text += &format!("    matrix: {{ {} }}\n", axes.join(", "));
            }
        }
        text
    }

    fn generated_stages() -> impl Strategy<Value = Vec<GeneratedStage>> {
        let words = || proptest::collection::vec(("[a-c]", 1u8..4), 0..3);
        let unique = |pairs: Vec<(String, u8)>| {
            let mut seen = std::collections::BTreeMap::new();
            for (key, count) in pairs {
                seen.entry(key).or_insert(count);
            }
            seen.into_iter().collect::<Vec<_>>()
        };
        let stage = (
            0u8..20,
            proptest::collection::vec("[a-z]{1,6}(/[a-z]{1,4})?", 0..4),
            any::<bool>(),
            words().prop_map(unique),
            words().prop_map(unique),
        );
        proptest::collection::vec(stage, 1..6).prop_map(|mut stages| {
            let mut names = std::collections::BTreeSet::new();
            stages.retain(|stage| names.insert(stage.0));
            stages
        })
    }

    proptest::proptest! {
        /// Lazy places (variants redirected, matrix values placed by node) answer every lookup
        /// as the eager index with copied variants did.
        #[test]
        fn lazy_places_match_the_eager_index(stages in generated_stages()) {
            let text = pipeline_text(&stages);
            let mut places = Places::new(text.clone());
            let mut eager = Eager(Positions::index(&text).unwrap());
            for (name, _, _, _, matrix) in &stages {
                let prefix = format!("stages/s{name}");
                let Some((key, count)) = matrix.first() else {
                    continue;
                };
                for index in 0..*count {
                    let variant = format!("stages/s{name}@{key}={index}");
                    places.alias(&prefix, &variant);
                    eager.alias(&prefix, &variant);
                    let cell = format!("{prefix}/matrix/{key}/{index}");
                    let param = format!("{variant}/params/{key}");
                    places.place(&param, &cell);
                    let at = eager.value(&cell);
                    eager.place(&param, at);
                }
            }
            let indexed: Vec<NodePath> =
                eager.0.keys.keys().chain(eager.0.values.keys()).cloned().collect();
            for path in indexed {
                for query in [path.clone(), format!("{path}/deeper/still"), format!("{path}x")] {
                    prop_assert_eq!(places.key(&query), eager.key(&query), "key {}", query);
                    prop_assert_eq!(places.value(&query), eager.value(&query), "value {}", query);
                }
            }
        }
    }
}
