//! The layering the README's source layout promises, checked on the source text: the engine
//! (`src/engine/`) imports nothing of the recommender (`src/ml/`) or the CLI, the ML side
//! imports nothing of the CLI, and no two folders import each other, directly or around a
//! circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use petgraph::algo::tarjan_scc;
use petgraph::graph::DiGraph;

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// The unit a source file belongs to: `engine/<folder or file>`, `ml/<folder or file>`, `cli`.
fn unit_of(relative: &Path) -> Option<String> {
    let parts: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    match parts.as_slice() {
        [layer, rest @ ..] if (layer == "engine" || layer == "ml") && !rest.is_empty() => {
            Some(match rest.first().map(String::as_str) {
                Some("mod") => layer.clone(),
                Some(sub) => format!("{layer}/{sub}"),
                None => layer.clone(),
            })
        }
        [first, ..] if first == "cli" => Some("cli".to_string()),
        _ => None,
    }
}

/// Every unit a file's text names through `crate::…` paths (in code, `use` lines and doc links).
fn referenced_units(text: &str) -> BTreeSet<String> {
    let mut units = BTreeSet::new();
    for (start, _) in text.match_indices("crate::") {
        let path: String = text[start + "crate::".len()..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
        let unit = match parts.as_slice() {
            [layer, sub, ..] if *layer == "engine" || *layer == "ml" => {
                let leaf = sub.chars().next().is_some_and(char::is_lowercase);
                if leaf {
                    format!("{layer}/{sub}")
                } else {
                    layer.to_string()
                }
            }
            [layer] if *layer == "engine" || *layer == "ml" => layer.to_string(),
            [first, ..] if *first == "cli" => "cli".to_string(),
            _ => continue,
        };
        units.insert(unit);
    }
    assert!(
        !text.contains("crate::{"),
        "grouped `use crate::{{…}}` paths hide which folder is imported: name each path"
    );
    units
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("reading src") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// unit → the units it references (itself and its own layer root excluded).
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(Path::new(SRC), &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(SRC).expect("under src");
        let Some(unit) = unit_of(relative) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("reading a source file");
        let targets = graph.entry(unit.clone()).or_default();
        for target in referenced_units(&text) {
            if target != unit {
                targets.insert(target);
            }
        }
    }
    graph
}

#[test]
fn the_engine_imports_nothing_of_the_ml_side_or_the_cli() {
    let graph = import_graph();
    assert!(graph.keys().any(|unit| unit.starts_with("engine/")));
    for (unit, targets) in &graph {
        for target in targets {
            let forbidden = (unit.starts_with("engine")
                && (target.starts_with("ml") || target == "cli"))
                || (unit.starts_with("ml") && target == "cli");
            assert!(!forbidden, "`{unit}` imports `{target}`");
        }
    }
}

#[test]
fn no_two_folders_import_each_other_even_around_a_circle() {
    let graph = import_graph();
    let mut dag = DiGraph::<&str, ()>::new();
    let mut nodes = BTreeMap::new();
    for unit in graph.keys().chain(graph.values().flatten()) {
        nodes
            .entry(unit.as_str())
            .or_insert_with(|| dag.add_node(unit.as_str()));
    }
    for (unit, targets) in &graph {
        for target in targets {
            dag.add_edge(nodes[unit.as_str()], nodes[target.as_str()], ());
        }
    }
    let circles: Vec<Vec<&str>> = tarjan_scc(&dag)
        .into_iter()
        .filter(|component| component.len() > 1)
        .map(|component| component.into_iter().map(|node| dag[node]).collect())
        .collect();
    assert!(
        circles.is_empty(),
        "folders importing each other: {circles:?}"
    );
}

#[test]
fn the_check_sees_a_circle_when_there_is_one() {
    let units = referenced_units("use crate::engine::store::Store; // [`crate::ml::model`]");
    assert_eq!(
        units,
        BTreeSet::from(["engine/store".to_string(), "ml/model".to_string()])
    );
    assert_eq!(
        unit_of(Path::new("engine/spec/loader.rs")).as_deref(),
        Some("engine/spec")
    );
    assert_eq!(
        unit_of(Path::new("engine/files.rs")).as_deref(),
        Some("engine/files")
    );
    assert_eq!(unit_of(Path::new("ml/mod.rs")).as_deref(), Some("ml"));
}
