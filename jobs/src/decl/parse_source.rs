//! Parsing of where a model's rows come from, by kind: a Kafka topic,
//! arriving files and seeds here; `clean` and `sql` in their own files.

use super::checks::{Declared, need};
use super::draft::Refs;
use super::parse_clean::parse_clean;
use super::parse_sql::parse_sql_source;
use super::raw::RawModel;
use super::{Diagnostics, FileFormat, Pos, Source, SqlFile, did_you_mean};
use std::path::Path;

/// The source of a model of kind `kind` (a known kind); `sql` is the
/// rendered `.sql` file beside a `sql` model's YAML file, if any.
pub(super) fn parse_source(
    path: &Path,
    kind: &str,
    raw: &RawModel,
    sql: Option<&SqlFile>,
    declared: &Declared,
    diags: &mut Diagnostics,
    refs: &mut Refs,
) -> Source {
    match kind {
        "kafka_source" => parse_kafka(path, raw, diags),
        "file_source" => parse_file_source(path, raw, diags),
        "seed" => parse_seed(path, raw, diags),
        "clean" => parse_clean(path, raw, declared, diags, refs),
        _ => parse_sql_source(path, declared.model, raw, sql, declared, diags, refs),
    }
}

/// `kafka_source`: the topic to land.
fn parse_kafka(path: &Path, raw: &RawModel, diags: &mut Diagnostics) -> Source {
    match &raw.topic {
        Some(t) if !t.value.trim().is_empty() => Source::Kafka {
            topic: t.value.clone(),
        },
        _ => {
            need(diags, path, "kafka_source", "topic");
            Source::Kafka {
                topic: String::new(),
            }
        }
    }
}

/// `seed`: a CSV file inside the data folder, which needs a unique key.
fn parse_seed(path: &Path, raw: &RawModel, diags: &mut Diagnostics) -> Source {
    let Some(f) = &raw.file else {
        need(diags, path, "seed", "file");
        return Source::Seed {
            file: String::new(),
        };
    };
    if f.value.contains("..") || Path::new(&f.value).is_absolute() {
        diags.push(
            Pos::at(path, &f.referenced),
            "a seed `file` is a path inside the data folder",
        );
    }
    if raw.unique_key.is_none() {
        need(diags, path, "seed", "unique_key");
    }
    Source::Seed {
        file: f.value.clone(),
    }
}

/// `file_source`: where the files arrive and their format.
fn parse_file_source(path: &Path, raw: &RawModel, diags: &mut Diagnostics) -> Source {
    let at = |loc: &serde_saphyr::Location| Pos::at(path, loc);
    let folder = match &raw.path {
        Some(p) if !p.value.trim().is_empty() => p.value.clone(),
        _ => {
            diags.push(
                Pos::file(path),
                "a `file_source` model needs `path:` (a folder, or a URL such as s3://bucket/prefix)",
            );
            String::new()
        }
    };
    let format = match &raw.format {
        Some(f) => FileFormat::parse(&f.value).unwrap_or_else(|| {
            diags.push(
                at(&f.referenced),
                format!(
                    "unknown file format `{}`{} (use {})",
                    f.value,
                    did_you_mean(&f.value, ["csv", "json", "parquet"]),
                    FileFormat::NAMES
                ),
            );
            FileFormat::Json
        }),
        None => {
            diags.push(
                Pos::file(path),
                format!(
                    "a `file_source` model needs `format:` ({})",
                    FileFormat::NAMES
                ),
            );
            FileFormat::Json
        }
    };
    Source::Files {
        path: folder,
        format,
    }
}
