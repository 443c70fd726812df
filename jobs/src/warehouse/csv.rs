//! Rows as PostgreSQL CSV for COPY: nulls unquoted and empty, empty strings
//! quoted, timestamps in UTC with microseconds, floats in their shortest
//! exact form (polars' writer, on every core).

use polars::prelude::*;

/// `df` as CSV lines without a header, in the column order given.
pub fn encode(df: &mut DataFrame) -> PolarsResult<Vec<u8>> {
    let mut buf = Vec::with_capacity(df.height() * 96);
    CsvWriter::new(&mut buf)
        .include_header(false)
        .with_quote_style(QuoteStyle::Necessary)
        .with_datetime_format(Some("%Y-%m-%dT%H:%M:%S%.6fZ".into()))
        .with_date_format(Some("%Y-%m-%d".into()))
        .finish(df)?;
    Ok(buf)
}
