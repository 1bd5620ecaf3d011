//! Named placeholders (`:name`) and their rewriting to `$n`.
//!
//! Statements are written once with `:name` placeholders, the form the
//! Aurora Data API takes as is. [`to_positional`] rewrites them to the `$1`,
//! `$2`, ... form of the PostgreSQL wire protocol (tokio-postgres), and
//! returns the names in parameter order so that a backend can bind values by
//! name. `dataapi-local` uses the same scanner to serve the Data API.
//!
//! The rewriter understands enough SQL lexing not to touch what only looks
//! like a placeholder: `::` casts (`:p::int8[]` becomes `$1::int8[]`),
//! string literals (`'a:b'`, `E'\':x'`), quoted identifiers (`"a:b"`),
//! dollar-quoted bodies (`$$ ... :x ... $$`, `$tag$ ... $tag$`), array slices
//! (`a[1:2]`), and line and (nested) block comments. A name used twice maps
//! to the same `$n`. It also notices a second statement after a `;` (the
//! Data API refuses those).

/// A statement in `$n` form and the names of its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Positional {
    /// The SQL text with `$1`, `$2`, ... placeholders.
    pub sql: String,
    /// `params[i]` is the name that `$(i + 1)` replaced.
    pub params: Vec<String>,
    /// Something other than blanks and comments follows a `;`.
    pub multiple_statements: bool,
}

impl Positional {
    /// The position (0-based) of parameter `name`, if the statement has it.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.params.iter().position(|p| p == name)
    }
}

/// Letters, `_` and any non-ASCII byte start an SQL identifier.
fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_ident_char(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit() || b == b'$'
}

fn is_param_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn starts_comment(bytes: &[u8], i: usize) -> bool {
    matches!(
        (bytes.get(i), bytes.get(i + 1)),
        (Some(b'-'), Some(b'-')) | (Some(b'/'), Some(b'*'))
    )
}

/// Rewrites `:name` placeholders to `$n` (see the module docs).
pub fn to_positional(sql: &str) -> Positional {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 8);
    let mut params: Vec<String> = Vec::new();
    // Start of the text not yet copied to `out`. Only ASCII bytes are ever
    // cut at, so every cut falls on a UTF-8 character boundary.
    let mut copied = 0;
    let mut i = 0;
    let mut after_semicolon = false;
    let mut multiple_statements = false;
    while i < bytes.len() {
        let b = bytes[i];
        if after_semicolon && !b.is_ascii_whitespace() && !starts_comment(bytes, i) && b != b';' {
            multiple_statements = true;
            after_semicolon = false;
        }
        match b {
            b'\'' => i = skip_quoted(bytes, i, b'\'', false),
            b'"' => i = skip_quoted(bytes, i, b'"', false),
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = bytes[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(bytes.len(), |n| i + n + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = skip_block_comment(bytes, i),
            b'$' => i = skip_dollar_quoted(bytes, i),
            b';' => {
                after_semicolon = true;
                i += 1;
            }
            b':' if bytes.get(i + 1) == Some(&b':') => i += 2,
            b':' if bytes
                .get(i + 1)
                .is_some_and(|&c| c.is_ascii_alphabetic() || c == b'_') =>
            {
                let start = i + 1;
                let mut end = start;
                while end < bytes.len() && is_param_char(bytes[end]) {
                    end += 1;
                }
                let name = &sql[start..end];
                let index = match params.iter().position(|p| p == name) {
                    Some(index) => index,
                    None => {
                        params.push(name.to_owned());
                        params.len() - 1
                    }
                };
                out.push_str(&sql[copied..i]);
                out.push('$');
                out.push_str(&(index + 1).to_string());
                copied = end;
                i = end;
            }
            _ if is_ident_start(b) => {
                // An identifier is skipped whole (so `a$b` is no dollar
                // quote); a lone `E`/`e` before a quote opens an escape
                // string, where a backslash escapes the next character.
                let start = i;
                while i < bytes.len() && is_ident_char(bytes[i]) {
                    i += 1;
                }
                if i - start == 1 && (b == b'E' || b == b'e') && bytes.get(i) == Some(&b'\'') {
                    i = skip_quoted(bytes, i, b'\'', true);
                }
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied..]);
    Positional {
        sql: out,
        params,
        multiple_statements,
    }
}

/// Skips a literal opened by `quote` at `start`; a doubled quote is an
/// escaped quote, and with `backslash` (E'' strings) so is `\'`. An
/// unterminated literal runs to the end (PostgreSQL reports it).
fn skip_quoted(bytes: &[u8], start: usize, quote: u8, backslash: bool) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        let b = bytes[i];
        if backslash && b == b'\\' {
            i += 2;
        } else if b == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

fn skip_block_comment(bytes: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i + 1 < bytes.len() {
        if bytes[i] == b'/' && bytes[i + 1] == b'*' {
            depth += 1;
            i += 2;
        } else if bytes[i] == b'*' && bytes[i + 1] == b'/' {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// Skips `$tag$ ... $tag$` starting at `start`; a `$` that does not open a
/// dollar quote (`$1`) is skipped alone.
fn skip_dollar_quoted(bytes: &[u8], start: usize) -> usize {
    let mut end = start + 1;
    if end < bytes.len() && is_ident_start(bytes[end]) {
        while end < bytes.len() && is_ident_char(bytes[end]) && bytes[end] != b'$' {
            end += 1;
        }
    }
    if bytes.get(end) != Some(&b'$') {
        return start + 1;
    }
    let delimiter = &bytes[start..=end];
    let body = end + 1;
    bytes[body..]
        .windows(delimiter.len())
        .position(|w| w == delimiter)
        .map_or(bytes.len(), |n| body + n + delimiter.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(sql: &str) -> (String, Vec<String>) {
        let p = to_positional(sql);
        (p.sql, p.params)
    }

    #[test]
    fn names_become_numbers_in_order_of_first_use() {
        let (sql, params) =
            rewrite("SELECT * FROM t WHERE p = :p AND q = :q AND key > :since OR p = :p");
        assert_eq!(
            sql,
            "SELECT * FROM t WHERE p = $1 AND q = $2 AND key > $3 OR p = $1"
        );
        assert_eq!(params, ["p", "q", "since"]);
    }

    #[test]
    fn casts_are_kept() {
        let (sql, params) = rewrite("unnest(:p::int8[], :user_id::text) AS t(p), x::int4, a::b::c");
        assert_eq!(
            sql,
            "unnest($1::int8[], $2::text) AS t(p), x::int4, a::b::c"
        );
        assert_eq!(params, ["p", "user_id"]);
    }

    #[test]
    fn literals_identifiers_and_comments_are_untouched() {
        let sql = "SELECT ':a', 'it''s :b', E'\\':c', \"col:d\", $$ :e $$, $tag$ :f $$ $tag$ -- :g\n/* :h /* :i */ */ :j";
        let (out, params) = rewrite(sql);
        assert_eq!(params, ["j"]);
        assert!(out.ends_with("*/ $1"));
        assert!(out.contains("':a'") && out.contains(":e") && out.contains(":i"));
    }

    #[test]
    fn non_ascii_text_survives() {
        let (sql, params) = rewrite("SELECT 'héllo ✓ :no', \"ü\", :x -- ✓");
        assert_eq!(params, ["x"]);
        assert_eq!(sql, "SELECT 'héllo ✓ :no', \"ü\", $1 -- ✓");
    }

    #[test]
    fn slices_are_not_names() {
        let (sql, params) = rewrite("SELECT a[1:2], a[:n], :x");
        assert_eq!(sql, "SELECT a[1:2], a[$1], $2");
        assert_eq!(params, ["n", "x"]);
    }

    #[test]
    fn unterminated_input_does_not_panic() {
        for sql in [
            "'open", "\"open", "$$ open", "/* open", "-- open", ":", "::", "E'\\",
        ] {
            let _ = to_positional(sql);
        }
    }

    #[test]
    fn doubled_quotes_stay_inside_the_literal() {
        let (_, params) = rewrite("SELECT 'it''s :not', :yes");
        assert_eq!(params, ["yes"]);
    }

    #[test]
    fn positional_dollars_and_identifiers_with_dollars() {
        let (sql, params) = rewrite("SELECT a$b, $1, :c");
        assert_eq!(sql, "SELECT a$b, $1, $1");
        assert_eq!(params, ["c"]);
    }

    #[test]
    fn second_statements_are_noticed() {
        assert!(to_positional("SELECT 1; SELECT 2").multiple_statements);
        assert!(!to_positional("SELECT 1;").multiple_statements);
        assert!(!to_positional("SELECT 1; -- trailing\n /* c */ ;").multiple_statements);
        assert!(!to_positional("SELECT ';'; ").multiple_statements);
    }
}
