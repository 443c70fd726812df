//! Embeds the shipped pipelines into the binary, so that `dag demo` and
//! `dag init --example` work with the binary alone: every file under the
//! workspace's `models/<pipeline>/` and every CSV of `data/` becomes an
//! entry of `FILES` (path relative to the workspace, bytes) in
//! `$OUT_DIR/embedded.rs`, included by `src/examples.rs`.
//!
//! Also embeds the web UI's graph layout library (dagre, from the npm
//! registry into `ui/node_modules` by `scripts/setup.sh`) as
//! `$OUT_DIR/dagre.js`; without it the UI lays the graph out in plain
//! columns and says so.

use std::path::{Path, PathBuf};

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir"));
    let root = manifest.parent().expect("workspace root").to_path_buf();
    let mut files = Vec::new();
    // Pipelines are the folders of models/ (its README is not one).
    if let Ok(rd) = std::fs::read_dir(root.join("models")) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                walk(&e.path(), &mut files);
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(root.join("data")) {
        files.extend(
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("csv")),
        );
    }
    files.sort();
    let mut code = String::from("pub static FILES: &[(&str, &[u8])] = &[\n");
    for f in &files {
        let rel = f.strip_prefix(&root).expect("inside the workspace");
        code.push_str(&format!(
            "    ({:?}, include_bytes!({:?})),\n",
            rel.to_string_lossy(),
            f.display().to_string()
        ));
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("out dir")).join("embedded.rs");
    std::fs::write(out, code).expect("write embedded.rs");
    // A directory makes cargo look at every file under it.
    println!("cargo:rerun-if-changed={}", root.join("models").display());
    println!("cargo:rerun-if-changed={}", root.join("data").display());
    println!("cargo:rerun-if-changed=build.rs");
    embed_dagre(&root);
}

fn embed_dagre(root: &Path) {
    let lib = root.join("ui/node_modules/@dagrejs/dagre/dist/dagre.min.js");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("out dir")).join("dagre.js");
    let js = std::fs::read(&lib).unwrap_or_else(|_| b"window.dagre = null;\n".to_vec());
    std::fs::write(out, js).expect("write dagre.js");
    println!("cargo:rerun-if-changed={}", lib.display());
}
