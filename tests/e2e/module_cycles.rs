//! No import cycles between the modules of any crate (issue 16 item 6): a
//! reader can take a module and everything it uses without taking back the
//! module that uses it.
//!
//! Rust compiles cycles between modules of one crate, so nothing else would
//! catch them. This reads every crate's sources (tests excluded), takes the
//! `crate::…` and `super::…` paths each module names outside comments and
//! `#[cfg(test)] mod tests`, resolves each to the longest module path that
//! exists, and fails on any strongly connected set of two or more modules.
//! Hand-written: it needs paths, not a Rust parser (syn would bring a
//! dependency for what a few string scans do).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every crate's sources, from the workspace root.
const CRATES: &[&str] = &[
    "idp/src",
    "services/guard/src",
    "services/platform/src",
    "services/shop/src",
    "services/gateway/src",
    "services/order/src",
    "services/payment/src",
    "services/inventory/src",
    "tests/launch/src",
    "bench/src",
    "tests/e2e",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A file's module path (`http::login`; the crate root, `lib.rs` or
/// `main.rs`, is `""`; `a/mod.rs` is `a`).
fn module_of(root: &Path, file: &Path) -> String {
    let rel = file
        .strip_prefix(root)
        .expect("under the root")
        .with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts.join("::")
}

/// The code of a file without comments and without its unit tests.
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths after each `prefix` (`crate::` or `super::`) in `code`, with
/// `a::{b, c::d}` groups expanded one level.
fn paths_after(code: &str, prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    for (at, _) in code.match_indices(prefix) {
        if code[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let rest = &code[at + prefix.len()..];
        let path: String = rest.chars().take_while(|c| ident(*c)).collect();
        let after = &rest[path.len()..];
        if path.ends_with("::") && after.starts_with('{') {
            let group = after[1..].split('}').next().unwrap_or("");
            for item in group.split(',') {
                let item: String = item.trim().chars().take_while(|c| ident(*c)).collect();
                found.push(format!("{path}{item}"));
            }
        } else {
            found.push(path);
        }
    }
    found
}

/// The longest module of `modules` that `path` (segments) starts with.
fn resolve(modules: &BTreeSet<String>, base: &[&str], path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    (1..=segments.len()).rev().find_map(|n| {
        let full: Vec<&str> = base
            .iter()
            .copied()
            .chain(segments[..n].iter().copied())
            .collect();
        let name = full.join("::");
        modules.contains(&name).then_some(name)
    })
}

/// The module graph of one crate: module → the modules it names.
fn graph(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(root, f)).collect();
    let mut graph = BTreeMap::new();
    for file in &files {
        let name = module_of(root, file);
        let code = code_of(&std::fs::read_to_string(file).expect("a readable source"));
        let own: Vec<&str> = name.split("::").filter(|s| !s.is_empty()).collect();
        // `super` of `a::b` is `a`, whether in `a/b.rs` or `a/b/mod.rs`.
        let parent = &own[..own.len().saturating_sub(1)];
        let mut uses = BTreeSet::new();
        for path in paths_after(&code, "crate::") {
            uses.extend(resolve(&modules, &[], &path));
        }
        for path in paths_after(&code, "super::") {
            uses.extend(resolve(&modules, parent, &path));
        }
        // A module naming its parent or its children is nesting, not use.
        uses.retain(|m: &String| {
            m != &name
                && !name.starts_with(&format!("{m}::"))
                && !m.starts_with(&format!("{name}::"))
                && !m.is_empty()
                && !name.is_empty()
        });
        graph.insert(name, uses);
    }
    graph
}

/// The strongly connected sets of two or more modules (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(w: &mut Walk<'a>, v: &'a str) {
        let n = w.index.len();
        w.index.insert(v, n);
        w.low.insert(v, n);
        w.stack.push(v);
        for next in w.graph.get(v).into_iter().flatten() {
            let next = next.as_str();
            if !w.graph.contains_key(next) {
                continue;
            }
            if !w.index.contains_key(next) {
                visit(w, next);
                let low = w.low[v].min(w.low[next]);
                w.low.insert(v, low);
            } else if w.stack.contains(&next) {
                let low = w.low[v].min(w.index[next]);
                w.low.insert(v, low);
            }
        }
        if w.low[v] == w.index[v] {
            let mut set = Vec::new();
            while let Some(m) = w.stack.pop() {
                set.push(m.to_owned());
                if m == v {
                    break;
                }
            }
            if set.len() > 1 {
                set.sort();
                w.found.push(set);
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            visit(&mut walk, v);
        }
    }
    walk.found
}

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut found = Vec::new();
    for krate in CRATES {
        let graph = graph(&workspace.join(krate));
        assert!(graph.len() > 1, "{krate}: no modules read");
        found.extend(
            cycles(&graph)
                .into_iter()
                .map(|c| format!("{krate}: {}", c.join(" ↔ "))),
        );
    }
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

#[test]
fn the_check_sees_a_cycle() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", &["b"][..]),
        ("b", &["c"][..]),
        ("c", &["a"][..]),
        ("d", &["a"][..]),
    ]
    .into_iter()
    .map(|(m, uses)| (m.to_owned(), uses.iter().map(|u| (*u).to_owned()).collect()))
    .collect();
    assert_eq!(cycles(&graph), vec![vec!["a", "b", "c"]]);
    let code = code_of(
        "use crate::http::{login, second_factor::next_step};\n// crate::ignored\nlet x = super::peer::addr();",
    );
    assert_eq!(
        paths_after(&code, "crate::"),
        vec!["http::login", "http::second_factor::next_step"]
    );
    assert_eq!(paths_after(&code, "super::"), vec!["peer::addr"]);
}
