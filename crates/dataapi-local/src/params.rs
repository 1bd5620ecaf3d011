//! Parameters: the `Field` union of a request, bound as a typed PostgreSQL
//! parameter.
//!
//! Each value is declared with the type the Data API gives it, so PostgreSQL
//! applies the same typing rules as behind the real service: `longValue` is
//! `int8`, `doubleValue` `float8`, `booleanValue` `bool`, `blobValue` `bytea`
//! and `stringValue` `text` (so comparing a `uuid` column with a string
//! without the `UUID` hint fails as it does on AWS). A `typeHint` declares a
//! string as `date`, `time`, `timestamp`, `numeric`, `json` or `uuid` and
//! sends it in text format for PostgreSQL's own input function to parse.
//! `isNull` leaves the type to PostgreSQL's inference.

use std::error::Error as StdError;

use bytes::{BufMut, BytesMut};
use serde_json::Value;
use tokio_postgres::types::{Format, IsNull, ToSql, Type};

use crate::api::SqlParameter;
use crate::error::ApiError;

/// A value ready to bind.
#[derive(Debug, Clone, PartialEq)]
pub enum BoundValue {
    /// SQL NULL of an inferred type.
    Null,
    /// `booleanValue`.
    Bool(bool),
    /// `longValue`.
    Long(i64),
    /// `doubleValue`.
    Double(f64),
    /// `stringValue` without a hint.
    Text(String),
    /// `blobValue`.
    Bytes(Vec<u8>),
    /// `stringValue` with a hint: sent as text for the hinted type.
    Hinted(Type, String),
}

impl BoundValue {
    /// The type declared to PostgreSQL when preparing.
    pub fn declared_type(&self) -> Type {
        match self {
            BoundValue::Null => Type::UNKNOWN,
            BoundValue::Bool(_) => Type::BOOL,
            BoundValue::Long(_) => Type::INT8,
            BoundValue::Double(_) => Type::FLOAT8,
            BoundValue::Text(_) => Type::TEXT,
            BoundValue::Bytes(_) => Type::BYTEA,
            BoundValue::Hinted(ty, _) => ty.clone(),
        }
    }
}

impl ToSql for BoundValue {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self {
            BoundValue::Null => return Ok(IsNull::Yes),
            BoundValue::Bool(b) => out.put_u8(u8::from(*b)),
            BoundValue::Long(n) => out.put_i64(*n),
            BoundValue::Double(d) => out.put_f64(*d),
            BoundValue::Text(s) | BoundValue::Hinted(_, s) => out.put_slice(s.as_bytes()),
            BoundValue::Bytes(b) => out.put_slice(b),
        }
        Ok(IsNull::No)
    }

    // The declared type decides the encoding, and PostgreSQL may have
    // inferred any type for a NULL.
    fn accepts(_ty: &Type) -> bool {
        true
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        match self {
            BoundValue::Hinted(..) => Format::Text,
            _ => Format::Binary,
        }
    }

    tokio_postgres::types::to_sql_checked!();
}

fn hint_type(hint: &str) -> Result<Type, ApiError> {
    Ok(match hint {
        "DATE" => Type::DATE,
        "TIME" => Type::TIME,
        "TIMESTAMP" => Type::TIMESTAMP,
        "DECIMAL" => Type::NUMERIC,
        "JSON" => Type::JSON,
        "UUID" => Type::UUID,
        other => {
            return Err(ApiError::BadRequest(format!(
                "Invalid type hint: {other}. Valid values are DATE, DECIMAL, JSON, TIME, TIMESTAMP and UUID"
            )));
        }
    })
}

/// Reads one `Field` union.
pub fn parse_field(value: &Value, hint: Option<&str>) -> Result<BoundValue, ApiError> {
    let Value::Object(map) = value else {
        return Err(ApiError::BadRequest(
            "A parameter value must be a Field object".into(),
        ));
    };
    // The SDKs skip `null` members, so count only the set ones.
    let mut set = map.iter().filter(|(_, v)| !v.is_null());
    let (Some((key, v)), None) = (set.next(), set.next()) else {
        return Err(ApiError::BadRequest(
            "A parameter value must set exactly one of isNull, booleanValue, longValue, doubleValue, stringValue, blobValue"
                .into(),
        ));
    };
    let bad = |what: &str| ApiError::BadRequest(format!("Invalid {what} in a parameter value"));
    let bound = match key.as_str() {
        "isNull" => match v.as_bool() {
            Some(true) => BoundValue::Null,
            _ => return Err(bad("isNull")),
        },
        "booleanValue" => BoundValue::Bool(v.as_bool().ok_or_else(|| bad("booleanValue"))?),
        "longValue" => BoundValue::Long(v.as_i64().ok_or_else(|| bad("longValue"))?),
        "doubleValue" => BoundValue::Double(parse_double(v).ok_or_else(|| bad("doubleValue"))?),
        "stringValue" => {
            let s = v.as_str().ok_or_else(|| bad("stringValue"))?.to_owned();
            match hint {
                Some(h) => BoundValue::Hinted(hint_type(h)?, s),
                None => BoundValue::Text(s),
            }
        }
        "blobValue" => {
            let encoded = v.as_str().ok_or_else(|| bad("blobValue"))?;
            BoundValue::Bytes(
                aws_smithy_types::base64::decode(encoded).map_err(|_| bad("blobValue (base64)"))?,
            )
        }
        "arrayValue" => {
            return Err(ApiError::BadRequest(
                "Array parameters are not supported.".into(),
            ));
        }
        other => {
            return Err(ApiError::BadRequest(format!(
                "Unknown Field member: {other}"
            )));
        }
    };
    if let (Some(h), false) = (hint, matches!(bound, BoundValue::Hinted(..))) {
        // A hint only applies to a string; still refuse an unknown one.
        hint_type(h)?;
    }
    Ok(bound)
}

fn parse_double(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

/// Binds a request's parameters to the names of the rewritten SQL, in `$n`
/// order. Parameters the SQL does not use are ignored; a placeholder without
/// a value is an error.
pub fn bind(names: &[String], parameters: &[SqlParameter]) -> Result<Vec<BoundValue>, ApiError> {
    let mut parsed: Vec<(&str, BoundValue)> = Vec::with_capacity(parameters.len());
    for p in parameters {
        let name = p
            .name
            .as_deref()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ApiError::BadRequest("Every parameter must have a name".into()))?;
        let value = p
            .value
            .as_ref()
            .ok_or_else(|| ApiError::BadRequest(format!("Parameter {name} has no value")))?;
        let name = name.strip_prefix(':').unwrap_or(name);
        parsed.push((name, parse_field(value, p.type_hint.as_deref())?));
    }
    names
        .iter()
        .map(|name| {
            parsed
                .iter()
                .rev()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| {
                    ApiError::BadRequest(format!("No value specified for parameter: {name}"))
                })
        })
        .collect()
}
