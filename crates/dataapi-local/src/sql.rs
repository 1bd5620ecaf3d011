//! Named parameters: `:name` in the SQL text becomes a PostgreSQL `$n`.
//!
//! Values are never spliced into the text. The scanner (shared with the
//! game's own statements: `pg_sql::to_positional`) finds the `:name` tokens
//! that are real placeholders and skips everything where a colon means
//! something else: `::type` casts, string literals (standard, `E'...'` with
//! backslash escapes, dollar-quoted), quoted identifiers and comments. It
//! also spots a second statement after a `;`, which the Data API refuses for
//! Aurora Serverless v2 and provisioned clusters.

/// The SQL rewritten for PostgreSQL and the parameter names in `$n` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    /// The SQL with `$1..$n` in place of the named parameters.
    pub sql: String,
    /// `names[i]` is bound to `$(i + 1)`; a name used twice appears once.
    pub names: Vec<String>,
}

/// Why a SQL text cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    /// More than one statement (something other than comments after `;`).
    #[error("Multistatements aren't supported.")]
    MultipleStatements,
}

/// Rewrites `:name` placeholders into `$n` and checks for multistatements.
pub fn rewrite(sql: &str) -> Result<Rewritten, SqlError> {
    let positional = pg_sql::to_positional(sql);
    if positional.multiple_statements {
        return Err(SqlError::MultipleStatements);
    }
    Ok(Rewritten {
        sql: positional.sql,
        names: positional.params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(sql: &str) -> (String, Vec<String>) {
        let r = rewrite(sql).unwrap();
        (r.sql, r.names)
    }

    #[test]
    fn plain_parameters() {
        let (sql, n) = names("SELECT * FROM t WHERE a = :a AND b = :b_2 OR a = :a");
        assert_eq!(sql, "SELECT * FROM t WHERE a = $1 AND b = $2 OR a = $1");
        assert_eq!(n, vec!["a", "b_2"]);
    }

    #[test]
    fn casts_are_not_parameters() {
        let (sql, n) = names("SELECT :x::int, '1'::text, :y ::date");
        assert_eq!(sql, "SELECT $1::int, '1'::text, $2 ::date");
        assert_eq!(n, vec!["x", "y"]);
    }

    #[test]
    fn literals_identifiers_and_comments_are_skipped() {
        let sql =
            "SELECT ':a', \":b\", E'\\':c', $$ :d $$, $t$ :e $t$ -- :f\n /* :g /* :h */ */ :i";
        let (out, n) = names(sql);
        assert_eq!(n, vec!["i"]);
        assert!(out.ends_with("$1"));
        assert!(out.contains("':a'"));
    }

    #[test]
    fn doubled_quotes_stay_inside_the_literal() {
        let (_, n) = names("SELECT 'it''s :not', :yes");
        assert_eq!(n, vec!["yes"]);
    }

    #[test]
    fn positional_dollars_and_identifiers_with_dollars() {
        let (sql, n) = names("SELECT a$b, $1, :c");
        assert_eq!(sql, "SELECT a$b, $1, $1");
        assert_eq!(n, vec!["c"]);
    }

    #[test]
    fn array_slices_with_numbers_are_not_parameters() {
        let (_, n) = names("SELECT arr[1:2] FROM t");
        assert!(n.is_empty());
    }

    #[test]
    fn multistatements_are_refused() {
        assert_eq!(
            rewrite("SELECT 1; SELECT 2"),
            Err(SqlError::MultipleStatements)
        );
        assert!(rewrite("SELECT 1;").is_ok());
        assert!(rewrite("SELECT 1; -- trailing\n /* c */ ;").is_ok());
        assert!(rewrite("SELECT ';'; ").is_ok());
    }
}
