//! Row sets: the input of the set-based statements, kept by column.
//!
//! A [`Rows`] holds one vector per column, so tokio-postgres binds each
//! column as one array parameter (`:p` → `$1::int8[]`); the Data API, which
//! has no array parameters, reads it row by row ([`Rows::row`]) to build the
//! parameter sets of a `BatchExecuteStatement`, or as one JSON document
//! ([`Rows::to_json`]) for the statements whose result it needs.

use std::fmt::Write as _;

/// The SQL type of a statement input column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqlType {
    /// `int8` (`bigint`).
    Int8,
    /// `int4` (`integer`).
    Int4,
    /// `float4` (`real`).
    Float4,
    /// `text`.
    Text,
}

impl SqlType {
    /// The type's name in SQL casts.
    pub fn name(self) -> &'static str {
        match self {
            SqlType::Int8 => "int8",
            SqlType::Int4 => "int4",
            SqlType::Float4 => "float4",
            SqlType::Text => "text",
        }
    }
}

/// An input column of a set-based statement: its parameter name (`:name`)
/// and type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    /// Name of the column in the row source (`t.name`) and of its parameter.
    pub name: &'static str,
    /// SQL type.
    pub ty: SqlType,
}

/// The values of one column.
#[derive(Clone, Debug, PartialEq)]
pub enum ColumnData<'a> {
    /// `int8`, never null.
    Int8(Vec<i64>),
    /// `int8`, nullable.
    OptInt8(Vec<Option<i64>>),
    /// `int4`, never null.
    Int4(Vec<i32>),
    /// `float4`, never null.
    Float4(Vec<f32>),
    /// `text`, never null.
    Text(Vec<&'a str>),
    /// `text`, nullable.
    OptText(Vec<Option<&'a str>>),
}

impl ColumnData<'_> {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            ColumnData::Int8(v) => v.len(),
            ColumnData::OptInt8(v) => v.len(),
            ColumnData::Int4(v) => v.len(),
            ColumnData::Float4(v) => v.len(),
            ColumnData::Text(v) => v.len(),
            ColumnData::OptText(v) => v.len(),
        }
    }

    /// Whether the column has no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The SQL type these values have.
    pub fn ty(&self) -> SqlType {
        match self {
            ColumnData::Int8(_) | ColumnData::OptInt8(_) => SqlType::Int8,
            ColumnData::Int4(_) => SqlType::Int4,
            ColumnData::Float4(_) => SqlType::Float4,
            ColumnData::Text(_) | ColumnData::OptText(_) => SqlType::Text,
        }
    }

    /// The value at `row`.
    ///
    /// # Panics
    ///
    /// If `row` is out of bounds.
    pub fn value(&self, row: usize) -> Value<'_> {
        match self {
            ColumnData::Int8(v) => Value::Int8(v[row]),
            ColumnData::OptInt8(v) => v[row].map_or(Value::Null(SqlType::Int8), Value::Int8),
            ColumnData::Int4(v) => Value::Int4(v[row]),
            ColumnData::Float4(v) => Value::Float4(v[row]),
            ColumnData::Text(v) => Value::Text(v[row]),
            ColumnData::OptText(v) => v[row].map_or(Value::Null(SqlType::Text), Value::Text),
        }
    }
}

/// One value of a row, for backends that bind scalars.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    /// An `int8`.
    Int8(i64),
    /// An `int4`.
    Int4(i32),
    /// A `float4`.
    Float4(f32),
    /// A `text`.
    Text(&'a str),
    /// SQL `NULL` of this type.
    Null(SqlType),
}

/// A set of rows for one statement, kept by column in the statement's
/// column order.
#[derive(Clone, Debug, PartialEq)]
pub struct Rows<'a> {
    columns: &'static [Column],
    data: Vec<ColumnData<'a>>,
    len: usize,
}

impl<'a> Rows<'a> {
    /// Rows for `columns` from `data` (same order, same types, same lengths;
    /// checked in debug builds: only this crate builds rows).
    pub(crate) fn new(columns: &'static [Column], data: Vec<ColumnData<'a>>) -> Self {
        let len = data.first().map_or(0, ColumnData::len);
        debug_assert_eq!(columns.len(), data.len());
        debug_assert!(
            columns
                .iter()
                .zip(&data)
                .all(|(c, d)| c.ty == d.ty() && d.len() == len)
        );
        Self { columns, data, len }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no rows (a backend skips the statement then).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The columns, in statement order.
    pub fn columns(&self) -> &'static [Column] {
        self.columns
    }

    /// The values of every column, in statement order.
    pub fn data(&self) -> &[ColumnData<'a>] {
        &self.data
    }

    /// Rows `range` (for backends that must split a set across calls,
    /// e.g. under a request size limit).
    ///
    /// # Panics
    ///
    /// If `range` is out of bounds.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Rows<'a> {
        assert!(
            range.start <= range.end && range.end <= self.len,
            "rows {range:?} of {}",
            self.len
        );
        let data = self
            .data
            .iter()
            .map(|column| match column {
                ColumnData::Int8(v) => ColumnData::Int8(v[range.clone()].to_vec()),
                ColumnData::OptInt8(v) => ColumnData::OptInt8(v[range.clone()].to_vec()),
                ColumnData::Int4(v) => ColumnData::Int4(v[range.clone()].to_vec()),
                ColumnData::Float4(v) => ColumnData::Float4(v[range.clone()].to_vec()),
                ColumnData::Text(v) => ColumnData::Text(v[range.clone()].to_vec()),
                ColumnData::OptText(v) => ColumnData::OptText(v[range.clone()].to_vec()),
            })
            .collect();
        Rows {
            columns: self.columns,
            data,
            len: range.end - range.start,
        }
    }

    /// The values of column `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnData<'a>> {
        self.columns
            .iter()
            .position(|c| c.name == name)
            .map(|i| &self.data[i])
    }

    /// Row `row` as `(parameter name, value)` pairs: one parameter set of a
    /// per-row statement ([`Form::Values`](crate::Form::Values)).
    ///
    /// # Panics
    ///
    /// If `row >= self.len()`.
    pub fn row(&self, row: usize) -> impl Iterator<Item = (&'static str, Value<'_>)> + '_ {
        assert!(row < self.len, "row {row} of {}", self.len);
        self.columns
            .iter()
            .zip(&self.data)
            .map(move |(c, d)| (c.name, d.value(row)))
    }

    /// Rows `indices`, in that order (for a backend that sends the rows of
    /// one set to different statements).
    ///
    /// # Panics
    ///
    /// If an index is out of bounds.
    pub fn pick(&self, indices: &[usize]) -> Rows<'a> {
        fn take<T: Clone>(v: &[T], indices: &[usize]) -> Vec<T> {
            indices.iter().map(|&i| v[i].clone()).collect()
        }
        let data = self
            .data
            .iter()
            .map(|column| match column {
                ColumnData::Int8(v) => ColumnData::Int8(take(v, indices)),
                ColumnData::OptInt8(v) => ColumnData::OptInt8(take(v, indices)),
                ColumnData::Int4(v) => ColumnData::Int4(take(v, indices)),
                ColumnData::Float4(v) => ColumnData::Float4(take(v, indices)),
                ColumnData::Text(v) => ColumnData::Text(take(v, indices)),
                ColumnData::OptText(v) => ColumnData::OptText(take(v, indices)),
            })
            .collect();
        Rows {
            columns: self.columns,
            data,
            len: indices.len(),
        }
    }

    /// The rows as one PostgreSQL array literal per column (`{1,-2,3}`,
    /// `{"a \"b\"",NULL}`), with the column's name: the parameters of
    /// the [`Form::Arrays`](crate::Form::Arrays) statements, each sent as
    /// a string and cast to the column's array type in SQL.
    pub fn to_arrays(&self) -> Vec<(&'static str, String)> {
        self.columns
            .iter()
            .zip(&self.data)
            .map(|(c, d)| {
                let mut out = String::with_capacity(2 + self.len * 8);
                out.push('{');
                for row in 0..self.len {
                    if row > 0 {
                        out.push(',');
                    }
                    push_array_element(&mut out, d.value(row));
                }
                out.push('}');
                (c.name, out)
            })
            .collect()
    }

    /// The rows as a JSON array of objects keyed by column name: the one
    /// parameter (`:rows`) of the [`Form::Json`](crate::Form::Json)
    /// statements. Non-finite floats become `null`.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(self.len * 16 * self.columns.len() + 2);
        out.push('[');
        for row in 0..self.len {
            if row > 0 {
                out.push(',');
            }
            out.push('{');
            for (i, (name, value)) in self.row(row).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push('"');
                out.push_str(name);
                out.push_str("\":");
                push_json(&mut out, value);
            }
            out.push('}');
        }
        out.push(']');
        out
    }
}

/// Appends `value` as one element of a PostgreSQL array literal: numbers
/// as PostgreSQL prints them, text always double-quoted with `"` and `\`
/// backslash-escaped (so `NULL`, braces, commas and spaces in text stay
/// text), SQL `NULL` as the bare word.
fn push_array_element(out: &mut String, value: Value<'_>) {
    // Writing to a String cannot fail.
    let _ = match value {
        Value::Int8(v) => write!(out, "{v}"),
        Value::Int4(v) => write!(out, "{v}"),
        // Shortest text that reads back as the same f32 (never an
        // exponent); PostgreSQL's own words for the non-finite values.
        Value::Float4(v) if v.is_nan() => write!(out, "NaN"),
        Value::Float4(v) if v.is_infinite() && v > 0.0 => write!(out, "Infinity"),
        Value::Float4(v) if v.is_infinite() => write!(out, "-Infinity"),
        Value::Float4(v) => write!(out, "{v}"),
        Value::Null(_) => write!(out, "NULL"),
        Value::Text(v) => {
            out.push('"');
            for c in v.chars() {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
            Ok(())
        }
    };
}

fn push_json(out: &mut String, value: Value<'_>) {
    // Writing to a String cannot fail.
    let _ = match value {
        Value::Int8(v) => write!(out, "{v}"),
        Value::Int4(v) => write!(out, "{v}"),
        // Rust prints the shortest text that reads back as the same f32, and
        // never in exponent form, so it is a valid JSON number.
        Value::Float4(v) if v.is_finite() => write!(out, "{v}"),
        Value::Float4(_) | Value::Null(_) => write!(out, "null"),
        Value::Text(v) => write!(out, "{}", serde_json::Value::from(v)),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLUMNS: &[Column] = &[
        Column {
            name: "p",
            ty: SqlType::Int8,
        },
        Column {
            name: "text",
            ty: SqlType::Text,
        },
        Column {
            name: "user_id",
            ty: SqlType::Text,
        },
        Column {
            name: "x",
            ty: SqlType::Float4,
        },
    ];

    fn rows() -> Rows<'static> {
        Rows::new(
            COLUMNS,
            vec![
                ColumnData::Int8(vec![-1, 2]),
                ColumnData::Text(vec!["a \"q\", é", "'); --"]),
                ColumnData::OptText(vec![None, Some("bob")]),
                ColumnData::Float4(vec![1.5, f32::NAN]),
            ],
        )
    }

    #[test]
    fn rows_by_row_and_column() {
        let rows = rows();
        assert_eq!(rows.len(), 2);
        let second: Vec<_> = rows.row(1).collect();
        assert_eq!(second[0], ("p", Value::Int8(2)));
        assert_eq!(second[2], ("user_id", Value::Text("bob")));
        let first: Vec<_> = rows.row(0).collect();
        assert_eq!(first[2], ("user_id", Value::Null(SqlType::Text)));
        assert_eq!(rows.column("p"), Some(&ColumnData::Int8(vec![-1, 2])));
        assert_eq!(rows.column("nope"), None);
    }

    #[test]
    fn slices_keep_columns() {
        let rows = rows();
        let head = rows.slice(0..1);
        assert_eq!(head.len(), 1);
        assert_eq!(head.columns(), rows.columns());
        assert_eq!(
            head.row(0).collect::<Vec<_>>(),
            rows.row(0).collect::<Vec<_>>()
        );
        let tail = rows.slice(1..2);
        assert_eq!(tail.column("p"), Some(&ColumnData::Int8(vec![2])));
        assert!(rows.slice(2..2).is_empty());
    }

    #[test]
    fn json_escapes_text_and_keeps_numbers() {
        let json = rows().to_json();
        let parsed: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(parsed[0]["text"], "a \"q\", é");
        assert_eq!(parsed[1]["text"], "'); --");
        assert_eq!(parsed[0]["user_id"], serde_json::Value::Null);
        assert_eq!(parsed[0]["x"], 1.5);
        assert_eq!(parsed[1]["x"], serde_json::Value::Null);
        assert_eq!(parsed[0]["p"], -1);
    }

    #[test]
    fn arrays_quote_text_and_spell_nulls() {
        let arrays = rows().to_arrays();
        let names: Vec<&str> = arrays.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["p", "text", "user_id", "x"]);
        assert_eq!(arrays[0].1, "{-1,2}");
        assert_eq!(arrays[1].1, r#"{"a \"q\", é","'); --"}"#);
        assert_eq!(arrays[2].1, r#"{NULL,"bob"}"#);
        assert_eq!(arrays[3].1, "{1.5,NaN}");
        let mut out = String::new();
        push_array_element(&mut out, Value::Text("NULL\\"));
        assert_eq!(out, r#""NULL\\""#);
        let empty = rows().slice(0..0).to_arrays();
        assert!(empty.iter().all(|(_, a)| a == "{}"));
    }

    #[test]
    fn picked_rows_keep_columns() {
        let rows = rows();
        let picked = rows.pick(&[1, 0]);
        assert_eq!(picked.len(), 2);
        assert_eq!(picked.column("p"), Some(&ColumnData::Int8(vec![2, -1])));
        assert!(rows.pick(&[]).is_empty());
    }

    #[test]
    fn float4_json_is_exact() {
        for v in [0.1f32, -1e6, 1e-7, 3.4e38, -0.0] {
            let mut out = String::new();
            push_json(&mut out, Value::Float4(v));
            assert_eq!(out.parse::<f32>().expect("float"), v);
            assert!(
                serde_json::from_str::<serde_json::Value>(&out).is_ok(),
                "{out}"
            );
        }
    }
}
