//! What parsing one model file hands the loader besides the model: the
//! other models and columns it names, which only the whole pipeline can
//! resolve.

use super::{Model, Pos};

/// A parsed model and what it says about other models, for the loader.
#[derive(Clone, Debug)]
pub struct ModelDraft {
    pub model: Model,
    /// Models this one reads (DAG edges), with where they are named.
    pub inputs: Vec<Reference>,
    /// Other models named without being read (tests' targets).
    pub mentions: Vec<Reference>,
    /// Columns of other models named here: (model, column, where).
    pub foreign_columns: Vec<(String, String, Pos)>,
}

/// A model name used in a file, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    pub model: String,
    pub pos: Pos,
}

/// The references a file's parsing steps collect, in the order they are
/// met; they become the [`ModelDraft`]'s lists.
#[derive(Default)]
pub(super) struct Refs {
    pub(super) inputs: Vec<Reference>,
    pub(super) mentions: Vec<Reference>,
    pub(super) foreign_columns: Vec<(String, String, Pos)>,
}
