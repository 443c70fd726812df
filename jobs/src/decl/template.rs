//! dbt-style SQL: a model's `.sql` file may be a Jinja template.
//!
//! Rendering happens once, when the pipeline is loaded, so everything after
//! it (the DAG edges read off the query, the run, `dag compile`) sees plain
//! SQL. What a template may use:
//!
//! - `{{ ref('m') }}` (or dbt's two-argument `ref('package', 'm')`): the
//!   model `m`; an unknown name is an error at that line, with a suggestion.
//! - `{{ source('s') }}` / `{{ source('group', 's') }}`: `s` is a topic, a
//!   source model or a clean model; it renders as the clean silver model a
//!   SQL model reads that source through (bronze holds raw bytes).
//! - `{{ var('k') }}` / `{{ var('k', default) }}`: `[vars]` of dag.toml,
//!   overridden by `--vars`; a missing one without default is an error.
//! - `{{ this }}`: the model's own name; `is_incremental()` is false (the
//!   engine decides what a run reads, so the template renders the full query);
//!   `{{ config(...) }}` renders nothing (the YAML file is the config).
//! - `{% set %}`, `{% for %}`, `{% if %}`, and the macros of
//!   `models/<pipeline>/macros/*.sql`, imported into every model.
//!
//! Text without `{{`, `{%` or `{#` is taken as it is, so plain SQL never
//! meets the template engine. Errors name the model (or macro) file and the
//! line in that file: a template error carries its line; a problem found in
//! the rendered SQL is mapped back to the template line it came from
//! ([`SqlFile::pos`]).

use super::{Diagnostics, Pos, did_you_mean};
use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The models a template may name, read before any model is parsed.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    /// Every model name (quarantines included).
    pub models: BTreeSet<String>,
    /// Source models (Kafka or file) by name, with their topic if any.
    pub sources: BTreeMap<String, Option<String>>,
    /// Clean models by name, with the source model each reads.
    pub cleans: BTreeMap<String, String>,
}

impl Catalog {
    /// What `source(name)` renders as: the clean model that reads the source
    /// `name` (a source model, its topic, or the clean model itself).
    pub fn resolve_source(&self, name: &str) -> Result<String, String> {
        if self.cleans.contains_key(name) {
            return Ok(name.to_string());
        }
        let source = if self.sources.contains_key(name) {
            Some(name.to_string())
        } else {
            self.sources
                .iter()
                .find(|(_, topic)| topic.as_deref() == Some(name))
                .map(|(m, _)| m.clone())
        };
        let Some(source) = source else {
            let known: Vec<&str> = self
                .sources
                .iter()
                .flat_map(|(m, t)| std::iter::once(m.as_str()).chain(t.as_deref()))
                .collect();
            return Err(format!(
                "unknown source `{name}`{}: a source is a source model, its topic or its clean model ({})",
                did_you_mean(name, known.iter().copied()),
                if known.is_empty() {
                    "this pipeline has none".to_string()
                } else {
                    format!("known: {}", known.join(", "))
                }
            ));
        };
        let readers: Vec<&String> = self
            .cleans
            .iter()
            .filter(|(_, input)| **input == source)
            .map(|(c, _)| c)
            .collect();
        match readers.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(format!(
                "source `{name}` has no clean model: a SQL model reads a source through the silver `clean` model of `{source}`"
            )),
            many => Err(format!(
                "source `{name}` is cleaned by several models ({}): name the one to read with ref()",
                many.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// A model's SQL file: the text as written and as rendered.
#[derive(Clone, Debug)]
pub struct SqlFile {
    pub path: PathBuf,
    /// The file's text.
    pub template: String,
    /// The SQL the model runs (equal to `template` for plain SQL).
    pub rendered: String,
    /// A stand-in for a template that did not render (its error is
    /// reported): the model file's own keys are still checked, but not
    /// against a query, which would only add noise.
    pub stand_in: bool,
}

impl SqlFile {
    /// A plain SQL file (no rendering).
    pub fn plain(path: &Path, text: &str) -> Self {
        Self {
            path: path.to_path_buf(),
            template: text.to_string(),
            rendered: text.to_string(),
            stand_in: false,
        }
    }

    /// The stand-in for `path`, whose template did not render.
    pub fn stand_in(path: &Path) -> Self {
        Self {
            stand_in: true,
            ..Self::plain(path, "select 1")
        }
    }

    pub fn is_template(&self) -> bool {
        self.template != self.rendered
    }

    /// Where a position of the rendered SQL is in the file. Exact when
    /// rendering kept the line count (a `ref` replaced in place, the usual
    /// case); otherwise the template line whose literal text the rendered
    /// line carries, the column then being the line's start.
    pub fn pos(&self, line: u64, column: u64) -> Pos {
        if !self.is_template() {
            return Pos::new(&self.path, line, column);
        }
        let tl = self.template.lines().count();
        let rl = self.rendered.lines().count();
        if tl == rl {
            let same = self.template.lines().nth(line as usize - 1)
                == self.rendered.lines().nth(line as usize - 1);
            return Pos::new(&self.path, line, if same { column } else { 1 });
        }
        match map_line(&self.template, &self.rendered, line as usize) {
            Some(t) => Pos::new(&self.path, t as u64, 1),
            None => Pos::file(&self.path),
        }
    }

    /// What to add to a message about the rendered SQL so the user can find
    /// the text it is about.
    pub fn rendered_hint(&self, model: &str, line: u64) -> String {
        if self.is_template() {
            format!(" (line {line} of the rendered SQL: `dag compile {model}` prints it)")
        } else {
            String::new()
        }
    }
}

/// The template line a rendered line most likely came from: the nearest
/// line at or after the previous match whose literal fragments all appear,
/// in order, in the rendered line (a loop body matches again behind it).
fn map_line(template: &str, rendered: &str, target: usize) -> Option<usize> {
    let tlines: Vec<Vec<String>> = template.lines().map(literal_fragments).collect();
    let mut cursor = 0usize;
    let mut last = None;
    for (i, r) in rendered.lines().enumerate() {
        let fits = |j: usize| {
            let frags = &tlines[j];
            !frags.is_empty() && contains_in_order(r, frags)
        };
        let found = (cursor..tlines.len())
            .find(|&j| fits(j))
            .or_else(|| (0..cursor).rev().find(|&j| fits(j)));
        if let Some(j) = found {
            cursor = j;
            last = Some(j + 1);
        }
        if i + 1 == target {
            return last;
        }
    }
    last
}

/// The literal text of a template line: what is outside `{{ }}`, `{% %}`
/// and `{# #}`, trimmed, fragments shorter than two characters dropped.
fn literal_fragments(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    loop {
        let next = ["{{", "{%", "{#"]
            .iter()
            .filter_map(|m| rest.find(m).map(|i| (i, *m)))
            .min();
        let (lit, after) = match next {
            None => (rest, None),
            Some((i, open)) => {
                let close = match open {
                    "{{" => "}}",
                    "{%" => "%}",
                    _ => "#}",
                };
                let tail = &rest[i + 2..];
                (&rest[..i], Some(tail.find(close).map(|c| &tail[c + 2..])))
            }
        };
        let lit = lit.trim();
        if lit.len() >= 2 {
            out.push(lit.to_string());
        }
        match after {
            None | Some(None) => return out,
            Some(Some(tail)) => rest = tail,
        }
    }
}

fn contains_in_order(haystack: &str, needles: &[String]) -> bool {
    let mut rest = haystack;
    for n in needles {
        match rest.find(n.as_str()) {
            Some(i) => rest = &rest[i + n.len()..],
            None => return false,
        }
    }
    true
}

/// Whether a text uses template syntax at all.
pub fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// A macro file and the macros it defines.
#[derive(Clone, Debug)]
struct MacroFile {
    /// The template name imports use: `macros/<file>`.
    name: String,
    path: PathBuf,
    macros: Vec<String>,
}

/// The template environment of one pipeline: its catalog, vars and macros.
pub struct Templates {
    env: Environment<'static>,
    macros: Vec<MacroFile>,
    /// `{% from ... import ... %}` for every macro file, without newline so
    /// the model's line numbers stay its own.
    prelude: String,
}

impl Templates {
    /// Builds the environment; `macros_dir` is `models/<pipeline>/macros`
    /// (it need not exist). Problems with macro files are returned with the
    /// environment, which then lacks those files.
    pub fn new(
        macros_dir: &Path,
        catalog: Catalog,
        vars: BTreeMap<String, serde_json::Value>,
    ) -> (Templates, Diagnostics) {
        let mut diags = Diagnostics::default();
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_debug(true);
        add_model_functions(&mut env, Arc::new(catalog));
        add_var(&mut env, Arc::new(vars));
        add_dbt_stubs(&mut env);
        let macros = load_macros(&mut env, macros_dir, &mut diags);
        let prelude: String = macros
            .iter()
            .filter(|f| !f.macros.is_empty())
            .map(|f| format!("{{% from {:?} import {} %}}", f.name, f.macros.join(", ")))
            .collect();
        (
            Templates {
                env,
                macros,
                prelude,
            },
            diags,
        )
    }

    /// Renders the SQL file of `model`. Plain SQL is returned as it is.
    pub fn render(&self, model: &str, path: &Path, text: &str) -> Result<SqlFile, (Pos, String)> {
        if !is_template(text) {
            return Ok(SqlFile::plain(path, text));
        }
        let name = path.display().to_string();
        let source = format!("{}{text}", self.prelude);
        let rendered = self
            .env
            .render_named_str(&name, &source, minijinja::context! { this => model })
            .map_err(|e| self.locate(&e, path, text, model))?;
        Ok(SqlFile {
            path: path.to_path_buf(),
            template: text.to_string(),
            rendered,
            stand_in: false,
        })
    }

    /// The position and message of a template error: in the model file, or
    /// in the macro file it happened in.
    fn locate(&self, e: &Error, path: &Path, text: &str, model: &str) -> (Pos, String) {
        let in_macro = e
            .name()
            .and_then(|n| self.macros.iter().find(|f| f.name == n));
        match in_macro {
            Some(f) => {
                let mtext = std::fs::read_to_string(&f.path).unwrap_or_default();
                (
                    error_pos(e, &f.path, &mtext, 0),
                    format!("{} (rendering model `{model}`)", message(e)),
                )
            }
            None => (error_pos(e, path, text, self.prelude.len()), message(e)),
        }
    }
}

/// `ref()` and `source()`: names of the catalog's models, checked when the
/// template renders so an unknown one is an error at its line.
fn add_model_functions(env: &mut Environment<'static>, catalog: Arc<Catalog>) {
    let cat = catalog.clone();
    env.add_function(
        "ref",
        move |a: String, b: Option<String>| -> Result<Value, Error> {
            let name = b.unwrap_or(a);
            if cat.models.contains(&name) {
                Ok(Value::from(name))
            } else {
                Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!(
                        "ref('{name}'): unknown model `{name}`{}",
                        did_you_mean(&name, cat.models.iter().map(String::as_str))
                    ),
                ))
            }
        },
    );
    let cat = catalog;
    env.add_function(
        "source",
        move |a: String, b: Option<String>| -> Result<Value, Error> {
            let name = b.unwrap_or(a);
            cat.resolve_source(&name).map(Value::from).map_err(|m| {
                Error::new(
                    ErrorKind::InvalidOperation,
                    format!("source('{name}'): {m}"),
                )
            })
        },
    );
}

/// `var()`: the pipeline's vars, or the call's default.
fn add_var(env: &mut Environment<'static>, vars: Arc<BTreeMap<String, serde_json::Value>>) {
    env.add_function(
        "var",
        move |name: String, default: Option<Value>| -> Result<Value, Error> {
            match (vars.get(&name), default) {
                (Some(v), _) => Ok(Value::from(minijinja::value::Serde(v))),
                (None, Some(d)) => Ok(d),
                (None, None) => Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!(
                        "var('{name}') is not set and has no default: set it under [vars] in dag.toml or pass --vars '{{{name}: ...}}'{}",
                        did_you_mean(&name, vars.keys().map(String::as_str))
                    ),
                )),
            }
        },
    );
}

/// dbt functions whose job the engine does: `is_incremental()` and
/// `config(...)`.
fn add_dbt_stubs(env: &mut Environment<'static>) {
    // The engine decides what a run reads, so a template renders the full
    // query.
    env.add_function("is_incremental", || false);
    // dbt's model config lives in the YAML file here: every argument is
    // accepted (and marked used, or minijinja would reject them).
    env.add_function("config", |kw: Kwargs| {
        let keys: Vec<String> = kw.args().map(str::to_string).collect();
        for k in &keys {
            let _: Value = kw.get(k)?;
        }
        Ok::<_, Error>(Value::from(""))
    });
}

/// Adds the `.sql` files of `macros_dir`, in name order, as templates
/// `macros/<file>`. A macro name defined by an earlier file is reported and
/// not imported again.
fn load_macros(
    env: &mut Environment<'static>,
    macros_dir: &Path,
    diags: &mut Diagnostics,
) -> Vec<MacroFile> {
    let mut macros = Vec::new();
    let mut defined: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(macros_dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    for path in files {
        if let Some(file) = load_macro_file(env, path, &mut defined, diags) {
            macros.push(file);
        }
    }
    macros
}

/// One file of the macros folder; `None` if it is not a readable,
/// well-formed `.sql` file (reported).
fn load_macro_file(
    env: &mut Environment<'static>,
    path: PathBuf,
    defined: &mut BTreeMap<String, PathBuf>,
    diags: &mut Diagnostics,
) -> Option<MacroFile> {
    let fname = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    if path.is_dir() || !fname.ends_with(".sql") {
        diags.push(
            Pos::file(&path),
            "the macros folder holds only `.sql` files of `{% macro %}` blocks",
        );
        return None;
    }
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            diags.push(Pos::file(&path), format!("cannot read: {e}"));
            return None;
        }
    };
    let name = format!("macros/{fname}");
    if let Err(e) = env.add_template_owned(name.clone(), text.clone()) {
        diags.push(error_pos(&e, &path, &text, 0), message(&e));
        return None;
    }
    let mut names = Vec::new();
    for (line, m) in macro_names(&text) {
        if let Some(first) = defined.insert(m.clone(), path.clone()) {
            diags.push(
                Pos::new(&path, line as u64, 1),
                format!(
                    "macro `{m}` is also defined in {}: macro names are shared by every model",
                    first.display()
                ),
            );
        } else {
            names.push(m);
        }
    }
    Some(MacroFile {
        name,
        path,
        macros: names,
    })
}

/// The words of an error, without minijinja's own position suffix.
fn message(e: &Error) -> String {
    match (e.kind(), e.detail()) {
        (ErrorKind::InvalidOperation, Some(d)) => d.to_string(),
        (ErrorKind::UndefinedError, Some(d)) => format!("undefined: {d}"),
        (ErrorKind::UndefinedError, None) => {
            "undefined value (a misspelt variable, or a var() missing its name?)".to_string()
        }
        (k, Some(d)) => format!("{k}: {d}"),
        (k, None) => k.to_string(),
    }
}

/// Line and column of an error in `text`, whose rendered source had
/// `prefix` bytes put in front of its first line.
fn error_pos(e: &Error, path: &Path, text: &str, prefix: usize) -> Pos {
    let Some(line) = e.line() else {
        return Pos::file(path);
    };
    let column = e
        .range()
        .and_then(|r| {
            let start = r.start.checked_sub(prefix)?;
            let before = text.get(..start)?;
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            Some(before[line_start..].chars().count() as u64 + 1)
        })
        .unwrap_or(0);
    Pos::new(path, line as u64, column)
}

/// `{% macro name(` blocks of a macro file, with their lines.
fn macro_names(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("{%") {
            let tag = rest[at + 2..].trim_start_matches(['-', '+']).trim_start();
            if let Some(after) = tag.strip_prefix("macro")
                && after.starts_with(char::is_whitespace)
            {
                let name: String = after
                    .trim_start()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.push((i + 1, name));
                }
            }
            rest = &rest[at + 2..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog {
            models: ["orders", "raw_orders", "stg_orders"]
                .map(String::from)
                .into(),
            sources: [("raw_orders".to_string(), Some("shop.orders".to_string()))].into(),
            cleans: [("stg_orders".to_string(), "raw_orders".to_string())].into(),
        }
    }

    fn templates(vars: &[(&str, serde_json::Value)]) -> Templates {
        let (t, diags) = Templates::new(
            Path::new("/nonexistent/macros"),
            catalog(),
            vars.iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        );
        assert!(diags.is_empty(), "{diags}");
        t
    }

    #[test]
    fn ref_source_var_and_loops_render_to_plain_sql() {
        let t = templates(&[("statuses", serde_json::json!(["paid", "sent"]))]);
        let sql = "select o.id,\n{% for s in var('statuses') %}  sum(case when status = '{{ s }}' then 1 else 0 end) as n_{{ s }}{{ ',' if not loop.last }}\n{% endfor %}from {{ ref('orders') }} o join {{ source('shop.orders') }} s using (id)\nwhere {{ var('min', 3) }} > 0";
        let f = t.render("m", Path::new("m.sql"), sql).unwrap();
        assert_eq!(
            f.rendered,
            "select o.id,\n  sum(case when status = 'paid' then 1 else 0 end) as n_paid,\n  sum(case when status = 'sent' then 1 else 0 end) as n_sent\nfrom orders o join stg_orders s using (id)\nwhere 3 > 0"
        );
        // The `from` line of the rendered SQL is the template's line 3.
        assert_eq!(f.pos(4, 6).line, 3);
    }

    #[test]
    fn an_unknown_ref_is_an_error_at_its_line_with_a_suggestion() {
        let t = templates(&[]);
        let (pos, msg) = t
            .render("m", Path::new("m.sql"), "select *\nfrom {{ ref('order') }}")
            .unwrap_err();
        // The column of the call inside `{{ }}`.
        assert_eq!((pos.line, pos.column), (2, 9), "{msg}");
        assert!(msg.contains("unknown model `order`"), "{msg}");
        assert!(msg.contains("`orders`"), "{msg}");
    }

    #[test]
    fn plain_sql_is_not_a_template() {
        let t = templates(&[]);
        let f = t
            .render("m", Path::new("m.sql"), "select '}}' as x from a")
            .unwrap();
        assert!(!f.is_template());
        assert_eq!(f.pos(1, 5), Pos::new("m.sql", 1, 5));
    }

    #[test]
    fn a_missing_var_and_a_syntax_error_name_their_line() {
        let t = templates(&[]);
        let (pos, msg) = t
            .render("m", Path::new("m.sql"), "select\n{{ var('cutoff') }}")
            .unwrap_err();
        assert_eq!(pos.line, 2);
        assert!(msg.contains("var('cutoff') is not set"), "{msg}");
        let (pos, msg) = t
            .render("m", Path::new("m.sql"), "select 1\n\n{% if x %}")
            .unwrap_err();
        assert_eq!(pos.line, 3, "{msg}");
        assert!(msg.contains("syntax error"), "{msg}");
    }

    #[test]
    fn macro_names_are_found_on_their_lines() {
        let text = "{% macro cents(col) %}{{ col }} * 100{% endmacro %}\n\n{%- macro pct(a, b) -%}\n{{ a }} / {{ b }}\n{%- endmacro %}";
        assert_eq!(
            macro_names(text),
            vec![(1, "cents".to_string()), (3, "pct".to_string())]
        );
    }
}
