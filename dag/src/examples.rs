//! The pipelines shipped inside the binary: `build.rs` embeds every file of
//! the repository's `models/<pipeline>/` and `data/*.csv`. `dag init
//! --example NAME` writes one out as a project (dag.toml, models/, data/,
//! and landing/ when it ships sample files for its file sources),
//! and `dag demo` uses the flagship one when no models folder is at hand,
//! so the binary alone is enough.

use anyhow::{Context, bail};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

/// The names of the embedded pipelines.
pub fn names() -> Vec<&'static str> {
    let set: BTreeSet<&str> = FILES
        .iter()
        .filter_map(|(p, _)| p.strip_prefix("models/")?.split('/').next())
        .collect();
    set.into_iter().collect()
}

/// What [`write`] wrote.
#[derive(Debug)]
pub struct Written {
    /// The project's dag.toml.
    pub config: PathBuf,
    pub files: usize,
}

/// Writes the embedded pipeline `name` as a project in `dest`:
/// `models/<name>/...`, the CSVs its seeds read in `data/`, and a
/// `dag.toml` naming them. Sample files for its file sources, shipped
/// under `models/<name>/landing/`, go to the project's `landing/` (where
/// a `file_source` with `path: landing/...` finds them), not under
/// `models/`. Files that exist are an error unless `force`.
pub fn write(name: &str, dest: &Path, force: bool) -> anyhow::Result<Written> {
    let known = names();
    if !known.contains(&name) {
        bail!(
            "no example pipeline `{name}`{}: the binary ships {}",
            jobs::decl::did_you_mean(name, known.iter().copied()),
            known.join(", ")
        );
    }
    let prefix = format!("models/{name}/");
    let landing = format!("{prefix}landing/");
    let mut todo: Vec<(PathBuf, &[u8])> = FILES
        .iter()
        .filter(|(p, _)| p.starts_with(&prefix))
        .map(|(p, bytes)| match p.strip_prefix(&landing) {
            Some(rest) => (dest.join("landing").join(rest), *bytes),
            None => (dest.join(p), *bytes),
        })
        .collect();
    // The CSVs the pipeline's seeds read (`kind: seed`, `file:`).
    #[derive(serde::Deserialize)]
    struct Seed {
        kind: Option<String>,
        file: Option<String>,
    }
    let seeds: Vec<String> = FILES
        .iter()
        .filter(|(p, _)| p.starts_with(&prefix) && !p.starts_with(&landing))
        .filter(|(p, _)| p.ends_with(".yml") || p.ends_with(".yaml"))
        .filter_map(|(_, bytes)| {
            let text = std::str::from_utf8(bytes).ok()?;
            let seed: Seed = serde_saphyr::from_str(text).ok()?;
            (seed.kind.as_deref() == Some("seed"))
                .then_some(seed.file)
                .flatten()
        })
        .collect();
    for file in seeds {
        let rel = format!("data/{file}");
        let Some((_, bytes)) = FILES.iter().find(|(p, _)| *p == rel) else {
            bail!("a seed of `{name}` reads {rel}, which the binary does not ship");
        };
        todo.push((dest.join(&rel), bytes));
    }
    let config = dest.join("dag.toml");
    let toml = format!(
        "# The {name} pipeline, written by `dag init --example {name}`.\n\
         # Every key is optional; `dag validate` lists problems, README.md the keys.\n\
         pipeline = \"{name}\"\n\
         models_dir = \"models\"\n\
         data_dir = \"data\"\n"
    );
    todo.push((config.clone(), toml.as_bytes()));
    write_project(&todo, force)?;
    Ok(Written {
        config,
        files: todo.len(),
    })
}

/// Writes the files of a project: none if any exists already, unless
/// `force` (then they are overwritten). Shared with `dag init NAME`.
pub fn write_project(files: &[(PathBuf, &[u8])], force: bool) -> anyhow::Result<()> {
    if !force {
        let existing: Vec<String> = files
            .iter()
            .filter(|(p, _)| p.exists())
            .map(|(p, _)| p.display().to_string())
            .collect();
        if let Some(first) = existing.first() {
            bail!(
                "{} file(s) exist, first {first}: nothing was written (--force overwrites)",
                existing.len()
            );
        }
    }
    for (path, bytes) in files {
        put(path, bytes)?;
    }
    Ok(())
}

fn put(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}
