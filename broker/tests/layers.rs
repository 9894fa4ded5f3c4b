//! The broker's modules form layers, and every import points down.
//!
//! The order (docs/architecture.md draws it):
//!
//! ```text
//! server, config, http            the process: wires everything
//! kafka                           the Kafka listener (calls the coordinators)
//! txn | share                     the transaction coordinator; share-group
//!                                 partitions at their leaders
//! group | grpc | cluster          coordinator; gRPC adapters; the link to the cluster
//! partition                       the data path: produce, fetch, acks, topics
//! replication | security          leader/follower state without I/O; who a
//! | quota                         connection is and what it may do; client
//!                                 quotas
//! log                             storage
//! metrics                         counters every layer updates
//! ```
//!
//! This test reads `broker/src` and fails when a file names a module of its
//! own layer or of a layer above it (`crate::x` or `super::x` paths, outside
//! comments and `#[cfg(test)]` code), or when files import each other in a
//! circle. A new top-level module must be given a layer here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module of `rill-broker` and its layer (higher may import
/// lower). Modules of one layer do not import each other.
const LAYERS: &[(&str, u32)] = &[
    ("metrics", 0),
    ("log", 1),
    ("replication", 2),
    ("partition", 3),
    ("group", 4),
    ("grpc", 4),
    ("cluster", 4),
    ("security", 2),
    ("quota", 2),
    ("txn", 5),
    ("share", 5),
    ("kafka", 6),
    ("config", 7),
    ("http", 7),
    ("server", 8),
    ("lib", 9),
    ("main", 9),
];

fn layer(module: &str) -> Option<u32> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// A file's source with comments, string literals and `#[cfg(test)]` items
/// removed.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut skip_depth: Option<i32> = None;
    let mut depth = 0i32;
    let mut pending_test = false;
    for raw in text.lines() {
        let line = match raw.find("//") {
            Some(i) => &raw[..i],
            None => raw,
        };
        let trimmed = line.trim();
        if skip_depth.is_none() && trimmed.starts_with("#[cfg(test)]") {
            pending_test = true;
            continue;
        }
        let opens = line.matches('{').count() as i32;
        let closes = line.matches('}').count() as i32;
        if pending_test && skip_depth.is_none() {
            if trimmed.ends_with(';') && opens == 0 {
                // `#[cfg(test)] mod tests;` or a one-line item.
                pending_test = false;
                continue;
            }
            if opens > 0 {
                skip_depth = Some(depth);
                pending_test = false;
            }
        }
        depth += opens - closes;
        if let Some(d) = skip_depth {
            if depth <= d {
                skip_depth = None;
            }
            continue;
        }
        if pending_test {
            continue;
        }
        // Drop string literals (log messages may say "crate::").
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

/// The first path segments named after `prefix` (`crate::` or `super::`)
/// in `code`, including each member of a `{...}` group.
fn first_segments(code: &str, prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            let mut items = Vec::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => {
                        items.push(std::mem::take(&mut item));
                        continue;
                    }
                    _ => {}
                }
                if depth >= 1 {
                    item.push(c);
                }
            }
            items.push(item);
            for it in items {
                let seg: String = it
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !seg.is_empty() {
                    found.push(seg);
                }
            }
        } else {
            let seg: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !seg.is_empty() {
                found.push(seg);
            }
        }
    }
    found
}

/// `broker/src` relative paths of the library's source files, without test
/// files and the `rill` CLI binary.
fn sources(dir: &Path, root: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read broker/src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "bin") {
                continue;
            }
            sources(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            if name == "tests" || name == "proptests" || name.ends_with("_tests") {
                continue;
            }
            out.push(path.strip_prefix(root).expect("under src").to_owned());
        }
    }
}

/// The unit a file belongs to for the circle check: its top-level module
/// and, below that, the file or folder directly inside it (`partition/
/// replica.rs` -> `partition/replica`, `partition/mod.rs` -> `partition`).
fn unit_of(rel: &Path) -> String {
    let parts: Vec<String> = rel
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    match parts.as_slice() {
        [one] => one.clone(),
        [top, rest @ ..] if rest.len() == 1 && rest[0] == "mod" => top.clone(),
        [top, second, ..] => format!("{top}/{second}"),
        [] => unreachable!(),
    }
}

/// Resolves the target of `crate::a::b...` (given `a` and `b`) to a unit.
fn unit_of_path(src: &Path, top: &str, second: Option<&str>) -> String {
    if let Some(s) = second
        && (src.join(top).join(format!("{s}.rs")).exists() || src.join(top).join(s).is_dir())
    {
        return format!("{top}/{s}");
    }
    top.to_owned()
}

struct Edges {
    /// (importing file, imported top-level module) pairs that point up or
    /// sideways.
    upward: Vec<String>,
    /// unit -> units it imports.
    graph: BTreeMap<String, BTreeSet<String>>,
}

fn read_edges() -> Edges {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &src, &mut files);
    files.sort();
    let mut upward = Vec::new();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for rel in &files {
        let text = std::fs::read_to_string(src.join(rel)).expect("read source");
        let code = code_of(&text);
        let top = rel
            .iter()
            .next()
            .and_then(|p| Path::new(p).file_stem())
            .map(|s| s.to_string_lossy().into_owned())
            .expect("a file name");
        let Some(own) = layer(&top) else {
            upward.push(format!(
                "{}: module `{top}` has no layer in broker/tests/layers.rs",
                rel.display()
            ));
            continue;
        };
        let unit = unit_of(rel);
        let entry = graph.entry(unit.clone()).or_default();
        // `crate::x::y`: x must be below (or x itself).
        for (i, seg) in first_segments(&code, "crate::").iter().enumerate() {
            let _ = i;
            if *seg == top {
                continue;
            }
            match layer(seg) {
                Some(l) if l < own => {}
                Some(l) => upward.push(format!(
                    "{} (layer {own}, `{top}`) imports `crate::{seg}` (layer {l})",
                    rel.display()
                )),
                None => continue, // an item re-exported at the crate root
            }
        }
        // File-level graph inside and across modules, for circles.
        let mut rest = code.as_str();
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let path: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let mut segs = path.split("::").filter(|s| !s.is_empty());
            if let Some(a) = segs.next()
                && layer(a).is_some()
            {
                let target = unit_of_path(&src, a, segs.next());
                if target != unit {
                    entry.insert(target);
                }
            }
        }
        // `super::x` from a file inside a module folder names a sibling.
        let parent_dir = rel.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(dir) = parent_dir {
            let is_mod = rel.file_stem().is_some_and(|s| s == "mod");
            if !is_mod && dir.iter().count() == 1 {
                let top_dir = dir.to_string_lossy().into_owned();
                for seg in first_segments(&code, "super::") {
                    let target = unit_of_path(&src, &top_dir, Some(&seg));
                    if target != unit {
                        entry.insert(target);
                    }
                }
            }
        }
    }
    Edges { upward, graph }
}

/// Strongly connected components of more than one unit (Tarjan).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        if let Some(ws) = s.graph.get(v) {
            for w in ws {
                let w = w.as_str();
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let lw = s.low[w];
                    let lv = s.low[v];
                    s.low.insert(v, lv.min(lw));
                } else if s.on_stack.contains(w) {
                    let iw = s.index[w];
                    let lv = s.low[v];
                    s.low.insert(v, lv.min(iw));
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v.as_str());
        }
    }
    s.out
}

#[test]
fn given_the_broker_sources_then_every_import_points_to_a_lower_layer() {
    let edges = read_edges();
    assert!(
        edges.upward.is_empty(),
        "imports that point up or sideways:\n  {}",
        edges.upward.join("\n  ")
    );
}

#[test]
fn given_the_broker_sources_then_no_files_import_each_other_in_a_circle() {
    let edges = read_edges();
    let found = circles(&edges.graph);
    assert!(
        found.is_empty(),
        "files that import each other in a circle:\n  {}",
        found
            .iter()
            .map(|c| c.join(" <-> "))
            .collect::<Vec<_>>()
            .join("\n  ")
    );
}

#[test]
fn given_known_import_shapes_then_the_reader_finds_their_modules() {
    // The checks above are only as good as this reader: it must see
    // grouped, nested and plain paths, and ignore comments, strings and
    // test code.
    let code = code_of(
        "use crate::{log::Log, metrics::{self, Metrics}};\n\
         use crate::partition::Partition;\n\
         // use crate::server::Broker;\n\
         let s = \"crate::kafka\";\n\
         #[cfg(test)]\n\
         mod tests {\n    use crate::group::Coordinator;\n}\n\
         fn f() { crate::replication::leader::x(); }\n",
    );
    assert_eq!(
        first_segments(&code, "crate::"),
        vec!["log", "metrics", "partition", "replication"]
    );
    let mut g = BTreeMap::new();
    g.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    g.insert("b".to_owned(), BTreeSet::from(["a".to_owned()]));
    g.insert("c".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert_eq!(circles(&g), vec![vec!["a".to_owned(), "b".to_owned()]]);
}
