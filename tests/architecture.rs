//! The module graph of `src/` follows the layer table of `docs/architecture.md`.
//!
//! Reads every source file, collects each `crate::` and `super::` path (in `use` trees and inline),
//! and checks two rules:
//! - between top-level modules, every edge is one the layer table allows (and the table itself is
//!   acyclic, so the layers have an order);
//! - inside a top-level module, the edges between its direct submodules form no cycle. A module's
//!   root file (`mod.rs`) declares and re-exports; a path through one of its re-exports counts as
//!   an edge to the submodule that defines the item.
//!
//! Both checkers are first run on planted sources that break them.

mod architecture_support;

use architecture_support::{check, crate_graph, Graph, SourceFile};
use std::path::Path;

/// Each top-level module and the modules it may import. Keep in step with docs/architecture.md.
const LAYERS: &[(&str, &[&str])] = &[
    // Built only with the `fuzzing` feature: names private parsers for the fuzz targets.
    ("fuzzing", &["broker", "http"]),
    // Calls into private modules for the benchmarks in benches/.
    ("perf", &["broker", "http", "partition"]),
    (
        "cli",
        &["bench", "client", "dev", "config", "wire", "names"],
    ),
    ("bench", &["client", "wire", "names"]),
    (
        "dev",
        &[
            "app",
            "client",
            "config",
            "transport",
            "wire",
            "names",
            "address",
        ],
    ),
    (
        "app",
        &[
            "http",
            "broker",
            "audit",
            "cluster",
            "partition",
            "storage",
            "transport",
            "config",
            "auth",
            "raft",
            "names",
            "clock",
            "admission",
            "budget",
            "address",
        ],
    ),
    // The client verifies the audit chain with the same pure code that seals it, never the log.
    ("client", &["wire", "names", "audit::chain", "audit::event"]),
    (
        "http",
        &[
            "broker",
            "auth",
            "config",
            "wire",
            "names",
            "clock",
            "admission",
            "budget",
        ],
    ),
    (
        "broker",
        &[
            "budget",
            "audit",
            "cluster",
            "partition",
            "storage",
            "auth",
            "raft",
            "names",
            "clock",
            "wire",
            "address",
        ],
    ),
    ("audit", &["partition", "storage", "raft", "clock", "wire"]),
    (
        "cluster",
        &["partition", "storage", "auth", "raft", "names", "clock"],
    ),
    ("partition", &["storage", "raft", "clock"]),
    ("storage", &["raft"]),
    ("transport", &["raft", "admission", "address"]),
    ("config", &["names", "address"]),
    ("auth", &["names", "clock", "wire"]),
    ("raft", &[]),
    ("wire", &["names"]),
    ("names", &[]),
    ("clock", &[]),
    ("admission", &[]),
    ("address", &[]),
    ("budget", &[]),
];

/// The top-level module of a table entry (`audit::chain` → `audit`).
fn layer_of(entry: &str) -> String {
    entry.split("::").next().unwrap_or(entry).to_string()
}

fn src_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn the_layer_table_is_acyclic_and_names_every_module() {
    let table: Graph = LAYERS
        .iter()
        .map(|(module, allowed)| {
            let edges = allowed.iter().map(|name| layer_of(name)).collect();
            (module.to_string(), edges)
        })
        .collect();
    if let Some(cycle) = architecture_support::find_cycle(&table) {
        panic!("the layer table has a cycle: {}", cycle.join(" -> "));
    }
    for allowed in table.values() {
        for name in allowed {
            assert!(
                table.contains_key(name),
                "{name} is allowed but not a layer"
            );
        }
    }
    let files = SourceFile::read_tree(&src_dir());
    let declared = architecture_support::top_modules(&files);
    let layered: std::collections::BTreeSet<String> = table.keys().cloned().collect();
    assert_eq!(
        declared, layered,
        "src/lib.rs declares these top-level modules; the layer table lists those"
    );
}

#[test]
fn every_import_follows_the_layer_table() {
    let files = SourceFile::read_tree(&src_dir());
    let graph = crate_graph(&files);
    let violations = check(&graph, LAYERS);
    assert!(
        violations.is_empty(),
        "module graph breaks the layer table:\n{}",
        violations.join("\n")
    );
}

/// The checker on planted sources: an upward import, an import of a module the table does not
/// allow, and a cycle between two submodules are each reported; a clean tree is not.
#[test]
fn the_checker_catches_planted_violations() {
    let layers: &[(&str, &[&str])] = &[("top", &["low"]), ("low", &[])];
    let clean = vec![
        SourceFile::planted("lib.rs", "pub mod top; pub mod low;"),
        SourceFile::planted("top/mod.rs", "mod a; mod b; pub use a::Thing;"),
        SourceFile::planted("top/a.rs", "use super::b::Other; use crate::low::Leaf;"),
        SourceFile::planted(
            "top/b.rs",
            "pub struct Other; // crate::top::a is only a comment",
        ),
        SourceFile::planted(
            "low.rs",
            "pub struct Leaf;\n#[cfg(test)]\nmod tests {\n    use crate::top::a::Thing;\n}",
        ),
    ];
    assert_eq!(check(&crate_graph(&clean), layers), Vec::<String>::new());

    let mut upward = clean.clone();
    upward[4] = SourceFile::planted("low.rs", "pub fn f() { crate::top::a::Thing::new(); }");
    // The same import outside a test module is an edge.
    let found = check(&crate_graph(&upward), layers);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("low -> top"), "{found:?}");

    let mut cycle = clean.clone();
    cycle[3] = SourceFile::planted("top/b.rs", "use super::{Thing as T};");
    let found = check(&crate_graph(&cycle), layers);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("cycle"), "{found:?}");
    assert!(found[0].contains("top::a") && found[0].contains("top::b"));

    let mut nested = clean.clone();
    nested[3] = SourceFile::planted(
        "top/b.rs",
        "use crate::{low::Leaf, top::{a::{self, Thing}}};",
    );
    let found = check(&crate_graph(&nested), layers);
    assert!(found.iter().any(|line| line.contains("cycle")), "{found:?}");
}

/// An entry naming one submodule allows that submodule only.
#[test]
fn a_submodule_entry_allows_that_submodule_only() {
    let layers: &[(&str, &[&str])] = &[("top", &["low::pure"]), ("low", &[])];
    let files = |path: &str| {
        vec![
            SourceFile::planted("lib.rs", "pub mod top; pub mod low;"),
            SourceFile::planted("top.rs", &format!("use crate::low::{path};")),
            SourceFile::planted(
                "low/mod.rs",
                "pub mod pure; pub mod actor; pub use pure::f;",
            ),
            SourceFile::planted("low/pure.rs", "pub fn f() {}"),
            SourceFile::planted("low/actor.rs", "pub struct A;"),
        ]
    };
    assert_eq!(
        check(&crate_graph(&files("pure::f")), layers),
        Vec::<String>::new()
    );
    assert_eq!(
        check(&crate_graph(&files("f")), layers),
        Vec::<String>::new()
    );
    let found = check(&crate_graph(&files("actor::A")), layers);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("top -> low (low::actor)"), "{found:?}");
}

/// The real tree with one planted upward import (storage importing the broker) is caught.
#[test]
fn a_planted_upward_import_in_the_real_tree_is_caught() {
    let mut files = SourceFile::read_tree(&src_dir());
    let storage = files
        .iter_mut()
        .find(|file| file.path == "storage/mod.rs")
        .expect("src/storage/mod.rs exists");
    storage.text.push_str("\nuse crate::broker::Broker;\n");
    let violations = check(&crate_graph(&files), LAYERS);
    assert!(
        violations
            .iter()
            .any(|line| line.contains("storage -> broker")),
        "{violations:?}"
    );
}
