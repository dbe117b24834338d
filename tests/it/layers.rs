//! The layers of ARCHITECTURE.md, kept by a test: no file imports a module
//! of a higher layer. It reads every `crate::…` path in `src/` (in `use`
//! lines and inline), outside comments, and names each offending file and
//! path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Each top-level module's layer, lowest first; a module may use its own
/// layer and those below. Keep in step with ARCHITECTURE.md's "Layers".
const LAYERS: &[(&str, &[&str])] = &[
    (
        "leaves",
        &[
            "error",
            "ids",
            "codec",
            "memory",
            "partitioner",
            "small_str",
            "data",
            "fault",
            "chunk",
            "cleanup",
        ],
    ),
    (
        "runtime",
        &["runtime", "storage", "shuffle", "shared", "cluster"],
    ),
    ("lineage", &["lineage"]),
    ("scheduler", &["scheduler", "placement"]),
    ("ui", &["ui"]),
    ("datasets", &["context", "rdd", "formats"]),
    ("streaming", &["streaming"]),
    ("observe", &["observe"]),
    // Binary targets (`src/bin/`): separate crates, on the public API.
    ("binaries", &["bin"]),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

/// The top-level module a file of `src/` belongs to (`None` for `lib.rs`).
fn module_of(relative: &Path) -> Option<String> {
    let first = relative.components().next()?.as_os_str().to_string_lossy();
    let name = first.strip_suffix(".rs").unwrap_or(&first);
    (name != "lib").then(|| name.to_string())
}

/// The code of a file without comments (line comments, doc comments and
/// block comments); string literals are kept, they hold no `crate::`.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("//") {
            rest = after.find('\n').map_or("", |i| &after[i..]);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.find("*/").map_or("", |i| &after[i + 2..]);
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The first segment of every `crate::` path in `code`; a group
/// `crate::{a::X, b}` gives `a` and `b`.
fn crate_paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let preceded = rest[..i].chars().last();
        rest = &rest[i + "crate::".len()..];
        if preceded.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `some_crate::`, not ours
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut end = 0;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    end = j;
                    break;
                }
            }
            // Top-level items of the group only.
            let mut depth = 0;
            let mut item = String::new();
            for c in group[..end].chars().chain(std::iter::once(',')) {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        let name: String = item
                            .trim()
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        if !name.is_empty() {
                            found.push(name);
                        }
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.push(name);
        }
    }
    found
}

/// Names re-exported by `lib.rs` (`pub use module::{Name, ...}`), to the
/// module they come from.
fn reexports(lib: &str) -> HashMap<String, String> {
    let mut map = HashMap::new();
    // One statement at a time: rustfmt spreads long ones over lines.
    for statement in strip_comments(lib).split(';') {
        let statement: String = statement.split_whitespace().collect::<Vec<_>>().join(" ");
        let Some(rest) = statement.strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, names)) = rest.split_once("::") else {
            continue;
        };
        let names = names.trim_matches(|c| c == '{' || c == '}' || c == ' ');
        for name in names.split(',') {
            let name = name.trim().rsplit("::").next().unwrap_or("").to_string();
            if !name.is_empty() {
                map.insert(name, module.to_string());
            }
        }
    }
    map
}

/// Every import of a higher layer, as "file: crate::path (layer → layer)".
fn violations(files: &[(PathBuf, String)], reexported: &HashMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (relative, text) in files {
        let Some(module) = module_of(relative) else {
            continue;
        };
        let Some(own) = layer_of(&module) else {
            out.push(format!(
                "{}: module `{module}` has no layer in LAYERS",
                relative.display()
            ));
            continue;
        };
        for name in crate_paths(&strip_comments(text)) {
            let target = reexported.get(&name).cloned().unwrap_or(name.clone());
            let Some(layer) = layer_of(&target) else {
                out.push(format!(
                    "{}: crate::{name} is in no layer",
                    relative.display()
                ));
                continue;
            };
            if layer > own {
                out.push(format!(
                    "{}: crate::{name} reaches up from {} to {}",
                    relative.display(),
                    LAYERS[own].0,
                    LAYERS[layer].0
                ));
            }
        }
    }
    out
}

fn sources(dir: &Path, root: &Path, out: &mut Vec<(PathBuf, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            out.push((path.strip_prefix(root).unwrap().to_path_buf(), text));
        }
    }
}

#[test]
fn no_module_imports_from_a_higher_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &src, &mut files);
    assert!(files.len() > 20, "read the sources: {}", files.len());
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let found = violations(&files, &reexports(&lib));
    assert!(
        found.is_empty(),
        "imports that reach up a layer:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_layer_check_catches_an_upward_import_in_any_form() {
    let reexported = reexports("pub use rdd::{Rdd, RddId};\npub use context::Context;\n");
    let file = |path: &str, text: &str| (PathBuf::from(path), text.to_string());
    let bad = [
        file("storage.rs", "use crate::scheduler::run_job;\n"),
        file(
            "shuffle/writer.rs",
            "use crate::{codec, context::Context};\n",
        ),
        file(
            "runtime/mod.rs",
            "fn f() { crate::rdd::checkpoint::run_pending(); }\n",
        ),
        file("lineage.rs", "use crate::Rdd;\n"),
        file(
            "codec.rs",
            "use crate::{\n    error::Error,\n    memory::{self, X},\n    storage,\n};\n",
        ),
        file("unknown.rs", "use crate::error::Error;\n"),
    ];
    let found = violations(&bad, &reexported);
    assert_eq!(found.len(), 6, "{found:#?}");
    assert!(
        found[0].starts_with("storage.rs: crate::scheduler reaches up from runtime to scheduler")
    );
    assert!(found[1].contains("crate::context reaches up from runtime to datasets"));
    assert!(found[3].contains("crate::Rdd reaches up from lineage to datasets"));
    assert!(found[4].starts_with("codec.rs: crate::storage"));
    assert!(found[5].contains("has no layer"));
    let fine = [
        file(
            "scheduler.rs",
            "use crate::lineage::AnyRdd; // use crate::rdd::Rdd;\n",
        ),
        file(
            "rdd/mod.rs",
            "/// uses crate::streaming in a doc comment\nuse crate::scheduler;\n",
        ),
        file("lib.rs", "pub use streaming::X;\n"),
        file(
            "streaming/mod.rs",
            "use crate::Context; use other_crate::rdd;\n",
        ),
    ];
    assert_eq!(violations(&fine, &reexported), Vec::<String>::new());
}
