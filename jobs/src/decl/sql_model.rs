//! What a gold `sql` model declares beside its query: as-of joins, and how
//! an incremental run narrows its work (`scope`, `accumulate`).

/// An as-of join made available to a SQL model as a named relation: each
/// `left` row gets the `right` row with the same `by` values and the latest
/// `right_on` at or before its `left_on` (ties: greatest `tie_break`).
#[derive(Clone, Debug, PartialEq)]
pub struct AsofJoin {
    pub name: String,
    pub left: String,
    pub right: String,
    pub left_on: String,
    pub right_on: String,
    pub by: Vec<String>,
    pub tie_break: Option<String>,
    /// Columns taken from the right side.
    pub select: Vec<String>,
}

/// For an incremental SQL model, how the changed rows of one input name the
/// output rows they can affect: each scope column of the output is a SQL
/// expression over the input's row. An incremental run recomputes only the
/// output rows whose scope values some changed input row has, from the
/// input rows with those values. Valid when every output row depends only
/// on input rows with its own scope values (a group by, a per-row
/// transform); see models/README.md.
#[derive(Clone, Debug, PartialEq)]
pub struct ScopeInput {
    pub input: String,
    /// (output column, SQL expression over the input), in output-column order.
    pub columns: Vec<(String, String)>,
    /// `scope_presence`: an output row depends only on whether rows of
    /// this input with its scope values exist (an inferred dimension
    /// member), not on what or how many they are. While the input only
    /// gains rows, only scope values the output does not hold yet are
    /// affected, and the new rows alone decide them.
    pub presence: bool,
}

/// How an `accumulate` model folds a column of the rows computed from new
/// input rows into the row it holds for the same key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fold {
    Sum,
    Min,
    Max,
}
