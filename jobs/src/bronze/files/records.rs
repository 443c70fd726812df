//! A file's bytes into records, by format: JSON lines, CSV rows (raw
//! bytes, header as key), Parquet rows as JSON objects; or why the file
//! cannot be read as its format.

use crate::decl::FileFormat;

/// The records of one file, or why it cannot be read.
pub(super) enum Records {
    Rows(Vec<Record>),
    Unreadable(String),
}

/// One record: where it sits in its file, and its raw bytes.
pub(super) struct Record {
    pub(super) offset: i64,
    /// The CSV header line, shared by the rows of a file.
    pub(super) key: Option<std::sync::Arc<[u8]>>,
    pub(super) value: Vec<u8>,
}

/// Splits a file's bytes into records of `format`.
pub(super) fn records(format: FileFormat, data: &[u8]) -> Records {
    match format {
        FileFormat::Json => Records::Rows(json_lines(data)),
        FileFormat::Csv => csv_rows(data),
        FileFormat::Parquet => parquet_rows(data),
    }
}

/// Non-blank lines, each at its 1-based line number; a trailing `\r` is
/// not part of the record.
fn json_lines(data: &[u8]) -> Vec<Record> {
    data.split(|b| *b == b'\n')
        .enumerate()
        .filter_map(|(i, line)| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            (!line.iter().all(u8::is_ascii_whitespace)).then(|| Record {
                offset: i as i64 + 1,
                key: None,
                value: line.to_vec(),
            })
        })
        .collect()
}

/// The rows after the header, each as the raw bytes of its record (quoted
/// line breaks included) at the line it starts on, with the header line as
/// its key. Blank lines are no records.
fn csv_rows(data: &[u8]) -> Records {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(data);
    let mut starts = Vec::new();
    let mut record = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {
                if let Some(p) = record.position() {
                    // The reader's position can sit on the line break that
                    // ended the previous record: the record starts after.
                    let (mut at, mut line) = (p.byte() as usize, p.line() as i64);
                    while let Some(b) = data.get(at).filter(|b| matches!(b, b'\r' | b'\n')) {
                        if *b == b'\n' {
                            line += 1;
                        }
                        at += 1;
                    }
                    starts.push((at, line));
                }
            }
            Ok(false) => break,
            Err(e) => return Records::Unreadable(format!("not CSV: {e}")),
        }
    }
    let raw = |i: usize| -> &[u8] {
        let from = starts[i].0;
        let to = starts.get(i + 1).map_or(data.len(), |s| s.0);
        let mut slice = &data[from.min(data.len())..to.min(data.len())];
        while let Some(rest) = slice
            .strip_suffix(b"\n")
            .or_else(|| slice.strip_suffix(b"\r"))
        {
            slice = rest;
        }
        slice
    };
    let Some(_) = starts.first() else {
        return Records::Rows(Vec::new());
    };
    let header: std::sync::Arc<[u8]> = raw(0).into();
    Records::Rows(
        (1..starts.len())
            .map(|i| Record {
                offset: starts[i].1,
                key: Some(header.clone()),
                value: raw(i).to_vec(),
            })
            .collect(),
    )
}

/// Each row of a Parquet file as a JSON object, at its row number.
fn parquet_rows(data: &[u8]) -> Records {
    use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let bytes = bytes::Bytes::copy_from_slice(data);
    let reader = match ParquetRecordBatchReaderBuilder::try_new(bytes).and_then(|b| b.build()) {
        Ok(r) => r,
        Err(e) => return Records::Unreadable(format!("not a Parquet file: {e}")),
    };
    let mut rows = Vec::new();
    for batch in reader {
        let batch = match batch {
            Ok(b) => b,
            Err(e) => return Records::Unreadable(format!("Parquet data: {e}")),
        };
        let mut out = Vec::new();
        // A timestamp without a time zone (pandas' default, Spark's
        // TIMESTAMP_NTZ) is written as UTC, so `timestamp` rules (RFC 3339,
        // offset required) can read it.
        let mut writer = arrow::json::WriterBuilder::new()
            .with_timestamp_format("%Y-%m-%dT%H:%M:%S%.fZ".to_string())
            .build::<_, arrow::json::writer::LineDelimited>(&mut out);
        if let Err(e) = writer.write(&batch).and_then(|_| writer.finish()) {
            return Records::Unreadable(format!("Parquet row as JSON: {e}"));
        }
        drop(writer);
        for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            rows.push(Record {
                offset: rows.len() as i64,
                key: None,
                value: line.to_vec(),
            });
        }
    }
    Records::Rows(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(r: Records) -> Vec<(i64, Option<String>, String)> {
        match r {
            Records::Rows(rows) => rows
                .into_iter()
                .map(|r| {
                    (
                        r.offset,
                        r.key.map(|k| String::from_utf8_lossy(&k).to_string()),
                        String::from_utf8_lossy(&r.value).to_string(),
                    )
                })
                .collect(),
            Records::Unreadable(why) => panic!("unreadable: {why}"),
        }
    }

    #[test]
    fn csv_rows_keep_their_raw_bytes_quoted_newlines_and_header() {
        let data = b"id,note\r\n1,plain\r\n2,\"two\nlines\"\n\n3,last";
        let got = rows(csv_rows(data));
        let h = Some("id,note".to_string());
        assert_eq!(
            got,
            vec![
                (2, h.clone(), "1,plain".to_string()),
                (3, h.clone(), "2,\"two\nlines\"".to_string()),
                (6, h, "3,last".to_string()),
            ]
        );
        // A header alone has no records yet.
        assert!(rows(csv_rows(b"id,note\n")).is_empty());
    }

    #[test]
    fn json_lines_skip_blank_lines_and_number_the_rest() {
        let got = rows(Records::Rows(json_lines(
            b"{\"a\":1}\r\n\n  \n{\"a\":2}\nnot json",
        )));
        let values: Vec<(i64, String)> = got.into_iter().map(|(o, _, v)| (o, v)).collect();
        assert_eq!(
            values,
            vec![
                (1, "{\"a\":1}".to_string()),
                (4, "{\"a\":2}".to_string()),
                (5, "not json".to_string())
            ]
        );
    }

    #[test]
    fn parquet_rows_are_json_objects_with_utc_timestamps() {
        use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
        let naive = TimestampMicrosecondArray::from(vec![1_704_067_200_000_000i64]);
        let utc =
            TimestampMicrosecondArray::from(vec![1_704_067_200_500_000i64]).with_timezone("UTC");
        let batch = RecordBatch::try_from_iter([
            (
                "id",
                std::sync::Arc::new(StringArray::from(vec!["a"])) as ArrayRef,
            ),
            ("at", std::sync::Arc::new(naive) as ArrayRef),
            ("at_utc", std::sync::Arc::new(utc) as ArrayRef),
        ])
        .expect("test value");
        let mut file = Vec::new();
        let mut w =
            deltalake::parquet::arrow::ArrowWriter::try_new(&mut file, batch.schema(), None)
                .expect("test value");
        w.write(&batch).expect("test value");
        w.close().expect("test value");
        let got = rows(parquet_rows(&file));
        assert_eq!(got.len(), 1);
        let v: serde_json::Value = serde_json::from_str(&got[0].2).expect("test value");
        assert_eq!(v["id"], "a");
        for key in ["at", "at_utc"] {
            let text = v[key].as_str().expect("test value");
            assert!(
                crate::model::values::parse_rfc3339(text).is_some(),
                "{key}: {text} is not RFC 3339"
            );
        }
    }

    #[test]
    fn a_broken_parquet_file_is_unreadable_with_the_reason() {
        match parquet_rows(b"PAR1 this is not parquet") {
            Records::Unreadable(why) => assert!(why.contains("Parquet"), "{why}"),
            Records::Rows(_) => panic!("read garbage as Parquet"),
        }
    }
}
