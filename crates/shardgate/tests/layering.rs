//! The dependency direction, checked against the code:
//!
//! - across crates, Cargo holds it (`resp`, `keyspace` <- `shardgate-core`
//!   <- `shardgate-tls` <- `shardgate-backend` <- `shardgate`);
//! - inside each crate, no module cycle: wherever a module names another
//!   (`crate::a::b`, `super::x`), the two siblings that contain them (the
//!   children of their closest common ancestor) get an edge, and this
//!   graph must have no cycle, at any level. A module naming its own
//!   ancestor or descendant is not an edge (a child using its parent's
//!   items, a parent re-exporting its children's, is how modules are
//!   built);
//! - docs/architecture.md shows each crate's top-level module graph exactly
//!   as this test computes it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const CRATES: &[(&str, &str)] = &[
    ("shardgate-resp", "../resp/src"),
    ("shardgate-keyspace", "../keyspace/src"),
    ("shardgate-core", "../core/src"),
    ("shardgate-tls", "../tls/src"),
    ("shardgate-backend", "../backend/src"),
    ("shardgate", "src"),
];

/// A module path, e.g. `["frontend", "session", "dispatch"]` (the crate
/// root is `[]`).
type Module = Vec<String>;

fn module_of(root: &Path, file: &Path) -> Module {
    let relative = file.strip_prefix(root).expect("under the crate root");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts
        .last()
        .is_some_and(|p| p == "mod" || p == "lib" || p == "main")
    {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            // Test modules in their own files may use anything.
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            if name != "tests.rs" && !name.ends_with("_tests.rs") {
                out.push(path);
            }
        }
    }
}

/// The code of a file without comments (doc links are not dependencies)
/// and without its `#[cfg(test)] mod tests { ... }` (tests may use
/// anything).
fn code(text: &str) -> String {
    let without_comments: String = text
        .lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut code = without_comments.as_str().to_string();
    while let Some(start) = code.find("#[cfg(test)]\nmod tests") {
        let Some(open) = code[start..].find('{').map(|i| start + i) else {
            break;
        };
        let mut depth = 0usize;
        let mut end = code.len();
        for (i, c) in code[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        code.replace_range(start..end, "");
    }
    code
}

/// Every path in `code` that starts with `crate::` or `super::`, resolved
/// to the longest known module it names.
fn references(code: &str, here: &Module, modules: &BTreeSet<Module>) -> BTreeSet<Module> {
    let mut found = BTreeSet::new();
    let bytes = code.as_bytes();
    for (start, _) in code
        .match_indices("crate::")
        .chain(code.match_indices("super::"))
    {
        // A whole word: not `shardgate_crate::`.
        if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
            continue;
        }
        let path: String = code[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':' || *c == '{')
            .collect();
        let mut segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        let mut base: Module = Vec::new();
        match segments.first() {
            Some(&"crate") => {
                segments.remove(0);
            }
            _ => {
                base = here.clone();
                while segments.first() == Some(&"super") {
                    segments.remove(0);
                    base.pop();
                }
            }
        }
        let mut target = base;
        for segment in segments {
            let segment = segment.trim_start_matches('{');
            let mut next = target.clone();
            next.push(segment.to_string());
            if modules.contains(&next) {
                target = next;
            } else {
                break;
            }
        }
        found.insert(target);
    }
    found
}

fn related(a: &Module, b: &Module) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

struct Graph {
    edges: BTreeMap<Module, BTreeSet<Module>>,
}

impl Graph {
    fn of(crate_dir: &Path) -> Graph {
        let mut files = Vec::new();
        rust_files(crate_dir, &mut files);
        let modules: BTreeSet<Module> = files.iter().map(|f| module_of(crate_dir, f)).collect();
        let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
        for file in &files {
            let here = module_of(crate_dir, file);
            let text = std::fs::read_to_string(file).expect("read source");
            for target in references(&code(&text), &here, &modules) {
                if related(&here, &target) {
                    continue;
                }
                // The siblings under the closest common ancestor.
                let common = here.iter().zip(&target).take_while(|(a, b)| a == b).count();
                let from = here[..=common].to_vec();
                let to = target[..=common].to_vec();
                edges.entry(to.clone()).or_default();
                edges.entry(from).or_default().insert(to);
            }
        }
        Graph { edges }
    }

    /// The strongly connected components with more than one module.
    fn cycles(&self) -> Vec<Vec<Module>> {
        // Tarjan's algorithm, iteratively small enough to be recursive here.
        struct State<'a> {
            graph: &'a Graph,
            index: BTreeMap<&'a Module, usize>,
            low: BTreeMap<&'a Module, usize>,
            stack: Vec<&'a Module>,
            on_stack: BTreeSet<&'a Module>,
            next: usize,
            found: Vec<Vec<Module>>,
        }
        fn visit<'a>(s: &mut State<'a>, v: &'a Module) {
            s.index.insert(v, s.next);
            s.low.insert(v, s.next);
            s.next += 1;
            s.stack.push(v);
            s.on_stack.insert(v);
            let targets: Vec<&'a Module> = s.graph.edges.get(v).into_iter().flatten().collect();
            for w in targets {
                if !s.graph.edges.contains_key(w) {
                    continue;
                }
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let low = s.low[w].min(s.low[v]);
                    s.low.insert(v, low);
                } else if s.on_stack.contains(w) {
                    let low = s.index[w].min(s.low[v]);
                    s.low.insert(v, low);
                }
            }
            if s.low[v] == s.index[v] {
                let mut component = Vec::new();
                while let Some(w) = s.stack.pop() {
                    s.on_stack.remove(w);
                    component.push(w.clone());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    s.found.push(component);
                }
            }
        }
        let mut state = State {
            graph: self,
            index: BTreeMap::new(),
            low: BTreeMap::new(),
            stack: Vec::new(),
            on_stack: BTreeSet::new(),
            next: 0,
            found: Vec::new(),
        };
        for v in self.edges.keys() {
            if !state.index.contains_key(v) {
                visit(&mut state, v);
            }
        }
        state.found
    }

    /// Top-level modules and the top-level modules each one uses.
    fn top_level(&self, modules: &BTreeSet<Module>) -> BTreeMap<String, BTreeSet<String>> {
        let mut top: BTreeMap<String, BTreeSet<String>> = modules
            .iter()
            .filter(|m| m.len() == 1)
            .map(|m| (m[0].clone(), BTreeSet::new()))
            .collect();
        for (from, targets) in &self.edges {
            if from.len() != 1 {
                continue;
            }
            for target in targets {
                top.entry(from[0].clone())
                    .or_default()
                    .insert(target[0].clone());
            }
        }
        top
    }
}

fn name(module: &Module) -> String {
    if module.is_empty() {
        "(crate root)".into()
    } else {
        module.join("::")
    }
}

/// The text docs/architecture.md must carry between its markers.
fn documented_graph() -> String {
    let mut text = String::new();
    for (krate, dir) in CRATES {
        let graph = Graph::of(Path::new(dir));
        let mut files = Vec::new();
        rust_files(Path::new(dir), &mut files);
        let modules = files.iter().map(|f| module_of(Path::new(dir), f)).collect();
        text.push_str(&format!("{krate}\n"));
        for (module, uses) in graph.top_level(&modules) {
            let uses: Vec<&str> = uses.iter().map(String::as_str).collect();
            if uses.is_empty() {
                text.push_str(&format!("  {module}\n"));
            } else {
                text.push_str(&format!("  {module} -> {}\n", uses.join(", ")));
            }
        }
    }
    text
}

#[test]
fn no_crate_has_a_module_cycle() {
    let mut report = String::new();
    for (krate, dir) in CRATES {
        for cycle in Graph::of(Path::new(dir)).cycles() {
            let names: Vec<String> = cycle.iter().map(name).collect();
            report.push_str(&format!("{krate}: {}\n", names.join(" <-> ")));
        }
    }
    assert!(report.is_empty(), "module cycles:\n{report}");
}

#[test]
fn the_architecture_doc_shows_the_real_module_graph() {
    const BEGIN: &str =
        "<!-- module graph: generated by crates/shardgate/tests/layering.rs -->\n```text\n";
    const END: &str = "```\n<!-- end of module graph -->";
    let doc = std::fs::read_to_string("../../docs/architecture.md").expect("docs/architecture.md");
    let actual = documented_graph();
    let shown = doc
        .find(BEGIN)
        .and_then(|at| {
            let rest = &doc[at + BEGIN.len()..];
            rest.find(END).map(|end| &rest[..end])
        })
        .unwrap_or_default();
    assert_eq!(
        shown, actual,
        "docs/architecture.md must show this graph between its markers:\n{BEGIN}{actual}{END}"
    );
}
