//! The layers of `core/src/lib.rs` hold: every `crate::NAME` path in a
//! module of the library names a module of a lower layer (or the module
//! itself). The list is read from lib.rs's own documentation, so the two
//! cannot drift apart, and every `pub mod` of lib.rs must be in it. And no
//! files import each other in a circle, in the library, the blobs or arch.

mod common;

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

/// Whether the source tree is here to be read; else (the VMs get the test
/// binaries only) the test skips, naming why.
fn sources_here(test: &str) -> bool {
    let here = Path::new(LIB).exists();
    if !here {
        common::skip(test, "the source tree is not here (test binaries only)");
    }
    here
}

#[test]
fn every_module_uses_only_lower_layers() {
    if !sources_here("every_module_uses_only_lower_layers") {
        return;
    }
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

/// A crate's Rust files by module path (`dump/files.rs` is `["dump",
/// "files"]`, `dump/mod.rs` is `["dump"]`, the root file `[]`).
fn modules_of(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap();
            let mut parts: Vec<String> = rel
                .iter()
                .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
                .collect();
            if matches!(
                parts.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                parts.pop();
            }
            out.insert(parts, path);
        }
    }
    out
}

/// The module paths `text` names (`crate::a::b`, `super::c`, `self::d`,
/// and the items of `super::{e, f::g}`), resolved against the module `at`
/// of the file (`m/a.rs` and `m/a/mod.rs` are both module `m::a`).
fn named_paths(text: &str, at: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let code = code_of(line);
        for (prefix, base) in [
            ("crate::", Vec::new()),
            ("super::", at[..at.len().saturating_sub(1)].to_vec()),
            ("self::", at.to_vec()),
        ] {
            let mut rest = code;
            while let Some(i) = rest.find(prefix) {
                let before = rest[..i].chars().last();
                let after = &rest[i + prefix.len()..];
                rest = after;
                if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
                    continue;
                }
                let tails: Vec<&str> = match after.strip_prefix('{') {
                    Some(group) => group.split('}').next().unwrap_or("").split(',').collect(),
                    None => vec![after],
                };
                for tail in tails {
                    let mut path = base.clone();
                    for seg in tail.trim().split("::") {
                        let seg: String = seg
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        if seg.is_empty() {
                            break;
                        }
                        path.push(seg);
                    }
                    out.push(path);
                }
            }
        }
    }
    out
}

/// Cycles among the files of the crate at `src`: file A uses a path into
/// file B and B (directly or through others) into A. A file's uses of its
/// own ancestors (`super::Item` in the parent's `mod.rs`) are left out:
/// the parent declares its children, so those edges always close a loop.
fn file_cycles(src: &Path) -> Vec<String> {
    let mods = modules_of(src);
    let mut edges: BTreeMap<&Vec<String>, std::collections::BTreeSet<&Vec<String>>> =
        BTreeMap::new();
    for (at, file) in &mods {
        let text = std::fs::read_to_string(file).unwrap();
        for path in named_paths(&text, at) {
            // The longest prefix of the path that is a file of the crate.
            let target = (0..=path.len())
                .rev()
                .find_map(|n| mods.get_key_value(&path[..n]).map(|(k, _)| k));
            let Some(target) = target else { continue };
            let ancestor = target.len() <= at.len() && at[..target.len()] == target[..];
            let descendant = at.len() <= target.len() && target[..at.len()] == at[..];
            if !ancestor && !descendant {
                edges.entry(at).or_default().insert(target);
            }
        }
    }
    // Depth-first search for back edges.
    let mut found = Vec::new();
    let mut state: BTreeMap<&Vec<String>, u8> = BTreeMap::new();
    fn visit<'a>(
        n: &'a Vec<String>,
        edges: &BTreeMap<&'a Vec<String>, std::collections::BTreeSet<&'a Vec<String>>>,
        state: &mut BTreeMap<&'a Vec<String>, u8>,
        stack: &mut Vec<&'a Vec<String>>,
        found: &mut Vec<String>,
    ) {
        state.insert(n, 1);
        stack.push(n);
        for &m in edges.get(n).into_iter().flatten() {
            match state.get(m) {
                Some(1) => {
                    let from = stack.iter().position(|s| *s == m).unwrap();
                    let names: Vec<String> = stack[from..].iter().map(|p| p.join("/")).collect();
                    found.push(format!("{} -> {}", names.join(" -> "), m.join("/")));
                }
                Some(_) => {}
                None => visit(m, edges, state, stack, found),
            }
        }
        stack.pop();
        state.insert(n, 2);
    }
    for n in mods.keys() {
        if !state.contains_key(n) {
            visit(n, &edges, &mut state, &mut Vec::new(), &mut found);
        }
    }
    found
}

/// The crates of this repository (`criu-*`) that the `[dependencies]` of
/// the manifest at `manifest` (relative to the repository) names.
fn own_dependencies(manifest: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(manifest);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut out = Vec::new();
    let mut in_deps = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
        } else if in_deps && line.starts_with("criu-") {
            out.push(line.split([' ', '=']).next().unwrap().to_string());
        }
    }
    out.sort();
    out
}

/// The crate graph follows the layers of DESIGN.md: `arch` at the bottom,
/// the blob ABI plain data with no dependency, the blob runtime over `arch`
/// only, the blobs over those three, and the tool over `arch` and the ABI
/// (never over the runtime, which only the blob build may link).
#[test]
fn crates_depend_only_downwards() {
    if !sources_here("crates_depend_only_downwards") {
        return;
    }
    let expect: [(&str, &[&str]); 6] = [
        ("arch/Cargo.toml", &[]),
        ("arch/blob-abi/Cargo.toml", &[]),
        ("arch/blob-rt/Cargo.toml", &["criu-arch"]),
        (
            "parasite/Cargo.toml",
            &["criu-arch", "criu-blob-abi", "criu-blob-rt"],
        ),
        (
            "restorer/Cargo.toml",
            &["criu-arch", "criu-blob-abi", "criu-blob-rt"],
        ),
        ("Cargo.toml", &["criu-arch", "criu-blob-abi"]),
    ];
    for (manifest, want) in expect {
        assert_eq!(
            own_dependencies(manifest),
            want.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "{manifest}: its dependencies among this repository's crates"
        );
    }
}

#[test]
fn no_file_imports_in_a_circle() {
    if !sources_here("no_file_imports_in_a_circle") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all = Vec::new();
    for krate in [
        "core/src",
        "parasite/src",
        "restorer/src",
        "arch/src",
        "arch/blob-abi/src",
        "arch/blob-rt/src",
    ] {
        for c in file_cycles(&root.join(krate)) {
            all.push(format!("{krate}: {c}"));
        }
    }
    assert!(
        all.is_empty(),
        "import circles between files:\n{}",
        all.join("\n")
    );
}

#[test]
fn the_circle_finder_finds_circles() {
    let dir = std::env::temp_dir().join(format!("layers-circle-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("m")).unwrap();
    std::fs::write(dir.join("lib.rs"), "pub mod m;\n").unwrap();
    std::fs::write(dir.join("m/mod.rs"), "mod a;\nmod b;\npub struct T;\n").unwrap();
    std::fs::write(dir.join("m/a.rs"), "use super::b::B;\nuse super::T;\n").unwrap();
    std::fs::write(dir.join("m/b.rs"), "use super::{a::A, T};\n").unwrap();
    let found = file_cycles(&dir);
    assert_eq!(found, ["m/a -> m/b -> m/a"]);
    std::fs::write(dir.join("m/b.rs"), "use crate::m::T; // super::a\n").unwrap();
    assert!(file_cycles(&dir).is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
