//! Reading a pipeline folder: `pipeline.yml`, the model files of each
//! layer folder (sub-folders allowed), and the catalog of models and
//! sources the SQL templates may name.

use jobs::decl::template::{Catalog, Templates};
use jobs::decl::{self, Diagnostics, Layer, ModelDraft, Pos, Source, parse_model_file};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    description: Option<String>,
    schedules: Option<Vec<RawSchedule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchedule {
    pub select: Spanned<String>,
    pub cron: Spanned<String>,
}

pub fn read_pipeline_yml(root: &Path, diags: &mut Diagnostics) -> (String, Vec<RawSchedule>) {
    let path = root.join("pipeline.yml");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return (String::new(), vec![]);
    };
    match serde_saphyr::from_str::<Option<RawPipeline>>(&text) {
        Ok(Some(raw)) => (
            raw.description.unwrap_or_default(),
            raw.schedules.unwrap_or_default(),
        ),
        Ok(None) => (String::new(), vec![]),
        Err(e) => {
            let pos = e
                .location()
                .map(|l| Pos::at(&path, &l))
                .unwrap_or_else(|| Pos::file(&path));
            diags.push(
                pos,
                format!(
                    "malformed pipeline.yml: {}",
                    jobs::decl::parser_message(&e.to_string())
                ),
            );
            (String::new(), vec![])
        }
    }
}

/// Reads every model file under the layer folders, in path order.
pub fn read_models(root: &Path, templates: &Templates, diags: &mut Diagnostics) -> Vec<ModelDraft> {
    let mut drafts = Vec::new();
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(root) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => {
            diags.push(Pos::file(root), format!("cannot read pipeline folder: {e}"));
            return drafts;
        }
    };
    entries.sort();
    for path in entries {
        let fname = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if path.is_dir() {
            match Layer::parse(&fname) {
                Some(layer) => read_layer(&path, layer, templates, diags, &mut drafts),
                None if fname.starts_with('.') => {}
                // Read (and checked) by `Templates::new`.
                None if fname == "macros" => {}
                // Sample files a shipped pipeline's file sources read:
                // `dag init --example` writes them to the project's landing/.
                None if fname == "landing" => {}
                // The pipeline's own warehouse migrations: checked here so
                // `dag validate` names a bad file before `dag migrate` runs.
                None if fname == "migrations" => {
                    if let Err(e) = jobs::warehouse::migrate::pipeline_migrations(&path) {
                        diags.push(e.pos, e.message);
                    }
                }
                None => diags.push(
                    Pos::file(&path),
                    format!(
                        "unknown folder `{fname}`: models go in bronze/, silver/ or gold/ (Jinja macros in macros/, warehouse migrations in migrations/)"
                    ),
                ),
            }
        } else if is_model_file(&path) && fname != "pipeline.yml" {
            diags.push(
                Pos::file(&path),
                "model files go in bronze/, silver/ or gold/, not the pipeline's top folder",
            );
        }
    }
    drafts
}

fn is_model_file(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("yml" | "yaml" | "sql")
    )
}

fn read_layer(
    dir: &Path,
    layer: Layer,
    templates: &Templates,
    diags: &mut Diagnostics,
    drafts: &mut Vec<ModelDraft>,
) {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => {
            diags.push(Pos::file(dir), format!("cannot read folder: {e}"));
            return;
        }
    };
    files.sort();
    for path in &files {
        if path.is_dir() {
            read_layer(path, layer, templates, diags, drafts);
            continue;
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default();
        match ext {
            "yml" | "yaml" => {
                let text = match std::fs::read_to_string(path) {
                    Ok(t) => t,
                    Err(e) => {
                        diags.push(Pos::file(path), format!("cannot read: {e}"));
                        continue;
                    }
                };
                let sql_path = path.with_extension("sql");
                let sql_text = std::fs::read_to_string(&sql_path).ok();
                let model = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                let sql = match &sql_text {
                    None => None,
                    Some(t) => match templates.render(model, &sql_path, t) {
                        Ok(f) => Some(f),
                        Err((pos, message)) => {
                            diags.push(pos, message);
                            // Parsed as is, so the YAML's own problems are
                            // reported too; its SQL problems would be noise.
                            Some(decl::SqlFile::stand_in(&sql_path))
                        }
                    },
                };
                let (draft, problems) = parse_model_file(path, layer, &text, sql.as_ref());
                diags.extend(problems);
                if let Some(d) = draft {
                    if sql_text.is_some() && !matches!(d.model.source, Source::Sql { .. }) {
                        diags.push(
                            Pos::file(&sql_path),
                            format!("`{}` is a `{}` model: it has no SQL, so this file would be ignored", d.model.name, d.model.source.kind_name()),
                        );
                    }
                    drafts.push(d);
                }
            }
            "sql" => {
                let yml = path.with_extension("yml");
                if !yml.exists() && !path.with_extension("yaml").exists() {
                    diags.push(
                        Pos::file(path),
                        format!(
                            "SQL without a model file: add {} with `kind: sql` and its columns",
                            yml.display()
                        ),
                    );
                }
            }
            _ => {}
        }
    }
}

/// What SQL templates may name, read off the model files before they are
/// parsed (a file that does not parse is reported by the real pass).
pub fn catalog(root: &Path) -> Catalog {
    #[derive(Deserialize)]
    struct Light {
        kind: Option<String>,
        topic: Option<String>,
        input: Option<String>,
        quarantine: Option<String>,
    }
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")) {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    for layer in ["bronze", "silver", "gold"] {
        walk(&root.join(layer), &mut files);
    }
    let mut cat = Catalog::default();
    for path in files {
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let light = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_saphyr::from_str::<Light>(&t).ok());
        cat.models.insert(name.to_string());
        let Some(light) = light else { continue };
        match light.kind.as_deref() {
            Some("kafka_source") => {
                cat.sources.insert(name.to_string(), light.topic);
            }
            Some("file_source") => {
                cat.sources.insert(name.to_string(), None);
            }
            Some("clean") => {
                if let Some(input) = light.input {
                    cat.cleans.insert(name.to_string(), input);
                }
                if let Some(q) = light.quarantine {
                    cat.models.insert(q);
                }
            }
            _ => {}
        }
    }
    cat
}
