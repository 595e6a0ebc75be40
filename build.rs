//! Puts each Lua script (`src/lua/*.lua`) together with the library files it includes
//! (`--- @include "name"` lines naming `src/lua/lib/name.lua`), each once, in dependency
//! order, into `$OUT_DIR/lua/`, where `src/lua.rs` picks them up with `include_str!`.
//! A missing or circular include fails the build with a message naming it.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    let src = Path::new("src/lua");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("lua");
    fs::create_dir_all(&out).expect("cannot create $OUT_DIR/lua");
    println!("cargo::rerun-if-changed=src/lua");
    let mut scripts: Vec<PathBuf> = fs::read_dir(src)
        .expect("cannot read src/lua")
        .map(|entry| entry.expect("cannot read src/lua").path())
        .filter(|path| path.extension().is_some_and(|e| e == "lua"))
        .collect();
    scripts.sort();
    for script in scripts {
        let name = script
            .file_name()
            .expect("a file")
            .to_string_lossy()
            .into_owned();
        let mut text = String::new();
        let mut done = HashSet::new();
        let mut visiting = Vec::new();
        assemble(&script, &name, &mut text, &mut done, &mut visiting);
        fs::write(out.join(&name), text).expect("cannot write an assembled script");
    }
}

/// Appends `path`'s includes (depth first, each once), then `path` itself without its
/// include lines, to `text`.
fn assemble(
    path: &Path,
    name: &str,
    text: &mut String,
    done: &mut HashSet<String>,
    visiting: &mut Vec<String>,
) {
    let body =
        fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    visiting.push(name.to_string());
    let mut own = String::new();
    for line in body.lines() {
        let Some(rest) = line.strip_prefix("--- @include ") else {
            own.push_str(line);
            own.push('\n');
            continue;
        };
        let lib = rest.trim().trim_matches('"');
        if visiting.iter().any(|v| v == lib) {
            panic!("circular include: {} -> {lib}", visiting.join(" -> "));
        }
        if done.contains(lib) {
            continue;
        }
        let lib_path = Path::new("src/lua/lib").join(format!("{lib}.lua"));
        if !lib_path.is_file() {
            panic!(
                "{}: includes \"{lib}\", but there is no {}",
                path.display(),
                lib_path.display()
            );
        }
        assemble(&lib_path, lib, text, done, visiting);
    }
    visiting.pop();
    done.insert(name.to_string());
    text.push_str(&own);
}
