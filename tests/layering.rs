//! The layer rule, checked on the source: each layer imports only the layers below it.
//!
//! vocabulary (`rules` is a leaf; `data`, `kernels`, `losses` use only `rules`; `models`
//! uses `kernels` and `rules`)
//! <- `engine` <- `report` (plots observing the engine) <- strategies (`transfer`,
//! `distill`, `continual`, `multitask`, `ssl`, never each other) <- `run` (the
//! composition root) <- `cli`.
//!
//! `damage` (seeded damaged copies of files, compiled only for unit tests) is test
//! support that every layer's readers are tested with.
//!
//! Every `crate::<module>` path outside a comment counts, in `use` lines and inline
//! alike; a grouped `crate::{...}` import is refused outright, since it would hide the
//! modules it names from this check.

mod common;
use common::rust_files;

use std::collections::BTreeSet;
use std::path::Path;

const VOCABULARY: [&str; 5] = ["rules", "data", "kernels", "losses", "models"];
/// Test support any layer's unit tests may use.
const TEST_SUPPORT: [&str; 1] = ["damage"];
const STRATEGIES: [&str; 5] = ["transfer", "distill", "continual", "multitask", "ssl"];

/// The top-level modules that code in `layer` may name.
fn allowed(layer: &str) -> Option<BTreeSet<&'static str>> {
    let set = |names: &[&'static str]| names.iter().copied().collect::<BTreeSet<_>>();
    let mut below = set(&VOCABULARY);
    Some(match layer {
        "rules" => set(&[]),
        "data" | "kernels" | "losses" => set(&["rules"]),
        "models" => set(&["kernels", "rules"]),
        "engine" => below,
        "report" => {
            below.insert("engine");
            below
        }
        s if STRATEGIES.contains(&s) => {
            below.extend(["engine", "report"]);
            below
        }
        "run" => {
            below.extend(["engine", "report"]);
            below.extend(STRATEGIES);
            below
        }
        _ => return None,
    })
}

/// Every `file:line: layer imports module` that breaks the rule in the tree at `src`.
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap();
        let layer = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        let Some(ok) = allowed(&layer) else { continue };
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let mut rest = code;
            while let Some(at) = rest.find("crate::") {
                let before = rest[..at].chars().next_back();
                rest = &rest[at + "crate::".len()..];
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue; // `mycrate::`, not `crate::`
                }
                let module: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                    .collect();
                let line_no = i + 1;
                if module.is_empty() {
                    found.push(format!(
                        "src/{}:{line_no}: grouped `crate::{{..}}` import in {layer} (name each module)",
                        rel.display()
                    ));
                } else if module != layer
                    && !ok.contains(module.as_str())
                    && !TEST_SUPPORT.contains(&module.as_str())
                {
                    found.push(format!(
                        "src/{}:{line_no}: {layer} imports {module}: {}",
                        rel.display(),
                        line.trim()
                    ));
                }
            }
        }
    }
    found
}

#[test]
fn every_import_respects_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&src);
    assert!(found.is_empty(), "layer rule broken:\n{}", found.join("\n"));
}

#[test]
fn the_guard_catches_an_upward_import() {
    // A tree with an engine file that names a strategy and the run config, and a
    // strategy that names another: all three are reported with file:line.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("engine")).unwrap();
    std::fs::create_dir_all(src.join("ssl")).unwrap();
    std::fs::write(
        src.join("engine/trainer.rs"),
        "use crate::models::Network;\n// crate::run in a comment is fine\nuse crate::run::config::RunConfig;\nfn f() { crate::transfer::x(); }\n",
    )
    .unwrap();
    std::fs::write(src.join("ssl/mod.rs"), "use crate::distill::Kd;\n").unwrap();
    // The rules leaf names nothing, not even another vocabulary module.
    std::fs::write(src.join("rules.rs"), "use crate::data::Dataset;\n").unwrap();
    let found = violations(src);
    assert_eq!(found.len(), 4, "{found:?}");
    assert!(
        found[2].starts_with("src/rules.rs:1: rules imports data"),
        "{found:?}"
    );
    assert!(
        found[0].starts_with("src/engine/trainer.rs:3: engine imports run"),
        "{found:?}"
    );
    assert!(
        found[1].starts_with("src/engine/trainer.rs:4: engine imports transfer"),
        "{found:?}"
    );
    assert!(
        found[3].starts_with("src/ssl/mod.rs:1: ssl imports distill"),
        "{found:?}"
    );
}
