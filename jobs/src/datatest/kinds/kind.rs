//! What a data test kind provides ([`KindDef`]): its name and option
//! keys for the loader, the parser of its options, and its evaluation
//! ([`Check`] on the kind's own type, reached through [`run`]).

use super::common::{Context, Findings, Target, input_error};
use crate::decl::{Declaring, Kind, TestKind};
use crate::model::ModelError;
use futures::future::LocalBoxFuture;
use std::future::Future;

/// A data test kind as the loader and the evaluation see it.
pub(crate) struct KindDef {
    /// As written in YAML.
    pub name: &'static str,
    /// The options it takes besides the ones every test takes (`severity`,
    /// `where`, `warn_if`, `error_if`); any other key is an error.
    pub options: &'static [&'static str],
    /// Reads the options; reports what is wrong and returns `None` then.
    pub parse: fn(&mut Declaring) -> Option<Kind>,
    /// Evaluates a test of this kind ([`run`] of the kind's type).
    pub check: CheckFn,
}

pub(crate) type CheckFn =
    for<'a> fn(&'a Context<'a>, &'a Target<'a>) -> LocalBoxFuture<'a, Result<Findings, ModelError>>;

/// A kind's evaluation over its target's rows.
pub(crate) trait Check: TestKind + Sized + 'static {
    fn check<'a>(
        &'a self,
        ctx: &'a Context<'a>,
        t: &'a Target<'a>,
    ) -> impl Future<Output = Result<Findings, ModelError>> + 'a;
}

/// The [`CheckFn`] of kind `K`: the test's options as `K`, checked.
pub(crate) fn run<'a, K: Check>(
    ctx: &'a Context<'a>,
    t: &'a Target<'a>,
) -> LocalBoxFuture<'a, Result<Findings, ModelError>> {
    Box::pin(async move {
        let Some(kind) = t.test.kind.get::<K>() else {
            let msg = format!("is not a `{}` test", t.test.kind.name());
            return Err(input_error(t.test, msg));
        };
        kind.check(ctx, t).await
    })
}
