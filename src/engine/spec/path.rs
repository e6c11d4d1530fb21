//! Pipeline paths: written relative to the project folder, kept normalized (`a/./b/../c` →
//! `a/c`, `/`-separated) so that two spellings of one file compare equal and hash alike.

use std::collections::HashMap;
use std::hash::BuildHasher;

use hashbrown::{hash_table, HashTable};

/// Normalizes a relative path lexically; a leading `..` that leaves the project is kept.
/// Absolute paths stay absolute.
pub fn normalize(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|last| *last != "..") => {
                parts.pop();
            }
            ".." if absolute => {}
            _ => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Whether a normalized path stays strictly inside the project folder.
pub fn is_inside_project(normalized: &str) -> bool {
    !normalized.starts_with('/')
        && normalized != "."
        && normalized != ".."
        && !normalized.starts_with("../")
}

/// Whether `path` is `folder` or lies inside it.
pub fn is_within(path: &str, folder: &str) -> bool {
    path == folder || (path.starts_with(folder) && path[folder.len()..].starts_with('/'))
}

/// Whether one of the two paths is, or is inside, the other.
pub fn overlaps(a: &str, b: &str) -> bool {
    is_within(a, b) || is_within(b, a)
}

/// Paths, each with an id (a stage, a place in file order), to find the ids of those that
/// overlap a path ([`overlaps`]) in a few hash lookups: the path itself and its parent folders
/// by lookup in `exact`, the paths inside it in `inside`, where every path is listed under each
/// folder above it. (A `BTreeMap` range found those before: at 100,000 paths its O(log n)
/// string comparisons, a cache miss each, made planning grow faster than the stage count.)
///
/// `exact` holds 4-byte positions into `paths` rather than the paths and their ids: at 100,000
/// paths a table of `&str` keys and id lists takes ~5 MB, more than a core's L2 cache (1–2 MB),
/// and each lookup misses it; a table of positions takes ~0.5 MB. The paths themselves are read
/// only to confirm a match, and a pipeline's stages look them up in about the order they were
/// inserted (a stage reads the outputs of the stages just above it, usually), so those reads go
/// forwards through `paths`. Hashed with foldhash, as the stat cache is: std's SipHash costs
/// more than the lookup.
pub struct PathIndex<'p> {
    /// Every inserted path with its id, by position.
    paths: Vec<(&'p str, usize)>,
    /// Per position: the position of the same path inserted before it, if any (a path is rarely
    /// declared twice).
    earlier: Vec<Option<u32>>,
    /// The position of each distinct path's latest insertion, by the path's hash.
    exact: HashTable<u32>,
    inside: HashMap<&'p str, Vec<usize>, Hasher>,
    hasher: Hasher,
}

type Hasher = foldhash::fast::RandomState;

impl<'p> PathIndex<'p> {
    /// An index for about `paths` paths.
    pub fn with_capacity(paths: usize) -> Self {
        PathIndex {
            paths: Vec::with_capacity(paths),
            earlier: Vec::with_capacity(paths),
            exact: HashTable::with_capacity(paths),
            inside: HashMap::default(),
            hasher: Hasher::default(),
        }
    }

    pub fn insert(&mut self, path: &'p str, id: usize) {
        let position = u32::try_from(self.paths.len()).expect("fewer than 2^32 paths");
        let paths = &self.paths;
        let hasher = &self.hasher;
        let entry = self.exact.entry(
            hasher.hash_one(path),
            |&at| paths[at as usize].0 == path,
            |&at| hasher.hash_one(paths[at as usize].0),
        );
        let earlier = match entry {
            hash_table::Entry::Occupied(mut latest) => {
                Some(std::mem::replace(latest.get_mut(), position))
            }
            hash_table::Entry::Vacant(slot) => {
                slot.insert(position);
                None
            }
        };
        self.paths.push((path, id));
        self.earlier.push(earlier);
        for (at, _) in path.match_indices('/') {
            self.inside.entry(&path[..at]).or_default().push(id);
        }
    }

    /// The ids of the paths that overlap `path`, possibly repeated, in no particular order.
    pub fn overlapping<'s>(&'s self, path: &'s str) -> impl Iterator<Item = usize> + 's {
        let folders = path
            .match_indices('/')
            .map(|(at, _)| &path[..at])
            .filter(|folder| !folder.is_empty())
            .chain([path])
            .filter_map(|folder| self.latest(folder))
            .flat_map(|latest| {
                std::iter::successors(Some(latest), |&at| self.earlier[at as usize])
                    .map(|at| self.paths[at as usize].1)
            });
        let inside = self.inside.get(path).into_iter().flatten().copied();
        folders.chain(inside)
    }

    /// The position of `path`'s latest insertion.
    fn latest(&self, path: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(path);
        (self.exact)
            .find(hash, |&at| self.paths[at as usize].0 == path)
            .copied()
    }
}

/// Replaces every `${name}` in `text` using `lookup`; names it does not know are an error.
pub fn expand(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("unclosed `${{` in `{text}`"));
        };
        let name = &after[..end];
        match lookup(name) {
            Some(value) => out.push_str(&value),
            None => return Err(format!("unknown variable `${{{name}}}`")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Stand-ins for the braces of `${name}` while the YAML is parsed: `{` and `}` are flow
/// indicators, so `deps: [${model_path}/x]` would not parse. Private-use characters keep every
/// line and column where it was; [`unprotect`] puts the braces back.
const OPEN: char = '\u{E000}';
const CLOSE: char = '\u{E001}';

/// Replaces the braces of every `${name}` (name: letters, digits, `_`, `.`) by stand-ins.
pub fn protect_variables(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let name_length = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(after.len());
        if name_length > 0 && after[name_length..].starts_with('}') {
            out.push_str(&rest[..start]);
            out.push('$');
            out.push(OPEN);
            out.push_str(&after[..name_length]);
            out.push(CLOSE);
            rest = &after[name_length + 1..];
        } else {
            out.push_str(&rest[..start + 2]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Undoes [`protect_variables`] in one string.
pub fn unprotect(text: &str) -> String {
    text.replace(OPEN, "{").replace(CLOSE, "}")
}

/// [`unprotect`] in place: most texts hold no variable and stay as they are, unallocated.
pub fn unprotect_in_place(text: &mut String) {
    if text.contains([OPEN, CLOSE]) {
        *text = unprotect(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_finds_exactly_the_overlapping_paths() {
        let paths = [
            "out/a.txt",
            "out",
            "out/m/1",
            "out/m/10",
            "out/m1",
            "out/m/1/x",
            "data/src.txt",
            "out/a.txt",
            "/abs/f",
            "outer",
            "out0",
            "a",
            "a/b/c/d",
        ];
        let mut index = PathIndex::with_capacity(paths.len());
        for (id, path) in paths.iter().enumerate() {
            index.insert(path, id);
        }
        let queries = [
            "out",
            "out/m",
            "out/m/1",
            "out/m/1/x/y",
            "out/a.txt",
            "out/a",
            "ou",
            "outer/z",
            "data",
            "/abs",
            "/",
            "a/b",
            "a/b/c/d/e",
            "b",
            ".",
            "out0/q",
        ];
        for query in queries.iter().chain(&paths) {
            let mut found: Vec<usize> = index.overlapping(query).collect();
            found.sort_unstable();
            found.dedup();
            let expected: Vec<usize> = (0..paths.len())
                .filter(|&id| overlaps(paths[id], query))
                .collect();
            assert_eq!(found, expected, "{query}");
        }
    }

    #[test]
    fn normalizes_and_classifies() {
        assert_eq!(normalize("./a//b/../c/"), "a/c");
        assert_eq!(normalize("../x"), "../x");
        assert_eq!(normalize("a/../../x"), "../x");
        assert!(!is_inside_project(&normalize("a/../../x")));
        assert!(!is_inside_project("/etc/passwd"));
        assert!(is_inside_project("models/m/x.bin"));
        assert!(is_within("models/m/x", "models/m"));
        assert!(!is_within("models/mx", "models/m"));
    }

    #[test]
    fn protected_variables_keep_columns_and_come_back() {
        let text = "deps: [${model_path}/x, ${ not a var }]";
        let protected = protect_variables(text);
        assert_eq!(protected.chars().count(), text.chars().count());
        assert!(!protected.contains("${model_path}"));
        assert!(protected.contains("${ not a var }"));
        assert_eq!(unprotect(&protected), text);
    }

    #[test]
    fn expands_variables() {
        let lookup = |name: &str| (name == "model_path").then(|| "models/m".to_string());
        assert_eq!(expand("${model_path}/a", lookup).unwrap(), "models/m/a");
        assert!(expand("${nope}", lookup).unwrap_err().contains("`${nope}`"));
    }
}
