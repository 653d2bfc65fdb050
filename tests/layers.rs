//! The layers of `core/src/lib.rs` hold: every `crate::NAME` path in a
//! module of the library names a module of a lower layer (or the module
//! itself). The list is read from lib.rs's own documentation, so the two
//! cannot drift apart, and every `pub mod` of lib.rs must be in it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const LIB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/core/src/lib.rs");

/// Layer number of each module, from lib.rs's "N. `a`, `b` (...)" lines.
fn layers(lib: &str) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for line in lib.lines() {
        let Some(item) = line.strip_prefix("//! ") else {
            continue;
        };
        let Some((n, rest)) = item.split_once(". ") else {
            continue;
        };
        let Ok(n) = n.parse::<u32>() else { continue };
        // The module names are the backquoted words before any '('.
        let names = rest.split('(').next().unwrap_or_default();
        for name in names.split(',') {
            let name = name.trim().trim_matches('`');
            assert!(!name.is_empty(), "lib.rs: empty module name in {line:?}");
            assert!(
                out.insert(name.to_string(), n).is_none(),
                "lib.rs lists {name} twice"
            );
        }
    }
    out
}

/// The `pub mod NAME;` lines of lib.rs.
fn declared(lib: &str) -> Vec<String> {
    lib.lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';').to_string())
        .collect()
}

/// The Rust files of module `name` (`name.rs` or every file under `name/`).
fn files_of(src: &Path, name: &str) -> Vec<PathBuf> {
    let file = src.join(format!("{name}.rs"));
    if file.exists() {
        return vec![file];
    }
    let mut out = Vec::new();
    let mut dirs = vec![src.join(name)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The code of a line without its `//` comment (a `//` inside a string is
/// rare enough here to be cut too: that only hides a path, never adds one).
fn code_of(line: &str) -> &str {
    line.split("//").next().unwrap_or_default()
}

/// Every `crate::NAME` in `text` (outside comments), with its line number.
/// The logging macros (`crate::pr_info!`, ...) belong to `log`.
fn uses(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut rest = code_of(line);
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let preceded_by_ident = rest[..at]
                .chars()
                .last()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
            if !preceded_by_ident && !name.is_empty() {
                let module = if name.starts_with("pr_") {
                    "log".to_string()
                } else {
                    name
                };
                out.push((i + 1, module));
            }
            rest = after;
        }
    }
    out
}

#[test]
fn every_module_uses_only_lower_layers() {
    let lib = std::fs::read_to_string(LIB).unwrap();
    let layers = layers(&lib);
    let mods = declared(&lib);
    let mut listed: Vec<&String> = layers.keys().collect();
    listed.sort();
    let mut sorted_mods: Vec<&String> = mods.iter().collect();
    sorted_mods.sort();
    assert_eq!(
        listed, sorted_mods,
        "lib.rs: the layer list and the `pub mod`s differ"
    );
    let src = Path::new(LIB).parent().unwrap();
    let mut wrong = Vec::new();
    for module in &mods {
        let own = layers[module];
        for file in files_of(src, module) {
            let text = std::fs::read_to_string(&file).unwrap();
            for (line, used) in uses(&text) {
                if &used == module {
                    continue;
                }
                match layers.get(&used) {
                    Some(&l) if l < own => {}
                    Some(&l) => wrong.push(format!(
                        "{}:{line}: `{module}` (layer {own}) uses `{used}` (layer {l})",
                        file.strip_prefix(src).unwrap().display()
                    )),
                    None => wrong.push(format!(
                        "{}:{line}: `crate::{used}` is no module of lib.rs's list",
                        file.strip_prefix(src).unwrap().display()
                    )),
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers of core/src/lib.rs:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_reader_sees_paths_and_skips_comments() {
    let text = "use crate::sys::ptrace;\n// crate::dump in a comment\n\
                let x = crate::images::read(); crate::pr_info!(\"a\");\n\
                let y = $crate::log::print; my_crate::z;";
    let got: Vec<String> = uses(text).into_iter().map(|(_, m)| m).collect();
    assert_eq!(got, ["sys", "images", "log"]);
    let lib = "//! 1. `log` (x)\n//! 2. `opts`, `hooks` (y, z)\n//! Not 3. a list\npub mod log;";
    let l = layers(lib);
    assert_eq!(l["log"], 1);
    assert_eq!(l["hooks"], 2);
    assert_eq!(declared(lib), ["log"]);
}
