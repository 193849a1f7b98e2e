//! A small reader of Rust module paths, enough to build the module graph of `src/`.
//!
//! It understands `use` trees (`a::{b, c::{self, D as E}}`), inline `crate::`/`super::`/`self::`
//! paths, 2018-style `use child::Item` in a module that declares `child`, and root re-exports
//! (`pub use child::{Item}` in a `mod.rs`). It strips comments first, so a path in a doc comment
//! is not an edge. It does not expand macros.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module name → the modules it points to.
pub type Graph = BTreeMap<String, BTreeSet<String>>;

#[derive(Clone, Debug)]
pub struct SourceFile {
    /// Relative to `src/`, with `/` separators.
    pub path: String,
    pub text: String,
}

impl SourceFile {
    pub fn planted(path: &str, text: &str) -> SourceFile {
        SourceFile {
            path: path.to_string(),
            text: text.to_string(),
        }
    }

    /// Every `.rs` file under `root` except the binary's `main.rs`.
    pub fn read_tree(root: &Path) -> Vec<SourceFile> {
        let mut files = Vec::new();
        let mut pending = vec![root.to_path_buf()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).expect("src/ is readable") {
                let path = entry.expect("directory entry").path();
                if path.is_dir() {
                    pending.push(path);
                } else if path.extension().is_some_and(|ext| ext == "rs") {
                    let relative = path
                        .strip_prefix(root)
                        .expect("under src/")
                        .to_string_lossy()
                        .replace('\\', "/");
                    if relative != "main.rs" {
                        let text = std::fs::read_to_string(&path).expect("source is UTF-8");
                        files.push(SourceFile {
                            path: relative,
                            text,
                        });
                    }
                }
            }
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        files
    }

    /// The module path this file defines: `broker/forward/local.rs` → `[broker, forward, local]`.
    fn module(&self) -> Vec<String> {
        let stem = self.path.trim_end_matches(".rs");
        let mut parts: Vec<String> = stem.split('/').map(str::to_string).collect();
        if parts
            .last()
            .is_some_and(|last| last == "mod" || last == "lib")
        {
            parts.pop();
        }
        parts
    }
}

/// The top-level modules `lib.rs` declares.
pub fn top_modules(files: &[SourceFile]) -> BTreeSet<String> {
    let lib = files
        .iter()
        .find(|file| file.path == "lib.rs")
        .expect("src/lib.rs exists");
    declared_children(&strip_comments(&lib.text))
}

fn declared_children(text: &str) -> BTreeSet<String> {
    let mut children = BTreeSet::new();
    for statement in text.split(';') {
        let words: Vec<&str> = statement.split_whitespace().collect();
        if let Some(position) = words.iter().position(|word| *word == "mod") {
            if let Some(name) = words.get(position + 1) {
                if name.chars().all(is_ident_char) {
                    children.insert(name.to_string());
                }
            }
        }
    }
    children
}

/// Edges between top-level modules and between submodules of one top-level module, each with the
/// first file that made it.
#[derive(Debug, Default)]
pub struct CrateGraph {
    /// (from, to, the submodule of `to` the path names, if any) → evidence.
    pub cross: BTreeMap<(String, String, Option<String>), String>,
    pub inner: BTreeMap<String, BTreeMap<(String, String), String>>,
}

pub fn crate_graph(files: &[SourceFile]) -> CrateGraph {
    let modules: BTreeSet<Vec<String>> = files.iter().map(SourceFile::module).collect();
    let reexports = root_reexports(files, &modules);
    let mut graph = CrateGraph::default();
    for file in files {
        let from = file.module();
        let Some(from_top) = from.first() else {
            continue;
        };
        let from_sub = from.get(1);
        for path in paths_in(&without_test_module(&strip_comments(&file.text))) {
            let Some(target) = resolve(&from, &path, &modules) else {
                continue;
            };
            let Some(to_top) = target.first() else {
                continue;
            };
            if !modules.contains(&vec![to_top.clone()]) {
                continue;
            }
            let to_sub = submodule(&target, &modules, &reexports);
            let evidence = format!("src/{} uses {}", file.path, path.join("::"));
            if to_top != from_top {
                graph
                    .cross
                    .entry((from_top.clone(), to_top.clone(), to_sub))
                    .or_insert(evidence);
            } else if let (Some(from_sub), Some(to_sub)) = (from_sub, to_sub) {
                if *from_sub != to_sub {
                    graph
                        .inner
                        .entry(from_top.clone())
                        .or_default()
                        .entry((from_sub.clone(), to_sub))
                        .or_insert(evidence);
                }
            }
        }
    }
    graph
}

/// Every rule the graph breaks, one line each; empty when it keeps them all. A layer table
/// entry `module` allows all of it; `module::sub` allows only that submodule.
pub fn check(graph: &CrateGraph, layers: &[(&str, &[&str])]) -> Vec<String> {
    let allowed: BTreeMap<&str, &[&str]> = layers.iter().copied().collect();
    let mut violations = Vec::new();
    for ((from, to, to_sub), evidence) in &graph.cross {
        let Some(targets) = allowed.get(from.as_str()) else {
            violations.push(format!("{from} is not in the layer table ({evidence})"));
            continue;
        };
        let whole = targets.contains(&to.as_str());
        let part = to_sub
            .as_ref()
            .is_some_and(|sub| targets.contains(&format!("{to}::{sub}").as_str()));
        if !whole && !part {
            let named = match to_sub {
                Some(sub) => format!("{to} ({to}::{sub})"),
                None => to.clone(),
            };
            violations.push(format!("{from} -> {named} is not allowed ({evidence})"));
        }
    }
    for (top, edges) in &graph.inner {
        let mut inner: Graph = BTreeMap::new();
        for (from, to) in edges.keys() {
            inner.entry(from.clone()).or_default().insert(to.clone());
        }
        if let Some(cycle) = find_cycle(&inner) {
            let steps: Vec<String> = cycle
                .windows(2)
                .map(|pair| {
                    let evidence = &edges[&(pair[0].clone(), pair[1].clone())];
                    format!("{top}::{} -> {top}::{} ({evidence})", pair[0], pair[1])
                })
                .collect();
            violations.push(format!("cycle in {top}: {}", steps.join("; ")));
        }
    }
    violations
}

/// A cycle as a path that starts and ends at the same node, if the graph has one.
pub fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &Graph,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = stack
                    .iter()
                    .position(|n| n == node)
                    .expect("open is on stack");
                let mut cycle = stack[start..].to_vec();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.to_string(), Mark::Open);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, marks, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        marks.insert(node.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        let mut stack = Vec::new();
        if let Some(cycle) = visit(node, graph, &mut marks, &mut stack) {
            return Some(cycle);
        }
    }
    None
}

/// `(top, exported name)` → the submodule of `top` that defines it, from `pub use` in the root.
fn root_reexports(
    files: &[SourceFile],
    modules: &BTreeSet<Vec<String>>,
) -> BTreeMap<(String, String), String> {
    let mut map = BTreeMap::new();
    for file in files {
        let module = file.module();
        if module.len() != 1 {
            continue;
        }
        for (path, alias) in use_trees(&strip_comments(&file.text)) {
            let Some(target) = resolve(&module, &path, modules) else {
                continue;
            };
            if target.len() >= 3 && target[0] == module[0] {
                let child = vec![module[0].clone(), target[1].clone()];
                if modules.contains(&child) {
                    map.insert((module[0].clone(), alias), target[1].clone());
                }
            }
        }
    }
    map
}

fn submodule(
    target: &[String],
    modules: &BTreeSet<Vec<String>>,
    reexports: &BTreeMap<(String, String), String>,
) -> Option<String> {
    let name = target.get(1)?;
    if modules.contains(&vec![target[0].clone(), name.clone()]) {
        return Some(name.clone());
    }
    reexports.get(&(target[0].clone(), name.clone())).cloned()
}

/// The absolute module path a path in module `from` names, or `None` for another crate's path.
fn resolve(
    from: &[String],
    path: &[String],
    modules: &BTreeSet<Vec<String>>,
) -> Option<Vec<String>> {
    let first = path.first()?;
    let mut base: Vec<String> = from.to_vec();
    let mut rest = path;
    match first.as_str() {
        "crate" => {
            base.clear();
            rest = &path[1..];
        }
        "self" => rest = &path[1..],
        "super" => {
            while rest.first().is_some_and(|segment| segment == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        child => {
            let mut candidate = from.to_vec();
            candidate.push(child.to_string());
            if !modules.contains(&candidate) {
                return None;
            }
        }
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// Every path in `text`: the leaves of each `use` tree and each inline `crate::`, `super::` or
/// `self::` path outside them.
fn paths_in(text: &str) -> Vec<Vec<String>> {
    let mut paths: Vec<Vec<String>> = use_trees(text).into_iter().map(|(path, _)| path).collect();
    let rest = remove_use_statements(text);
    let bytes: Vec<char> = rest.chars().collect();
    for start in 0..bytes.len() {
        if start > 0 && (is_ident_char(bytes[start - 1]) || bytes[start - 1] == '$') {
            continue;
        }
        let tail: String = bytes[start..bytes.len().min(start + 7)].iter().collect();
        if !(tail.starts_with("crate::")
            || tail.starts_with("super::")
            || tail.starts_with("self::"))
        {
            continue;
        }
        let mut segments = Vec::new();
        let mut index = start;
        loop {
            let begin = index;
            while index < bytes.len() && is_ident_char(bytes[index]) {
                index += 1;
            }
            if begin == index {
                break;
            }
            segments.push(bytes[begin..index].iter().collect::<String>());
            if bytes.get(index) == Some(&':') && bytes.get(index + 1) == Some(&':') {
                index += 2;
            } else {
                break;
            }
        }
        if segments.len() >= 2 {
            paths.push(segments);
        }
    }
    paths
}

/// The statements of `text` that are `use` declarations, each expanded to (path, bound name).
fn use_trees(text: &str) -> Vec<(Vec<String>, String)> {
    let mut out = Vec::new();
    for (start, end) in use_statement_spans(text) {
        let body = &text[start..end];
        let tokens = tokenize(body);
        let mut position = 0;
        expand(&tokens, &mut position, Vec::new(), &mut out);
    }
    out
}

fn remove_use_statements(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (start, end) in use_statement_spans(text) {
        out.push_str(&text[last..start]);
        last = end;
    }
    out.push_str(&text[last..]);
    out
}

/// Byte spans of each `use` tree (after the keyword, up to the `;`).
fn use_statement_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut search = 0;
    while let Some(found) = text[search..].find("use") {
        let at = search + found;
        search = at + 3;
        let before = text[..at].chars().next_back();
        let after = text[at + 3..].chars().next();
        let starts_word = before.is_none_or(|c| !is_ident_char(c) && c != '$');
        if !starts_word || !after.is_some_and(char::is_whitespace) {
            continue;
        }
        if let Some(length) = text[at + 3..].find(';') {
            spans.push((at + 3, at + 3 + length));
            search = at + 3 + length;
        }
    }
    spans
}

fn tokenize(body: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = body.chars().collect();
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        if is_ident_char(c) {
            let begin = index;
            while index < chars.len() && is_ident_char(chars[index]) {
                index += 1;
            }
            tokens.push(chars[begin..index].iter().collect());
            continue;
        }
        if c == ':' && chars.get(index + 1) == Some(&':') {
            tokens.push("::".to_string());
            index += 2;
            continue;
        }
        if matches!(c, '{' | '}' | ',' | '*') {
            tokens.push(c.to_string());
        }
        index += 1;
    }
    tokens
}

/// Expands one use tree at `tokens[*position..]` under `prefix`, pushing (path, bound name).
/// `tree := '{' tree (',' tree)* '}' | '*' | segment ('::' tree)? ('as' name)?`
fn expand(
    tokens: &[String],
    position: &mut usize,
    prefix: Vec<String>,
    out: &mut Vec<(Vec<String>, String)>,
) {
    let Some(token) = tokens.get(*position) else {
        return;
    };
    *position += 1;
    match token.as_str() {
        "{" => {
            while let Some(next) = tokens.get(*position) {
                match next.as_str() {
                    "}" => {
                        *position += 1;
                        return;
                    }
                    "," => *position += 1,
                    _ => expand(tokens, position, prefix.clone(), out),
                }
            }
        }
        "*" => {
            if !prefix.is_empty() {
                out.push((prefix, "*".to_string()));
            }
        }
        "self" if !prefix.is_empty() => {
            let bound = bound_name(tokens, position, prefix.last().expect("not empty"));
            out.push((prefix, bound));
        }
        segment => {
            let mut path = prefix;
            path.push(segment.to_string());
            if tokens.get(*position).map(String::as_str) == Some("::") {
                *position += 1;
                expand(tokens, position, path, out);
            } else {
                let bound = bound_name(tokens, position, segment);
                out.push((path, bound));
            }
        }
    }
}

/// The name a use leaf binds: its alias after `as`, else its last segment.
fn bound_name(tokens: &[String], position: &mut usize, last: &str) -> String {
    if tokens.get(*position).map(String::as_str) == Some("as") {
        if let Some(alias) = tokens.get(*position + 1) {
            *position += 2;
            return alias.clone();
        }
    }
    last.to_string()
}

/// `text` up to its in-file unit tests (`#[cfg(test)] mod tests`, last in a file by the house
/// style): tests may reach anything in their crate, so they are not edges of the module graph.
fn without_test_module(text: &str) -> String {
    let compact: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match compact.find("#[cfg(test)] mod tests {") {
        Some(at) => compact[..at].to_string(),
        None => compact,
    }
}

/// `text` without comments and without the contents of string literals.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let mut index = 0;
    let mut in_string = false;
    while index < chars.len() {
        let c = chars[index];
        if in_string {
            // A string's contents are dropped: "use ..." in a message is not an import.
            if c == '\\' {
                index += 1;
            } else if c == '"' {
                in_string = false;
                out.push(c);
            }
            index += 1;
            continue;
        }
        if c == '"' && index > 0 && chars[index - 1] == '\'' {
            out.push(c);
            index += 1;
            continue;
        }
        if c == '"' {
            in_string = true;
            out.push(c);
            index += 1;
            continue;
        }
        if c == '/' && chars.get(index + 1) == Some(&'/') {
            while index < chars.len() && chars[index] != '\n' {
                index += 1;
            }
            continue;
        }
        if c == '/' && chars.get(index + 1) == Some(&'*') {
            index += 2;
            while index + 1 < chars.len() && !(chars[index] == '*' && chars[index + 1] == '/') {
                index += 1;
            }
            index += 2;
            continue;
        }
        out.push(c);
        index += 1;
    }
    out
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}
