//! The wire form of the Data API: store values as typed parameters,
//! upper bounds of their size in a request (the service refuses requests
//! over 4 MiB), the split of row sets into calls that fit, and the
//! decoding of answered records.

use aws_sdk_rdsdata::types::{Field, SqlParameter};
use pg_sql::{ChunkRow, Rows, Value};

use crate::error::DataApiError;

/// A Data API parameter from a pg-sql value. Every value travels typed,
/// never in the SQL text.
fn field(value: Value<'_>) -> Field {
    match value {
        Value::Int8(v) => Field::LongValue(v),
        Value::Int4(v) => Field::LongValue(v.into()),
        // pg-sql's JSON form stores non-finite floats as null too.
        Value::Float4(v) if v.is_finite() => Field::DoubleValue(v.into()),
        Value::Float4(_) | Value::Null(_) => Field::IsNull(true),
        Value::Text(v) => Field::StringValue(v.to_owned()),
    }
}

pub(crate) fn parameter(name: &str, value: Value<'_>) -> SqlParameter {
    SqlParameter::builder()
        .name(name)
        .value(field(value))
        .build()
}

pub(crate) fn parameters<'n, 'v>(
    values: impl IntoIterator<Item = (&'n str, Value<'v>)>,
) -> Vec<SqlParameter> {
    values.into_iter().map(|(n, v)| parameter(n, v)).collect()
}

/// Decimal digits of `v`, sign included.
fn digits(v: i64) -> usize {
    let sign = usize::from(v < 0);
    let mut n = v.unsigned_abs();
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d + sign
}

/// An upper bound of a JSON string's length, quotes included.
pub(crate) fn json_string_len(s: &str) -> usize {
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

/// An upper bound of one parameter's JSON length in a request:
/// `{"name":"p","value":{"longValue":-12}}`.
pub(crate) fn parameter_len(name: &str, value: Value<'_>) -> usize {
    let value = match value {
        Value::Int8(v) => 14 + digits(v),
        Value::Int4(v) => 14 + digits(v.into()),
        // The shortest round-trip text of an f64 is at most 24 characters.
        Value::Float4(_) => 16 + 24,
        Value::Text(s) => 16 + json_string_len(s),
        Value::Null(_) => 15,
    };
    20 + name.len() + value + 1
}

/// Splits `0..len` into consecutive ranges of at most `max_rows` rows whose
/// sizes (`size(i)`) add up to at most `budget` (a single row larger than
/// the budget gets a range of its own; the service then refuses it).
pub(crate) fn split(
    len: usize,
    max_rows: usize,
    budget: usize,
    size: impl Fn(usize) -> usize,
) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for i in 0..len {
        let row = size(i) + 1;
        if i > start && (i - start >= max_rows || bytes + row > budget) {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += row;
    }
    if start < len {
        out.push(start..len);
    }
    out
}

/// An upper bound of one value's text inside a request's `stringValue`:
/// numbers in decimal (a float as its shortest round-trip text, or
/// `-Infinity`), text quoted with every quote and backslash escaped twice
/// (4 bytes) and a control character `control` bytes.
fn value_len(value: &Value, control: usize) -> usize {
    match value {
        Value::Int8(v) => digits(*v),
        Value::Int4(v) => digits((*v).into()),
        Value::Float4(_) => 24,
        Value::Null(_) => 4,
        Value::Text(s) => {
            4 + s
                .bytes()
                .map(|b| match b {
                    b'"' | b'\\' => 4,
                    0..=0x1f => control,
                    _ => 1,
                })
                .sum::<usize>()
        }
    }
}

/// An upper bound of one row's length in a JSON-form request: the row's
/// JSON (`Rows::to_json`) as it appears escaped inside the request's
/// `stringValue` (every quote and backslash doubled).
pub(crate) fn json_row_len(rows: &Rows<'_>, i: usize) -> usize {
    // `{` `}` and the comma.
    3 + rows
        .row(i)
        .map(|(name, value)| {
            // `\"name\":` and the comma.
            name.len() + 6 + value_len(&value, 7)
        })
        .sum::<usize>()
}

/// An upper bound of one row's length in an arrays-form request: its
/// element in each column's array literal (`Rows::to_arrays`) as it
/// appears escaped inside the request's `stringValue`, and the comma.
pub(crate) fn array_row_len(rows: &Rows<'_>, i: usize) -> usize {
    rows.row(i)
        .map(|(_, value)| {
            // The literal's quotes and backslashes, each escaped once more
            // by JSON; a control character is `\\u00XX` inside it.
            1 + value_len(&value, 6)
        })
        .sum()
}

/// The fixed part of an arrays-form call's parameters: one parameter per
/// column holding `{}` before any row.
pub(crate) fn array_params_len(rows: &Rows<'_>) -> usize {
    rows.columns()
        .iter()
        .map(|c| parameter_len(c.name, Value::Text("{}")))
        .sum()
}

pub(crate) fn corrupt(message: impl Into<String>) -> DataApiError {
    DataApiError::Corrupt(message.into())
}

fn long(f: &Field, what: &str) -> Result<Option<i64>, DataApiError> {
    match f {
        Field::LongValue(v) => Ok(Some(*v)),
        Field::IsNull(true) => Ok(None),
        _ => Err(corrupt(format!("{what}: expected an integer, got {f:?}"))),
    }
}

pub(crate) fn required_long(f: &Field, what: &str) -> Result<i64, DataApiError> {
    long(f, what)?.ok_or_else(|| corrupt(format!("{what} is null")))
}

pub(crate) fn int(f: &Field, what: &str) -> Result<Option<i32>, DataApiError> {
    long(f, what)?
        .map(|v| i32::try_from(v).map_err(|_| corrupt(format!("{what} = {v} is not an int4"))))
        .transpose()
}

pub(crate) fn text(f: &Field, what: &str) -> Result<Option<String>, DataApiError> {
    match f {
        Field::StringValue(v) => Ok(Some(v.clone())),
        Field::IsNull(true) => Ok(None),
        _ => Err(corrupt(format!("{what}: expected text, got {f:?}"))),
    }
}

pub(crate) fn real(f: &Field, what: &str) -> Result<f32, DataApiError> {
    match f {
        // float4 values come as the f64 of the same number.
        Field::DoubleValue(v) => Ok(*v as f32),
        Field::LongValue(v) => Ok(*v as f32),
        _ => Err(corrupt(format!("{what}: expected a number, got {f:?}"))),
    }
}

pub(crate) fn columns<'r>(
    record: &'r [Field],
    n: usize,
    what: &str,
) -> Result<&'r [Field], DataApiError> {
    if record.len() == n {
        Ok(record)
    } else {
        Err(corrupt(format!(
            "{what}: a row of {} columns, expected {n}",
            record.len()
        )))
    }
}

pub(crate) fn chunk_row(record: &[Field]) -> Result<ChunkRow, DataApiError> {
    let r = columns(record, 7, "load_chunk_page")?;
    Ok(ChunkRow {
        kind: int(&r[0], "kind")?.ok_or_else(|| corrupt("kind is null"))?,
        x: long(&r[1], "x")?,
        y: long(&r[2], "y")?,
        z: long(&r[3], "z")?,
        w: int(&r[4], "w")?,
        n: long(&r[5], "n")?,
        text: text(&r[6], "text")?,
    })
}

pub(crate) fn head_row(record: &[Field]) -> Result<(i64, i64, i64), DataApiError> {
    let r = columns(record, 3, "chunk heads")?;
    Ok((
        required_long(&r[0], "p")?,
        required_long(&r[1], "q")?,
        required_long(&r[2], "key")?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_count_signs() {
        for v in [0i64, 9, 10, -1, -10, i64::MAX, i64::MIN, 2_147_483_647] {
            assert_eq!(digits(v), v.to_string().len(), "{v}");
        }
    }

    #[test]
    fn parameter_sizes_bound_the_serialised_json() {
        // What the SDK sends for a parameter (REST-JSON): checked against
        // serde_json's rendering of the same shape.
        for (name, value) in [
            ("p", Value::Int8(i64::MIN)),
            ("w", Value::Int4(-63)),
            ("x", Value::Float4(-1.234_567_8e-20)),
            ("text", Value::Text("a \"quoted\" \\ \u{1} é")),
            ("user_id", Value::Null(pg_sql::SqlType::Text)),
        ] {
            let json_value = match value {
                Value::Int8(v) => format!(r#"{{"longValue":{v}}}"#),
                Value::Int4(v) => format!(r#"{{"longValue":{v}}}"#),
                // The SDK writes floats with ryu: at most 24 characters.
                Value::Float4(v) => format!(r#"{{"doubleValue":{:e}}}"#, f64::from(v)),
                Value::Text(s) => format!(r#"{{"stringValue":{}}}"#, json_string(s)),
                Value::Null(_) => r#"{"isNull":true}"#.to_owned(),
            };
            let json = format!(r#"{{"name":"{name}","value":{json_value}}},"#);
            assert!(
                parameter_len(name, value) >= json.len(),
                "{name}: {} < {}",
                parameter_len(name, value),
                json.len()
            );
        }
    }

    fn json_string(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    #[test]
    fn json_rows_are_bounded_as_sent() {
        use pg_sql::WritePlan;

        let mut batch = world_core::store::Batch::new();
        let chunk = world_core::coords::ChunkPos::new(-1, i32::MIN / 32);
        let pos = world_core::BlockPos::new(i32::MIN, 255, -1);
        batch.set_sign(chunk, pos, 7, "q\"b\\c\u{1}é", Default::default());
        batch.set_block(chunk, pos, -63, Default::default());
        let plan = WritePlan::new(&batch);
        for (_, rows) in plan.steps() {
            for i in 0..rows.len() {
                let json = rows.slice(i..i + 1).to_json();
                // As a JSON string inside the request, without its quotes
                // and the array's brackets (counted once per call), and a
                // comma.
                let sent = json_string(&json).len() - 2 - 2 + 1;
                assert!(json_row_len(rows, i) >= sent, "{json}");
            }
        }
    }

    #[test]
    fn array_rows_are_bounded_as_sent() {
        use pg_sql::WritePlan;

        let mut batch = world_core::store::Batch::new();
        let chunk = world_core::coords::ChunkPos::new(-1, i32::MIN / 32);
        for (k, text) in ["q\"b\\c\u{1}é", "NULL", "{a,b}"].into_iter().enumerate() {
            let pos = world_core::BlockPos::new(i32::MIN, 255, -1 - k as i32);
            batch.set_sign(chunk, pos, 7, text, Default::default());
            batch.set_block(chunk, pos, -63, Default::default());
            batch.set_light(chunk, pos, 15, Default::default());
        }
        let plan = WritePlan::new(&batch);
        for (_, rows) in plan.steps() {
            // What is sent: each column's literal as a JSON string in a
            // parameter; the estimate covers every row and the fixed part.
            let sent: usize = rows
                .to_arrays()
                .iter()
                .map(|(name, text)| parameter_len(name, Value::Text(text)))
                .sum();
            let exact: usize = rows
                .to_arrays()
                .iter()
                .map(|(name, text)| {
                    format!(
                        r#"{{"name":"{name}","value":{{"stringValue":{}}}}},"#,
                        json_string(text)
                    )
                    .len()
                })
                .sum();
            let estimate = array_params_len(rows)
                + (0..rows.len())
                    .map(|i| array_row_len(rows, i))
                    .sum::<usize>();
            assert!(sent >= exact, "parameter_len is an upper bound");
            assert!(estimate >= exact, "{estimate} < {exact}");
        }
    }

    #[test]
    fn splits_respect_rows_and_bytes() {
        let ranges = split(10, 4, 1_000, |_| 10);
        assert_eq!(ranges, [0..4, 4..8, 8..10]);
        let ranges = split(10, 100, 35, |_| 10);
        assert_eq!(ranges, [0..3, 3..6, 6..9, 9..10]);
        // A row over the budget still goes, alone.
        let ranges = split(3, 100, 15, |i| if i == 1 { 50 } else { 10 });
        assert_eq!(ranges, [0..1, 1..2, 2..3]);
        assert!(split(0, 1, 1, |_| 1).is_empty());
    }
}
