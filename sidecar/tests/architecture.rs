//! The sidecar's structure, checked: dependencies between its modules run one
//! way (no import cycle), no module keeps process-wide mutable state, and
//! `unsafe` lives in `sys.rs` alone.
//!
//! Read from the source text: a module depends on another when it names it
//! (`crate::x`, or `super::x` inside a folder module). Run with
//! `cargo test -p nfguard-sidecar --test architecture`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    files
        .into_iter()
        .filter(|p| !p.starts_with(src.join("bin")))
        .map(|p| {
            let rel = p.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
            (rel, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

/// The module a source file is: `supervisor/files.rs` -> `supervisor::files`,
/// `supervisor/mod.rs` -> `supervisor`, `outside.rs` -> `outside`.
fn module_of(rel: &str) -> String {
    let m = rel.trim_end_matches(".rs").replace('/', "::");
    m.trim_end_matches("::mod").to_string()
}

/// Code without comments and string literals (enough for this check: a
/// module named in a comment is no dependency).
fn code(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let line = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        let mut in_str = false;
        let mut prev = ' ';
        for c in line.chars() {
            if c == '"' && prev != '\\' {
                in_str = !in_str;
            } else if !in_str {
                out.push(c);
            }
            prev = c;
        }
        out.push('\n');
    }
    out
}

/// Everything before the first `#[cfg(test)]`: unit tests may name anything.
fn without_tests(text: &str) -> &str {
    match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    }
}

#[test]
fn module_dependencies_run_one_way() {
    let files = sources();
    let modules: BTreeSet<String> = files.iter().map(|(r, _)| module_of(r)).collect();
    // The dependency graph at the level the layers are drawn: top-level
    // modules, and the supervisor's own layers.
    let unit = |m: &str| -> String {
        let parts: Vec<&str> = m.split("::").collect();
        if parts[0] == "supervisor" && parts.len() > 1 {
            format!("supervisor::{}", parts[1])
        } else {
            parts[0].to_string()
        }
    };
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, text) in &files {
        let me = module_of(rel);
        if me == "lib" {
            continue;
        }
        let from = unit(&me);
        let body = code(without_tests(text));
        let parent = me.rsplit_once("::").map(|(p, _)| p.to_string());
        let mut named = Vec::new();
        for (prefix, base) in [("crate::", None), ("super::", parent.clone())] {
            let mut rest = body.as_str();
            while let Some(i) = rest.find(prefix) {
                rest = &rest[i + prefix.len()..];
                let word: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                let first = word.split("::").next().unwrap_or("");
                let target = match &base {
                    None => first.to_string(),
                    Some(b) => format!("{b}::{first}"),
                };
                named.push(target);
            }
        }
        // `use super::{a, b}` and `use crate::{a, b}` lists.
        for (prefix, base) in [("crate::{", None), ("super::{", parent.clone())] {
            let mut rest = body.as_str();
            while let Some(i) = rest.find(prefix) {
                rest = &rest[i + prefix.len()..];
                let list: String = rest.chars().take_while(|c| *c != '}').collect();
                for item in list.split(',') {
                    let first = item.trim().split("::").next().unwrap_or("").to_string();
                    if first.is_empty() {
                        continue;
                    }
                    named.push(match &base {
                        None => first,
                        Some(b) => format!("{b}::{first}"),
                    });
                }
            }
        }
        // A folder module names its children by their bare names (`inspect::x`).
        if rel.ends_with("mod.rs") {
            for m in modules.iter().filter(|m| m.starts_with(&format!("{me}::"))) {
                let child = &m[me.len() + 2..];
                if !child.contains("::") && body.contains(&format!("{child}::")) {
                    named.push(m.clone());
                }
            }
        }
        for target in named {
            if modules.contains(&target) {
                let to = unit(&target);
                if to != from {
                    graph.entry(from.clone()).or_default().insert(to);
                }
            }
        }
    }
    // A cycle is a path back to where it started: depth-first search.
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut c = path[i..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for next in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        if let Some(cycle) = visit(n, &graph, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
    // The graph is not empty: the check reads what it should.
    assert!(graph
        .get("supervisor")
        .is_some_and(|d| d.contains("supervisor::inspect")));
    assert!(graph.get("fanout").is_some_and(|d| d.contains("event")));
}

#[test]
fn no_module_keeps_process_wide_mutable_state() {
    for (rel, text) in sources() {
        if rel == "sys.rs" {
            continue;
        }
        for (n, line) in code(without_tests(&text)).lines().enumerate() {
            let l = line.trim_start();
            let is_static = l.starts_with("static ") || l.starts_with("pub static ");
            let mutable = ["mut ", "Mutex", "RwLock", "Atomic", "OnceLock", "Cell"]
                .iter()
                .any(|w| l.contains(w));
            assert!(
                !(is_static && mutable),
                "{rel}:{}: process-wide mutable state: {l}",
                n + 1
            );
        }
    }
}

#[test]
fn unsafe_code_lives_in_sys_alone() {
    for (rel, text) in sources() {
        if rel == "sys.rs" {
            continue;
        }
        let c = code(&text);
        for (n, line) in c.lines().enumerate() {
            let words: Vec<&str> = line
                .split(|ch: char| !(ch.is_alphanumeric() || ch == '_'))
                .collect();
            assert!(
                !words.contains(&"unsafe"),
                "{rel}:{}: unsafe outside sys.rs: {}",
                n + 1,
                line.trim()
            );
        }
    }
}
