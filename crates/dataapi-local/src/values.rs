//! Results: PostgreSQL values (binary wire format) as Data API fields, and
//! the JDBC view of each column type.
//!
//! The supported types are those the Aurora user guide lists for Aurora
//! PostgreSQL ("Amazon RDS Data API operations reference"): scalars `bool`,
//! `bytea`, `date`, `cidr`, `numeric`, enums, `float8`, `inet`, `int2/4/8`,
//! `json(b)`, `float4`, `text`, `char(n)`, `varchar`, `name`, `time`,
//! `timestamp`, `uuid`, `vector`, plus `timestamptz` (returned in UTC); and
//! one-dimensional arrays of `bool`, `bit`, `date`, `numeric`, `float4/8`,
//! `int2/4/8`, `json`, text types, `time`, `timestamp` and `uuid`. Anything
//! else is an `UnsupportedResultException` ("The result contains the
//! unsupported data type ..."), multidimensional arrays included.
//!
//! Mapping (JDBC type → Data API type, same page): integers → `longValue`
//! (or `stringValue` with `longReturnType=STRING`), floats → `doubleValue`,
//! decimals → `stringValue` (or long/double with `DOUBLE_OR_LONG`), booleans
//! and `bit` → `booleanValue`, `bytea` → `blobValue`, everything else
//! (dates and times included) → `stringValue`.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use tokio_postgres::types::{Kind, Type};

use crate::api::{ArrayOut, FieldOut};

/// How `resultSetOptions` asks for decimals and longs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReturnTypes {
    /// `decimalReturnType=DOUBLE_OR_LONG`.
    pub decimal_as_number: bool,
    /// `longReturnType=STRING`.
    pub long_as_string: bool,
}

/// The value classes this server decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    /// `bool`.
    Bool,
    /// `bit(n)`: a boolean when n = 1, else a string of digits.
    Bit,
    /// `int2`.
    Int2,
    /// `int4`.
    Int4,
    /// `int8`.
    Int8,
    /// `oid` (an unsigned 4-byte integer).
    Oid,
    /// `float4`.
    Float4,
    /// `float8`.
    Float8,
    /// `numeric`.
    Numeric,
    /// Text on the wire: `text`, `varchar`, `bpchar`, `name`, `"char"`,
    /// `json`, enums.
    Text,
    /// `jsonb` (a version byte, then text).
    Jsonb,
    /// `bytea`.
    Bytea,
    /// `date`.
    Date,
    /// `time`.
    Time,
    /// `timestamp`.
    Timestamp,
    /// `timestamptz` (UTC).
    Timestamptz,
    /// `uuid`.
    Uuid,
    /// `inet`.
    Inet,
    /// `cidr`.
    Cidr,
    /// pgvector's `vector`.
    Vector,
}

/// Classifies a supported scalar type.
pub fn scalar(ty: &Type) -> Option<Scalar> {
    if let Kind::Enum(_) = ty.kind() {
        return Some(Scalar::Text);
    }
    if ty.name() == "vector" && matches!(ty.kind(), Kind::Simple) {
        return Some(Scalar::Vector);
    }
    Some(match *ty {
        Type::BOOL => Scalar::Bool,
        Type::BIT => Scalar::Bit,
        Type::INT2 => Scalar::Int2,
        Type::INT4 => Scalar::Int4,
        Type::INT8 => Scalar::Int8,
        Type::OID => Scalar::Oid,
        Type::FLOAT4 => Scalar::Float4,
        Type::FLOAT8 => Scalar::Float8,
        Type::NUMERIC => Scalar::Numeric,
        // `void` (e.g. `SELECT pg_sleep(1)`) is sent as an empty string.
        Type::TEXT
        | Type::VARCHAR
        | Type::BPCHAR
        | Type::NAME
        | Type::CHAR
        | Type::JSON
        | Type::UNKNOWN
        | Type::VOID => Scalar::Text,
        Type::JSONB => Scalar::Jsonb,
        Type::BYTEA => Scalar::Bytea,
        Type::DATE => Scalar::Date,
        Type::TIME => Scalar::Time,
        Type::TIMESTAMP => Scalar::Timestamp,
        Type::TIMESTAMPTZ => Scalar::Timestamptz,
        Type::UUID => Scalar::Uuid,
        Type::INET => Scalar::Inet,
        Type::CIDR => Scalar::Cidr,
        _ => return None,
    })
}

/// Classifies a supported array element type.
fn array_element(ty: &Type) -> Option<Scalar> {
    let s = match *ty {
        Type::JSONB
        | Type::INET
        | Type::CIDR
        | Type::BYTEA
        | Type::OID
        | Type::TIMESTAMPTZ
        | Type::VOID => return None,
        _ => scalar(ty)?,
    };
    if let Kind::Enum(_) = ty.kind() {
        return None;
    }
    (s != Scalar::Vector).then_some(s)
}

/// The column type as this server can return it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// A scalar.
    Scalar(Scalar),
    /// A one-dimensional array of a scalar.
    Array(Scalar),
}

/// Classifies a column type, or names it as unsupported.
pub fn column_kind(ty: &Type) -> Result<ColumnKind, String> {
    if let Kind::Array(element) = ty.kind() {
        return array_element(element)
            .map(ColumnKind::Array)
            .ok_or_else(|| ty.name().to_owned());
    }
    scalar(ty)
        .map(ColumnKind::Scalar)
        .ok_or_else(|| ty.name().to_owned())
}

/// A value that cannot be returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A multidimensional array.
    #[error("The result contains a multidimensional array")]
    Multidimensional,
    /// Bytes that do not match the type (a bug or a protocol surprise).
    #[error("malformed {0} value from PostgreSQL")]
    Malformed(&'static str),
}

struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Malformed(self.what));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
}

fn reader<'a>(buf: &'a [u8], what: &'static str) -> Reader<'a> {
    Reader { buf, what }
}

fn utf8(raw: &[u8], what: &'static str) -> Result<String, DecodeError> {
    String::from_utf8(raw.to_vec()).map_err(|_| DecodeError::Malformed(what))
}

/// `numeric` in binary: digit count, weight, sign, display scale, base-10000
/// digits. Returns the text PostgreSQL would print and the display scale.
pub fn numeric_to_string(raw: &[u8]) -> Result<(String, u16), DecodeError> {
    let mut r = reader(raw, "numeric");
    let ndigits = r.i16()?;
    let weight = i32::from(r.i16()?);
    let sign = r.u16()?;
    let dscale = r.u16()?;
    let digits = (0..ndigits.max(0))
        .map(|_| r.i16())
        .collect::<Result<Vec<_>, _>>()?;
    match sign {
        0xC000 => return Ok(("NaN".into(), 0)),
        0xD000 => return Ok(("Infinity".into(), 0)),
        0xF000 => return Ok(("-Infinity".into(), 0)),
        _ => {}
    }
    let digit = |k: i32| -> i16 {
        usize::try_from(k)
            .ok()
            .and_then(|k| digits.get(k))
            .copied()
            .unwrap_or(0)
    };
    let mut s = String::new();
    if sign == 0x4000 {
        s.push('-');
    }
    if weight < 0 {
        s.push('0');
    } else {
        for k in 0..=weight {
            if k == 0 {
                let _ = write!(s, "{}", digit(k));
            } else {
                let _ = write!(s, "{:04}", digit(k));
            }
        }
    }
    if dscale > 0 {
        let mut frac = String::new();
        let mut k = weight + 1;
        while frac.len() < usize::from(dscale) {
            let _ = write!(frac, "{:04}", digit(k));
            k += 1;
        }
        frac.truncate(usize::from(dscale));
        s.push('.');
        s.push_str(&frac);
    }
    Ok((s, dscale))
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// PostgreSQL's epoch (2000-01-01) in days since 1970-01-01.
const PG_EPOCH_DAYS: i64 = 10_957;
const MICROS_PER_DAY: i64 = 86_400_000_000;

fn format_date(days_since_2000: i64) -> (String, bool) {
    let (y, m, d) = civil_from_days(days_since_2000 + PG_EPOCH_DAYS);
    if y <= 0 {
        (format!("{:04}-{m:02}-{d:02}", 1 - y), true)
    } else {
        (format!("{y:04}-{m:02}-{d:02}"), false)
    }
}

fn format_time_of_day(micros: i64) -> String {
    let secs = micros / 1_000_000;
    let frac = micros % 1_000_000;
    let mut s = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if frac != 0 {
        let digits = format!("{frac:06}");
        s.push('.');
        s.push_str(digits.trim_end_matches('0'));
    }
    s
}

/// `timestamp` in binary (microseconds since 2000-01-01) as
/// `YYYY-MM-DD HH:MM:SS[.ffffff]`, the accepted input format of the
/// `TIMESTAMP` hint.
pub fn format_timestamp(micros: i64) -> String {
    match micros {
        i64::MAX => return "infinity".into(),
        i64::MIN => return "-infinity".into(),
        _ => {}
    }
    let days = micros.div_euclid(MICROS_PER_DAY);
    let (date, bc) = format_date(days);
    let mut s = format!(
        "{date} {}",
        format_time_of_day(micros.rem_euclid(MICROS_PER_DAY))
    );
    if bc {
        s.push_str(" BC");
    }
    s
}

fn format_pg_date(days: i32) -> String {
    match days {
        i32::MAX => "infinity".into(),
        i32::MIN => "-infinity".into(),
        _ => {
            let (date, bc) = format_date(i64::from(days));
            if bc { format!("{date} BC") } else { date }
        }
    }
}

fn format_uuid(raw: &[u8]) -> Result<String, DecodeError> {
    if raw.len() != 16 {
        return Err(DecodeError::Malformed("uuid"));
    }
    let mut s = String::with_capacity(36);
    for (i, b) in raw.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        let _ = write!(s, "{b:02x}");
    }
    Ok(s)
}

fn format_inet(raw: &[u8], cidr: bool) -> Result<String, DecodeError> {
    let mut r = reader(raw, "inet");
    let family = r.u8()?;
    let bits = r.u8()?;
    let _is_cidr = r.u8()?;
    let len = r.u8()?;
    let addr = r.take(usize::from(len))?;
    let (text, max) = match (family, addr.len()) {
        (2, 4) => (
            Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]).to_string(),
            32,
        ),
        (3, 16) => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(addr);
            (Ipv6Addr::from(octets).to_string(), 128)
        }
        _ => return Err(DecodeError::Malformed("inet")),
    };
    Ok(if cidr || bits != max {
        format!("{text}/{bits}")
    } else {
        text
    })
}

fn format_bits(raw: &[u8]) -> Result<(u32, String), DecodeError> {
    let mut r = reader(raw, "bit");
    let len = u32::try_from(r.i32()?).map_err(|_| DecodeError::Malformed("bit"))?;
    let bytes = r.buf;
    let s = (0..len)
        .map(|i| {
            let byte = bytes.get((i / 8) as usize).copied().unwrap_or(0);
            if byte & (0x80 >> (i % 8)) != 0 {
                '1'
            } else {
                '0'
            }
        })
        .collect();
    Ok((len, s))
}

fn format_vector(raw: &[u8]) -> Result<String, DecodeError> {
    let mut r = reader(raw, "vector");
    let dim = r.u16()?;
    let _unused = r.u16()?;
    let mut s = String::from("[");
    for i in 0..dim {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{}", f32::from_be_bytes(r.array()?));
    }
    s.push(']');
    Ok(s)
}

/// One scalar value.
pub fn decode_scalar(kind: Scalar, raw: &[u8], rt: ReturnTypes) -> Result<FieldOut, DecodeError> {
    let long = |n: i64| {
        if rt.long_as_string {
            FieldOut::String(n.to_string())
        } else {
            FieldOut::Long(n)
        }
    };
    Ok(match kind {
        Scalar::Bool => FieldOut::Bool(reader(raw, "bool").u8()? != 0),
        Scalar::Bit => match format_bits(raw)? {
            (1, s) => FieldOut::Bool(s == "1"),
            (_, s) => FieldOut::String(s),
        },
        Scalar::Int2 => long(i64::from(reader(raw, "int2").i16()?)),
        Scalar::Int4 => long(i64::from(reader(raw, "int4").i32()?)),
        Scalar::Oid => long(i64::from(u32::from_be_bytes(reader(raw, "oid").array()?))),
        Scalar::Int8 => long(reader(raw, "int8").i64()?),
        Scalar::Float4 => FieldOut::Double(f64::from(f32::from_be_bytes(
            reader(raw, "float4").array()?,
        ))),
        Scalar::Float8 => FieldOut::Double(f64::from_be_bytes(reader(raw, "float8").array()?)),
        Scalar::Numeric => {
            let (text, scale) = numeric_to_string(raw)?;
            if !rt.decimal_as_number {
                FieldOut::String(text)
            } else if scale == 0 {
                // A long when it fits, as BigDecimal.longValue() would not
                // (it wraps); a double beyond that.
                match text.parse::<i64>() {
                    Ok(n) => FieldOut::Long(n),
                    Err(_) => FieldOut::Double(
                        text.parse()
                            .map_err(|_| DecodeError::Malformed("numeric"))?,
                    ),
                }
            } else {
                FieldOut::Double(
                    text.parse()
                        .map_err(|_| DecodeError::Malformed("numeric"))?,
                )
            }
        }
        Scalar::Text => FieldOut::String(utf8(raw, "text")?),
        Scalar::Jsonb => match raw.split_first() {
            Some((1, rest)) => FieldOut::String(utf8(rest, "jsonb")?),
            _ => return Err(DecodeError::Malformed("jsonb")),
        },
        Scalar::Bytea => FieldOut::Blob(raw.to_vec()),
        Scalar::Date => FieldOut::String(format_pg_date(reader(raw, "date").i32()?)),
        Scalar::Time => FieldOut::String(format_time_of_day(reader(raw, "time").i64()?)),
        Scalar::Timestamp | Scalar::Timestamptz => {
            FieldOut::String(format_timestamp(reader(raw, "timestamp").i64()?))
        }
        Scalar::Uuid => FieldOut::String(format_uuid(raw)?),
        Scalar::Inet => FieldOut::String(format_inet(raw, false)?),
        Scalar::Cidr => FieldOut::String(format_inet(raw, true)?),
        Scalar::Vector => FieldOut::String(format_vector(raw)?),
    })
}

/// A one-dimensional array (binary array format).
pub fn decode_array(element: Scalar, raw: &[u8], rt: ReturnTypes) -> Result<FieldOut, DecodeError> {
    let mut r = reader(raw, "array");
    let ndim = r.i32()?;
    let _has_nulls = r.i32()?;
    let _element_oid = r.i32()?;
    if ndim > 1 {
        return Err(DecodeError::Multidimensional);
    }
    let mut values = Vec::new();
    if ndim == 1 {
        let len = r.i32()?;
        let _lower_bound = r.i32()?;
        for _ in 0..len.max(0) {
            let item_len = r.i32()?;
            values.push(match usize::try_from(item_len) {
                Ok(n) => Some(decode_scalar(element, r.take(n)?, rt)?),
                Err(_) => None,
            });
        }
    }
    // The element class picks the union member even for an empty array.
    let out = match element {
        Scalar::Bool | Scalar::Bit => ArrayOut::Booleans(
            values
                .into_iter()
                .map(|v| match v {
                    Some(FieldOut::Bool(b)) => Ok(Some(b)),
                    None => Ok(None),
                    _ => Err(DecodeError::Malformed("bit array")),
                })
                .collect::<Result<_, _>>()?,
        ),
        Scalar::Int2 | Scalar::Int4 | Scalar::Int8 if !rt.long_as_string => ArrayOut::Longs(
            values
                .into_iter()
                .map(|v| match v {
                    Some(FieldOut::Long(n)) => Some(n),
                    _ => None,
                })
                .collect(),
        ),
        Scalar::Float4 | Scalar::Float8 => ArrayOut::Doubles(
            values
                .into_iter()
                .map(|v| match v {
                    Some(FieldOut::Double(d)) => Some(d),
                    _ => None,
                })
                .collect(),
        ),
        _ => ArrayOut::Strings(
            values
                .into_iter()
                .map(|v| match v {
                    Some(FieldOut::String(s)) => Some(s),
                    Some(FieldOut::Long(n)) => Some(n.to_string()),
                    Some(FieldOut::Double(d)) => Some(d.to_string()),
                    _ => None,
                })
                .collect(),
        ),
    };
    Ok(FieldOut::Array(out))
}

/// Decodes one column value; `None` is SQL NULL.
pub fn decode(
    kind: ColumnKind,
    raw: Option<&[u8]>,
    rt: ReturnTypes,
) -> Result<FieldOut, DecodeError> {
    let Some(raw) = raw else {
        return Ok(FieldOut::Null);
    };
    match kind {
        ColumnKind::Scalar(s) => decode_scalar(s, raw, rt),
        ColumnKind::Array(element) => {
            // Numeric arrays stay strings whatever decimalReturnType says.
            let rt = if element == Scalar::Numeric {
                ReturnTypes {
                    decimal_as_number: false,
                    ..rt
                }
            } else {
                rt
            };
            decode_array(element, raw, rt)
        }
    }
}

/// `java.sql.Types` codes.
pub mod jdbc {
    /// `BIT`.
    pub const BIT: i32 = -7;
    /// `SMALLINT`.
    pub const SMALLINT: i32 = 5;
    /// `INTEGER`.
    pub const INTEGER: i32 = 4;
    /// `BIGINT`.
    pub const BIGINT: i32 = -5;
    /// `REAL`.
    pub const REAL: i32 = 7;
    /// `DOUBLE`.
    pub const DOUBLE: i32 = 8;
    /// `NUMERIC`.
    pub const NUMERIC: i32 = 2;
    /// `CHAR`.
    pub const CHAR: i32 = 1;
    /// `VARCHAR`.
    pub const VARCHAR: i32 = 12;
    /// `BINARY`.
    pub const BINARY: i32 = -2;
    /// `DATE`.
    pub const DATE: i32 = 91;
    /// `TIME`.
    pub const TIME: i32 = 92;
    /// `TIMESTAMP`.
    pub const TIMESTAMP: i32 = 93;
    /// `OTHER`.
    pub const OTHER: i32 = 1111;
    /// `ARRAY`.
    pub const ARRAY: i32 = 2003;
}

/// The JDBC type code the PostgreSQL JDBC driver reports for a type.
pub fn jdbc_type(ty: &Type) -> i32 {
    if let Kind::Array(_) = ty.kind() {
        return jdbc::ARRAY;
    }
    match *ty {
        Type::BOOL | Type::BIT => jdbc::BIT,
        Type::INT2 => jdbc::SMALLINT,
        Type::INT4 => jdbc::INTEGER,
        Type::INT8 | Type::OID => jdbc::BIGINT,
        Type::FLOAT4 => jdbc::REAL,
        Type::FLOAT8 => jdbc::DOUBLE,
        Type::NUMERIC => jdbc::NUMERIC,
        Type::BPCHAR | Type::CHAR => jdbc::CHAR,
        Type::TEXT | Type::VARCHAR | Type::NAME | Type::UNKNOWN => jdbc::VARCHAR,
        Type::BYTEA => jdbc::BINARY,
        Type::DATE => jdbc::DATE,
        Type::TIME => jdbc::TIME,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => jdbc::TIMESTAMP,
        _ => jdbc::OTHER,
    }
}

/// The element's JDBC type for an array type, else 0.
pub fn array_base_type(ty: &Type) -> i32 {
    match ty.kind() {
        Kind::Array(element) => jdbc_type(element),
        _ => 0,
    }
}

/// What the JDBC driver says about a type: (precision, scale, signed,
/// case-sensitive), given the column's type modifier when known (-1 if not).
pub fn type_facts(ty: &Type, typmod: i32) -> (i32, i32, bool, bool) {
    const UNBOUNDED: i32 = i32::MAX;
    match *ty {
        Type::BOOL => (1, 0, false, false),
        Type::INT2 => (5, 0, true, false),
        Type::INT4 | Type::OID => (10, 0, true, false),
        Type::INT8 => (19, 0, true, false),
        Type::FLOAT4 => (8, 8, true, false),
        Type::FLOAT8 => (17, 17, true, false),
        Type::NUMERIC => {
            if typmod >= 4 {
                let m = typmod - 4;
                ((m >> 16) & 0xffff, m & 0xffff, true, false)
            } else {
                (0, 0, true, false)
            }
        }
        Type::VARCHAR | Type::BPCHAR => (
            if typmod >= 4 { typmod - 4 } else { UNBOUNDED },
            0,
            false,
            true,
        ),
        Type::DATE => (13, 0, false, false),
        Type::TIME => (15, 6, false, false),
        Type::TIMESTAMP => (29, 6, false, false),
        Type::TIMESTAMPTZ => (35, 6, false, false),
        Type::BIT => (if typmod > 0 { typmod } else { 1 }, 0, false, false),
        _ => (UNBOUNDED, 0, false, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numerics_print_like_postgres() {
        // 12345.678: ndigits 3, weight 1, [1, 2345, 6780], dscale 3.
        let raw = [0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c];
        assert_eq!(numeric_to_string(&raw).unwrap(), ("12345.678".into(), 3));
        // -0.0005: ndigits 1, weight -1, [5], dscale 4.
        let raw = [0, 1, 0xff, 0xff, 0x40, 0, 0, 4, 0, 5];
        assert_eq!(numeric_to_string(&raw).unwrap().0, "-0.0005");
        // 0.00000001: weight -2, [1], dscale 8.
        let raw = [0, 1, 0xff, 0xfe, 0, 0, 0, 8, 0, 1];
        assert_eq!(numeric_to_string(&raw).unwrap().0, "0.00000001");
        // 10000 with dscale 2: weight 1, [1].
        let raw = [0, 1, 0, 1, 0, 0, 0, 2, 0, 1];
        assert_eq!(numeric_to_string(&raw).unwrap().0, "10000.00");
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(format_pg_date(0), "2000-01-01");
        assert_eq!(format_pg_date(-10_957), "1970-01-01");
        assert_eq!(format_pg_date(8_825), "2024-02-29");
        assert_eq!(format_timestamp(0), "2000-01-01 00:00:00");
        assert_eq!(format_timestamp(-1), "1999-12-31 23:59:59.999999");
        assert_eq!(
            format_timestamp(86_400_000_000 + 3_723_120_000),
            "2000-01-02 01:02:03.12"
        );
        assert_eq!(format_pg_date(-730_485), "0001-01-01 BC");
    }
}
